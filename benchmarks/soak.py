"""Soak: many requests, a share of them abandoned at random points; nothing may pile up.

    .venv/bin/python benchmarks/soak.py [--requests 100000] [--abort-share 0.3] [--clients 50]

The server (the sample site, plus a module that answers ``/cancel`` by calling ``cancel_io()``
on its own pending body read) runs in a thread with its own Trio loop; the clients run in the
main thread. Each client sends keep-alive requests for a mix of URLs (static files, a folder,
``/hello``, ``/cancel`` with a body), and abandons ``--abort-share`` of them at a random point
(before the head ends, after the head, in the middle of the body, or after a part of the
response) by closing or resetting its socket. Prints, before and after: open file descriptors,
live Trio tasks of the server, resident memory, and the server's counters. Bounded in count
(``--requests``) and time (``--max-seconds``). Only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

import trio
import trio.testing

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import trioiis  # noqa: E402
from examples.modules import hello  # noqa: E402
from trioiis import HttpContext, HttpModule, Notification, Status  # noqa: E402


class CancelOwnRead(HttpModule):
    """``POST /cancel``: start reading the body, cancel that read with cancel_io(), answer."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        if ctx.request.path != "/cancel":
            return Status.CONTINUE

        async def cancel_soon() -> None:
            await trio.sleep(0.001)
            ctx.cancel_io()

        ctx.start_soon(cancel_soon)
        try:
            while await ctx.request.read_entity_body(4096):
                pass
        except trioiis.OperationAbortedError:
            ctx.response.write(b"read cancelled\n")
        except trioiis.HResultError:
            ctx.response.write(b"read all\n")
        return Status.FINISH_REQUEST


def register_cancel(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(CancelOwnRead), Notification.BEGIN_REQUEST)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def count_tasks() -> int:
    stack = [trio.lowlevel.current_root_task()]
    n = 0
    while stack:
        task = stack.pop()
        n += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return n


class ServerThread:
    def __init__(self) -> None:
        self.ready = threading.Event()
        self.port = 0
        self.token: trio.lowlevel.TrioToken | None = None
        self.server = trioiis.HttpServer(
            trioiis.ServerConfig(
                root=ROOT / "examples" / "site",
                bindings=("127.0.0.1:0",),
                limits=trioiis.Limits(linger_timeout=0.5, body_timeout=5, send_timeout=5),
            )
        )
        self.server.register_module("hello", hello.register_module)
        self.server.register_module("cancel", register_cancel)
        self.thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(self.server.serve)
            self.port = bound[0][1]
            self.ready.set()

    def call(self, fn: Any) -> Any:
        return trio.from_thread.run_sync(fn, trio_token=self.token)

    def settled(self) -> dict[str, Any]:
        async def wait() -> dict[str, Any]:
            with trio.move_on_after(10):
                while self.server.counters.connections_open:  # bounded: 10 s
                    await trio.testing.wait_all_tasks_blocked(0.05)
            await trio.testing.wait_all_tasks_blocked(0.05)
            return {"tasks": count_tasks()}

        return trio.from_thread.run(wait, trio_token=self.token)


REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: soak\r\n\r\n",
    b"GET /notes.txt HTTP/1.1\r\nHost: soak\r\n\r\n",
    b"GET /about/ HTTP/1.1\r\nHost: soak\r\n\r\n",
    b"GET /hello HTTP/1.1\r\nHost: soak\r\n\r\n",
    b"GET /missing HTTP/1.1\r\nHost: soak\r\n\r\n",
    b"POST /cancel HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000,
]


async def client(
    port: int, budget: list[int], share: float, rng: random.Random, tally: dict[str, int]
) -> None:
    stream: trio.SocketStream | None = None
    while budget[0] > 0:
        budget[0] -= 1
        if stream is None:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        request = rng.choice(REQUESTS)
        abort = rng.random() < share
        try:
            if abort:
                cut = rng.randrange(1, len(request) + 1)
                await stream.send_all(request[:cut])
                if rng.random() < 0.5:
                    with trio.move_on_after(0.002):
                        await stream.receive_some(rng.choice([1, 100, 65536]))
                if rng.random() < 0.5:  # RST instead of FIN
                    stream.socket.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                await stream.aclose()
                stream = None
                tally["aborted"] += 1
                continue
            await stream.send_all(request)
            if b"/cancel" in request:
                # The server stops reading this body: it answers, then closes the connection.
                got = b""
                while data := await stream.receive_some(65536):
                    got += data
                await stream.aclose()
                stream = None
            else:
                got = await stream.receive_some(65536)
                # These responses are small: one read has the whole of it.
            tally["ok" if got.startswith(b"HTTP/1.1 ") else "bad"] += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            tally["broken"] += 1
            stream = None
    if stream is not None:
        await stream.aclose()


async def drive(
    port: int, total: int, share: float, clients: int, seed: int, max_seconds: float
) -> dict[str, int]:
    budget = [total]
    tally = {"ok": 0, "bad": 0, "aborted": 0, "broken": 0}
    rng = random.Random(seed)
    with trio.move_on_after(max_seconds):
        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(
                    client, port, budget, share, random.Random(rng.random() + i), tally
                )
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--abort-share", type=float, default=0.3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    server = ServerThread()
    server.thread.start()
    if not server.ready.wait(10):
        print("server did not start", file=sys.stderr)
        return 2
    before = {"fds": open_fds(), "rss_kib": rss_kib(), **server.settled()}
    started = time.monotonic()
    tally = trio.run(
        drive,
        server.port,
        args.requests,
        args.abort_share,
        args.clients,
        args.seed,
        args.max_seconds,
    )
    elapsed = time.monotonic() - started
    tasks = server.settled()
    fds = []
    for _ in range(5):  # sockets the clients closed may take a moment to go
        fds.append(open_fds())
        time.sleep(0.1)
    after = {"fds": min(fds), "rss_kib": rss_kib(), **tasks}
    counters = server.call(lambda: server.server.counters)
    print(
        f"command: python benchmarks/soak.py --requests {args.requests} "
        f"--abort-share {args.abort_share} --clients {args.clients} --seed {args.seed}"
    )
    print(f"requests: {sum(tally.values())} in {elapsed:.1f} s; {tally}")
    print(
        f"server: requests {counters.requests}, "
        f"cancelled by client {counters.cancelled_by_client}, "
        f"cancel_io calls {counters.cancel_io_calls}, I/O cancelled {counters.io_cancelled}, "
        f"in flight {counters.requests_in_flight}, connections open {counters.connections_open}"
    )
    print(f"before: {before}")
    print(f"after:  {after}")
    return 0 if after["fds"] == before["fds"] and after["tasks"] == before["tasks"] else 1


if __name__ == "__main__":
    sys.exit(main())
