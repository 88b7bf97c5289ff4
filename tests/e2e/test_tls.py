"""HTTPS: ``tls_cert`` / ``tls_key`` make every binding serve TLS (``trio.SSLStream``, ALPN
``http/1.1``), with a certificate for 127.0.0.1 from a ``trustme`` test CA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme

import trioiis
from tests.e2e.conftest import client_context
from tests.helpers import raw_request, register, running_server
from trioiis import ConfigError, HttpServer, Limits, Notification, ServerConfig, Status
from trioiis.cli import main as cli_main


class SecureProbe(trioiis.HttpModule):
    """``/info`` answers with what the request knows about TLS."""

    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> Status:
        if ctx.request.path != "/info":
            return Status.CONTINUE
        ctx.response.write(f"{ctx.connection.secure} {ctx.get_server_variable('HTTPS')}".encode())
        return Status.FINISH_REQUEST


PROBE = ("probe", register(SecureProbe, Notification.BEGIN_REQUEST))


async def test_https_get_of_a_static_file_and_secure_flags(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(PROBE, root=site, **tls_files) as srv:
        url = f"https://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(base_url=url, verify=client_context(ca), timeout=10) as c:
            hello = await c.get("/hello.txt")
            info = await c.get("/info")  # the same (kept-alive) connection
            folder = await c.get("/dir")
    assert hello.status_code == 200
    assert hello.text == "hello\n"
    assert hello.headers["content-type"] == "text/plain; charset=utf-8"
    assert info.text == "True on"
    assert folder.status_code == 301
    assert folder.headers["location"] == f"https://127.0.0.1:{srv.port}/dir/"


async def test_plain_http_server_says_https_off(site: Path) -> None:
    async with running_server(PROBE, root=site) as srv, srv.client() as client:
        assert (await client.get("/info")).text == "False off"


async def test_alpn_is_http11_without_http2_and_close_sends_close_notify(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(root=site, http2=False, **tls_files) as srv:
        with trio.fail_after(10):
            tcp = await trio.open_tcp_stream("127.0.0.1", srv.port)
            context = client_context(ca)
            context.set_alpn_protocols(["h2", "http/1.1"])
            # https_compatible=False: an EOF without close_notify would raise here.
            tls = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
            async with tls:
                await tls.do_handshake()
                assert tls.selected_alpn_protocol() == "http/1.1"
                await tls.send_all(
                    b"GET /hello.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                )
                received = b""
                while chunk := await tls.receive_some(65536):
                    received += chunk
    assert received.startswith(b"HTTP/1.1 200 ")
    assert received.endswith(b"\r\n\r\nhello\n")


async def test_plain_http_against_the_tls_port_gets_a_clear_text_400(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(root=site, **tls_files) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert b"hello" not in raw
        assert raw.startswith(b"HTTP/1.1 400 Bad Request\r\n")
        assert b"\r\nConnection: close\r\n" in raw
        assert raw.endswith(b"This port speaks HTTPS: use an https:// URL instead.\n")
        async with httpx.AsyncClient(timeout=10) as plain:
            answer = await plain.get(f"http://127.0.0.1:{srv.port}/hello.txt")
        assert answer.status_code == 400
        assert "https://" in answer.text
        # The server is still serving HTTPS.
        url = f"https://127.0.0.1:{srv.port}/hello.txt"
        async with httpx.AsyncClient(verify=client_context(ca), timeout=10) as client:
            assert (await client.get(url)).text == "hello\n"
        assert srv.server.counters.connections_open <= 1


async def test_a_silent_client_is_dropped_after_head_timeout(
    site: Path, tls_files: dict[str, Path]
) -> None:
    limits = Limits(head_timeout=0.2)
    async with running_server(root=site, limits=limits, **tls_files) as srv:
        # No ClientHello at all: the handshake times out and the connection closes.
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                assert await stream.receive_some(100) == b""


async def test_bad_certificate_files_are_config_errors(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    other_key = tmp_path / "other.pem"
    ca.issue_cert("127.0.0.1").private_key_pem.write_to_path(str(other_key))
    cases = [
        ({"tls_cert": tmp_path / "missing.pem", "tls_key": tls_files["tls_key"]}, "missing.pem"),
        ({"tls_cert": junk, "tls_key": tls_files["tls_key"]}, "not a matching PEM pair"),
        ({"tls_cert": tls_files["tls_cert"], "tls_key": other_key}, "not a matching PEM pair"),
    ]
    for files, message in cases:
        config = ServerConfig(root=site, bindings=("127.0.0.1:0",), **files)
        server = HttpServer(config)
        with pytest.raises(ConfigError, match=message) as caught:
            await server.serve()  # fails before it listens
        assert "\n" not in str(caught.value)
        with trio.fail_after(5):
            await server.shutdown()  # serve() finished: shutdown does not hang


def test_tls_cert_and_key_go_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        ServerConfig(tls_cert=tmp_path / "cert.pem")
    with pytest.raises(ConfigError, match="tls_cert and tls_key go together"):
        ServerConfig(tls_key=tmp_path / "key.pem")


def test_cli_tls_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["serve", str(tmp_path), "--tls-cert", str(tmp_path / "c.pem")]) == 2
    assert "tls_cert and tls_key go together" in capsys.readouterr().err
    from trioiis.cli import _parser, build_config

    args = _parser().parse_args(
        ["serve", str(tmp_path), "--tls-cert", "c.pem", "--tls-key", "k.pem"]
    )
    config = build_config(args)
    assert (config.tls_cert, config.tls_key) == (Path("c.pem"), Path("k.pem"))


async def test_tls_bindings_serve_https_while_bindings_stay_cleartext(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(PROBE, root=site, tls_bindings=("127.0.0.1:0",), **tls_files) as srv:
        (_, tls_port), *others = srv.server.tls_bound
        assert not others
        async with srv.client() as plain:
            cleartext = await plain.get("/info")
        async with httpx.AsyncClient(verify=client_context(ca), timeout=10) as client:
            secure = await client.get(f"https://127.0.0.1:{tls_port}/info")
    assert srv.port != tls_port
    assert cleartext.text == "False off"
    assert secure.text == "True on"


def test_tls_bindings_need_a_certificate_or_acme(site: Path) -> None:
    with pytest.raises(ConfigError, match="tls_bindings need tls_cert and tls_key, or acme"):
        ServerConfig(root=site, tls_bindings=("127.0.0.1:0",))
