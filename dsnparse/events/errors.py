"""Errors of :mod:`dsnparse.events` (children of :class:`dsnparse.errors.DsnparseError`)."""
from __future__ import annotations

from ..errors import DsnparseError


class EventFormatError(DsnparseError, ValueError):
    """A webhook payload is not a shape the provider documents: not JSON of the expected
    type, an unknown event type, a bounce without a recipient.  ``dsnparse serve`` answers
    it with HTTP 400 and a JSON error; the message names the provider and what is wrong.

    Attributes:
        provider: the provider (``str``) the payload was read as.
    """

    def __init__(self, provider: str, message: str):
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class EventAuthError(DsnparseError):
    """A webhook request failed its provider's authentication (signature, HMAC, basic
    auth or token), or the secret it needs is not configured.  ``dsnparse serve`` answers
    it with HTTP 401 and changes nothing.  The message says why, never a secret.

    Attributes:
        provider: the provider (``str``).
    """

    def __init__(self, provider: str, message: str):
        self.provider = provider
        super().__init__(f"{provider}: {message}")
