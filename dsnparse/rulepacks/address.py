"""Addresses in rule matches: a recipient match cleaned into a plausible address
(:func:`clean_address`), and the addresses that are never a failed recipient — a mail
system's own mailboxes (:func:`is_system_address`) and those the bounce itself is from and
to (:func:`notified_addresses`).  RFC 5322 forms the simple check does not accept go to
:func:`dsnparse.addresses.flanker_address`.
"""
from __future__ import annotations

import re
from typing import Optional

from .pattern import _regex


_ADDR = None


_CJK_PUNCT = re.compile("[\u3000-\u303f\uff01-\uff20\uff3b-\uff40\uff5b-\uff65]")


def clean_address(text: Optional[str]) -> Optional[str]:
    """Return a plausible email address from a recipient match, or ``None``.

    Strips angle brackets, quotes, a ``mailto:`` prefix, trailing punctuation and what lies
    beyond CJK punctuation (``收件人：a@b.cn（李）`` gives ``a@b.cn``).  Addresses
    that a simple check does not accept are handed to flanker's parser (imported only then,
    as it is slow to import) which validates and normalises RFC 5322 forms such as quoted
    local parts and display names.
    """
    global _ADDR
    if not text:
        return None
    if _ADDR is None:
        regex = _regex()
        _ADDR = regex.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.\-\p{L}\p{N}]+@"
                              r"(?:[A-Za-z0-9\p{L}\p{N}](?:[A-Za-z0-9\p{L}\p{N}\-]*[A-Za-z0-9\p{L}\p{N}])?\.)*"
                              r"[A-Za-z0-9\p{L}\p{N}](?:[A-Za-z0-9\p{L}\p{N}\-]*[A-Za-z0-9\p{L}\p{N}])?$")
    t = text.strip()
    if t[:7].lower() == "mailto:":
        t = t[7:]
    if "<" in t:  # an address in angle brackets (found in linear time)
        from ..rfc3464 import bracketed_address

        t = bracketed_address(t) or t
    t = t.strip(" \t<>\"'()[],;:.")
    if not t.isascii() and _CJK_PUNCT.search(t):
        # CJK punctuation (a full-width colon after a label "收件人：", a full-width comma or
        # bracket, an ideographic full stop) delimits an address; it is no part of one
        at = t.find("@")
        if at >= 0:
            left = [m.end() for m in _CJK_PUNCT.finditer(t, 0, at)]
            right = _CJK_PUNCT.search(t, at)
            t = t[left[-1] if left else 0:right.start() if right else len(t)]
    if "\r" in t or "\n" in t:
        t = t.replace("\r", "").replace("\n", "")
    if "@" not in t or len(t) > 320:
        return None
    if _ADDR.match(t):
        return t
    from ..addresses import flanker_address

    return flanker_address(t)


_SYSTEM_LOCAL = ("postmaster", "post_master", "post-master", "mailer-daemon", "mailer_daemon",
                 "mailerdaemon")


_PLAIN_ADDR = re.compile(r"(?<![^\s<>,;:\"()])[^\s<>,;:\"()@]+@[^\s<>,;:\"()@]+")


def notified_addresses(header) -> frozenset:
    """The addresses a bounce itself is from and to (``From``, ``To``, ``Reply-To``,
    ``Sender``, ``Return-Path``), lower case: the sender being notified and the mail system,
    never a failed recipient.  Used by packs with ``exclude_notified``."""
    out = set()
    for name in ("from", "to", "reply-to", "sender", "return-path"):
        v = header(name)
        if v and "@" in v:
            # every address-shaped token of the field (one linear search; the stdlib's
            # address parser took ~50 µs a message here): a superset of the field's
            # addresses, an address in a display name included, which is never a failed
            # recipient either
            for a in _PLAIN_ADDR.findall(v):
                a = clean_address(a)
                if a:
                    out.add(a.lower())
    return frozenset(out)


def is_system_address(addr: str) -> bool:
    """``True`` for a mail system's own mailbox (``postmaster@…``, ``mailer-daemon@…``)."""
    return addr.split("@", 1)[0].lower() in _SYSTEM_LOCAL
