"""Immutable run options, threaded through the pipeline (like ``email.policy``)."""
from __future__ import annotations

import os
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Options:
    """Options of one run.  Copy with changes through :meth:`replace`; never mutate.

    Attributes:
        rules: extra rule-pack directories (``--rules DIR``; also ``DSNPARSE_RULES``, a
            ``os.pathsep``-separated list), tried before the shipped packs; a user pack with
            the id of a shipped one replaces it.
        max_message_bytes: messages larger than this (bytes, default 25 MiB) are not loaded;
            sources report them with kind ``error`` and a clear message.
        pattern_timeout: seconds one rule pattern may run on one text before it is abandoned
            and reported (the ``regex`` package's timeout); searches that
            :mod:`dsnparse.backtrack` bounds to a million backtracking steps run without it.
        message_timeout: seconds of wall-clock time the parser may spend on one message
            (default 5; ``0`` or less: no limit).  A message that takes longer stops with
            :class:`~dsnparse.errors.MessageTimeout` (an ``InputError``): sources report it
            as a record of kind ``error`` whose ``error`` starts ``message_timeout:`` and go
            on.  Checked between the parser's stages and passed down as the time limit of
            each timed pattern search (:mod:`dsnparse.budget`), so a message may overrun it
            by the time of one stage of linear work.
        leave_out: corpus family names (``frozenset`` of ``str``) whose packs are not used:
            every pack whose ``written_from`` names one of them is left out (``dsnparse eval
            --leave-out``, to measure the other rules on mail they were not written from).
    """

    rules: tuple = ()
    max_message_bytes: int = 25 * 1024 * 1024
    pattern_timeout: float = 0.25
    message_timeout: float = 5.0
    leave_out: frozenset = frozenset()

    def replace(self, **changes) -> "Options":
        """Return a copy with ``changes`` applied."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, **changes) -> "Options":
        """Options with ``DSNPARSE_RULES`` read from the environment, then ``changes``."""
        env = os.environ.get("DSNPARSE_RULES", "")
        rules = tuple(p for p in env.split(os.pathsep) if p)
        opts = cls(rules=rules)
        return opts.replace(**changes) if changes else opts


DEFAULT = Options()
