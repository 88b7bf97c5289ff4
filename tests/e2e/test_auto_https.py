"""Automatic HTTPS end to end against a real ACME CA on loopback: pebble (Let's Encrypt's
test CA) and pebble-challtestsrv (its mock DNS: every name is 127.0.0.1).

Each test opens the server's cleartext and TLS sockets first, starts a fresh pebble whose
validator connects to those two ports (HTTP-01, TLS-ALPN-01), then serves on them. Waits
are on the server's own signals (a certificate installed, a log record), never on sleeps.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
from cryptography import x509

from tests.e2e.pebble import Pebble, listening_socket, require_pebble, running_pebble
from trioiis import HttpServer, ServerConfig
from trioiis.config import SiteConfig

pytestmark = pytest.mark.usefixtures("pebble_installed")

#: Seconds the CA may take for everything a test waits for.
DEADLINE = 30.0


@pytest.fixture
def pebble_installed() -> None:
    require_pebble()


def make_site(tmp_path: Path, name: str) -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "index.html").write_text(f"this is {name}\n")
    return root


def site_a(tmp_path: Path) -> list[SiteConfig]:
    """One site, a.test, certified through HTTP-01."""
    return [SiteConfig(name="a", root=make_site(tmp_path, "a"), hosts=("a.test",), acme=True)]


@dataclass
class Ports:
    plain: socket.socket
    tls: socket.socket

    @property
    def http_port(self) -> int:
        return int(self.plain.getsockname()[1])

    @property
    def tls_port(self) -> int:
        return int(self.tls.getsockname()[1])


@pytest.fixture
def ports() -> Iterator[Ports]:
    opened = Ports(listening_socket(), listening_socket())
    yield opened
    opened.plain.close()
    opened.tls.close()


class Records(logging.Handler):
    """The ``trioiis.acme`` log, and a wait for a line matching a pattern."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self._waiters: list[tuple[re.Pattern[str], trio.Event]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        for pattern, event in self._waiters:
            if pattern.search(line):
                event.set()

    async def wait_for(self, pattern: str) -> str:
        compiled = re.compile(pattern)
        event = trio.Event()
        self._waiters.append((compiled, event))
        if not any(compiled.search(line) for line in self.lines):
            with trio.fail_after(DEADLINE):
                await event.wait()
        return next(line for line in self.lines if compiled.search(line))


@pytest.fixture
def acme_log() -> Iterator[Records]:
    records = Records()
    logger = logging.getLogger("trioiis.acme")
    logger.addHandler(records)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(records)
    logger.setLevel(previous)


def acme_config(
    tmp_path: Path, pebble: Pebble | None, ports: Ports, sites: list[SiteConfig], **extra: object
) -> ServerConfig:
    return ServerConfig(
        root=make_site(tmp_path, "top") if not (tmp_path / "top").exists() else tmp_path / "top",
        bindings=(f"127.0.0.1:{ports.http_port}",),
        tls_bindings=(f"127.0.0.1:{ports.tls_port}",),
        sites=tuple(sites),
        acme_directory=pebble.directory if pebble else "https://127.0.0.1:1/dir",
        acme_ca_bundle=pebble.ca_bundle if pebble else None,
        acme_state_dir=tmp_path / "state",
        acme_email="admin@example.test",
        **extra,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def serving(config: ServerConfig, ports: Ports) -> AsyncIterator[HttpServer]:
    # The server gets copies of the sockets (as a worker inherits them), so that a test
    # can start the next server on the very ports pebble validates.
    server = HttpServer(config, sockets=[ports.plain.dup(), ports.tls.dup()])
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        try:
            yield server
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await server.shutdown(grace=1)
            nursery.cancel_scope.cancel()


async def certified(server: HttpServer, *names: str) -> None:
    """Wait until every one of ``names`` serves a CA-issued certificate."""
    auto = server.auto_https
    assert auto is not None
    with trio.fail_after(DEADLINE):
        while not all(name in auto.issued for name in names):
            await auto.wait_changed()


def served_certificate(port: int, name: str | None) -> x509.Certificate:
    """The certificate the server presents to a client naming ``name`` (not verified;
    None: a client that sends no server name)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def acme_tls_handshake(port: int, name: str) -> bool:
    """Whether a handshake offering only ALPN acme-tls/1 for ``name`` completes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["acme-tls/1"])
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=name),
        ):
            return True
    except (ssl.SSLError, OSError):
        return False


async def curl(root_pem: Path, port: int, name: str, path: str = "/") -> str:
    """curl, trusting only pebble's root, fetching ``https://NAME:PORT/PATH`` (SNI NAME)."""
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    result = await trio.run_process(
        [
            binary,
            "--silent",
            "--show-error",
            "--fail",
            "--max-time",
            "10",
            "--cacert",
            str(root_pem),
            "--resolve",
            f"{name}:{port}:127.0.0.1",
            f"https://{name}:{port}{path}",
        ],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


async def test_http01_and_tls_alpn01_sites_get_certificates_curl_fetches_both_by_sni(
    tmp_path: Path, ports: Ports, acme_log: Records
) -> None:
    sites = [
        SiteConfig(name="a", root=make_site(tmp_path, "a"), hosts=("a.test",), acme=True),
        SiteConfig(
            name="b",
            root=make_site(tmp_path, "b"),
            hosts=("b.test",),
            acme=True,
            acme_challenge="tls-alpn-01",
        ),
    ]
    async with running_pebble(
        tmp_path, http_port=ports.http_port, tls_port=ports.tls_port
    ) as pebble:
        config = acme_config(tmp_path, pebble, ports, sites)
        started = time.monotonic()
        async with serving(config, ports) as server:
            await certified(server, "a.test", "b.test")
            print(f"time to both certificates: {time.monotonic() - started:.2f} s")
            root = tmp_path / "pebble-root.pem"
            root.write_bytes(await trio.to_thread.run_sync(pebble.root_pem))
            assert await curl(root, ports.tls_port, "a.test") == "this is a\n"
            assert await curl(root, ports.tls_port, "b.test") == "this is b\n"
            assert server.auto_https is not None
            nameless = await trio.to_thread.run_sync(served_certificate, ports.tls_port, None)
            # A client naming no host gets the first ACME host's current certificate.
            assert nameless.serial_number == server.auto_https.issued["a.test"].serial
            async with httpx.AsyncClient(timeout=10) as client:
                base = f"http://127.0.0.1:{ports.http_port}"
                moved = await client.get(f"{base}/x?y=1", headers={"host": "a.test"})
                unknown = await client.get(
                    f"{base}/.well-known/acme-challenge/nope", headers={"host": "a.test"}
                )
                other = await client.get(f"{base}/", headers={"host": "other.test"})
    assert moved.status_code == 301
    assert moved.headers["location"] == f"https://a.test:{ports.tls_port}/x?y=1"
    assert unknown.status_code == 404  # the challenge path is never redirected
    assert other.status_code == 200  # a host without a certificate is served in plain HTTP
    assert other.text == "this is top\n"
    # Each site's certificate went through the challenge it asked for.
    assert any("a.test: ordering" in line and "(http-01)" in line for line in acme_log.lines)
    assert any("b.test: ordering" in line and "(tls-alpn-01)" in line for line in acme_log.lines)
    assert any("answered a TLS-ALPN-01 validation" in line for line in acme_log.lines)
    state = tmp_path / "state"
    assert (state / "certificates" / "a.test.pem").is_file()
    assert (state / "account-key.pem").stat().st_mode & 0o077 == 0
    assert not list((state / "challenges").rglob("*.*")), "challenge answers are removed"


async def test_renewal_swaps_the_certificate_under_an_open_connection(
    tmp_path: Path, ports: Ports, acme_log: Records
) -> None:
    sites = site_a(tmp_path)
    # Certificates valid 4 s: renewed at two thirds, 2.7 s after they start.
    async with running_pebble(
        tmp_path, http_port=ports.http_port, tls_port=ports.tls_port, validity=4
    ) as pebble:
        config = acme_config(tmp_path, pebble, ports, sites)
        async with serving(config, ports) as server:
            await certified(server, "a.test")
            auto = server.auto_https
            assert auto is not None
            first = auto.issued["a.test"]
            context = ssl.create_default_context(
                cadata=(await trio.to_thread.run_sync(pebble.root_pem)).decode()
            )
            raw = await trio.open_tcp_stream("127.0.0.1", ports.tls_port)
            tls = trio.SSLStream(raw, context, server_hostname="a.test", https_compatible=True)
            async with tls:
                await tls.do_handshake()
                before = tls.getpeercert(binary_form=True)
                assert await _get(tls) == b"this is a\n"
                with trio.fail_after(DEADLINE):
                    while auto.issued["a.test"].serial == first.serial:
                        await auto.wait_changed()
                renewed = auto.issued["a.test"]
                # The open connection still works, on the certificate it started with.
                assert await _get(tls) == b"this is a\n"
                assert tls.getpeercert(binary_form=True) == before
            new = await trio.to_thread.run_sync(served_certificate, ports.tls_port, "a.test")
    assert x509.load_der_x509_certificate(before).serial_number == first.serial
    assert new.serial_number == renewed.serial != first.serial
    assert any("a.test: renewing" in line for line in acme_log.lines)


async def _get(tls: trio.SSLStream[trio.SocketStream]) -> bytes:
    """GET / for a.test on a kept-alive connection: the body."""
    await tls.send_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    data = b""
    with trio.fail_after(DEADLINE):
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < 10:
            chunk = await tls.receive_some(65536)
            assert chunk, "the server closed the connection"
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return body


async def test_restart_uses_the_stored_certificate_without_a_new_order(
    tmp_path: Path, ports: Ports, acme_log: Records
) -> None:
    # This CA rejects 5% of good nonces (pebble's default), as real ones may: the client
    # must retry.
    nonces = {"PEBBLE_WFE_NONCEREJECT": "5"}
    async with running_pebble(
        tmp_path, http_port=ports.http_port, tls_port=ports.tls_port, env=nonces
    ) as pebble:
        config = acme_config(tmp_path, pebble, ports, site_a(tmp_path))
        async with serving(config, ports) as server:
            await certified(server, "a.test")
            assert server.auto_https is not None
            issued = server.auto_https.issued["a.test"].serial
    # pebble is gone: an order now could only fail, and would say so in the log.
    acme_log.lines.clear()
    async with serving(config, ports) as server:
        served = await trio.to_thread.run_sync(served_certificate, ports.tls_port, "a.test")
        await trio.testing.wait_all_tasks_blocked()
    assert served.serial_number == issued
    assert any("a.test: using the stored certificate" in line for line in acme_log.lines)
    assert not any("ordering" in line or "no certificate" in line for line in acme_log.lines)


async def test_two_workers_sharing_a_state_dir_order_once(
    tmp_path: Path, ports: Ports, acme_log: Records
) -> None:
    async with running_pebble(
        tmp_path, http_port=ports.http_port, tls_port=ports.tls_port
    ) as pebble:
        config = acme_config(tmp_path, pebble, ports, site_a(tmp_path))
        # Two servers on the same sockets and state folder, as two workers are.
        async with serving(config, ports) as one, serving(config, ports) as two:
            await certified(one, "a.test")
            await certified(two, "a.test")
            assert one.auto_https is not None
            assert two.auto_https is not None
            assert one.auto_https.issued["a.test"] == two.auto_https.issued["a.test"]
    assert sum("issued in" in line for line in acme_log.lines) == 1
    assert sum("stored by another process" in line for line in acme_log.lines) == 1


async def test_a_refused_order_is_logged_and_the_site_is_still_served(
    tmp_path: Path, ports: Ports, acme_log: Records
) -> None:
    sites = [
        SiteConfig(name="bad", root=make_site(tmp_path, "bad"), hosts=("blocked.test",), acme=True)
    ]
    async with running_pebble(
        tmp_path, http_port=ports.http_port, tls_port=ports.tls_port, blocklist=("blocked.test",)
    ) as pebble:
        config = acme_config(tmp_path, pebble, ports, sites)
        async with serving(config, ports) as server:
            line = await acme_log.wait_for("blocked.test: no certificate")
            async with httpx.AsyncClient(timeout=10) as client:
                plain = await client.get(
                    f"http://127.0.0.1:{ports.http_port}/", headers={"host": "blocked.test"}
                )
            placeholder = await trio.to_thread.run_sync(
                served_certificate, ports.tls_port, "blocked.test"
            )
            assert server.auto_https is not None
            assert "blocked.test" not in server.auto_https.issued
            # Only a pending validation gets an acme-tls/1 handshake.
            assert not await trio.to_thread.run_sync(
                acme_tls_handshake, ports.tls_port, "blocked.test"
            )
    assert pebble.directory in line
    assert "rejectedIdentifier" in line or "blocked" in line.split(pebble.directory, 1)[1]
    assert "next try in 60 s" in line
    assert plain.status_code == 200
    assert plain.text == "this is bad\n"
    assert placeholder.issuer == placeholder.subject  # self-signed, until the CA says yes
