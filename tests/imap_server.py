"""A throw-away Dovecot on loopback for the IMAP tests and benchmark (../shared/imap-server).

If ``IMAP_HOST`` is set (CI started a server: ``set -a; . DIR/imap.env``) that server is
used; set ``IMAP_SERVER_DIR=DIR`` as well to allow the stop/start tests.  Otherwise a new
instance is started on free ports in a ``tempfile.mkdtemp`` directory (needs root).
``DSNPARSE_REQUIRE_IMAP=1`` turns "cannot start the server" from a skip into a failure.
"""
from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).parents[1].parent / "shared"
SCRIPTS = SHARED / "imap-server"


class Unavailable(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, env: dict, directory: str | None, owned: bool):
        self.env, self.dir, self.owned = env, directory, owned
        self.host = env["IMAP_HOST"]
        self.port = int(env["IMAP_PORT"])
        self.imaps_port = int(env.get("IMAPS_PORT") or self.port + 850)
        self.user, self.password = env["IMAP_USER"], env["IMAP_PASSWORD"]
        self.ca = env.get("IMAP_CA_CERT")

    @classmethod
    def start(cls) -> "Server":
        if os.environ.get("IMAP_HOST"):
            return cls(dict(os.environ), os.environ.get("IMAP_SERVER_DIR"), owned=False)
        if not (SCRIPTS / "start-dovecot.sh").exists():
            raise Unavailable(f"{SCRIPTS} not found: no test IMAP server")
        if os.geteuid() != 0:
            raise Unavailable("starting the test Dovecot needs root (or set IMAP_HOST etc.)")
        d = tempfile.mkdtemp(prefix="dsnimap-")
        ports = [str(_free_port()), str(_free_port())]
        try:
            out = subprocess.run([str(SCRIPTS / "start-dovecot.sh"), d, *ports], check=True,
                                 capture_output=True, text=True, timeout=300).stdout
        except (subprocess.SubprocessError, OSError) as e:
            shutil.rmtree(d, ignore_errors=True)
            detail = getattr(e, "stderr", "") or ""
            raise Unavailable(f"start-dovecot.sh failed: {e} {detail[-500:]}") from e
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return cls(env, d, owned=True)

    @classmethod
    def start_without(cls, capability: bytes) -> "Server":
        """A new instance of our own whose post-login CAPABILITY lacks ``capability`` (e.g.
        ``b"MOVE"``, to test the COPY + EXPUNGE fallback): started by start-dovecot.sh, then
        restarted with ``imap_capability`` (a Dovecot setting) listing the others."""
        if os.environ.get("IMAP_HOST"):
            raise Unavailable("IMAP_HOST is set: cannot start a reconfigured server of our own")
        srv = cls.start()
        try:
            c = srv.client()
            caps = [x.decode() for x in c.capabilities() if x != capability]
            c.logout()
            srv.stop()
            with open(os.path.join(srv.dir, "dovecot.conf"), "a") as f:
                f.write(f"protocol imap {{\n  imap_capability = {' '.join(caps)}\n}}\n")
            # the daemon keeps its std fds: a file, not a pipe we would wait on forever
            with open(os.path.join(srv.dir, "log", "restart.log"), "ab") as log:
                subprocess.run(["/usr/sbin/dovecot", "-c",
                                os.path.join(srv.dir, "dovecot.conf")], check=True,
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=60)
            deadline = time.monotonic() + 60
            while True:
                try:
                    c = srv.client()
                    break
                except (OSError, ssl.SSLError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            got = c.capabilities()
            c.logout()
            if capability in got:
                raise Unavailable(f"imap_capability did not remove {capability!r}: {got}")
        except (OSError, subprocess.SubprocessError) as e:
            srv.close()
            raise Unavailable(f"cannot restart Dovecot without {capability!r}: {e}") from e
        except BaseException:
            srv.close()
            raise
        return srv

    # stop/start the same instance (same DIR, same ports) for the reconnect tests
    def stop(self):
        subprocess.run([str(SCRIPTS / "stop-dovecot.sh"), self.dir], check=True,
                       capture_output=True, timeout=60)

    def restart(self):
        subprocess.run([str(SCRIPTS / "start-dovecot.sh"), self.dir, str(self.port),
                        str(self.imaps_port)], check=True, capture_output=True, timeout=120)

    def close(self):
        if self.owned:
            self.stop()
            shutil.rmtree(self.dir, ignore_errors=True)

    def client(self):
        import imapclient
        c = imapclient.IMAPClient(self.host, port=self.imaps_port,
                                  ssl_context=ssl.create_default_context(cafile=self.ca))
        c.login(self.user, self.password)
        return c

    def cli_args(self) -> list[str]:
        return ["--host", self.host, "--port", str(self.imaps_port), "--user", self.user,
                "--ca-file", self.ca]

    def options(self, **kw):
        from dsnparse.sources.imap import ImapOptions
        return ImapOptions(host=self.host, port=self.imaps_port, user=self.user,
                           password=self.password, ca_file=self.ca, **kw)
