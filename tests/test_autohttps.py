"""Automatic HTTPS without a CA: the ClientHello reader, the renewal clock, the state
folder's locks and challenge certificates, which hosts are certified, and the settings."""

from __future__ import annotations

import datetime
import hashlib
import ssl
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from trioiis import ConfigError, HttpServer, ServerConfig, load_config
from trioiis._server.autohttps import plan
from trioiis._server.autohttps.client_hello import parse_client_hello
from trioiis._server.autohttps.store import (
    ACME_IDENTIFIER_OID,
    StateDir,
    challenge_certificate,
    renewal_time,
)
from trioiis._server.banner import banner_lines
from trioiis._server.preflight import preflight
from trioiis.cli import _parser, build_config
from trioiis.config import LETS_ENCRYPT_DIRECTORY, SiteConfig


def client_hello(server_name: str | None, alpn: list[str] | None) -> bytes:
    """The ClientHello Python's own TLS client sends (read from a memory BIO)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize(
    ("name", "alpn"),
    [("a.test", ["acme-tls/1"]), ("Www.Example.ORG", ["h2", "http/1.1"]), (None, None)],
)
def test_a_real_client_hello_gives_its_server_name_and_alpn(
    name: str | None, alpn: list[str] | None
) -> None:
    hello = parse_client_hello(client_hello(name, alpn))
    assert hello is not None
    assert hello.server_name == (name.lower() if name else None)
    assert hello.alpn == tuple(p.encode() for p in alpn or ())


HELLO = client_hello("a.test", ["acme-tls/1"])


@given(st.integers(min_value=0, max_value=len(HELLO) - 1))
def test_a_client_hello_cut_short_is_not_read(cut: int) -> None:
    assert parse_client_hello(HELLO[:cut]) is None


@given(st.binary(max_size=600))
def test_any_bytes_give_a_hello_or_none_never_an_error(data: bytes) -> None:
    result = parse_client_hello(data)
    assert result is None or isinstance(result.alpn, tuple)


@given(st.binary(min_size=1, max_size=64), st.integers(min_value=5, max_value=len(HELLO) - 1))
def test_a_corrupted_client_hello_never_raises(noise: bytes, at: int) -> None:
    data = HELLO[:at] + noise + HELLO[at + len(noise) :]
    parse_client_hello(data)


def test_renewal_is_two_thirds_into_the_lifetime() -> None:
    start = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    assert renewal_time(start, start + datetime.timedelta(days=90)) == start + datetime.timedelta(
        days=60
    )


def test_the_tls_alpn01_certificate_carries_the_key_authorization_digest() -> None:
    pem = challenge_certificate("a.test", "token.thumbprint")
    cert = x509.load_pem_x509_certificate(pem)
    extension = cert.extensions.get_extension_for_oid(ACME_IDENTIFIER_OID)
    assert extension.critical
    digest = hashlib.sha256(b"token.thumbprint").digest()
    assert extension.value.public_bytes() == b"\x04\x20" + digest
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["a.test"]


def test_a_held_lock_makes_another_taker_wait_until_told_to_stop(tmp_path: Path) -> None:
    store = StateDir(tmp_path)
    stop = threading.Event()
    stop.set()
    with store.lock("a.test"):
        with pytest.raises(InterruptedError), store.lock("a.test", stop):
            pass
        with store.lock("b.test", stop):  # another name's lock is free
            pass
    with store.lock("a.test", stop):  # released
        pass


def test_http01_tokens_that_are_not_file_names_are_refused(tmp_path: Path) -> None:
    store = StateDir(tmp_path)
    assert store.http01_path("../account-key.pem") is None
    assert store.http01_path("") is None
    assert store.http01_path("abc_DEF-123") == tmp_path / "challenges" / "http-01" / "abc_DEF-123"
    with store.http01("abc", "abc.thumb"):
        assert (tmp_path / "challenges" / "http-01" / "abc").read_text() == "abc.thumb"
    assert not (tmp_path / "challenges" / "http-01" / "abc").exists()


def test_certificates_go_to_site_hosts_and_acme_domains_with_their_challenge(
    tmp_path: Path,
) -> None:
    sites = (
        SiteConfig(name="a", root=tmp_path, hosts=("a.test", "www.a.test"), acme=True),
        SiteConfig(name="b", root=tmp_path, hosts=("b.test",), acme_challenge="tls-alpn-01"),
    )
    common = {"tls_bindings": ("127.0.0.1:0",), "sites": sites}
    only_a = plan(ServerConfig(**common, acme_domains=("Top.Test.",)))  # type: ignore[arg-type]
    assert [(d.name, d.challenge) for d in only_a] == [
        ("a.test", "http-01"),
        ("www.a.test", "http-01"),
        ("top.test", "http-01"),
    ]
    everything = plan(ServerConfig(**common, acme=True, acme_challenge="tls-alpn-01"))  # type: ignore[arg-type]
    assert [(d.name, d.challenge) for d in everything] == [
        ("a.test", "tls-alpn-01"),
        ("www.a.test", "tls-alpn-01"),
        ("b.test", "tls-alpn-01"),
    ]


def test_acme_settings_from_a_file_state_beside_it(tmp_path: Path) -> None:
    file = tmp_path / "conf" / "site.toml"
    file.parent.mkdir()
    file.write_text(
        'bindings = ["0.0.0.0:80"]\n'
        'tls_bindings = ["0.0.0.0:443"]\n'
        'acme_email = "me@example.org"\n'
        'acme_ca_bundle = "pebble.pem"\n'
        "[[sites]]\n"
        'name = "blog"\n'
        'root = "blog"\n'
        'hosts = ["blog.example.org"]\n'
        "acme = true\n"
    )
    config = load_config(file)
    assert config.acme_enabled
    assert config.acme_directory == LETS_ENCRYPT_DIRECTORY
    assert config.acme_state_dir == file.parent / "acme-state"
    assert config.acme_ca_bundle == file.parent / "pebble.pem"
    assert config.sites[0].acme
    assert load_config(_write(tmp_path, "")).acme_state_dir is None  # no ACME, no folder


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plain.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"acme": True}, "acme needs tls_bindings"),
        ({"tls_bindings": ("127.0.0.1:0",)}, "tls_bindings need tls_cert"),
        (
            {
                "acme_domains": ("a.test",),
                "tls_bindings": ("127.0.0.1:0",),
                "acme_challenge": "dns-01",
            },
            'acme_challenge must be "http-01" or "tls-alpn-01"',
        ),
        ({"acme_domains": ("a b",), "tls_bindings": ("127.0.0.1:0",)}, "is not a host name"),
        (
            {"acme": True, "tls_bindings": ("127.0.0.1:0",), "acme_directory": "ftp://x"},
            "acme_directory must be an http(s):// URL",
        ),
        (
            {"acme": True, "tls_bindings": ("127.0.0.1:0",), "acme_email": "nobody"},
            "acme_email must be an e-mail address",
        ),
    ],
)
def test_bad_acme_settings_are_one_line_config_errors(
    settings: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServerConfig(**settings)  # type: ignore[arg-type]


def test_a_site_with_acme_needs_hosts_and_no_certificate_of_its_own(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="acme = true needs hosts"):
        SiteConfig(name="a", root=tmp_path, default=True, acme=True)
    with pytest.raises(ConfigError, match="exclude each other"):
        SiteConfig(
            name="a", root=tmp_path, hosts=("a.test",), acme=True,
            tls_cert=tmp_path / "c", tls_key=tmp_path / "k",
        )  # fmt: skip


def test_command_line_flags(tmp_path: Path) -> None:
    args = _parser().parse_args(
        [
            "serve", str(tmp_path), "--bind", "127.0.0.1:8080", "--tls-bind", "127.0.0.1:8443",
            "--acme-domain", "a.test", "--acme-domain", "b.test", "--acme-email", "me@a.test",
            "--acme-directory", "https://127.0.0.1:14000/dir", "--acme-ca-bundle", "ca.pem",
        ]
    )  # fmt: skip
    config = build_config(args)
    assert config.acme_domains == ("a.test", "b.test")
    assert config.tls_bindings == ("127.0.0.1:8443",)
    assert config.acme_email == "me@a.test"
    assert config.acme_directory == "https://127.0.0.1:14000/dir"
    assert config.acme_ca_bundle == Path("ca.pem")


def test_without_the_acme_library_the_server_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "acme.client", None)
    config = ServerConfig(
        root=tmp_path, acme_domains=("a.test",), tls_bindings=("127.0.0.1:0",),
        acme_state_dir=tmp_path / "state",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"pip install 'trioiis\[acme\]'"):
        HttpServer(config)


def test_the_banner_tells_cleartext_and_tls_bindings_apart_and_names_acme_hosts(
    tmp_path: Path,
) -> None:
    config = ServerConfig(
        root=tmp_path, bindings=("127.0.0.1:8080",), tls_bindings=("127.0.0.1:8443",),
        acme_domains=("a.test",),
    )  # fmt: skip
    lines = banner_lines(config, [("127.0.0.1", 8080), ("127.0.0.1", 8443)], ["acme_challenge"])
    assert lines[0].endswith("on http://127.0.0.1:8080/")
    assert lines[1].endswith("on https://127.0.0.1:8443/")
    assert f"  acme: certificates for a.test from {LETS_ENCRYPT_DIRECTORY}" in lines


def test_check_config_refuses_a_state_folder_it_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = ServerConfig(
        root=tmp_path, tls_bindings=("127.0.0.1:0",), acme_domains=("a.test",),
        acme_state_dir=blocker / "state",
    )  # fmt: skip
    with pytest.raises(ConfigError, match="acme_state_dir"):
        preflight(config)


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            "HTTPSConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with url: /dir"
            " (Caused by NewConnectionError(\"HTTPSConnection(host='127.0.0.1', port=9):"
            ' Failed to establish a new connection: [Errno 111] Connection refused"))',
            "cannot reach the CA: [Errno 111] Connection refused",
        ),
        (
            "HTTPSConnectionPool(host='127.0.0.1', port=14000): Max retries exceeded with url:"
            " /dir (Caused by SSLError(SSLCertVerificationError(1, '[SSL:"
            " CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"
            " (_ssl.c:1006)')))",
            "cannot reach the CA: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed:"
            " self-signed certificate",
        ),
    ],
)
def test_an_unreachable_ca_is_said_in_the_sockets_words(error: str, said: str) -> None:
    import requests

    from trioiis._server.autohttps.order import _describe

    assert _describe(requests.exceptions.ConnectionError(error)) == said
