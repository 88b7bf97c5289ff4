"""Time-to-cancel: N clients send a request to a handler that never finishes, then vanish.

Prints p50/p99/max time-to-cancel (from the server noticing the disconnect to the request's
work having stopped), how many requests were cancelled and logged, and the process's open
file descriptors before and after. Server and clients run in one process and one Trio run
(the numbers are server-side, read from ``HttpServer.counters``).

    .venv/bin/python benchmarks/cancel.py [--clients 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def one_round(clients: int, serial: bool) -> dict[str, Any]:
    started = trio.Event()
    one_started = [trio.Event()]
    logged = trio.Event()
    state = {"started": 0, "logged": 0}

    class Hang(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            state["started"] += 1
            one_started[0].set()
            if state["started"] == clients:
                started.set()
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
            state["logged"] += 1
            if state["logged"] == clients:
                logged.set()

    def register(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.set_request_notifications(
            trioiis.SimpleFactory(Hang), Notification.BEGIN_REQUEST | Notification.LOG_REQUEST
        )

    with tempfile.TemporaryDirectory() as root:
        server = trioiis.HttpServer(
            trioiis.ServerConfig(root=Path(root), bindings=("127.0.0.1:0",))
        )
        server.register_module("hang", register)
        async with trio.open_nursery() as nursery:
            (host, port), *_ = await nursery.start(server.serve)
            fds_before = open_fds()

            async def client() -> None:
                stream = await trio.open_tcp_stream(host, port)
                async with stream:
                    await stream.send_all(b"GET /hang HTTP/1.1\r\nHost: bench\r\n\r\n")
                    await (one_started[0] if serial else started).wait()

            with trio.fail_after(60):
                if serial:  # one client vanishes at a time
                    for _ in range(clients):
                        one_started[0] = trio.Event()
                        await client()
                else:  # all clients vanish at once
                    async with trio.open_nursery() as clients_nursery:
                        for _ in range(clients):
                            clients_nursery.start_soon(client)
                await logged.wait()
                while server.counters.connections_open:  # bounded by fail_after
                    await trio.testing.wait_all_tasks_blocked()
                    await trio.lowlevel.checkpoint()
            fds_after = open_fds()
            samples = sorted(server.counters.time_to_cancel)
            result = {
                "cancelled": server.counters.cancelled_by_client,
                "logged": state["logged"],
                "p50_ms": statistics.median(samples) * 1000,
                "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1000,
                "max_ms": samples[-1] * 1000,
                "fds_before": fds_before,
                "fds_after": fds_after,
            }
            await server.shutdown(grace=1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"command: python benchmarks/cancel.py --clients {args.clients} --rounds {args.rounds}")
    for serial in (False, True):
        for i in range(args.rounds):
            r = trio.run(one_round, args.clients, serial)
            print(
                f"{'serial' if serial else 'burst '} round {i + 1}: "
                f"cancelled {r['cancelled']}/{args.clients}, logged {r['logged']}, "
                f"time-to-cancel p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms, "
                f"max {r['max_ms']:.3f} ms, fds {r['fds_before']} -> {r['fds_after']}"
            )


if __name__ == "__main__":
    main()
