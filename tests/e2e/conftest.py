"""Fixtures shared by the end-to-end tests: a test CA and a certificate for 127.0.0.1."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> dict[str, Path]:
    """``tls_cert`` / ``tls_key`` for ServerConfig: a chain for 127.0.0.1 and localhost."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"tls_cert": tmp_path / "cert.pem", "tls_key": tmp_path / "key.pem"}
    cert.cert_chain_pems[0].write_to_path(str(files["tls_cert"]))
    for blob in cert.cert_chain_pems[1:]:
        blob.write_to_path(str(files["tls_cert"]), append=True)
    cert.private_key_pem.write_to_path(str(files["tls_key"]))
    return files


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts ``ca``."""
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context
