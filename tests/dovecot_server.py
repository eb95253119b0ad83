"""A private Dovecot 2.3 on loopback for the POP3 and IMAP OAuth2 tests and the POP3 benchmark.

:meth:`Dovecot.start` writes a self-contained config (``/etc/dovecot`` is never read) into
a ``tempfile.mkdtemp()`` directory and runs ``dovecot -F`` as a child process, listening on
127.0.0.1 only, on ports chosen free at run time:

* IMAP (plain, for APPEND by the tests) and IMAPS,
* POP3 (plain; STLS, RFC 2595) and POP3S (implicit TLS), when ``pop3=True``,
* an OAuth2 passdb (``passdb { driver = oauth2 }``, ``introspection_mode = local``) that
  validates RS256 JWTs against the public key given as ``oauth2_public_pem`` (file
  ``keys/default/RS256/default`` of a ``fs:posix`` key dict: Dovecot looks keys up as
  ``<azp>/<alg>/<kid>``, ``default`` when the token names none).

Users are added with :meth:`add_user` (``passwd-file``, re-read by Dovecot when it
changes); mail is Maildir owned by the unprivileged system user ``imaptest`` (the user
../shared/imap-server uses; created when missing).  :meth:`stop` ends the child and waits
for it; :meth:`close` also removes the directory.  Needs root and Debian's
``dovecot-imapd`` / ``dovecot-pop3d`` (``.ci/setup.d/20-dovecot.sh``); when they are
missing :class:`Unavailable` is raised.  :func:`start_or_skip` turns that into a skip, or
a failure when ``DSNPARSE_CI=1``.
"""
from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from typing import Optional

DOVECOT = "/usr/sbin/dovecot"
SYSUSER = "imaptest"


class Unavailable(Exception):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_or_skip(**kw) -> "Dovecot":
    """Start a :class:`Dovecot`; skip the test when impossible, fail under DSNPARSE_CI=1."""
    import pytest
    try:
        return Dovecot.start(**kw)
    except Unavailable as e:
        if os.environ.get("DSNPARSE_CI") or os.environ.get("DSNPARSE_REQUIRE_IMAP"):
            pytest.fail(f"test Dovecot required (DSNPARSE_CI=1) but unavailable: {e}")
        pytest.skip(f"test Dovecot unavailable: {e}")


def _sysuser() -> tuple[int, int]:
    try:
        pw = pwd.getpwnam(SYSUSER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--home-dir", "/nonexistent",
                        "--no-create-home", "--shell", "/usr/sbin/nologin", SYSUSER],
                       capture_output=True)
        try:                                # another process may have made it meanwhile
            pw = pwd.getpwnam(SYSUSER)
        except KeyError:
            raise Unavailable(f"cannot create the system user {SYSUSER}") from None
    if pw.pw_uid == 0:
        raise Unavailable(f"{SYSUSER} has uid 0")
    return pw.pw_uid, pw.pw_gid


def _stat(pid: int) -> Optional[list[str]]:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(ppid: int) -> list[tuple[int, str]]:
    """(pid, start time) of the processes whose parent is ``ppid``."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st and st[1] == str(ppid):
                out.append((int(name), st[19]))
    return out


def _alive(pid: int, start: str) -> bool:
    """The same process (same start time) still runs (a zombie counts as gone)."""
    st = _stat(pid)
    return bool(st) and st[19] == start and st[0] != "Z"


class Dovecot:
    host = "127.0.0.1"

    def __init__(self, directory: str, pop3: bool, oauth2_public_pem: Optional[bytes]):
        self.dir = directory
        self.pop3 = pop3
        self.oauth2 = oauth2_public_pem is not None
        self.proc: Optional[subprocess.Popen] = None
        self.ca = os.path.join(directory, "ssl", "cert.pem")
        self.users: dict[str, str] = {}
        self.ports: dict[str, int] = {}
        self.pool: list[str] = []

    # ------------------------------------------------------------------ lifecycle
    @classmethod
    def start(cls, pop3: bool = True, oauth2_public_pem: Optional[bytes] = None,
              users=0) -> "Dovecot":
        """Start an instance with mailboxes ready: ``users`` is a number (a pool, see
        :meth:`new_user`) or a list of names (password ``secret``)."""
        if os.geteuid() != 0:
            raise Unavailable("starting a test Dovecot needs root")
        missing = [p for p in (DOVECOT, "/usr/lib/dovecot/imap")
                   + (("/usr/lib/dovecot/pop3",) if pop3 else ()) if not os.path.exists(p)]
        if missing:
            raise Unavailable(f"{', '.join(missing)} missing: install dovecot-imapd and "
                              "dovecot-pop3d (bash .ci/setup.d/20-dovecot.sh)")
        if shutil.which("openssl") is None:
            raise Unavailable("openssl is missing")
        uid, gid = _sysuser()
        d = tempfile.mkdtemp(prefix="dsnpop-")
        srv = cls(d, pop3, oauth2_public_pem)
        try:
            srv._prepare(uid, gid, oauth2_public_pem)
            names = [f"u{i}" for i in range(users)] if isinstance(users, int) else users
            srv.pool = [srv.add_user(n) for n in names]
            for attempt in range(3):            # a free port may be taken before we bind it
                srv.ports = {k: free_port() for k in ("imap", "imaps", "pop3", "pop3s")}
                srv._write_config(uid, gid)
                try:
                    srv.run()
                    break
                except Unavailable:
                    if attempt == 2 or "in use" not in srv.log_tail():
                        raise
        except BaseException:
            srv.close()
            raise
        return srv

    def _prepare(self, uid, gid, pem):
        d = self.dir
        os.chmod(d, 0o755)
        for sub in ("run", "state", "log", "ssl", "mail", "keys"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        os.chmod(os.path.join(d, "ssl"), 0o700)
        os.chown(os.path.join(d, "mail"), uid, gid)
        self.uid, self.gid = uid, gid
        with open(os.path.join(d, "passwd"), "w"):
            pass
        os.chown(os.path.join(d, "passwd"), 0, grp.getgrnam("dovecot").gr_gid)
        os.chmod(os.path.join(d, "passwd"), 0o640)
        p = subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-sha256", "-keyout", os.path.join(d, "ssl", "key.pem"), "-out", self.ca,
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
             "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign",
             "-addext", "extendedKeyUsage=serverAuth"], capture_output=True, text=True)
        if p.returncode:
            raise Unavailable(f"openssl failed: {p.stderr[-300:]}")
        if pem is not None:
            kdir = os.path.join(d, "keys", "default", "RS256")
            os.makedirs(kdir)
            with open(os.path.join(kdir, "default"), "wb") as f:
                f.write(pem)
            for root, dirs, files in os.walk(os.path.join(d, "keys")):
                os.chmod(root, 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)

    def _write_config(self, uid, gid):
        d, p = self.dir, self.ports
        mechs = "plain login" + (" xoauth2 oauthbearer" if self.oauth2 else "")
        oauth = ""
        if self.oauth2:
            with open(os.path.join(d, "oauth2.conf.ext"), "w") as f:
                f.write("introspection_mode = local\n"
                        f"local_validation_key_dict = fs:posix:prefix={d}/keys/\n"
                        "username_attribute = email\n")
            oauth = (f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                     f"  args = {d}/oauth2.conf.ext\n}}\n")
        pop3 = ""
        if self.pop3:
            pop3 = f"""service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {p['pop3']}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {p['pop3s']}
    ssl = yes
  }}
}}
protocol pop3 {{
  mail_max_userip_connections = 50
}}
"""
        conf = f"""# written by tests/dovecot_server.py
instance_name = dsnpop-{p['imap']}
base_dir = {d}/run
state_dir = {d}/state
protocols = imap{' pop3' if self.pop3 else ''}
listen = 127.0.0.1
log_path = {d}/log/dovecot.log
auth_verbose = yes
# no growing delay after the refused logins the tests make on purpose (anvil's auth penalty
# and the 2 s failure delay): later tests would wait seconds for each login
login_trusted_networks = 127.0.0.0/8
auth_failure_delay = 0
disable_plaintext_auth = no
auth_mechanisms = {mechs}
ssl = yes
ssl_cert = <{d}/ssl/cert.pem
ssl_key = <{d}/ssl/key.pem
ssl_min_protocol = TLSv1.2
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {gid}
last_valid_gid = {gid}
mail_location = maildir:~/Maildir
# a throw-away server: no fsync (the tests kill dsnparse, never Dovecot)
mail_fsync = never
namespace inbox {{
  inbox = yes
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
{oauth}userdb {{
  driver = passwd-file
  args = username_format=%u {d}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {p['imap']}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {p['imaps']}
    ssl = yes
  }}
}}
protocol imap {{
  mail_max_userip_connections = 50
}}
{pop3}"""
        with open(os.path.join(d, "dovecot.conf"), "w") as f:
            f.write(conf)
        os.chmod(os.path.join(d, "dovecot.conf"), 0o644)

    def run(self, timeout: float = 30.0) -> None:
        """Start ``dovecot -F`` (again, after :meth:`stop`) and wait for every greeting."""
        log = open(os.path.join(self.dir, "log", "startup.log"), "ab")
        try:
            self.proc = subprocess.Popen([DOVECOT, "-F", "-c",
                                          os.path.join(self.dir, "dovecot.conf")],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        except OSError as e:
            raise Unavailable(f"cannot run {DOVECOT}: {e}") from e
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        names = ["imap", "imaps"] + (["pop3", "pop3s"] if self.pop3 else [])
        while names:
            if self.proc.poll() is not None:
                self.proc = None
                raise Unavailable(f"dovecot exited at startup: {self.log_tail()}")
            if self._greets(names[0]):
                names.pop(0)
                continue
            if time.monotonic() > deadline:
                self.stop()
                raise Unavailable(f"no {names[0]} greeting within {timeout} s: "
                                  f"{self.log_tail()}")
            time.sleep(0.1)

    def _greets(self, name: str) -> bool:
        try:
            with socket.create_connection((self.host, self.ports[name]), timeout=3) as s:
                if name.endswith("s"):
                    ctx = ssl.create_default_context(cafile=self.ca)
                    with ctx.wrap_socket(s, server_hostname="localhost") as t:
                        line = t.recv(200)
                else:
                    line = s.recv(200)
        except (OSError, ssl.SSLError):
            return False
        return line.startswith((b"* OK", b"+OK"))

    def log_tail(self) -> str:
        out = []
        for name in ("startup.log", "dovecot.log"):
            try:
                with open(os.path.join(self.dir, "log", name), errors="replace") as f:
                    out.append(f.read()[-3000:])
            except OSError:
                pass
        return " | ".join(x.strip() for x in out if x.strip())

    def stop(self) -> None:
        """Stop the server and every process it forked (SIGTERM; SIGKILL after 10 s), and
        wait for them: a master that is gone may leave an imap/pop3 process serving an open
        connection, which a reconnect test must not find alive."""
        if self.proc is None:
            return
        children = _children(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid, start in children:
                if _alive(pid, start):
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
            deadline = time.monotonic() + 10
            while any(_alive(p, s) for p, s in children) and time.monotonic() < deadline:
                time.sleep(0.05)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------------ users and mail
    def new_user(self) -> str:
        """A user of the pool made at start (``users=N``) not handed out yet, else a new one
        (:meth:`add_user`, up to a second slower)."""
        if self.pool:
            return self.pool.pop(0)
        return self.add_user(f"x{len(self.users)}")

    def add_user(self, name: str, password: str = "secret") -> str:
        """Add a mailbox user (its Maildir is created on first login); returns the name."""
        home = os.path.join(self.dir, "mail", name)
        os.makedirs(home)
        os.chown(home, self.uid, self.gid)
        os.chmod(home, 0o700)
        with open(os.path.join(self.dir, "passwd"), "a") as f:
            f.write(f"{name}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{home}::\n")
        # Dovecot looks at a passwd-file's mtime (whole seconds) at most once a second: step
        # the mtime on and, once it has read the file, wait for the next second
        self._stamp = max(int(time.time()), getattr(self, "_stamp", 0) + 1)
        os.utime(os.path.join(self.dir, "passwd"), (self._stamp, self._stamp))
        if self.proc is not None:
            time.sleep(1.05 - time.time() % 1)
        self.users[name] = password
        return name

    def imap(self, user: str):
        """A logged-in :class:`imapclient.IMAPClient` (IMAPS, password) for ``user``."""
        import imapclient
        c = imapclient.IMAPClient(self.host, port=self.ports["imaps"],
                                  ssl_context=ssl.create_default_context(cafile=self.ca))
        try:
            c.login(user, self.users[user])
        except Exception as e:
            raise AssertionError(f"login as {user} failed: {e}; log: {self.log_tail()}") from e
        return c

    def append(self, user: str, messages, folder: str = "INBOX") -> None:
        """APPEND each message (bytes) to ``folder`` of ``user``, in order."""
        c = self.imap(user)
        try:
            for m in messages:
                c.append(folder, m)
        finally:
            c.logout()

    def uidls(self, user: str, bodies: bool = True) -> dict[str, Optional[bytes]]:
        """UIDL → message bytes (``None`` unless ``bodies``) of ``user``'s maildrop, in
        message order, read over POP3S without changes."""
        from dsnparse.sources.pop3 import _POP3_SSL     # poplib without its 2048-octet lines
        p = _POP3_SSL(self.host, self.ports["pop3s"],
                      context=ssl.create_default_context(cafile=self.ca))
        try:
            p.user(user)
            p.pass_(self.users[user])
            out = {}
            for line in p.uidl()[1]:
                num, uid = line.decode().split()
                out[uid] = (b"\r\n".join(p.retr(int(num))[1]) + b"\r\n") if bodies else None
            p.rset()
        finally:
            p.quit()
        return out
