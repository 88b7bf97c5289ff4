"""PROXY protocol bindings and trusted forwarding headers, end to end on 127.0.0.1 with raw
sockets: the real client's address reaches REMOTE_ADDR and the access log; garbage, silence
and untrusted headers do not."""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme

from tests.e2e.conftest import client_context
from tests.helpers import raw_request, running_server
from trioiis import Limits
from trioiis._protocol.proxy_protocol import V2_SIGNATURE
from trioiis.config import config_from_mapping, load_register_function

WHOAMI = load_register_function(
    str(Path(__file__).resolve().parents[2] / "examples/modules/whoami.py:register_module")
)
GET = b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def v2(src: str, sport: int, *, local: bool = False) -> bytes:
    addresses = trio.socket.inet_aton(src) + trio.socket.inet_aton("127.0.0.1")
    payload = addresses + struct.pack("!HH", sport, 80) + b"\x04\x00\x02ab"  # one TLV
    command = 0x20 if local else 0x21
    return V2_SIGNATURE + struct.pack("!BBH", command, 0x11, len(payload)) + payload


def body_of(raw: bytes) -> str:
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:100]
    return raw.partition(b"\r\n\r\n")[2].decode()


@pytest.mark.parametrize(
    ("header", "shown"),
    [
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n", "203.0.113.7 40000"),
        (b"PROXY TCP6 2001:db8::5 ::1 40001 443\r\n", "2001:db8::5 40001"),
        (v2("198.51.100.3", 40002), "198.51.100.3 40002"),
        (b"PROXY UNKNOWN\r\n", "127.0.0.1 "),
        (v2("198.51.100.3", 1, local=True), "127.0.0.1 "),  # a balancer's health check
    ],
)
async def test_proxy_header_names_the_client(
    tmp_path: Path, header: bytes, shown: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    async with running_server(("whoami", WHOAMI), root=tmp_path, proxy_protocol=True) as srv:
        answer = body_of(await raw_request(srv.port, header + GET))
    assert answer.startswith(shown)
    logged = [r.getMessage() for r in caplog.records if r.name == "trioiis.access"]
    assert len(logged) == 1
    assert logged[0].startswith(shown.split()[0] + " ")


async def test_header_in_pieces_with_http_in_the_same_segment(tmp_path: Path) -> None:
    header = v2("192.0.2.9", 1234)
    async with running_server(("whoami", WHOAMI), root=tmp_path, proxy_protocol=True) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                for i in range(0, 20):  # byte by byte, then the rest with the request
                    await stream.send_all(header[i : i + 1])
                await stream.send_all(header[20:] + GET)
                raw = b""
                while chunk := await stream.receive_some(65536):
                    raw += chunk
    assert body_of(raw).startswith("192.0.2.9 1234 ")


@pytest.mark.parametrize(
    "data",
    [
        GET,  # no header at all
        b"PROXY TCP4 nonsense\r\n" + GET,
        V2_SIGNATURE + b"\x21\x11\xff\xff" + GET,
        b"\x16\x03\x01\x00\x05hello",
    ],
)
async def test_garbage_closes_without_an_answer(tmp_path: Path, data: bytes) -> None:
    async with running_server(("whoami", WHOAMI), root=tmp_path, proxy_protocol=True) as srv:
        assert await raw_request(srv.port, data) == b""
        # The server still serves well-behaved connections.
        ok = await raw_request(srv.port, b"PROXY TCP4 192.0.2.1 127.0.0.1 5 80\r\n" + GET)
        assert body_of(ok).startswith("192.0.2.1 5 ")


async def test_a_silent_client_is_dropped_after_head_timeout(tmp_path: Path) -> None:
    async with running_server(
        ("whoami", WHOAMI), root=tmp_path, proxy_protocol=True, limits=Limits(head_timeout=0.2)
    ) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"PROXY TCP4 ")  # and then nothing
                assert await stream.receive_some(100) == b""


FORWARDED_CASES = [
    # (trusted_proxies, headers, expected REMOTE_ADDR)
    ((), b"X-Forwarded-For: 203.0.113.1\r\n", "127.0.0.1"),
    (("127.0.0.1",), b"X-Forwarded-For: 203.0.113.1\r\n", "203.0.113.1"),
    (("10.0.0.0/8",), b"X-Forwarded-For: 203.0.113.1\r\n", "127.0.0.1"),  # peer untrusted
    (
        ("127.0.0.0/8", "10.0.0.0/8"),
        b"X-Forwarded-For: 198.51.100.1, 203.0.113.1\r\nX-Forwarded-For: 10.2.3.4\r\n",
        "203.0.113.1",
    ),
    (("127.0.0.1",), b'Forwarded: for="[2001:db8::9]:77";proto=https\r\n', "2001:db8::9 77"),
    (("127.0.0.1",), b"Forwarded: for=unknown\r\nX-Forwarded-For: 1.2.3.4\r\n", "127.0.0.1"),
]


@pytest.mark.parametrize(("trusted", "headers", "shown"), FORWARDED_CASES)
async def test_forwarding_headers_only_from_trusted_proxies(
    tmp_path: Path, trusted: tuple[str, ...], headers: bytes, shown: str
) -> None:
    request = GET.replace(b"Host: t\r\n", b"Host: t\r\n" + headers)
    async with running_server(("whoami", WHOAMI), root=tmp_path, trusted_proxies=trusted) as srv:
        answer = body_of(await raw_request(srv.port, request))
    assert answer.startswith(shown + " ")


async def asgi_client(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw ASGI app answering the scope's client as ``ADDRESS PORT``."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    host, port = scope["client"]
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"{host} {port}".encode()})


def wsgi_client(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app answering REMOTE_ADDR and REMOTE_PORT."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REMOTE_ADDR']} {environ['REMOTE_PORT']}".encode()]


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_hosted_apps_see_the_forwarded_client(tmp_path: Path, kind: str) -> None:
    handler = {"path": "/app*", kind: f"tests.e2e.test_forwarding:{kind}_client"}
    config = config_from_mapping({"handlers": [handler]})
    request = b"GET /app HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 203.0.113.5\r\n"
    async with running_server(
        root=tmp_path,
        modules=config.modules,
        handlers=config.handlers,
        trusted_proxies=("127.0.0.1",),
        proxy_protocol=True,
    ) as srv:
        header = b"PROXY TCP4 127.0.0.1 127.0.0.1 999 80\r\n"
        raw = await raw_request(srv.port, header + request + b"Connection: close\r\n\r\n")
    assert body_of(raw) == "203.0.113.5 0"


async def test_proxy_header_comes_before_tls(
    tmp_path: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    # HAProxy in mode tcp passes TLS through: the header, then the client's ClientHello.
    async with running_server(
        ("whoami", WHOAMI), root=tmp_path, proxy_protocol=True, **tls_files
    ) as srv:
        with trio.fail_after(10):
            tcp = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await tcp.send_all(v2("198.51.100.20", 4433))
            tls = trio.SSLStream(tcp, client_context(ca), server_hostname="127.0.0.1")
            async with tls:
                await tls.send_all(GET)
                raw = b""
                while chunk := await tls.receive_some(65536):
                    raw += chunk
    assert body_of(raw).startswith("198.51.100.20 4433 ")
