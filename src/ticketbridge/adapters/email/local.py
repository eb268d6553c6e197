"""A throwaway Dovecot (IMAP) on 127.0.0.1: for the demo and the tests against a real server.

Debian's ``dovecot-imapd`` (``scripts/mail-up`` installs it).  One instance per call, with
its own configuration, ``base_dir`` and one user's Maildir under a directory of its own, a
passwd-file user, plain IMAP on one free port and, given a certificate, implicit TLS on a
second (STARTTLS on the first); stopped by its PID.  Mail is delivered by writing into the
Maildir (what an MTA's delivery agent does; :class:`MailServer` does it for SMTP).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DovecotUnavailable", "LocalDovecot", "missing_dovecot", "start_local_dovecot"]

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
INSTALL_HINT = "apt-get install dovecot-imapd (as root; scripts/mail-up does it)"


class DovecotUnavailable(RuntimeError):
    """Dovecot cannot be started here; the message says why and what to do."""


def missing_dovecot() -> str | None:
    """What is missing to run Dovecot here, or ``None``."""
    if not os.path.exists(DOVECOT):
        return f"Dovecot is not installed: {INSTALL_HINT}"
    return None


@dataclass
class LocalDovecot:
    root: Path
    maildir: Path
    user: str
    password: str
    imap_port: int
    #: Implicit TLS (``None`` without a certificate).
    imaps_port: int | None

    def stop(self, timeout: float = 10.0) -> None:
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start_local_dovecot(
    user: str, password: str, *, certificate: tuple[Path, Path] | None = None
) -> LocalDovecot:
    """Start one Dovecot for ``user``; :class:`DovecotUnavailable` when it cannot be had."""
    missing = missing_dovecot()
    if missing:
        raise DovecotUnavailable(missing)
    # Not under a private temporary directory: Dovecot's own users traverse every parent.
    root = Path(tempfile.mkdtemp(prefix="tb-dovecot-"))
    root.chmod(0o755)
    home = root / "home"
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    if os.getuid() == 0:  # Dovecot never serves mail as root: the mail user owns the mailbox
        owner = pwd.getpwnam("mail")
        users = ""
    else:
        owner = pwd.getpwuid(os.getuid())
        me = owner.pw_name
        users = f"default_login_user = {me}\ndefault_internal_user = {me}\n"
    for path in [home, *home.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)
        path.chmod(0o777 if path.is_dir() else 0o666)
    (root / "passwd").write_text(f"{user}:{{PLAIN}}{password}::::::\n")
    imap_port = _free_port()
    imaps_port = _free_port() if certificate else None
    chroot = "" if os.getuid() == 0 else "  chroot =\n"
    if certificate:
        cert, key = certificate
        tls = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
        imaps = (
            f"  inet_listener imaps {{\n    address = 127.0.0.1\n    port = {imaps_port}\n"
            "    ssl = yes\n  }\n"
        )
    else:
        tls, imaps = "ssl = no\n", ""
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{users}{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {owner.pw_uid}
mail_location = maildir:{maildir}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={home}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
{imaps}{chroot}}}
service anvil {{
{chroot}}}
"""
    )
    errors = root / "start.err"
    with errors.open("wb") as err:
        # Dovecot forks into the background: its output goes to a file, not a pipe.
        started = subprocess.run(  # noqa: S603 - our own fixed command line
            [DOVECOT, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=30,
            check=False,
        )
    instance = LocalDovecot(root, maildir, user, password, imap_port, imaps_port)
    if started.returncode != 0:
        why = errors.read_text().strip()
        instance.stop()
        raise DovecotUnavailable(f"dovecot did not start: {why}")
    deadline = time.monotonic() + 15
    ready = _listening(imap_port, deadline) and (
        imaps_port is None or _listening(imaps_port, deadline)
    )
    if not ready:
        log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
        instance.stop()
        raise DovecotUnavailable(f"dovecot did not listen on 127.0.0.1: {log[-2000:]}")
    return instance
