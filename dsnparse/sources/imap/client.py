"""Connecting to the IMAP server and filing messages there (RFC 3501, 6851, 4315)."""
from __future__ import annotations

import hashlib
import ssl
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
            client.login(o.user, o.password)
        except LoginError as e:
            raise ImapLoginError(f"login as {o.user} on {o.server} failed: "
                                 f"{_text(e.args[0]) if e.args else e}") from e
        except (OSError, IMAPClientError) as e:
            raise ImapLoginError(f"login on {o.server} failed: {e}", retryable=True) from e
    except BaseException:
        _close(client)
        raise
    return client


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
