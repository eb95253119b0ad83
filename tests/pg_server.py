"""A throw-away PostgreSQL cluster on loopback for the ledger tests and benchmark.

``PgServer.start()`` runs Debian's ``initdb`` and ``pg_ctl`` (found with a glob under
``/usr/lib/postgresql/*/bin``, newest first, else on ``PATH``) on a cluster in a
``tempfile.mkdtemp()`` directory, listening on 127.0.0.1 on a free port with its unix socket
in that directory.  PostgreSQL refuses to run as root: as root the cluster belongs to the
``postgres`` system user (Debian's package creates it; else ``dsnparse-test`` is created),
otherwise to the current user.  ``stop()`` stops it and deletes the directory.

Raises :class:`Unavailable` when it cannot start (no binaries, no user); the tests skip then,
or fail when ``DSNPARSE_CI=1``.  Install in CI: ``.ci/setup.d/10-postgresql.sh``.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid


class Unavailable(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: [int(x) if x.isdigit() else 0
                                  for x in p.split("/")[4].split(".")], reverse=True)
    if found:
        return os.path.dirname(found[0])
    path = shutil.which("pg_ctl")
    if path:
        return os.path.dirname(path)
    raise Unavailable("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl; "
                      "run .ci/setup.d/10-postgresql.sh)")


def _run_as_user() -> tuple[list[str], int, int]:
    """The command prefix that runs a program as a non-root user, and that user's ids."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid()
    for name in ("postgres", "dsnparse-test"):
        try:
            pw = pwd.getpwnam(name)
            return ["runuser", "-u", name, "--"], pw.pw_uid, pw.pw_gid
        except KeyError:
            continue
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "dsnparse-test"],
                       check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError) as e:
        raise Unavailable(f"no non-root user to run PostgreSQL as: {e}") from e
    pw = pwd.getpwnam("dsnparse-test")
    return ["runuser", "-u", "dsnparse-test", "--"], pw.pw_uid, pw.pw_gid


class PgServer:
    """A running cluster: ``url(dbname)`` gives a ``postgresql://`` URL for a database."""

    user = "dsnparse"

    def __init__(self, directory: str, port: int, bindir: str, prefix: list[str]):
        self.dir, self.port, self.bindir, self.prefix = directory, port, bindir, prefix

    @property
    def data(self) -> str:
        return os.path.join(self.dir, "data")

    @classmethod
    def start(cls, attempts: int = 3) -> "PgServer":
        bindir = _bindir()
        prefix, uid, gid = _run_as_user()
        d = tempfile.mkdtemp(prefix="dsnpg-")
        os.chmod(d, 0o755)
        os.chown(d, uid, gid)
        try:
            subprocess.run([*prefix, os.path.join(bindir, "initdb"), "-D",
                            os.path.join(d, "data"), "-U", cls.user, "--auth=trust",
                            "-E", "UTF8", "--locale=C", "--no-sync"],
                           check=True, capture_output=True, text=True, timeout=300)
        except (subprocess.SubprocessError, OSError) as e:
            shutil.rmtree(d, ignore_errors=True)
            raise Unavailable(f"initdb failed: {e} {getattr(e, 'stderr', '') or ''}") from e
        last = ""
        for _ in range(attempts):       # another process may take the free port first
            port = _free_port()
            opts = (f"-c listen_addresses=127.0.0.1 -c port={port} "
                    f"-c unix_socket_directories={d} -c fsync=off -c max_connections=60 "
                    f"-c shared_buffers=32MB")
            r = subprocess.run([*prefix, os.path.join(bindir, "pg_ctl"), "-D",
                                os.path.join(d, "data"), "-l", os.path.join(d, "log"),
                                "-o", opts, "-w", "-t", "120", "start"],
                               capture_output=True, text=True, timeout=180)
            if r.returncode == 0:
                return cls(d, port, bindir, prefix)
            try:
                with open(os.path.join(d, "log")) as f:
                    last = f.read()[-800:]
            except OSError:
                last = r.stderr[-800:]
        shutil.rmtree(d, ignore_errors=True)
        raise Unavailable(f"pg_ctl start failed: {last}")

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "t") -> str:
        """Create an empty database; return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url(), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            subprocess.run([*self.prefix, os.path.join(self.bindir, "pg_ctl"), "-D", self.data,
                            "-m", "immediate", "-w", "stop"], capture_output=True, timeout=120)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(url: str, timeout: float = 30) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            psycopg.connect(url).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
