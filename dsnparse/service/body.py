"""Reading a request body under a size limit (``--max-body``), without reading too much.

A declared ``Content-Length`` over the limit is refused before any of the body is read; a
body without one (``Transfer-Encoding: chunked``) is counted while it streams in and refused
as soon as it passes the limit.  Either way the client gets ``413 Content Too Large``
(RFC 9110 §15.5.14).
"""
from __future__ import annotations


class BodyTooLarge(Exception):
    """The body is larger than the limit (``limit`` bytes; ``declared``: its
    ``Content-Length``, or ``None`` when counted while streaming)."""

    def __init__(self, limit: int, declared=None):
        self.limit = limit
        self.declared = declared
        what = f"Content-Length {declared}" if declared is not None else "the body"
        super().__init__(f"{what} is over the limit of {limit} bytes (--max-body)")


class BodyTimeout(Exception):
    """The body did not arrive within the time allowed (``--body-timeout`` seconds): the
    client stalled.  Answered ``408 Request Timeout`` (RFC 9110 §15.5.9)."""


class BadLength(Exception):
    """The ``Content-Length`` header is not a number of bytes (RFC 9110 §8.6)."""


async def read_body(request, limit: int, timeout: float = 0) -> bytes:
    """Return the whole body of a Starlette ``request`` (``bytes``).

    Args:
        request: a ``starlette.requests.Request``.
        limit: the most bytes accepted.
        timeout: seconds the whole body may take to arrive (``0``: no limit).

    Raises:
        BodyTooLarge: ``Content-Length`` or the bytes received pass ``limit``.
        BodyTimeout: the body took longer than ``timeout``.
        BadLength: ``Content-Length`` is not a decimal number.
    """
    if timeout and timeout > 0:
        import anyio

        try:
            with anyio.fail_after(timeout):
                return await _read(request, limit)
        except TimeoutError:
            raise BodyTimeout(f"the request body did not arrive within {timeout:g} s "
                              f"(--body-timeout)") from None
    return await _read(request, limit)


async def _read(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadLength(f"Content-Length {declared!r} is not a number of bytes")
        n = int(declared)
        if n > limit:
            raise BodyTooLarge(limit, n)
    parts = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)
