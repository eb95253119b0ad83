"""A real ``dsnparse serve`` process on loopback, for the service tests and benchmark.

:meth:`ServeProcess.start` runs ``python -m dsnparse serve --host 127.0.0.1 --port P …`` as a
subprocess on a port found free at run time (a port taken meanwhile by another process is
retried on a new one), waits for ``GET /healthz`` and returns; :meth:`stop` sends SIGTERM
(then SIGKILL) and removes the data directory.  A server that cannot start raises
:class:`Unavailable`; the tests skip on it, or fail when ``DSNPARSE_CI=1``.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]


class Unavailable(Exception):
    """The server did not start (the message says why, with the end of its log)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServeProcess:
    def __init__(self, proc: subprocess.Popen, port: int, directory: str, log_path: str,
                 db: Optional[str]):
        self.proc, self.port, self.dir, self.log_path, self.db = proc, port, directory, \
            log_path, db
        self.url = f"http://127.0.0.1:{port}"

    @classmethod
    def start(cls, *args: str, db: bool = True, env: Optional[dict] = None,
              timeout: float = 90.0, files: Optional[dict] = None) -> "ServeProcess":
        """Start a server with extra command-line ``args``.

        ``db``: pass ``--db`` (a ledger in the data directory).  ``env``: variables added
        to a copy of this environment without ``DSNPARSE_API_TOKEN``.  ``files``: name →
        text written into the data directory first; ``{dir}`` in ``args`` becomes its path.
        """
        d = tempfile.mkdtemp(prefix="dsnparse-serve-test-")
        for name, text in (files or {}).items():
            Path(d, name).write_text(text, encoding="utf-8")
        full_env = {k: v for k, v in os.environ.items()
                    if k not in ("DSNPARSE_API_TOKEN", "DSNPARSE_SERVE_CONFIG")}
        full_env.update(env or {})
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        argv = [a.replace("{dir}", d) for a in args]
        db_path = os.path.join(d, "ledger.sqlite3") if db else None
        last = ""
        try:
            for _attempt in range(3):
                port = free_port()
                log_path = os.path.join(d, f"serve-{port}.log")
                cmd = [sys.executable, "-m", "dsnparse", "serve", "--host", "127.0.0.1",
                       "--port", str(port), "--no-access-log", *argv]
                if db_path:
                    cmd += ["--db", db_path]
                with open(log_path, "wb") as logf:
                    proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                            env=full_env, cwd=d, start_new_session=True)
                srv = cls(proc, port, d, log_path, db_path)
                if srv._wait(timeout):
                    return srv
                last = srv.log()
                srv._kill()
                if "address already in use" not in last.lower():
                    break
        except BaseException:
            shutil.rmtree(d, ignore_errors=True)
            raise
        shutil.rmtree(d, ignore_errors=True)
        raise Unavailable(f"dsnparse serve did not start: {last[-2000:]}")

    def _wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        return False

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def _kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)   # the workers are in its group
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def stop(self) -> int:
        """Stop the server (SIGTERM to its process group), remove its directory; return its
        exit status."""
        try:
            self._kill()
            return self.proc.returncode
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def start_or_skip(*args: str, **kw) -> ServeProcess:
    """:meth:`ServeProcess.start`, skipping the test when it cannot start (failing when
    ``DSNPARSE_CI=1``)."""
    import pytest

    try:
        return ServeProcess.start(*args, **kw)
    except Unavailable as e:
        if os.environ.get("DSNPARSE_CI") == "1":
            pytest.fail(f"DSNPARSE_CI=1 and {e}")
        pytest.skip(str(e))


def dsn(recipient: str, *, status: str = "5.1.1", action: str = "failed",
        diagnostic: str = "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in "
                          "local recipient table",
        message_id: str = "<bounce-1@mx.example.net>",
        date: str = "Tue, 07 May 2024 10:00:00 +0000",
        original_id: str = "<orig-1@sender.example>") -> bytes:
    """An RFC 3464 delivery status notification for one recipient (multipart/report,
    RFC 6522), as an MTA such as Postfix writes it."""
    diag = diagnostic.format(rcpt=recipient)
    return (
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\n"
        "To: news@sender.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: {message_id}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n'
        "\r\n--b1\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.org\r\n"
        f"Diagnostic-Code: smtp; {diag}\r\n"
        "\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: news@sender.example\r\nTo: {recipient}\r\nSubject: News\r\n"
        f"Message-ID: {original_id}\r\n"
        "\r\n--b1--\r\n").encode()


def assert_clean_stop(srv) -> None:
    """SIGTERM: Uvicorn finishes the requests, runs the app's shutdown (the ledger is
    closed), then ends by the signal it caught (re-raised: status -15 here, 143 in a shell;
    systemd counts it as a clean stop)."""
    log_before = srv.log
    code = srv.proc.poll()
    assert code is None, f"the server died early ({code}): {log_before()[-2000:]}"
    srv._kill()
    log = srv.log()
    srv.stop()
    assert srv.proc.returncode in (0, -signal.SIGTERM), log[-2000:]
    assert "Application shutdown complete" in log, log[-2000:]
