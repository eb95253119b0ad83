"""dsnparse.deep: the stdlib's recursive parsers at the recursion limit leave no unraisable
exception behind (a finalizer run by the garbage collector at that depth)."""
from __future__ import annotations

import gc
import sys
import threading

import pytest

from dsnparse import deep
from dsnparse.load import NestingTooDeepDefect, load


def _nested(depth: int) -> bytes:
    """``message/rfc822`` nested ``depth`` deep: the stdlib feedparser recurses past the
    interpreter's limit on it."""
    head = b"".join(b"Content-Type: message/rfc822\n\n" for _ in range(depth))
    return b"From: a@x.example\nSubject: deep\n" + head + b"Subject: inner\n\nbody\n"


class _Finalizer:
    """Cyclic garbage whose finalizer leaves the next one behind: with a collection after
    every allocation, one is always waiting for the collector, at whatever depth it runs."""

    active = True

    def __init__(self):
        self.me = self

    def __del__(self):
        if _Finalizer.active:
            _Finalizer()


@pytest.fixture
def collector_at_every_allocation(monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: seen.append(u.exc_type))
    old = gc.get_threshold()
    _Finalizer.active = True
    _Finalizer()
    gc.set_threshold(1)
    try:
        yield seen
    finally:
        gc.set_threshold(*old)
        _Finalizer.active = False
        gc.collect()


def test_deep_nesting_leaves_no_unraisable_exception(collector_at_every_allocation):
    msg = load(_nested(1200))
    assert any(isinstance(d, NestingTooDeepDefect) for d in msg.defects)
    assert msg["Subject"] == "deep"
    assert collector_at_every_allocation == []
    assert gc.isenabled()


def test_deep_comments_in_an_address_leave_no_unraisable_exception(collector_at_every_allocation):
    hostile = "a@x.example " + "(" * 5000 + ")" * 5000
    assert deep.getaddresses([hostile]) == []
    assert collector_at_every_allocation == []


def test_getaddresses_reads_ordinary_lists_as_the_stdlib_does():
    assert deep.getaddresses(["Ann <ann@x.example>, bob@y.example (Bob)"]) == [
        ("Ann", "ann@x.example"), ("Bob", "bob@y.example")]
    # a group (RFC 5322 §3.4) with more than the pause threshold of ':' still reads
    many = ", ".join(f"g{i}: u{i}@x.example;" for i in range(120))
    assert len(deep.getaddresses([many])) == 120


def test_pause_is_counted_across_nesting_and_threads():
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def hold():
        with deep.collector_paused():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    with deep.collector_paused():
        with deep.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert not gc.isenabled()  # the other thread still holds its pause
    release.set()
    t.join(10)
    assert gc.isenabled()


def test_a_collector_disabled_by_the_caller_stays_disabled():
    gc.disable()
    try:
        with deep.collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
