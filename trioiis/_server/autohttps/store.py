"""The ACME state folder (``acme_state_dir``), shared by every worker and every restart.

Layout (every file written whole to a temporary name, then renamed over the old one, so a
reader never sees half a file)::

    account-key.pem                  the ACME account's private key (RSA 2048), made once
    certificates/NAME.pem            NAME's private key, then its certificate chain
    placeholders/NAME.pem            NAME's self-signed placeholder (key, then certificate)
    challenges/http-01/TOKEN         a pending HTTP-01 answer (the key authorization)
    challenges/tls-alpn-01/NAME.pem  a pending TLS-ALPN-01 certificate (key, then cert)
    locks/NAME.lock                  held (fcntl) by the one process ordering NAME

Everything here is blocking file I/O: call it from a thread (``trio.to_thread``), except
the reads the challenge answers make (small files, read with ``trio.Path``).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

__all__ = [
    "LOCK_POLL",
    "ACME_IDENTIFIER_OID",
    "StateDir",
    "StoredCertificate",
    "challenge_certificate",
    "renewal_time",
]

#: Seconds between two tries at a lock another process holds.
LOCK_POLL = 0.2
#: id-pe-acmeIdentifier (RFC 8737): the extension a TLS-ALPN-01 certificate carries.
ACME_IDENTIFIER_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.31")
_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_PRIVATE = 0o600


@dataclass(frozen=True, slots=True)
class StoredCertificate:
    """A key and certificate chain in one PEM file, and what the renewal clock needs."""

    path: Path
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int

    @property
    def renew_at(self) -> datetime.datetime:
        return renewal_time(self.not_before, self.not_after)

    def due(self, now: datetime.datetime) -> bool:
        return now >= self.renew_at

    def expired(self, now: datetime.datetime) -> bool:
        return now >= self.not_after


def renewal_time(not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
    """Two thirds into the certificate's lifetime."""
    return not_before + (not_after - not_before) * 2 / 3


def _pem_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _self_signed(
    name: str, *, days: float, extension: x509.UnrecognizedExtension | None = None
) -> bytes:
    """A fresh EC P-256 key and a self-signed certificate for ``name``, as one PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
    )
    if extension is not None:
        builder = builder.add_extension(extension, critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return _pem_key(key) + cert.public_bytes(serialization.Encoding.PEM)


def challenge_certificate(name: str, key_authorization: str) -> bytes:
    """RFC 8737's TLS-ALPN-01 answer for ``name``: a self-signed certificate whose critical
    acmeIdentifier extension holds SHA-256(key authorization), with its key, as one PEM."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(key_authorization.encode("ascii"))
    value = b"\x04\x20" + digest.finalize()  # DER: an OCTET STRING of 32 bytes
    extension = x509.UnrecognizedExtension(ACME_IDENTIFIER_OID, value)
    return _self_signed(name, days=7, extension=extension)


def _write(path: Path, data: bytes) -> None:
    """``path`` replaced whole by ``data`` (owner-only: it may hold a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _PRIVATE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.contextmanager
def _published(path: Path, data: bytes) -> Iterator[None]:
    """``path`` holds ``data`` while the block runs, and is gone after it."""
    _write(path, data)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()


class StateDir:
    """The files of one ``acme_state_dir`` (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # ---------------------------------------------------------------- account
    def account_key_pem(self) -> bytes:
        """The account's private key, made (RSA 2048) and stored the first time."""
        path = self.root / "account-key.pem"
        with self.lock("account"):
            if not path.exists():
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                _write(path, _pem_key(key))
            return path.read_bytes()

    # ---------------------------------------------------------------- certificates
    def certificate_path(self, name: str) -> Path:
        return self.root / "certificates" / f"{name}.pem"

    def stored(self, name: str) -> StoredCertificate | None:
        """NAME's stored certificate (its leaf's dates), or None when there is none or it
        cannot be read."""
        path = self.certificate_path(name)
        try:
            leaf = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError):
            return None
        return StoredCertificate(
            path, leaf.not_valid_before_utc, leaf.not_valid_after_utc, leaf.serial_number
        )

    def store(self, name: str, key_pem: bytes, chain_pem: bytes) -> StoredCertificate:
        _write(self.certificate_path(name), key_pem + chain_pem)
        stored = self.stored(name)
        if stored is None:
            raise ValueError(f"the CA's certificate for {name} is not a PEM certificate")
        return stored

    def placeholder(self, name: str) -> Path:
        """NAME's self-signed placeholder, made when missing or within a day of expiring."""
        path = self.root / "placeholders" / f"{name}.pem"
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
            fresh = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
            if fresh > datetime.timedelta(days=1):
                return path
        except (OSError, ValueError):
            pass
        _write(path, _self_signed(name, days=30))
        return path

    # ---------------------------------------------------------------- challenges
    def http01_path(self, token: str) -> Path | None:
        """Where HTTP-01 ``token``'s answer is, or None for a token that is no file name."""
        if not _TOKEN.fullmatch(token):
            return None
        return self.root / "challenges" / "http-01" / token

    def tls_alpn01_path(self, name: str) -> Path:
        return self.root / "challenges" / "tls-alpn-01" / f"{name}.pem"

    def http01(self, token: str, key_authorization: str) -> contextlib.AbstractContextManager[None]:
        """The HTTP-01 answer published for as long as the block runs."""
        path = self.http01_path(token)
        if path is None:
            raise ValueError(f"the CA sent a token that is not base64url: {token!r}")
        return _published(path, key_authorization.encode("ascii"))

    def tls_alpn01(
        self, name: str, key_authorization: str
    ) -> contextlib.AbstractContextManager[None]:
        """The TLS-ALPN-01 certificate published for as long as the block runs."""
        pem = challenge_certificate(name, key_authorization)
        return _published(self.tls_alpn01_path(name), pem)

    # ---------------------------------------------------------------- locks
    @contextlib.contextmanager
    def lock(self, name: str, stop: threading.Event | None = None) -> Iterator[None]:
        """Hold ``locks/NAME.lock`` (an fcntl lock: released by the kernel if the process
        dies). Waits, trying every ``LOCK_POLL`` s, while another process holds it.

        Raises:
            InterruptedError: ``stop`` was set while waiting.
        """
        path = self.root / "locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if stop is None:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                        break
                    if stop.wait(LOCK_POLL):
                        raise InterruptedError("stopped while waiting for a lock") from None
            yield
        finally:
            os.close(fd)  # releases the lock
