"""Every request ends with one outcome, and every report says the same one.

Over real loopback sockets: each scenario makes one request end one way (completed, the
client gone mid-body, ``send_timeout``, a minimum rate, ``request_timeout``, shutdown past its
grace, a module's reset, a module that raised) and checks the access log, the server's
counters, the request's trace and the status module against each other. Then the case that
used to be reported wrong: clients that close right after the last byte of a complete
response (sendfile and small files, hundreds of times) are ``completed``, everywhere.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

import trioiis
from tests.helpers import builtin, register, running_server
from trioiis import HttpContext, HttpModule, Notification, Outcome, Status
from trioiis.modules.status import snapshot

LARGE = 700_001  # above the static module's in-memory limit: sent with os.sendfile
SMALL = 1_000


class Scenario(HttpModule):
    """``/stream``: 64 KiB flushes, forever; ``/hang``: waits forever; ``/upload``: reads
    the body; ``/reset``: resets; ``/boom``: raises. Anything else: static_file."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        path = ctx.request.path
        if path == "/stream":
            while True:
                ctx.response.write(b"x" * 65536)
                await ctx.response.flush(more_data=True)
        if path == "/hang":
            await trio.sleep_forever()
        if path == "/upload":
            body = await ctx.request.read_all(10_000_000)
            ctx.response.write(f"{len(body)}".encode())
            return Status.FINISH_REQUEST
        if path == "/reset":
            ctx.response.reset_connection()
            return Status.FINISH_REQUEST
        if path == "/boom":
            raise RuntimeError("boom")
        return Status.CONTINUE


@dataclass
class Reports:
    """What each report said about the requests to one URL."""

    log: list[str]  # access-log lines
    counters: dict[str, int]  # ServerCounters.outcomes
    status: dict[str, Any]  # the status module's JSON (or its snapshot after shutdown)
    traces: list[dict[str, Any]]


Client = Callable[[int], Awaitable[bytes]]


async def scenario(
    tmp_path: Path,
    url: str,
    client: Client,
    *,
    shutdown_grace: float | None = None,
    requests: int = 1,
    **config: Any,
) -> tuple[Reports, bytes]:
    """Serve ``Scenario``, run ``client(port)`` (it returns what it received), wait until the
    request ended (or shut down with ``shutdown_grace`` while it runs), and collect every
    report about ``url``."""
    (tmp_path / "big.bin").write_bytes(b"b" * LARGE)
    (tmp_path / "small.txt").write_bytes(b"s" * SMALL)
    folder = tmp_path / "traces"
    log = tmp_path / "access.log"
    status: dict[str, Any] = {}
    async with running_server(
        ("scenario", register(Scenario, Notification.BEGIN_REQUEST)),
        builtin("status"),
        root=tmp_path,
        access_log=str(log),
        trace_dir=folder,
        trace_when="not status==200 or cancelled or aborted or failed or timed_out or time>9s",
        **config,
    ) as srv:
        server = srv.server
        with trio.fail_after(20):
            if shutdown_grace is None:
                received = await client(srv.port)
                await ended(server, requests)
                async with httpx.AsyncClient(base_url=srv.url) as http:
                    status = (await http.get("/_trioiis/status")).json()
            else:
                async with trio.open_nursery() as nursery:
                    got: list[bytes] = []

                    async def run_client() -> None:
                        got.append(await client(srv.port))

                    nursery.start_soon(run_client)
                    while not server.counters.requests_in_flight:
                        await trio.testing.wait_all_tasks_blocked()
                        await trio.lowlevel.checkpoint()
                    await server.shutdown(grace=shutdown_grace)
                received = got[0]
                status = snapshot(server.counters)
    counters = dict(server.counters.outcomes)
    lines = [line for line in log.read_text().splitlines() if f" {url} " in line]
    traces = [json.loads(p.read_text())["request"] for p in sorted(folder.glob("trace-*.json"))]
    mine = [t for t in traces if t["url"] == url]
    return Reports(lines, counters, status, mine), received


async def ended(server: trioiis.HttpServer, requests: int) -> None:
    """Until ``requests`` requests have started and none is in flight (bounded by the
    caller)."""
    while server.counters.requests < requests or server.counters.requests_in_flight:
        await trio.testing.wait_all_tasks_blocked()
        await trio.lowlevel.checkpoint()


def said_by_all(reports: Reports, outcome: Outcome, *, traced: bool = True) -> None:
    """Every report says ``outcome`` about the one request."""
    assert len(reports.log) == 1, reports.log
    # The common format: ... time, outcome, then the site's name.
    assert reports.log[0].endswith(f" {outcome.value} default"), reports.log
    assert reports.counters.get(outcome.value) == 1, reports.counters
    others = {k: n for k, n in reports.counters.items() if k != "completed"}
    assert others == ({} if outcome is Outcome.COMPLETED else {outcome.value: 1})
    assert reports.status["outcomes"][outcome.value] == 1
    if traced:
        assert [t["outcome"] for t in reports.traces] == [outcome.value]


def logged(line: str) -> tuple[int, int]:
    """(status, bytes) of a common-format access-log line."""
    after_request = line.split('" ', 1)[1].split()
    return int(after_request[0]), int(after_request[1])


async def open_raw(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def receive_some(sock: socket.socket, n: int = 65536) -> bytes:
    await trio.lowlevel.wait_readable(sock)
    try:
        return sock.recv(n)
    except ConnectionResetError:
        return b""


async def receive_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := await receive_some(sock):
        data += chunk
    return data


def asking(request: bytes) -> Client:
    """A client that sends ``request``, reads until the server closes, and closes."""

    async def client(port: int) -> bytes:
        sock = await open_raw(port)
        sock.sendall(request)
        answer = await receive_all(sock)
        sock.close()
        return answer

    return client


def reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()


async def test_a_client_gone_mid_response_is_cancelled_by_client(tmp_path: Path) -> None:
    async def client(port: int) -> bytes:
        sock = await open_raw(port)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while len(got) < 300_000:
            got += await receive_some(sock)
        reset(sock)
        return got

    reports, received = await scenario(tmp_path, "/stream", client)
    said_by_all(reports, Outcome.CANCELLED_BY_CLIENT)
    status, sent = logged(reports.log[0])
    # The bytes the kernel took: at least what the client read (less the head), never 0.
    head = received.index(b"\r\n\r\n") + 4
    assert status == 200
    assert sent >= len(received) - head - 20 * (len(received) // 65536 + 1)  # less framing
    assert reports.status["cancelled_by_client"] == 1
    assert reports.traces[0]["bytes"] == sent


async def test_a_client_gone_mid_request_body_is_cancelled_by_client(tmp_path: Path) -> None:
    """No status line reached the client: the access log says 499, and so do the counters
    by status (status module, metrics) and the trace, not the 200 the response object still
    holds."""

    async def client(port: int) -> bytes:
        sock = await open_raw(port)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
        reset(sock)
        return b""

    reports, _ = await scenario(tmp_path, "/upload", client)
    said_by_all(reports, Outcome.CANCELLED_BY_CLIENT)
    assert logged(reports.log[0]) == (499, 0)  # no status line went out
    assert reports.status["responses_by_status"] == {"499": 1}
    assert [t["status"] for t in reports.traces] == [499]


@pytest.mark.parametrize(
    "limits",
    [
        trioiis.Limits(send_timeout=0.3, min_send_rate=0, linger_timeout=0.2),
        # send_timeout long: only the minimum rate can end it before the test's bound
        trioiis.Limits(min_send_rate=20_000, rate_grace=0.2, send_timeout=60, linger_timeout=0.2),
    ],
    ids=["send_timeout", "min_send_rate"],
)
async def test_a_reader_too_slow_is_aborted_by_server(
    tmp_path: Path, limits: trioiis.Limits
) -> None:
    """A client that reads nothing through a small window."""
    kept: list[socket.socket] = []

    async def client(port: int) -> bytes:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        kept.append(sock)  # never read
        return b""

    try:
        reports, _ = await scenario(tmp_path, "/stream", client, limits=limits)
    finally:
        for sock in kept:
            sock.close()
    said_by_all(reports, Outcome.ABORTED_BY_SERVER)
    assert reports.status["cancelled_by_client"] == 0


async def test_a_body_below_the_minimum_rate_is_aborted_by_server_with_408(
    tmp_path: Path,
) -> None:
    client = asking(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")

    limits = trioiis.Limits(min_body_rate=1_000_000, rate_grace=0.2, linger_timeout=0.2)
    reports, received = await scenario(tmp_path, "/upload", client, limits=limits)
    said_by_all(reports, Outcome.ABORTED_BY_SERVER)
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in received.lower()
    assert logged(reports.log[0])[0] == 408


async def test_request_timeout_is_timed_out(tmp_path: Path) -> None:
    client = asking(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")

    limits = trioiis.Limits(request_timeout=0.3, linger_timeout=0.2)
    reports, received = await scenario(tmp_path, "/hang", client, limits=limits)
    said_by_all(reports, Outcome.TIMED_OUT)
    assert received.startswith(b"HTTP/1.1 503 ")
    assert reports.status["requests_timed_out"] == 1


async def test_shutdown_past_its_grace_is_aborted_by_server(tmp_path: Path) -> None:
    client = asking(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")

    reports, received = await scenario(tmp_path, "/hang", client, shutdown_grace=0.2)
    said_by_all(reports, Outcome.ABORTED_BY_SERVER)
    assert received == b""  # cut before any status line
    assert logged(reports.log[0]) == (444, 0)


async def test_a_module_reset_is_aborted_by_server(tmp_path: Path) -> None:
    client = asking(b"GET /reset HTTP/1.1\r\nHost: x\r\n\r\n")

    reports, received = await scenario(tmp_path, "/reset", client)
    said_by_all(reports, Outcome.ABORTED_BY_SERVER)
    assert received == b""


async def test_a_module_that_raised_is_failed(tmp_path: Path) -> None:
    client = asking(b"GET /boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    reports, received = await scenario(tmp_path, "/boom", client)
    said_by_all(reports, Outcome.FAILED)
    assert received.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize(
    ("url", "size", "times"), [("/big.bin", LARGE, 60), ("/small.txt", SMALL, 200)]
)
async def test_clients_closing_right_after_the_last_byte_are_completed(
    tmp_path: Path, url: str, size: int, times: int
) -> None:
    """The client reads exactly the response, then closes (half of them with an RST): the
    close races with the server's final write or sendfile and its end of the request."""

    async def client(port: int) -> bytes:
        for i in range(times):
            sock = await open_raw(port)
            sock.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            got = b""
            while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + size:
                got += await receive_some(sock)
            if i % 2:
                reset(sock)
            else:
                sock.close()
        return b""

    reports, _ = await scenario(tmp_path, url, client, requests=times)
    assert len(reports.log) == times
    assert all(line.endswith(" completed default") for line in reports.log), [
        line for line in reports.log if not line.endswith(" completed default")
    ]
    assert all(logged(line) == (200, size) for line in reports.log)
    assert reports.counters == {"completed": times + 1}  # and the status request
    assert reports.status["outcomes"]["completed"] == times
    assert reports.status["cancelled_by_client"] == 0
    assert reports.traces == []
