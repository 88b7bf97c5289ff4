"""``trioiis bench`` against real servers on 127.0.0.1 port 0.

* A trioiis server with the ``status`` module and a module whose ``/slow`` answer takes
  600 ms, so that every request the bench abandons (after 150 ms) is still running on the
  server: the server must count each one as cancelled by its client and end with nothing in
  flight.
* TLS (a trustme CA): by address and by name, unverified (refused), ``--insecure``.
* Servers that misbehave (reset, stall, reset every second request): the error kinds and
  the exit statuses.
* ``--processes 2``: counts and histograms merged exactly.
* ``--server-pid`` against a server whose CPU use per request the test sets, which
  finishes or stops the work of abandoned requests.
* A small HTTP/2 server written here with h2 (a peer whose every frame the test sees): many
  streams per connection, RST_STREAM aborts, the server's stream limit, ALPN; and trioiis's
  own HTTP/2, whose status module must count every stream the bench reset as cancelled.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import ssl
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import pytest
import trio
import trustme

import trioiis
from tests.helpers import running_server
from trioiis import cli
from trioiis.bench import options_from_args
from trioiis.bench.main import print_report, run
from trioiis.modules import status

SLOW = 0.6


class SlowModule(trioiis.HttpModule):
    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> trioiis.Status:
        if ctx.request.path != "/slow":
            return trioiis.Status.CONTINUE
        while ctx.request.remaining_entity_bytes:
            await ctx.request.read_entity_body(65536)
        await trio.sleep(SLOW)
        ctx.response.write(b"slow\n")
        return trioiis.Status.FINISH_REQUEST


def register_slow(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(SlowModule), trioiis.Notification.BEGIN_REQUEST
    )


def bench_options(port: int, *argv: str, path: str = "/slow"):
    args = cli._parser().parse_args(["bench", f"http://127.0.0.1:{port}{path}", *argv])
    return options_from_args(args)


@pytest.mark.parametrize(
    "mode",
    [
        ["--abort-mode", "fin"],
        ["--abort-mode", "rst"],
        ["--abort-mode", "mid-body", "--body-size", "4096", "--method", "POST"],
    ],
)
async def test_counts_add_up_and_the_server_cancels_every_abort(
    tmp_path: Path, mode: list[str]
) -> None:
    async with running_server(
        ("status", status.register_module),
        ("slow", register_slow),
        root=tmp_path,
        builtin_modules=False,
    ) as running:
        opts = bench_options(
            running.port, "--requests", "40", "--connections", "10", "--abort-share", "0.3",
            "--abort-after", "150", "--seed", "3", "--timeout", "5", "--quiet", *mode,
        )  # fmt: skip
        with trio.fail_after(15):
            report = await run(opts)
    requests = report["requests"]
    assert requests["sent"] == 40
    assert requests["completed"] + requests["aborted"] + requests["errors"] == 40
    assert requests["cut_off"] == requests["backlog"] == requests["errors"] == 0
    assert requests["aborted"] == requests["abort_planned"] > 0
    assert report["statuses"] == {"200": requests["completed"]}
    assert report["latency"]["count"] == requests["completed"]
    assert report["latency"]["p50_ms"] >= SLOW * 1000 * 0.9
    server = report["server"]
    assert server is not None
    assert server["counters"]["cancelled_by_client"] == requests["aborted"]
    assert server["counters"]["requests"] == 40  # the bench's own status requests left out
    assert server["time_to_cancel"]["count"] == requests["aborted"]
    assert server["after"]["requests_in_flight"] == 0
    assert server["after"]["connections_open"] == 0


async def test_without_status_module_and_the_report_prints(tmp_path: Path) -> None:
    from rich.console import Console

    async with running_server(("slow", register_slow), root=tmp_path, builtin_modules=False) as r:
        opts = bench_options(r.port, "--requests", "5", "--connections", "5", "--quiet")
        with trio.fail_after(10):
            report = await run(opts)
    assert report["requests"]["completed"] == 5
    assert report["server"] is None
    console = Console(record=True, width=120)
    print_report(report, console)
    text = console.export_text()
    assert "completed" in text
    assert "no trioiis status endpoint" in text


async def test_status_endpoint(tmp_path: Path) -> None:
    async with (
        running_server(
            ("status", status.register_module), root=tmp_path, builtin_modules=False
        ) as running,
        running.client() as client,
    ):
        answer = await client.get("/_trioiis/status")
        assert answer.status_code == 200
        figures = answer.json()
        assert figures["server"] == "trioiis"
        assert figures["requests_in_flight"] == 0
        assert figures["connections_open"] == 0
        assert figures["open_fds"] > 0
        assert figures["trio_tasks"] > 0
        assert (await client.post("/_trioiis/status")).status_code == 405
        assert (await client.get("/_trioiis/status?last=0")).json()["time_to_cancel"]["count"] == 0


def test_status_percentiles() -> None:
    assert status.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert status.percentile([], 0.99) == 0.0


class TinyModule(trioiis.HttpModule):
    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> trioiis.Status:
        if ctx.request.path == "/tiny-slow":
            await trio.sleep(0.05)
        ctx.response.write(b"tiny\n")
        return trioiis.Status.FINISH_REQUEST


def register_tiny(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(TinyModule), trioiis.Notification.BEGIN_REQUEST
    )


async def test_aborts_happen_at_the_requested_share(tmp_path: Path) -> None:
    """400 requests, a 30 % abort share: between 25 % and 35 % are abandoned, and every
    abandoned one was planned (the answer takes 50 ms, the abort comes after 1 ms)."""
    async with running_server(("tiny", register_tiny), root=tmp_path, builtin_modules=False) as r:
        args = cli._parser().parse_args(
            ["bench", f"http://127.0.0.1:{r.port}/tiny-slow",
             "--requests", "400", "--connections", "40", "--abort-share", "0.3",
             "--abort-after", "1", "--seed", "11", "--timeout", "5", "--quiet"]
        )  # fmt: skip
        with trio.fail_after(30):  # about 1 s; a bound for a hang, not a speed
            report = await run(options_from_args(args))
    requests = report["requests"]
    assert requests["sent"] == 400
    assert requests["completed"] + requests["aborted"] + requests["errors"] == 400
    assert requests["errors"] == 0
    assert requests["abort_late"] == 0
    assert requests["aborted"] == requests["abort_planned"]
    assert 0.25 <= requests["aborted"] / requests["sent"] <= 0.35
    assert report["statuses"] == {"200": requests["completed"]}


# ---------------------------------------------------------------------- any server, any exit


def run_cli_in_thread(argv: list[str]) -> Any:
    """``trioiis bench`` as a user runs it (its own ``trio.run``), from a worker thread."""
    return trio.to_thread.run_sync(cli.main, ["bench", *argv])


@contextlib.asynccontextmanager
async def raw_server(handler: Callable[[trio.SocketStream], Awaitable[None]]) -> AsyncIterator[int]:
    """A bare Trio TCP server on 127.0.0.1 port 0 (a server that misbehaves)."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, host="127.0.0.1"), handler, 0
        )
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def resets(stream: trio.SocketStream) -> None:
    """Reads a request, then resets the connection (RST)."""
    await stream.receive_some(65536)
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(stream)


async def stalls(stream: trio.SocketStream) -> None:
    """Reads requests and never answers."""
    async with stream:
        while await stream.receive_some(65536):
            pass


async def answers_then_resets(stream: trio.SocketStream) -> None:
    """Answers a connection's first request, resets on its second."""
    await stream.receive_some(65536)
    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await resets(stream)


async def test_a_server_that_resets_fails_every_request_and_exits_1(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with raw_server(resets) as port:
        status = await run_cli_in_thread(
            [f"http://127.0.0.1:{port}/", "-n", "20", "-c", "2", "-q", "--json", "-",
             "--status-path", "none"]
        )  # fmt: skip
    out, err = capfd.readouterr()
    report = json.loads(out)
    assert status == 1
    assert err == "trioiis bench: every request failed (20 errors)\n"
    assert report["requests"]["errors"] == report["requests"]["sent"] == 20
    assert set(report["errors"]) <= {"reset", "closed"}
    assert report["throughput"]["connections_opened"] == 20


async def test_a_server_that_stalls_times_out_every_request(
    capfd: pytest.CaptureFixture[str],
) -> None:
    async with raw_server(stalls) as port:
        with trio.fail_after(20):
            status = await run_cli_in_thread(
                [f"http://127.0.0.1:{port}/", "-n", "6", "-c", "3", "--timeout", "0.3", "-q",
                 "--json", "-", "--status-path", "none"]
            )  # fmt: skip
    report = json.loads(capfd.readouterr().out)
    assert status == 1
    assert report["errors"] == {"timeout": 6}
    assert report["requests"]["completed"] == report["requests"]["cut_off"] == 0


@pytest.mark.parametrize(("max_share", "expected"), [("0.3", 1), ("0.6", 0)])
async def test_max_error_share(
    max_share: str, expected: int, capfd: pytest.CaptureFixture[str]
) -> None:
    """One connection: every second request is reset, so half of them fail."""
    async with raw_server(answers_then_resets) as port:
        status = await run_cli_in_thread(
            [f"http://127.0.0.1:{port}/", "-n", "10", "-c", "1", "-q", "--json", "-",
             "--status-path", "none", "--max-error-share", max_share]
        )  # fmt: skip
    out, err = capfd.readouterr()
    report = json.loads(out)
    assert (report["requests"]["completed"], report["requests"]["errors"]) == (5, 5)
    assert status == expected
    assert ("more than --max-error-share" in err) == (expected == 1)


async def test_tls_with_a_ca_bundle_by_address_and_name(
    tmp_path: Path, tls_files: dict[str, Path], ca: trustme.CA, capfd: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    async with running_server(
        ("status", status.register_module), ("tiny", register_tiny),
        root=tmp_path, builtin_modules=False, **tls_files,
    ) as running:  # fmt: skip
        for host in ("127.0.0.1", "localhost"):
            args = cli._parser().parse_args(
                ["bench", f"https://{host}:{running.port}/", "-n", "30", "-c", "3",
                 "--ca-bundle", str(bundle), "-q"]
            )  # fmt: skip
            with trio.fail_after(15):
                report = await run(options_from_args(args))
            assert report["options"]["tls"] is True
            assert report["statuses"] == {"200": 30}
            assert report["throughput"]["connections_opened"] == 3
            assert report["server"] is not None  # the status endpoint, over TLS too
            assert report["server"]["counters"]["requests"] == 30
        unverified = await run_cli_in_thread(
            [f"https://127.0.0.1:{running.port}/", "-n", "3", "-c", "1", "-q", "--json", "-"]
        )
        refused = json.loads(capfd.readouterr().out)
        insecure = await run_cli_in_thread(
            [f"https://127.0.0.1:{running.port}/", "-n", "3", "-c", "1", "-q", "--insecure"]
        )
    assert unverified == 1
    assert refused["errors"] == {"tls": 3}
    assert insecure == 0


async def test_processes_merge_counts_and_histograms_exactly(tmp_path: Path) -> None:
    async with running_server(
        ("status", status.register_module), ("tiny", register_tiny),
        root=tmp_path, builtin_modules=False,
    ) as running:  # fmt: skip
        args = cli._parser().parse_args(
            ["bench", f"http://127.0.0.1:{running.port}/", "-n", "301", "-c", "5", "-p", "2",
             "-q"]
        )  # fmt: skip
        with trio.fail_after(60):
            report = await run(options_from_args(args))
    requests = report["requests"]
    assert report["options"]["processes"] == 2
    assert requests["sent"] == requests["completed"] == 301
    assert requests["errors"] == requests["cut_off"] == 0
    assert report["latency"]["count"] == report["service_time"]["count"] == 301
    assert report["statuses"] == {"200": 301}
    assert report["throughput"]["connections_opened"] == 5
    # Both processes' requests reached the server, and only those (the bench's own status
    # requests are not the run's).
    assert report["server"]["counters"]["requests"] == 301


# ---------------------------------------------------------------------- HTTP/2


class H2TestServer:
    """A small HTTP/2 server (h2 on Trio) whose frames the test counts: ``/slow`` answers
    after ``SLOW`` seconds, anything else at once. It counts the
    requests, the answers and the streams the client reset, and the most streams it saw
    open at once on one connection."""

    def __init__(
        self, *, tls: ssl.SSLContext | None = None, max_streams: int | None = None
    ) -> None:
        self.tls = tls
        self.max_streams = max_streams
        self.requests = self.answered = self.resets = self.most_open = 0
        #: Set when a connection has been read to its end (every frame of it counted).
        self.connection_ended = trio.Event()

    async def serve(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self.handle, listeners)

    async def handle(self, tcp: trio.SocketStream) -> None:
        stream: trio.abc.Stream = tcp
        if self.tls is not None:
            stream = trio.SSLStream(tcp, self.tls, server_side=True)
            try:
                await stream.do_handshake()
            except trio.BrokenResourceError:
                return
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding=None)
        )
        if self.max_streams is not None:  # in the server's first SETTINGS frame
            conn.local_settings = h2.settings.Settings(
                client=False,
                initial_values={h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.max_streams},
            )
        conn.initiate_connection()
        lock = trio.Lock()

        async def flush() -> None:
            async with lock:
                if data := conn.data_to_send():
                    await stream.send_all(data)

        scopes: dict[int, trio.CancelScope] = {}

        async def respond(stream_id: int, path: bytes, scope: trio.CancelScope) -> None:
            with scope:
                if path == b"/slow":
                    await trio.sleep(SLOW)
                conn.send_headers(stream_id, [(b":status", b"200"), (b"content-length", b"3")])
                conn.send_data(stream_id, b"h2\n", end_stream=True)
                self.answered += 1
                await flush()

        try:
            async with trio.open_nursery() as nursery:
                await flush()
                while data := await stream.receive_some(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            self.requests += 1
                            self.most_open = max(self.most_open, conn.open_inbound_streams)
                            path = dict(event.headers)[b":path"]
                            scopes[event.stream_id] = scope = trio.CancelScope()
                            nursery.start_soon(respond, event.stream_id, path, scope)
                        elif isinstance(event, h2.events.StreamReset):
                            self.resets += 1
                            scopes.pop(event.stream_id, trio.CancelScope()).cancel()
                        elif isinstance(event, h2.events.DataReceived):
                            conn.acknowledge_received_data(
                                event.flow_controlled_length, event.stream_id
                            )
                    await flush()
                nursery.cancel_scope.cancel()
        except* (trio.BrokenResourceError, h2.exceptions.ProtocolError):
            pass  # the bench left without a goodbye (it does)
        finally:
            self.connection_ended.set()


@contextlib.asynccontextmanager
async def h2_server(**kwargs: Any) -> AsyncIterator[tuple[H2TestServer, int]]:
    server = H2TestServer(**kwargs)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.serve)
        yield server, port
        nursery.cancel_scope.cancel()


async def test_h2_prior_knowledge_many_streams_per_connection() -> None:
    async with h2_server() as (server, port):
        opts = bench_options(port, "--h2", "-n", "300", "-c", "2", "--streams", "8", "-q",
                             "--status-path", "none", path="/")  # fmt: skip
        with trio.fail_after(20):
            report = await run(opts)
    assert report["options"]["protocol"] == "h2"
    assert report["statuses"] == {"200": 300}
    assert report["requests"]["errors"] == 0
    assert report["throughput"]["connections_opened"] == 2
    assert server.requests == server.answered == 300
    assert server.most_open > 1  # streams really ran side by side on a connection


async def test_h2_rst_stream_aborts_reach_the_server() -> None:
    async with h2_server() as (server, port):
        opts = bench_options(port, "--h2", "-n", "60", "-c", "1", "--streams", "10",
                             "--abort-share", "0.3", "--abort-after", "50", "--seed", "5",
                             "-q", "--status-path", "none")  # fmt: skip
        with trio.fail_after(20):
            report = await run(opts)
        with trio.fail_after(5):
            await server.connection_ended.wait()  # the last RST_STREAM frames were in flight
    requests = report["requests"]
    assert report["options"]["abort_mode"] == "rst-stream"
    assert requests["aborted"] == requests["abort_planned"] > 0
    assert requests["completed"] + requests["aborted"] == 60
    assert requests["errors"] == 0
    assert report["throughput"]["connections_opened"] == 1  # resets leave the connection
    assert server.resets == requests["aborted"]
    assert server.answered == requests["completed"]


async def test_h2_rst_stream_aborts_are_cancelled_by_trioiis(tmp_path: Path) -> None:
    """Cancellation load-benchmarked the way browsers cancel, against trioiis over h2c: every
    stream the bench resets is a request trioiis counts as cancelled by its client."""
    async with running_server(
        ("status", status.register_module),
        ("slow", register_slow),
        root=tmp_path,
        builtin_modules=False,
    ) as running:
        opts = bench_options(
            running.port, "--h2", "-n", "40", "-c", "2", "--streams", "10",
            "--abort-share", "0.3", "--abort-after", "150", "--seed", "3", "--timeout", "5",
            "-q",
        )  # fmt: skip
        with trio.fail_after(20):
            report = await run(opts)
    requests = report["requests"]
    assert report["options"]["abort_mode"] == "rst-stream"
    assert requests["aborted"] == requests["abort_planned"] > 0
    assert requests["completed"] + requests["aborted"] == 40
    assert report["statuses"] == {"200": requests["completed"]}
    server = report["server"]
    assert server is not None
    assert server["counters"]["cancelled_by_client"] == requests["aborted"]
    assert server["time_to_cancel"]["count"] == requests["aborted"]
    assert server["after"]["requests_in_flight"] == 0


async def test_h2_keeps_to_the_servers_stream_limit() -> None:
    async with h2_server(max_streams=2) as (server, port):
        opts = bench_options(port, "--h2", "-n", "40", "-c", "1", "--streams", "10", "-q",
                             "--status-path", "none", path="/")  # fmt: skip
        with trio.fail_after(20):
            report = await run(opts)
    assert report["errors"] == {}
    assert report["statuses"] == {"200": 40}
    assert server.most_open <= 2


async def test_h2_over_tls_by_alpn(tmp_path: Path, ca: trustme.CA, tls_files: dict) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))

    def context(alpn: str) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(tls_files["tls_cert"], tls_files["tls_key"])
        ctx.set_alpn_protocols([alpn])
        return ctx

    for alpn, expected in (("h2", {"200": 20}), ("http/1.1", {})):
        async with h2_server(tls=context(alpn)) as (_, port):
            args = cli._parser().parse_args(
                ["bench", f"https://localhost:{port}/", "--h2", "-n", "20", "-c", "2",
                 "--ca-bundle", str(bundle), "-q", "--status-path", "none"]
            )  # fmt: skip
            with trio.fail_after(20):
                report = await run(options_from_args(args))
        assert report["statuses"] == expected
        if alpn != "h2":  # a server that does not pick h2 by ALPN is refused
            assert report["errors"] == {"alpn": 20}


# ---------------------------------------------------------------------- wasted work (/proc)

#: A threaded HTTP/1.1 server whose CPU use the test sets: each request burns BURN_MS of
#: CPU time. With "finishes" it burns them whether or not the client is still there; with
#: "stops" it looks for the client's disconnect every 50 µs of burning and stops there.
CPU_SERVER = r"""
import select, socket, sys, threading, time

BURN_MS, STOPS = float(sys.argv[1]), sys.argv[2] == "stops"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

def client_gone(conn):
    if not select.select([conn], [], [], 0)[0]:
        return False
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True

def burn(conn):
    end = time.thread_time() + BURN_MS / 1000
    while time.thread_time() < end:
        sum(range(500))
        if STOPS and client_gone(conn):
            return False
    return True

def handle(conn):
    pending = b""
    with conn:
        try:
            while data := conn.recv(65536):
                pending += data
                while b"\r\n\r\n" in pending:
                    _, pending = pending.split(b"\r\n\r\n", 1)
                    if not burn(conn):
                        return
                    conn.sendall(ANSWER)
        except OSError:
            return

listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    conn, _ = listener.accept()
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""
BURN_MS = 20


@contextlib.asynccontextmanager
async def cpu_server(mode: str) -> AsyncIterator[tuple[int, int]]:
    """The CPU_SERVER in a subprocess: (its pid, its port)."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", CPU_SERVER, str(BURN_MS), mode], stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(10):
            while not line.endswith(b"\n"):
                line += await process.stdout.receive_some(100)
        yield process.pid, int(line)
    finally:
        process.kill()
        await process.wait()


@pytest.mark.parametrize("mode", ["finishes", "stops"])
async def test_server_pid_measures_cpu_per_completed_and_abandoned_request(mode: str) -> None:
    """Half of the requests are abandoned 5 ms in (RST). A server that finishes them burns
    as much CPU for an abandoned request as for a completed one; one that stops burns a
    fraction (at most the 5 ms it worked before the client left)."""
    async with cpu_server(mode) as (pid, port):
        opts = bench_options(
            port, "-n", "80", "-c", "2", "--abort-share", "0.5", "--abort-after", "5",
            "--abort-mode", "rst", "--baseline-share", "0.5", "--seed", "2",
            "--server-pid", str(pid), "--status-path", "none", "-q",
        )  # fmt: skip
        with trio.fail_after(60):
            report = await run(opts)
    figures = report["wasted_work"]
    assert figures["pid"] == pid
    assert figures["baseline"]["completed"] == 40
    assert figures["baseline"]["aborted"] == 0
    assert figures["measured"]["aborted"] == report["requests"]["aborted"] > 5
    assert figures["baseline"]["settled"]
    assert figures["measured"]["settled"]
    per_completed = figures["cpu_ms_per_completed"]
    per_abandoned = figures["cpu_ms_per_abandoned"]
    # /proc counts CPU time in 10 ms ticks: 40 requests of 20 ms are 80 ticks, +/- 1.
    assert BURN_MS * 0.8 <= per_completed <= BURN_MS * 1.5
    if mode == "finishes":
        assert per_abandoned >= per_completed * 0.6
    else:
        assert per_abandoned <= per_completed * 0.5
    assert figures["fds"]["peak"] >= figures["fds"]["before"] + 1  # the bench's connections
    assert figures["fds"]["after"] == figures["fds"]["before"]
    assert figures["rss_bytes"]["before"] > 0
    assert figures["rss_bytes"]["peak"] >= figures["rss_bytes"]["before"]
    assert figures["processes"] == {"before": 1, "after": 1}


async def canned(stream: trio.SocketStream) -> None:
    """Answers every request head with a canned 200 (keep-alive)."""
    async with stream:
        while data := await stream.receive_some(65536):
            for _ in range(data.count(b"\r\n\r\n")):
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def test_ipv6_literal_target() -> None:
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, host="::1")
        listeners = await nursery.start(serve, canned, 0)
        port = listeners[0].socket.getsockname()[1]
        args = cli._parser().parse_args(
            ["bench", f"http://[::1]:{port}/", "-n", "50", "-c", "5", "-q",
             "--status-path", "none"]
        )  # fmt: skip
        with trio.fail_after(15):
            report = await run(options_from_args(args))
        nursery.cancel_scope.cancel()
    assert report["options"]["address"] == "::1"
    assert report["statuses"] == {"200": 50}


class EarlyModule(trioiis.HttpModule):
    """Answers at once, without reading the request body (as a 413 or a 405 would)."""

    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> trioiis.Status:
        ctx.response.write(b"early\n")
        return trioiis.Status.FINISH_REQUEST


def register_early(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(EarlyModule), trioiis.Notification.BEGIN_REQUEST
    )


async def test_mid_body_abort_of_a_request_already_answered_is_completed(
    tmp_path: Path,
) -> None:
    """The server answered before the body was half sent: the client got a complete
    response, and the server logged it completed. The bench must not count it abandoned."""
    async with running_server(
        ("status", status.register_module),
        ("early", register_early),
        root=tmp_path,
        builtin_modules=False,
    ) as running:
        opts = bench_options(
            running.port, "--requests", "10", "--connections", "2", "--abort-share", "1",
            "--abort-after", "5000", "--abort-mode", "mid-body", "--method", "POST",
            "--body-size", "4096", "--timeout", "10", "--quiet", path="/early",
        )  # fmt: skip
        with trio.fail_after(15):
            report = await run(opts)
    requests = report["requests"]
    assert requests["sent"] == requests["completed"] == requests["abort_late"] == 10
    assert requests["aborted"] == 0
    assert report["statuses"] == {"200": 10}
    assert report["server"]["counters"]["cancelled_by_client"] == 0
