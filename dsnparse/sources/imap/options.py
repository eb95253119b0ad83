"""Options, summary and errors of the IMAP source (see :mod:`dsnparse.sources.imap`)."""
from __future__ import annotations

import datetime as _dt
import logging
import os
from dataclasses import dataclass, field
from typing import Optional
from urllib.parse import quote

from ...errors import SourceError

log = logging.getLogger("dsnparse.imap")

BOUNCE_KINDS = ("bounce", "delay")
SECURITY = ("ssl", "starttls", "plain")
AUTH = ("login", "xoauth2", "oauthbearer")
KILL_POINTS = ("parsed", "written", "committed", "copied", "filed")


class ImapLoginError(SourceError):
    """Connecting, TLS or LOGIN failed before anything was changed (CLI exit status 2).

    ``retryable`` is true for network trouble (refused, timeout, reset) and false for a
    rejected login or an untrusted certificate.
    """

    def __init__(self, message, retryable=False):
        super().__init__(message)
        self.retryable = retryable


class ImapConnectionLost(SourceError):
    """The connection dropped in the middle of a run."""


class LocalIOError(SourceError):
    """Writing the output or the state file failed on this machine (ENOSPC, EIO, EACCES…).

    Not a network error: the run does not reconnect and re-process.  When it is raised the
    output file has already been truncated back to its last committed checkpoint (a partial
    record is never left behind) and nothing of the failed batch has been filed.
    """


@dataclass(frozen=True)
class ImapOptions:
    """Everything :func:`run` needs to know.  Immutable; derive with ``dataclasses.replace``.

    ``port`` defaults to 993 for ``security="ssl"`` and 143 otherwise.  ``since`` is a
    :class:`datetime.date` (IMAP SEARCH SINCE, by internal date).  ``limit`` caps the number
    of messages processed per pass.  ``processed_folder`` is used unless ``flag_only``;
    ``other_folder=None`` leaves non-bounces where they are.  ``state_path=None`` means
    :func:`default_state_path`.

    ``auth``: ``"login"`` (IMAP LOGIN with ``password``), ``"xoauth2"`` (Google's XOAUTH2
    SASL mechanism) or ``"oauthbearer"`` (RFC 7628).  For the OAuth2 ones the access token
    is the output of ``token_command`` (run through ``/bin/sh -c`` at every connection, so
    a reconnect gets a fresh token) or, without a command, ``password``.
    """

    host: str
    user: str
    password: str = field(repr=False, default="")
    port: Optional[int] = None
    security: str = "ssl"
    ca_file: Optional[str] = None
    folder: str = "INBOX"
    since: Optional[_dt.date] = None
    unseen: bool = False
    limit: Optional[int] = None
    batch_size: int = 50
    processed_folder: Optional[str] = "Processed"
    other_folder: Optional[str] = None
    flag_only: bool = False
    flag: str = "\\Flagged"
    dry_run: bool = False
    state_path: Optional[str] = None
    timeout: float = 60.0
    watch: bool = False
    idle_timeout: float = 300.0
    poll_interval: float = 30.0
    max_backoff: float = 60.0
    auth: str = "login"
    token_command: Optional[str] = None

    def __post_init__(self):
        if self.security not in SECURITY:
            raise ValueError(f"security must be one of {SECURITY}, not {self.security!r}")
        if self.auth not in AUTH:
            raise ValueError(f"auth must be one of {AUTH}, not {self.auth!r}")
        if self.token_command and self.auth == "login":
            raise ValueError("an OAuth2 token command needs auth xoauth2 or oauthbearer")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        targets = {self.processed_folder if not self.flag_only else None, self.other_folder}
        if self.folder in targets:
            raise ValueError(f"the folder to read ({self.folder}) cannot also be a target folder")

    @property
    def real_port(self) -> int:
        return self.port or (993 if self.security == "ssl" else 143)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.real_port}"

    def source_prefix(self) -> str:
        """``imap://user@host/FOLDER;UIDVALIDITY=``: what every record's source starts with."""
        return self.source(0, 0).rsplit(";UIDVALIDITY=", 1)[0] + ";UIDVALIDITY="

    def source(self, uidvalidity: int, uid: int) -> str:
        """The RFC 5092 IMAP URL of one message."""
        default = 993 if self.security == "ssl" else 143
        hostport = self.host if self.real_port == default else self.server
        return (f"imap://{quote(self.user, safe='')}@{hostport}/{quote(self.folder, safe='/')}"
                f";UIDVALIDITY={uidvalidity}/;UID={uid}")


@dataclass
class Summary:
    """Counts of one run (all passes of a ``watch`` run)."""

    read: int = 0
    bounces: int = 0
    hard: int = 0
    soft: int = 0
    other: int = 0
    moved: int = 0
    flagged: int = 0
    skipped: int = 0
    errors: int = 0
    complete: bool = True
    io_error: Optional[str] = None      # the last local I/O error (LocalIOError), if any

    @property
    def exit_status(self) -> int:
        return 0 if self.complete and not self.errors else 1

    def line(self) -> str:
        return (f"read {self.read}, bounces {self.bounces} (hard {self.hard}, soft {self.soft}), "
                f"other {self.other}, moved {self.moved}, flagged {self.flagged}, "
                f"errors {self.errors}" + ("" if self.complete else ", incomplete")
                + (f" (local I/O error: {self.io_error})" if self.io_error else ""))


def default_state_path() -> str:
    """``$XDG_DATA_HOME/dsnparse/imap-state.sqlite3`` (``~/.local/share/...`` by default)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                           "share")
    return os.path.join(base, "dsnparse", "imap-state.sqlite3")
