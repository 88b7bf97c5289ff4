"""TLS as a self-hoster needs it: only AEAD suites in TLS 1.2 (Mozilla "intermediate"),
one certificate per site chosen by SNI, and a plain-HTTP binding that redirects to HTTPS.
Real handshakes on 127.0.0.1 with a ``trustme`` test CA."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest
import trio
import trustme

from tests.e2e.conftest import client_context
from tests.helpers import builtin, raw_request, running_server
from trioiis import ConfigError, ServerConfig, SiteConfig
from trioiis._server.tls import INTERMEDIATE_CIPHERS


async def handshake(
    port: int, context: ssl.SSLContext, name: str
) -> trio.SSLStream[trio.SocketStream]:
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    tls = trio.SSLStream(tcp, context, server_hostname=name)
    try:
        await tls.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return tls


async def get(tls: trio.SSLStream[trio.SocketStream], host: str, path: str) -> bytes:
    await tls.send_all(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    received = b""
    with trio.move_on_after(10):
        while chunk := await tls.receive_some(65536):
            received += chunk
    await trio.aclose_forcefully(tls)
    return received


def tls12(ca: trustme.CA, ciphers: str | None = None) -> ssl.SSLContext:
    context = client_context(ca)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers is not None:
        context.set_ciphers(ciphers)
    return context


async def test_tls12_offers_aead_suites_only(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(root=site, **tls_files) as srv:
        with trio.fail_after(10):
            tls = await handshake(srv.port, tls12(ca), "127.0.0.1")
            name, version, _ = tls.cipher()
            await tls.aclose()
            assert version == "TLSv1.2"
            assert name in INTERMEDIATE_CIPHERS.split(":")
            assert "GCM" in name or "CHACHA20" in name
            # A client offering only CBC suites (LUCKY13's ground) finds none in common.
            cbc = "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:ECDHE-RSA-AES128-SHA:AES128-SHA"
            with pytest.raises(trio.BrokenResourceError):
                await handshake(srv.port, tls12(ca, cbc), "127.0.0.1")


def site_files(ca: trustme.CA, folder: Path, host: str) -> dict[str, Path]:
    issued = ca.issue_cert(host)
    cert, key = folder / f"{host}.crt", folder / f"{host}.key"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return {"tls_cert": cert, "tls_key": key}


async def test_each_site_gets_its_own_certificate_by_sni(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA, tmp_path: Path
) -> None:
    sites = []
    for name in ("blog", "shop"):
        root = tmp_path / f"{name}-root"
        root.mkdir()
        (root / "who.txt").write_text(f"{name}\n")
        host = f"{name}.example.test"
        sites.append(
            SiteConfig(name=name, root=root, hosts=(host,), **site_files(ca, tmp_path, host))
        )
    async with running_server(root=site, sites=tuple(sites), **tls_files) as srv:
        with trio.fail_after(10):
            for name in ("blog", "shop"):
                host = f"{name}.example.test"
                # client_context checks the certificate is for ``host``: the handshake
                # succeeds only with that site's certificate.
                tls = await handshake(srv.port, client_context(ca), host)
                assert (await get(tls, host, "/who.txt")).endswith(f"\r\n\r\n{name}\n".encode())
            # No SNI match: the server's own certificate (for 127.0.0.1).
            tls = await handshake(srv.port, client_context(ca), "127.0.0.1")
            assert b"hello\n" in await get(tls, "127.0.0.1", "/hello.txt")
            with pytest.raises(trio.BrokenResourceError):
                await handshake(srv.port, client_context(ca), "other.example.test")


def test_a_site_certificate_needs_hosts_and_its_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        SiteConfig(name="a", root=tmp_path, hosts=("a.test",), tls_cert=tmp_path / "c.pem")
    with pytest.raises(ConfigError, match="needs hosts"):
        SiteConfig(
            name="a", root=tmp_path, default=True, tls_cert=tmp_path / "c", tls_key=tmp_path / "k"
        )


async def test_https_redirect_binding(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA, tmp_path: Path
) -> None:
    """A 301 to the same path on the TLS binding, a 400 for a malformed head; each answer has
    its access-log line and its count, apart from the site's requests."""
    log = tmp_path / "access.log"
    async with running_server(
        builtin("status"),
        builtin("metrics"),
        root=site,
        https_redirect=("127.0.0.1:0",),
        access_log=str(log),
        access_log_format="json",
        **tls_files,
    ) as srv:
        ((_, redirect_port),) = srv.server.redirect_bound
        raw = await raw_request(
            redirect_port,
            b"GET /dir/a?b=1 HTTP/1.1\r\nHost: www.example.test:8080\r\nUser-Agent: ua\r\n\r\n",
        )
        junk = await raw_request(redirect_port, b"G@T / HTTP/1.1\r\n\r\n")
        base = f"https://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(base_url=base, verify=client_context(ca)) as client:
            status = (await client.get("/_trioiis/status")).json()
            scrape = (await client.get("/_trioiis/metrics")).text
    assert raw.startswith(b"HTTP/1.1 301 ")
    assert f"\r\nLocation: https://www.example.test:{srv.port}/dir/a?b=1\r\n".encode() in raw
    assert junk.startswith(b"HTTP/1.1 400 ")
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [
        (line["method"], line["url"], line["status"], line["bytes"], line["outcome"], line["site"])
        for line in lines
    ][:2] == [("GET", "/dir/a?b=1", 301, 0, "completed", "-"), ("-", "-", 400, 0, "refused", "-")]
    assert lines[0]["user_agent"] == "ua"
    assert [line["site"] for line in lines[2:]] == ["default", "default"]  # status, metrics
    assert status["https_redirects"] == {"301": 1}
    assert status["heads_refused"] == {"400": 1}
    assert status["requests"] == 1  # the status request itself: no redirect among them
    assert 'trioiis_https_redirects_total{status="301"} 1.0' in scrape


async def test_https_redirect_points_at_the_tls_binding_beside_cleartext_ones(
    site: Path, tls_files: dict[str, Path]
) -> None:
    """With ``tls_bindings`` the first binding is cleartext: the redirect goes to the first
    TLS one."""
    async with running_server(
        root=site, tls_bindings=("127.0.0.1:0",), https_redirect=("127.0.0.1:0",), **tls_files
    ) as srv:
        ((_, tls_port),) = srv.server.tls_bound
        ((_, redirect_port),) = srv.server.redirect_bound
        raw = await raw_request(redirect_port, b"GET /a HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert tls_port != srv.port
    assert f"\r\nLocation: https://example.test:{tls_port}/a\r\n".encode() in raw


def test_https_redirect_needs_tls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="https_redirect needs tls_cert"):
        ServerConfig(root=tmp_path, https_redirect=("127.0.0.1:8080",))
