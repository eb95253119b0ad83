"""A private Postfix instance on loopback for the ``dsnparse pipe`` tests.

``PostfixInstance(base, port, domain, dsnparse_argv0)`` writes its own configuration
directory (``postfix -c BASE/etc``): a ``main.cf`` with its own ``queue_directory`` and
``data_directory`` under ``BASE``, ``inet_interfaces = 127.0.0.1``, the lines of
``examples/postfix/main.cf`` (the bounce domain as a relay domain, the transport map, one
recipient per delivery) and a ``master.cf`` with the daemons Postfix needs, smtpd on
``127.0.0.1:PORT`` and the ``dsnparse`` service of ``examples/postfix/master.cf``; the
transport table is ``examples/postfix/transport`` (read as ``texthash:``, so no ``postmap``).
The example's paths (``/usr/local/bin/dsnparse``, ``/var/lib/dsnparse``) and user
(``dsnparse``) become the test's.  Nothing of ``/etc/postfix`` is read or changed and no
system instance is started; several instances (unique directories, free ports) coexist.

Postfix must be started as root; ``pipe(8)`` runs the command as an unprivileged user
(``nobody`` here), who must be able to run this Python: :func:`grant_search` adds
``u:nobody:--x`` ACL entries on the directories that block the way (``/root`` of a pyenv
Python, a ``0700`` virtualenv directory) and :func:`revoke_search` removes exactly those.
"""
from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "postfix"
PIPE_USER = "nobody"

# the daemons a delivery, a deferral and `postqueue -p/-f` need (no chroot: the queue is in
# a temporary directory)
MASTER_CF = """\
{listen} inet  n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{domain}
mydomain = {domain}
myorigin = $myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
relayhost =
smtp_dns_support_level = disabled
biff = no
maillog_file = {base}/maillog
maillog_file_prefixes = {base}
# retries come from `postqueue -f` in the test, not from the scheduler's back-off
queue_run_delay = 300s
minimal_backoff_time = 300s
maximal_backoff_time = 600s
delay_warning_time = 0
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 free at this moment (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def why_not() -> Optional[str]:
    """Why a private Postfix cannot run here (``None`` when it can)."""
    if os.geteuid() != 0:
        return "Postfix is started as root (postfix -c DIR start); the tests run as another user"
    for tool in ("postfix", "postqueue", "setfacl", "setpriv"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return (f"{tool} is not installed (Debian: bash .ci/setup.d/30-postfix.sh "
                    f"installs postfix and acl)")
    for user in ("postfix", PIPE_USER):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"there is no user {user!r}"
    return None


def _blocking_dirs(paths, uid: int, gids) -> list[str]:
    """Directories on the way to ``paths`` that ``uid`` (not their owner) may not search."""
    out: list[str] = []
    for p in paths:
        parts = Path(os.path.abspath(p)).parts
        for i in range(1, len(parts) + 1):
            d = os.path.join(*parts[:i])
            if not os.path.isdir(d) or d in out:
                continue
            st = os.stat(d)
            if st.st_uid == uid:
                continue
            bit = 0o010 if st.st_gid in gids else 0o001
            if not st.st_mode & bit:
                out.append(d)
    return out


def runtime_paths(argv0: str) -> list[str]:
    """What the pipe user needs to reach to run ``argv0`` (this Python and dsnparse)."""
    import site

    import dsnparse

    paths = {os.path.realpath(argv0), os.path.realpath(sys.executable), sys.prefix,
             sys.base_prefix, str(Path(dsnparse.__file__).resolve().parent)}
    paths.update(site.getsitepackages())
    return sorted(p for p in paths if os.path.exists(p))


def grant_search(paths) -> list[str]:
    """Let :data:`PIPE_USER` search the directories leading to ``paths`` (``setfacl -m
    u:nobody:x``) where it may not; return the directories changed."""
    pw = pwd.getpwnam(PIPE_USER)
    todo = _blocking_dirs(paths, pw.pw_uid, {pw.pw_gid})
    done = []
    for d in todo:
        r = subprocess.run(["setfacl", "-m", f"u:{PIPE_USER}:x", d], capture_output=True,
                           text=True)
        if r.returncode != 0:
            revoke_search(done)
            raise RuntimeError(f"setfacl on {d} failed: {r.stderr.strip()}")
        done.append(d)
    return done


def revoke_search(dirs) -> None:
    """Remove the ACL entries :func:`grant_search` added."""
    for d in dirs:
        subprocess.run(["setfacl", "-x", f"u:{PIPE_USER}", d], capture_output=True)


def as_pipe_user(argv, **kw) -> subprocess.CompletedProcess:
    """Run ``argv`` as :data:`PIPE_USER`, as pipe(8) would."""
    pw = pwd.getpwnam(PIPE_USER)
    return subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
                           "--clear-groups", *argv], **kw)


class PostfixInstance:
    """A private Postfix (see the module docstring).

    Args:
        base: an empty directory (``str``) for etc/, queue/, data/, state/ and the log.
        port: the TCP port of smtpd on 127.0.0.1.
        domain: the bounce domain (replaces ``bounces.example.org`` of the examples).
        dsnparse: the ``dsnparse`` program pipe(8) runs.
    """

    def __init__(self, base: str, port: int, domain: str, dsnparse: str):
        self.base, self.port, self.domain = Path(base), port, domain
        self.etc = self.base / "etc"
        self.state = self.base / "state"        # /var/lib/dsnparse of the example
        self.dsnparse = dsnparse
        self.started = False

    # -- configuration ----------------------------------------------------------------

    def example(self, name: str) -> str:
        """An example file with its placeholders replaced by this instance's values."""
        text = (EXAMPLES / name).read_text()
        for old, new in (("/usr/local/bin/dsnparse", self.dsnparse),
                         ("/var/lib/dsnparse", str(self.state)),
                         ("user=dsnparse", f"user={PIPE_USER}"),
                         ("bounces.example.org", self.domain),
                         ("hash:/etc/postfix/transport", f"texthash:{self.etc}/transport")):
            text = text.replace(old, new)
        return text

    def write_config(self) -> None:
        pw = pwd.getpwnam(PIPE_USER)
        os.chmod(self.base, 0o755)
        self.etc.mkdir()
        (self.base / "queue").mkdir(mode=0o755)
        (self.base / "data").mkdir(mode=0o700)
        os.chown(self.base / "data", pwd.getpwnam("postfix").pw_uid, -1)
        self.state.mkdir()
        os.chown(self.state, pw.pw_uid, pw.pw_gid)
        (self.etc / "main.cf").write_text(
            MAIN_CF.format(base=self.base, domain=self.domain) + self.example("main.cf"))
        (self.etc / "master.cf").write_text(
            MASTER_CF.format(listen=f"127.0.0.1:{self.port}") + self.example("master.cf"))
        (self.etc / "transport").write_text(self.example("transport"))

    # -- control ----------------------------------------------------------------------

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        r = subprocess.run(["postfix", "-c", str(self.etc), *args], capture_output=True,
                           text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"postfix -c {self.etc} {' '.join(args)} failed "
                               f"({r.returncode}): {r.stderr.strip() or r.stdout.strip()}\n"
                               f"{self.log_tail()}")
        return r

    def start(self) -> None:
        self.write_config()
        self.postfix("check")
        self.postfix("start")
        self.started = True
        deadline = time.monotonic() + 60
        while True:  # smtpd answers once master has bound the port
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                    s.settimeout(20)
                    if s.recv(512).startswith(b"220"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"Postfix on 127.0.0.1:{self.port} did not answer within "
                                   f"60 s\n{self.log_tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.started:
            self.postfix("stop", check=False)
            self.started = False
            # master exits asynchronously; wait for its pid file's process to go
            pid_file = self.base / "queue" / "pid" / "master.pid"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    pid = int(pid_file.read_text().split()[0])
                    os.kill(pid, 0)
                except (OSError, ValueError, IndexError):
                    return
                time.sleep(0.2)

    def queue(self) -> list[str]:
        """The queue ids listed by ``postqueue -c DIR -p`` (``[]`` when the queue is empty)."""
        r = subprocess.run(["postqueue", "-c", str(self.etc), "-p"], capture_output=True,
                           text=True, timeout=60)
        return re.findall(r"^([0-9A-F]{6,})[*!]?\s", r.stdout, re.M)

    def queue_listing(self) -> str:
        return subprocess.run(["postqueue", "-c", str(self.etc), "-p"], capture_output=True,
                              text=True, timeout=60).stdout

    def flush(self) -> None:
        """``postqueue -c DIR -f``: retry every deferred message now."""
        subprocess.run(["postqueue", "-c", str(self.etc), "-f"], capture_output=True,
                       timeout=60, check=True)

    def log(self) -> str:
        try:
            return (self.base / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern: str, count: int = 1, timeout: float = 60) -> list[str]:
        """Wait until ``pattern`` (a regex) matches ``count`` lines of the mail log."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [ln for ln in self.log().splitlines() if re.search(pattern, ln)]
            if len(lines) >= count:
                return lines
            if time.monotonic() > deadline:
                raise AssertionError(f"{count} log line(s) matching {pattern!r} not seen "
                                     f"within {timeout:g} s\n{self.log_tail()}")
            time.sleep(0.2)
