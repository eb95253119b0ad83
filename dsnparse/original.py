"""The returned original inside a bounce, as the generic layer reads it: its ``To`` / ``Cc``
complete a local-part-only recipient and name a system mailbox that was the recipient, its
one ``To`` stands for a notice that names no address, and a returned message that is
itself a delivery-status report is read as one.

``ctx`` is the engine's per-message :class:`dsnparse.engine.Context` (its ``st.original``,
``text()``, ``timeout`` and the ``local_map`` kept between calls), ``pack`` the rule pack
whose ``original_start`` markers find a returned header block in the text.
"""
from __future__ import annotations

from typing import Optional

from . import deep, rfc3464, rules
from .load import header as get_header


def returned_report(ctx):
    """The delivery-status fields of a returned message that is itself a DSN (a bounce
    forwarded or returned inside another one), or ``None``."""
    orig = ctx.st.original
    if orig is None or not orig.is_multipart():
        return None
    ds = rfc3464.read(rfc3464.scan(orig))
    return ds if ds is not None and ds.recipients else None


# A To field longer than this is not one address (RFC 5321 §4.5.3.1.3: a path is at most 256
# octets; a display name adds little), and the stdlib's address parser is slow on it.
MAX_TO = 4096


def local_part_in_original(pack, ctx, local: str) -> Optional[str]:
    """The address a local-part-only recipient line stands for (``550 5.1.1 alice... User
    unknown``, written by an MTA delivering to its own users): the one address of the
    returned message's ``To`` / ``Cc`` with that local part (compared case-insensitively),
    else ``None``; an address is never made up from a host name."""
    if not local or len(local) > 64:
        return None
    if ctx.local_map is None:
        ctx.local_map = {}
        values = []
        orig = ctx.st.original
        if orig is not None:
            values = [v for n in ("to", "cc") if (v := get_header(orig, n))]
        elif pack.original_start:
            headers = original_header_block(pack, ctx)
            if headers is not None:
                values = [v for n in ("to", "cc") if (v := get_header(headers, n))]
        values = [v for v in values if len(v) <= MAX_TO]
        found = deep.getaddresses(values)
        for _, a in found:
            a = rules.clean_address(a)
            if a:
                ctx.local_map.setdefault(a.split("@", 1)[0].lower(), set()).add(a)
    cands = ctx.local_map.get(local.lower(), ())
    return next(iter(cands)) if len(cands) == 1 else None


def addressed_in_original(pack, ctx, addr: str) -> bool:
    """``True`` when the returned original's ``To`` / ``Cc`` holds ``addr`` (compared
    case-insensitively): a message sent to a mail-system mailbox (``postmaster@`` of another
    domain, RFC 5321 §4.5.1) bounced, and that mailbox is the failed recipient."""
    local = addr.split("@", 1)[0]
    local_part_in_original(pack, ctx, local)  # fills ctx.local_map (unless local is too long)
    found = ctx.local_map.get(local.lower(), ()) if ctx.local_map is not None else ()
    return addr.lower() in {a.lower() for a in found}


def original_header_block(pack, ctx):
    """The header block that follows the pack's first ``original_start`` marker in the text,
    parsed, or ``None``."""
    text = ctx.text()
    hits = [m for p in pack.original_start if (m := p.search(text, ctx.timeout))]
    if not hits:
        return None
    start = min(m.start() for m in hits)
    after = text[start:].split("\n", 1)[1] if "\n" in text[start:] else ""
    return rfc3464._parse_headers_text(after[:20_000])


def returned_to(pack, ctx, exclude) -> Optional[str]:
    """The one address in the ``To`` of the returned message: the message/rfc822 part, else
    the header block that follows the pack's ``original_start`` marker in the text.  ``None``
    when there is no such header, it holds more or less than one address, or it is longer
    than :data:`MAX_TO` characters."""
    to = get_header(ctx.st.original, "to") if ctx.st.original is not None else None
    if to is None and pack.original_start:
        headers = original_header_block(pack, ctx)
        to = get_header(headers, "to") if headers is not None else None
    if not to or len(to) > MAX_TO:
        return None
    addrs = [a for _, a in deep.getaddresses([to]) if a]
    if len(addrs) != 1:
        return None
    addr = rules.clean_address(addrs[0])
    if not addr or exclude is not None and addr.lower() in exclude:
        return None
    return addr  # the original's only To: a system mailbox too (a message sent to postmaster@)
