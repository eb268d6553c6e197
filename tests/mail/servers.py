"""Real mail servers for one test run: Dovecot (IMAP) and an aiosmtpd SMTP server.

One Dovecot per run on free 127.0.0.1 ports (plain+STARTTLS and implicit TLS), with its
own configuration, base_dir and Maildir under a temporary directory, a test user in a
passwd-file and a throwaway certificate; stopped by its PID.  SMTP servers (STARTTLS,
implicit TLS, AUTH) deliver into that user's Maildir and record what they received.
Without Dovecot the tests skip (``scripts/mail-up`` installs it); with ``CI=true`` they fail.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from ticketbridge.adapters.email.mailserver import MailServer

USER = "desk@msp.example"
PASSWORD = "imap-test-password"
VENDOR = "support@vendor.example"
DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


@dataclass
class MailWorld:
    root: Path
    maildir: Path
    cert: Path
    key: Path
    imap_port: int
    imaps_port: int

    def client_tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))

    def server_tls(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert), str(self.key))
        return context


def _missing(message: str) -> None:
    if IN_CI:
        pytest.fail(message + "; CI=true requires it (scripts/mail-up installs it)")
    pytest.skip(message)


def _wait_for(port: int, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


@pytest.fixture(scope="session")
def mail_world() -> Iterator[MailWorld]:
    if not os.path.exists(DOVECOT):
        _missing("dovecot is not installed (apt-get install dovecot-imapd)")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _missing("the cryptography package is missing (pip install -e '.[test]')")
    # Not under pytest's tmp dir: Dovecot's own users must traverse every parent directory.
    root = Path(tempfile.mkdtemp(prefix="tb-dovecot-"))
    root.chmod(0o755)
    cert, key = _certificate(root)
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
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    imap_port, imaps_port = _free_port(), _free_port()
    chroot = "" if os.getuid() == 0 else "  chroot =\n"
    conf = root / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{users}ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
disable_plaintext_auth = no
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
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
{chroot}}}
service anvil {{
{chroot}}}
"""
    )
    errors = root / "start.err"
    with errors.open("wb") as err:
        # Dovecot forks into the background: its output goes to a file, not a pipe we wait on.
        started = subprocess.run(
            [DOVECOT, "-c", str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            timeout=30,
            check=False,
        )
    if started.returncode != 0:
        pytest.fail(f"dovecot did not start: {errors.read_text().strip()}")
    pid_file = root / "run" / "master.pid"
    deadline = time.monotonic() + 15
    ready = _wait_for(imap_port, deadline) and _wait_for(imaps_port, deadline)
    try:
        if not ready:
            log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
            pytest.fail(f"dovecot did not listen on 127.0.0.1: {log[-2000:]}")
        yield MailWorld(root, maildir, cert, key, imap_port, imaps_port)
    finally:
        if pid_file.exists():
            pid = int(pid_file.read_text().split()[0])
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            end = time.monotonic() + 10
            while time.monotonic() < end:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def smtp_starttls(mail_world: MailWorld) -> Iterator[MailServer]:
    server = MailServer(
        maildirs={USER: mail_world.maildir},
        tls=mail_world.server_tls(),
        credentials=(USER, PASSWORD),
    ).start()
    yield server
    server.stop()


@pytest.fixture
def smtp_tls(mail_world: MailWorld) -> Iterator[MailServer]:
    server = MailServer(
        maildirs={USER: mail_world.maildir},
        tls=mail_world.server_tls(),
        implicit_tls=True,
        credentials=(USER, PASSWORD),
    ).start()
    yield server
    server.stop()
