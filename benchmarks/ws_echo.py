"""WebSocket echo under trioiis, Hypercorn (trio worker) and Uvicorn, side by side.

    .venv/bin/python benchmarks/ws_echo.py [--duration 3] [--rounds 3] [--connections 10]
        [--size 64] [--idle 300] [--rst 200] [--only trioiis,hypercorn-trio,...]
        [--rev REV ...] [--no-write]

The same ASGI app (``benchmarks/ws_echo_app.py``: echo every message) is served by:

* ``trioiis``: ``trioiis serve examples/site --asgi '/*=benchmarks/ws_echo_app.py:app'``
  (the full pipeline, default modules loaded);
* ``hypercorn-trio``: Hypercorn ``--worker-class trio --workers 0`` (wsproto);
* ``uvicorn-websockets`` and ``uvicorn-wsproto``: Uvicorn ``--loop asyncio --http h11``
  with ``--ws websockets`` / ``--ws wsproto``;
* ``trioiis@REV`` for each ``--rev REV`` (repeatable): trioiis as of a git revision (a
  temporary worktree, ``benchmarks/ab.py``), for a before/after of a change in one run.

1. **Echo.** Each server is a subprocess on 127.0.0.1 and a free port. The client is this
   process (Trio + wsproto, no compression offered): ``--connections`` sockets, each doing
   round trips (send one ``--size``-byte text message, wait for its echo) for
   ``--duration`` seconds. Interleaved rounds (A B C D, A B C D, ...); the table shows the
   medians of messages/s, round-trip p50/p99 and the server's CPU µs per message, and
   messages/s as a ratio to trioiis's. The client is the same for every server.
2. **Idle memory.** Each server freshly started, warmed up, then ``--idle`` sockets opened
   (the handshake, then nothing) and RSS measured before and after: KiB per idle
   WebSocket; and the same with ``--idle`` idle HTTP/1.1 keep-alive connections (one
   ``GET /`` each), in another fresh process.
3. **RST to cancel** (trioiis only, in this process): a native module waits in
   ``read_fragment``; the client resets its socket (SO_LINGER 0); the time from the reset
   to the module's ``trio.Cancelled``, over ``--rst`` sockets (p50/p99).

The table and this command are written as the section "WebSockets: echo under each server"
of RESULTS.md (``--no-write`` to skip). Every server is stopped in a
``finally``; every wait and loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import shlex
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab  # --rev: a temporary worktree
import compare  # /proc helpers
import hello

SECTION = "## WebSockets: echo under each server"
HOST = hello.HOST
ROOT = hello.ROOT


def _trioiis(port: int) -> list[str]:
    command = hello.server_command(port)
    at = command.index("--module")
    return [*command[:at], "--asgi", "/*=benchmarks/ws_echo_app.py:app"]


def _uvicorn(ws: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "--app-dir", "benchmarks", "--host", HOST,
            "--port", str(port), "--http", "h11", "--ws", ws, "--loop", "asyncio",
            "--no-access-log", "--log-level", "warning", "ws_echo_app:app",
        ]  # fmt: skip

    return argv


@dataclass(frozen=True)
class Server:
    key: str
    argv: Callable[[int], list[str]]
    needs: tuple[str, ...] = ()
    tree: Path | None = None  # run from this tree (``--rev``), else ROOT


def _trioiis_at(tree: Path, key: str) -> Server:
    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "trioiis.cli", "serve", str(tree / "examples" / "site"),
            "--bind", f"{HOST}:{port}", "--asgi", "/*=benchmarks/ws_echo_app.py:app",
        ]  # fmt: skip

    return Server(key, argv, ("trioiis",), tree)


SERVERS = (
    Server("trioiis", _trioiis, ("trioiis",)),
    Server(
        "hypercorn-trio",
        lambda port: [
            sys.executable,
            "-m",
            "hypercorn",
            "--worker-class",
            "trio",
            "--workers",
            "0",
            "--bind",
            f"{HOST}:{port}",
            "--log-level",
            "warning",
            "benchmarks/ws_echo_app.py:app",
        ],
        ("hypercorn",),
    ),
    Server("uvicorn-websockets", _uvicorn("websockets"), ("uvicorn", "websockets")),
    Server("uvicorn-wsproto", _uvicorn("wsproto"), ("uvicorn", "wsproto")),
)


@contextlib.contextmanager
def started(server: Server) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = hello.free_port()
    with tempfile.TemporaryFile() as log:
        env = None if server.tree is None else {**os.environ, "PYTHONPATH": str(server.tree)}
        process = subprocess.Popen(
            server.argv(port),
            cwd=server.tree or ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        try:
            hello.wait_until_accepting(process, port)
            trio.run(_check, port)
            yield process, port
        except BaseException:
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace")[-2000:])
            raise
        finally:
            hello.stop(process)


# ---------------------------------------------------------------- the client


class Client:
    """One WebSocket client connection (wsproto over a Trio socket)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.ws = WSConnection(ConnectionType.CLIENT)

    @classmethod
    async def open(cls, port: int) -> Client:
        stream = await trio.open_tcp_stream(HOST, port)
        client = cls(stream)
        await stream.send_all(client.ws.send(Request(host=f"{HOST}:{port}", target="/ws")))
        while True:
            for event in await client._events():
                if isinstance(event, AcceptConnection):
                    return client
                raise RuntimeError(f"handshake refused: {event!r}")

    async def _events(self) -> list[object]:
        data = await self.stream.receive_some(65536)
        if not data:
            raise RuntimeError("the server closed the connection")
        self.ws.receive_data(data)
        return list(self.ws.events())

    async def echo(self, text: str) -> None:
        await self.stream.send_all(self.ws.send(TextMessage(data=text)))
        parts: list[str] = []
        while True:
            for event in await self._events():
                if isinstance(event, TextMessage):
                    parts.append(event.data)
                    if event.message_finished:
                        if "".join(parts) != text:
                            raise RuntimeError("echo mismatch")
                        return

    async def close(self) -> None:
        with trio.move_on_after(1):
            await self.stream.send_all(self.ws.send(CloseConnection(code=1000)))
            while not any(isinstance(e, CloseConnection) for e in await self._events()):
                pass
        await trio.aclose_forcefully(self.stream)


async def _check(port: int) -> None:
    with trio.fail_after(10):
        client = await Client.open(port)
        await client.echo("ready?")
        await client.close()


@dataclass
class Run:
    messages: int = 0
    latencies: list[float] = field(default_factory=list)
    mps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    cpu_us: float = 0.0


async def _echo_load(port: int, connections: int, duration: float, size: int) -> Run:
    run = Run()
    text = "x" * size
    with trio.fail_after(duration + 20):
        clients = [await Client.open(port) for _ in range(connections)]
        deadline = trio.current_time() + duration

        async def loop(client: Client) -> None:
            while trio.current_time() < deadline:
                start = time.perf_counter()
                await client.echo(text)
                run.latencies.append(time.perf_counter() - start)
                run.messages += 1

        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(loop, client)
        for client in clients:
            await client.close()
    run.mps = run.messages / duration
    ordered = sorted(run.latencies)
    run.p50_ms = ordered[len(ordered) // 2] * 1000
    run.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return run


def measure_echo(process: subprocess.Popen[bytes], port: int, args: argparse.Namespace) -> Run:
    cpu = compare.cpu_seconds(process.pid)
    run = trio.run(_echo_load, port, args.connections, args.duration, args.size)
    run.cpu_us = (compare.cpu_seconds(process.pid) - cpu) / max(1, run.messages) * 1e6
    return run


# ---------------------------------------------------------------- idle memory


async def _idle(pid: int, port: int, count: int, kind: str) -> float:
    """KiB of RSS per idle WebSocket (``kind == "ws"``) or idle keep-alive connection."""
    held: list[trio.SocketStream] = []
    with trio.fail_after(60):
        for _ in range(5):  # warm-up: every path has run once
            await _check(port)
            stream = await trio.open_tcp_stream(HOST, port)
            await stream.send_all(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            await hello.read_response(stream, bytearray())
            await trio.aclose_forcefully(stream)
        await trio.sleep(0.5)
        before = compare.rss_kib(pid)
        try:
            for _ in range(count):
                if kind == "ws":
                    held.append((await Client.open(port)).stream)
                else:
                    stream = await trio.open_tcp_stream(HOST, port)
                    await stream.send_all(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
                    await hello.read_response(stream, bytearray())
                    held.append(stream)
            await trio.sleep(1.0)  # let the server settle (bounded; this is a benchmark)
            after = compare.rss_kib(pid)
        finally:
            for stream in held:
                await trio.aclose_forcefully(stream)
    return (after - before) / count


def measure_idle(server: Server, count: int) -> tuple[float, float]:
    result = []
    for kind in ("ws", "http"):
        with started(server) as (process, port):
            result.append(trio.run(_idle, process.pid, port, count, kind))
    return result[0], result[1]


# ---------------------------------------------------------------- RST to cancel


async def _rst_to_cancel(count: int) -> list[float]:
    import trioiis
    from trioiis import HandlerMapping, Notification, SimpleFactory, Status

    times: list[float] = []
    reset_at: list[float] = []
    accepted = trio.Event()
    cancelled = trio.Event()

    class Waiter(trioiis.HttpModule):
        async def on_execute_request_handler(
            self, ctx: trioiis.HttpContext, provider: object
        ) -> Status:
            ctx.set_request_handled()
            async with trioiis.accept_websocket(ctx) as ws:
                accepted.set()
                try:
                    await ws.read_fragment()
                finally:
                    times.append(time.perf_counter() - reset_at[-1])
                    cancelled.set()
            return Status.CONTINUE

    def register(version: int, info: trioiis.ModuleRegistrationInfo, server: object) -> None:
        info.set_request_notifications(SimpleFactory(Waiter), Notification.EXECUTE_REQUEST_HANDLER)

    server = trioiis.HttpServer(
        trioiis.ServerConfig(bindings=[f"{HOST}:0"], handlers=(HandlerMapping("/ws", ("waiter",)),))
    )
    server.register_module("waiter", register)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            [(_, port)] = await nursery.start(server.serve)
            for _ in range(count):
                accepted, cancelled = trio.Event(), trio.Event()
                client = await Client.open(port)
                await accepted.wait()
                client.stream.socket.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                reset_at.append(time.perf_counter())
                client.stream.socket.close()
                await cancelled.wait()
            await server.shutdown(grace=1)
    return times


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--rst", type=int, default=200)
    parser.add_argument("--only", default="")
    parser.add_argument("--rev", action="append", default=[], help="also trioiis at REV")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    servers, notes = [], []
    for server in SERVERS:
        if wanted is not None and server.key not in wanted:
            continue
        missing = [n for n in server.needs if importlib.util.find_spec(n) is None]
        if missing:
            notes.append(f"{server.key} skipped: {', '.join(missing)} not installed")
            continue
        servers.append(server)

    with contextlib.ExitStack() as stack:
        for rev in args.rev:
            servers.append(_trioiis_at(stack.enter_context(ab.checkout(rev)), f"trioiis@{rev}"))
        runs: dict[str, list[Run]] = {s.key: [] for s in servers}
        with contextlib.ExitStack() as running:
            live = {s.key: running.enter_context(started(s)) for s in servers}
            for s in servers:  # warm-up
                process, port = live[s.key]
                trio.run(_echo_load, port, args.connections, 0.5, args.size)
            for _ in range(args.rounds):
                for s in servers:
                    process, port = live[s.key]
                    runs[s.key].append(measure_echo(process, port, args))
        idle = {s.key: measure_idle(s, args.idle) for s in servers}
    rst = sorted(trio.run(_rst_to_cancel, args.rst)) if args.rst else []

    base = statistics.median(r.mps for r in runs["trioiis"]) if "trioiis" in runs else 0.0
    head = ["server", "msgs/s", "vs trioiis", "p50 ms", "p99 ms", "CPU µs/msg",
            "KiB/idle WS", "KiB/idle HTTP", "WS / HTTP"]  # fmt: skip
    body = []
    for s in servers:
        rs = runs[s.key]
        mps = statistics.median(r.mps for r in rs)
        ws_kib, http_kib = idle[s.key]
        body.append(
            [
                s.key,
                f"{mps:,.0f}",
                f"{mps / base:.2f}" if base else "-",
                f"{statistics.median(r.p50_ms for r in rs):.2f}",
                f"{statistics.median(r.p99_ms for r in rs):.2f}",
                f"{statistics.median(r.cpu_us for r in rs):.0f}",
                f"{ws_kib:.1f}",
                f"{http_kib:.1f}",
                f"{ws_kib / http_kib:.2f}" if http_kib > 0 else "-",
            ]
        )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    if rst:
        p50 = rst[len(rst) // 2] * 1000
        p99 = rst[min(len(rst) - 1, int(len(rst) * 0.99))] * 1000
        lines.append("")
        lines.append(
            f"RST to the module's cancel (trioiis, in process, {len(rst)} sockets): "
            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {rst[-1] * 1000:.2f} ms."
        )
    lines += [f"- {n}" for n in notes]
    print("\n".join(lines))
    if not args.no_write:
        words = [".venv/bin/python", "benchmarks/ws_echo.py", *(argv or sys.argv[1:])]
        versions = ", ".join(
            f"{name} {importlib.metadata.version(name)}"
            for name in ("trio", "wsproto", "hypercorn", "uvicorn", "websockets")
            if importlib.util.find_spec(name) is not None
        )
        section = "\n".join(
            [
                SECTION,
                "",
                f"Command: `{shlex.join(words)}` ({time.strftime('%Y-%m-%d')}; {versions}).",
                f"{args.connections} sockets each doing {args.size}-byte text round trips for "
                f"{args.duration:g} s, {args.rounds} interleaved rounds (medians); idle "
                f"memory over {args.idle} sockets/connections, each server fresh. The "
                "client (Trio + wsproto, this process) is the same for every server.",
                "",
                *lines,
                "",
            ]
        )
        hello.write_results_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
