"""The ledger of one server process, used from one dedicated thread.

A :class:`~dsnparse.ledger.Ledger` holds one SQLite connection, which may only be used by
the thread that opened it; and SQLite takes one writer at a time anyway.  So each server
process opens its ledger in one thread of its own and runs every ledger call there
(:meth:`LedgerStore.call`), while parsing runs in the event loop's thread pool.  Several
server processes (``--workers N``) each have their own connection: the ledger's
``BEGIN IMMEDIATE`` transactions, busy timeout and retries (:mod:`dsnparse.ledger`) keep
their writes whole and none is lost.  A call returns only after its transaction has
committed, so a response never reports a record that is not stored.
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional


class LedgerStore:
    """One ledger file, opened in a thread of its own.

    Args:
        path: the ledger file (``str``).
        policy: a policy YAML file (``str``) or ``None`` for the shipped policy.
        timeout: seconds (``float``) a call waits for another process's write lock before
            it fails with ``LedgerError`` (the server answers 503).

    Raises (from :meth:`open`):
        LedgerError: the file cannot be opened or is not a ledger.
        RuleError: the policy file is invalid.
    """

    def __init__(self, path: str, policy: Optional[str] = None, timeout: float = 30.0):
        self.path = path
        self.policy = policy
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dsnparse-ledger")
        self._ledger = None
        self._owner: Optional[int] = None

    def _open(self) -> None:
        from ..ledger import Ledger
        from ..policy import load_policy

        self._ledger = Ledger(self.path, policy=load_policy(self.policy), timeout=self.timeout)
        self._owner = threading.get_ident()

    def open(self) -> None:
        """Open the ledger in the store's thread (creating the file if needed)."""
        self._pool.submit(self._open).result()

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(ledger, *args, **kwargs)`` in the ledger's thread; return its result.

        Raises:
            whatever ``fn`` raises (``LedgerError`` when the database stays locked).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(self._ledger, *args, **kwargs))

    def close(self) -> None:
        """Close the ledger (in its thread) and stop the thread; idempotent."""
        if self._ledger is not None:
            led, self._ledger = self._ledger, None
            self._pool.submit(led.close).result()
        self._pool.shutdown(wait=True)
