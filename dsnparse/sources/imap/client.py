"""Connecting to the IMAP server and filing messages there (RFC 3501, 6851, 4315)."""
from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
from typing import Callable, Optional

from .options import ImapConnectionLost, ImapLoginError, ImapOptions, log


def connect(o: ImapOptions):
    """Open and log in an :class:`imapclient.IMAPClient`; raise :class:`ImapLoginError`."""
    import imapclient
    from imapclient.exceptions import IMAPClientError, LoginError

    ctx = None
    if o.security != "plain":
        try:
            ctx = ssl.create_default_context(cafile=o.ca_file)
        except (OSError, ssl.SSLError) as e:
            raise ImapLoginError(f"cannot read CA file {o.ca_file}: {e}") from e
    what = f"{o.security.upper()} {o.server}"
    try:
        client = imapclient.IMAPClient(o.host, port=o.real_port, ssl=o.security == "ssl",
                                       ssl_context=ctx, timeout=o.timeout)
    except ssl.SSLCertVerificationError as e:
        raise ImapLoginError(f"TLS certificate of {o.server} not trusted: {e.verify_message}"
                             " (use --ca-file for a private CA)") from e
    except ssl.SSLError as e:
        raise ImapLoginError(f"TLS with {o.server} failed: {e}") from e
    except (OSError, IMAPClientError) as e:
        raise ImapLoginError(f"cannot connect to {what}: {e}", retryable=True) from e
    try:
        if o.security == "starttls":
            try:
                client.starttls(ctx)
            except ssl.SSLCertVerificationError as e:
                raise ImapLoginError(f"TLS certificate of {o.server} not trusted: "
                                     f"{e.verify_message} (use --ca-file for a private CA)"
                                     ) from e
            except (OSError, IMAPClientError) as e:
                raise ImapLoginError(f"STARTTLS with {o.server} failed: {e}") from e
        try:
            if o.auth == "login":
                client.login(o.user, o.password)
            else:
                _oauth2_login(client, o)
        except LoginError as e:
            said = _text(e.args[0]) if e.args else str(e)
            # RFC 5530 §3: [UNAVAILABLE] is a temporary failure of the server's
            # authentication backend, not a refusal of the credentials (--watch retries it)
            raise ImapLoginError(f"login as {o.user} on {o.server} failed: {said}",
                                 retryable="[UNAVAILABLE]" in said) from e
        except (OSError, IMAPClientError) as e:
            raise ImapLoginError(f"login on {o.server} failed: {e}", retryable=True) from e
    except BaseException:
        _close(client)
        raise
    return client


def access_token(o: ImapOptions) -> str:
    """The OAuth2 access token for one connection: the first line printed by
    ``o.token_command`` (run through ``/bin/sh -c``, stdin and stderr left to the user for
    tools that prompt; a JSON object's ``access_token`` member is taken too), else
    ``o.password``.  Raises :class:`ImapLoginError` (retryable: the token service may be
    down for a moment) when the command fails, times out (``o.timeout`` seconds) or prints
    no token."""
    if not o.token_command:
        token = o.password.strip()
        if not token:
            raise ImapLoginError("no OAuth2 access token: DSNPARSE_IMAP_TOKEN is empty")
        return _check_token(token, "DSNPARSE_IMAP_TOKEN")
    what = f"OAuth2 token command {o.token_command!r}"
    try:
        p = subprocess.run(["/bin/sh", "-c", o.token_command], stdout=subprocess.PIPE,
                           timeout=o.timeout)
    except subprocess.TimeoutExpired:
        raise ImapLoginError(f"{what} did not finish within {o.timeout:.0f} s",
                             retryable=True) from None
    except OSError as e:
        raise ImapLoginError(f"{what} could not be run: {e}", retryable=True) from e
    if p.returncode:
        raise ImapLoginError(f"{what} failed with exit status {p.returncode}",
                             retryable=True)
    out = p.stdout.decode("utf-8", "replace").strip()
    if out.startswith("{"):
        try:
            out = str(json.loads(out).get("access_token") or "")
        except (ValueError, AttributeError):
            pass
    token = out.splitlines()[0].strip() if out else ""
    if not token:
        raise ImapLoginError(f"{what} printed no token", retryable=True)
    return _check_token(token, what)


def _check_token(token: str, what: str) -> str:
    # RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    if not re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", token):
        raise ImapLoginError(f"{what} gave something that is not a bearer token "
                             "(RFC 6750 b64token): print the access token alone")
    return token


class _OAuth2Mechanism:
    """SASL client of XOAUTH2 (Google's) or OAUTHBEARER (RFC 7628 §3.1).

    The initial response carries the token; a server rejecting it sends a JSON error as a
    challenge (RFC 7628 §3.2.2), which is kept in ``error`` and answered with the dummy
    response (``%x01`` for OAUTHBEARER, empty for XOAUTH2) so that the server ends the
    exchange with NO."""

    def __init__(self, mech: str, user: str, token: str):
        self.mech, self.user, self.token = mech, user, token
        self.sent = False
        self.error: Optional[str] = None

    def __call__(self, challenge: bytes) -> bytes:
        if not self.sent:
            self.sent = True
            if self.mech == "xoauth2":
                return f"user={self.user}\1auth=Bearer {self.token}\1\1".encode()
            gs2 = "n,a=" + self.user.replace("=", "=3D").replace(",", "=2C") + ","
            return f"{gs2}\1auth=Bearer {self.token}\1\1".encode()
        self.error = _text(challenge).strip() or None
        return b"\1" if self.mech == "oauthbearer" else b""


def _oauth2_login(client, o: ImapOptions) -> None:
    from imapclient.exceptions import LoginError

    mech = o.auth.upper()
    caps = client.capabilities()
    if f"AUTH={mech}".encode() not in caps:
        offered = sorted(_text(c)[5:] for c in caps if c.startswith(b"AUTH="))
        raise ImapLoginError(f"{o.server} does not offer AUTH={mech} (it offers: "
                             f"{', '.join(offered) or 'none'}); see --auth")
    token = access_token(o)
    sasl = _OAuth2Mechanism(o.auth, o.user, token)
    try:
        client.sasl_login(mech, sasl)
    except LoginError as e:
        detail = f" (server's error: {sasl.error})" if sasl.error else ""
        raise LoginError(f"{mech}: {_text(e.args[0]) if e.args else e}{detail}; the access "
                         "token may be expired, for another user or lack the mail scope"
                         ) from e


def _text(x):
    return x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x)


def _close(client):
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            pass


def _network_errors():
    from imapclient.exceptions import IMAPClientAbortError, IMAPClientError
    return (OSError, EOFError, IMAPClientAbortError, IMAPClientError, ImapConnectionLost)


def _has_move(client) -> bool:
    return b"MOVE" in client.capabilities()


def _move(client, uids: list[int], folder: str, source_folder: str, readonly: bool = False,
          recheck: Optional[dict[int, tuple[Optional[str], str]]] = None,
          on_copied: Optional[Callable[[], None]] = None) -> None:
    """UID MOVE (RFC 6851), else UID COPY + \\Deleted + UID EXPUNGE (RFC 4315).

    Without MOVE the steps are not atomic: a run killed between COPY and EXPUNGE leaves the
    message in both folders.  So for the UIDs in ``recheck`` (UID → (Message-ID, SHA-256):
    filing may have begun before) the target folder is searched first (:func:`_copied`) and
    a message already there is only deleted from ``source_folder``, not copied again.
    ``on_copied`` runs after the COPY (the crash-test hook).
    """
    caps = client.capabilities()
    if b"MOVE" in caps:
        client.move(uids, folder)
        return
    done = _copied(client, folder, source_folder, readonly, recheck) if recheck else set()
    if done:
        log.info("%d messages are already in %s (copied by an interrupted run): not copied "
                 "again", len(done), folder)
    to_copy = [u for u in uids if u not in done]
    if to_copy:
        client.copy(to_copy, folder)
    if on_copied:
        on_copied()
    client.add_flags(uids, ["\\Deleted"], silent=True)
    if b"UIDPLUS" in caps:
        client.uid_expunge(uids)
    else:
        log.warning("server has neither MOVE nor UIDPLUS: %d copied messages are left flagged "
                    "\\Deleted in %s and not expunged", len(uids), client)


def _copied(client, folder: str, source_folder: str, readonly: bool,
            recheck: dict[int, tuple[Optional[str], str]]) -> set[int]:
    """The UIDs of ``recheck`` (in the selected ``source_folder``) whose exact bytes are
    already in ``folder``: candidates found by UID SEARCH on size (RFC822.SIZE) and
    Message-ID header (RFC 3501 §6.4.4), then compared by SHA-256.  Re-selects
    ``source_folder`` before returning."""
    sizes = client.fetch(list(recheck), ["RFC822.SIZE"])
    client.select_folder(folder, readonly=True)
    found: set[int] = set()
    used: set[int] = set()              # each copy in the target stands for one message
    try:
        for uid, (mid, digest) in recheck.items():
            size = sizes.get(uid, {}).get(b"RFC822.SIZE")
            if size is None:
                continue                # gone from the source folder meanwhile
            criteria: list = ["LARGER", size - 1, "SMALLER", size + 1]
            if mid and mid.isascii() and len(mid) <= 998:     # RFC 5322 §2.1.1 line limit
                criteria += ["HEADER", "Message-ID", mid]
            candidates = [c for c in client.search(criteria) if c not in used][:20]
            if not candidates:
                continue
            for cuid, data in client.fetch(candidates, ["BODY.PEEK[]"]).items():
                body = data.get(b"BODY[]")
                if body is not None and hashlib.sha256(body).hexdigest() == digest:
                    found.add(uid)
                    used.add(cuid)
                    break
    finally:
        client.select_folder(source_folder, readonly=readonly)
    return found
