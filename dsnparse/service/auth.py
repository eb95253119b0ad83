"""The bearer token of ``/v1/messages`` and ``/v1/suppressions`` (RFC 6750 §2.1).

The token comes from ``DSNPARSE_API_TOKEN`` or, when that is unset or empty, from the token
file (``--token-file``: its first line, surrounding white space removed).  When neither gives
one, those endpoints are open (bind to loopback then, the default).  Webhook endpoints do
not use it: each provider authenticates its own way (:mod:`dsnparse.events`).
"""
from __future__ import annotations

import hmac
import os
from typing import Mapping, Optional

from ..errors import DsnparseError

TOKEN_ENV = "DSNPARSE_API_TOKEN"


class TokenError(DsnparseError):
    """The token file cannot be read or is empty."""


def load_token(token_file: Optional[str]) -> Optional[str]:
    """Return the API token (``str``) or ``None`` when none is configured.

    Args:
        token_file: path of a file whose first line is the token, or ``None``.

    Raises:
        TokenError: ``token_file`` is given but cannot be read or holds no token.
    """
    env = os.environ.get(TOKEN_ENV, "").strip()
    if env:
        return env
    if not token_file:
        return None
    try:
        with open(token_file, encoding="utf-8") as f:
            first = f.readline().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise TokenError(f"--token-file {token_file}: cannot read it: "
                         f"{getattr(e, 'strerror', None) or e}") from None
    if not first:
        raise TokenError(f"--token-file {token_file}: the file is empty (no token on its "
                         f"first line)")
    return first


def bearer_ok(headers: Mapping[str, str], token: Optional[str]) -> bool:
    """``True`` when no token is configured, or ``Authorization: Bearer <token>`` matches.

    The comparison takes the same time whatever the given value (``hmac.compare_digest``),
    so the token cannot be guessed byte by byte from response times.  The scheme name is
    case-insensitive (RFC 7235 §2.1).
    """
    if token is None:
        return True
    value = headers.get("authorization") or ""
    scheme, _, given = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        given = ""
    return hmac.compare_digest(given.strip().encode("utf-8"), token.encode("utf-8"))
