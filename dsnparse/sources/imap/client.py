"""Connecting to the IMAP server and filing messages there (RFC 3501, 6851, 4315)."""
from __future__ import annotations

import ssl

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


def _move(client, uids: list[int], folder: str) -> None:
    """UID MOVE (RFC 6851), else UID COPY + \\Deleted + UID EXPUNGE (RFC 4315)."""
    caps = client.capabilities()
    if b"MOVE" in caps:
        client.move(uids, folder)
        return
    client.copy(uids, folder)
    client.add_flags(uids, ["\\Deleted"], silent=True)
    if b"UIDPLUS" in caps:
        client.uid_expunge(uids)
    else:
        log.warning("server has neither MOVE nor UIDPLUS: %d copied messages are left flagged "
                    "\\Deleted in %s and not expunged", len(uids), client)
