"""Real mail servers for one test run: Dovecot (IMAP) and an aiosmtpd SMTP server.

One Dovecot per run (``adapters/email/local.py``) on free 127.0.0.1 ports (plain+STARTTLS
and implicit TLS) with a throwaway certificate made here.  SMTP servers (STARTTLS,
implicit TLS, AUTH) deliver into that user's Maildir and record what they received.
Without Dovecot the tests skip (``scripts/mail-up`` installs it); with ``CI=true`` they fail.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from ticketbridge.adapters.email.local import (
    DovecotUnavailable,
    missing_dovecot,
    start_local_dovecot,
)
from ticketbridge.adapters.email.mailserver import MailServer

USER = "desk@msp.example"
PASSWORD = "imap-test-password"
VENDOR = "support@vendor.example"


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


@pytest.fixture(scope="session")
def mail_world() -> Iterator[MailWorld]:
    missing = missing_dovecot()
    if missing:
        _missing(missing)
    try:
        import cryptography  # noqa: F401
    except ImportError:
        _missing("the cryptography package is missing (pip install -e '.[test]')")
    certs = Path(tempfile.mkdtemp(prefix="tb-certs-"))
    cert, key = _certificate(certs)
    try:
        dovecot = start_local_dovecot(USER, PASSWORD, certificate=(cert, key))
    except DovecotUnavailable as exc:
        pytest.fail(str(exc))
    try:
        assert dovecot.imaps_port is not None
        yield MailWorld(
            dovecot.root, dovecot.maildir, cert, key, dovecot.imap_port, dovecot.imaps_port
        )
    finally:
        dovecot.stop()
        shutil.rmtree(certs, ignore_errors=True)


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
