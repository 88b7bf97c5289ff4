"""Process CPU time per request of two revisions, alternated: a wall-clock A/B without wrk.

    .venv/bin/python benchmarks/cpu_ab.py BASE NEW [--rounds 5] [--requests 900]

Each revision is checked out in a temporary worktree (``ab.checkout``; ``HEAD`` and branch
names work) and run in a fresh process of its own: a trioiis server (the hello module, the
built-in modules, the watchdog off) and a Trio client in the same process send
``--requests`` sequential ``GET /hello`` on one keep-alive connection after 50 of warm-up,
and the process's CPU time (``time.process_time``) per request is printed. The client costs
the same in both, so the ratio understates the server's change. BASE and NEW alternate round
by round, so a machine whose load drifts slows both alike; read the medians and the pairs.
Loopback only; every run is bounded (``--requests`` of at most 999, a 60 s timeout).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab

CHILD = """
import sys, time, trio, trioiis
from trioiis import HttpModule, Notification, Status

class Hello(HttpModule):
    async def on_begin_request(self, ctx, provider):
        if ctx.request.path != "/hello":
            return Status.CONTINUE
        ctx.response.set_header("Content-Type", "text/plain; charset=utf-8")
        ctx.response.write(b"Hello, world!\\n")
        return Status.FINISH_REQUEST

def register(version, info, server):
    info.set_request_notifications(trioiis.SimpleFactory(Hello), Notification.BEGIN_REQUEST)

async def exchange(stream, request):
    await stream.send_all(request)
    answer = b""
    while not answer.endswith(b"Hello, world!\\n"):
        answer += await stream.receive_some(65536)

async def main(root, requests):
    config = trioiis.ServerConfig(root=root, bindings=["127.0.0.1:0"], watchdog_threshold=0)
    server = trioiis.HttpServer(config)
    server.register_module("hello", register)
    request = b"GET /hello HTTP/1.1\\r\\nHost: localhost\\r\\nUser-Agent: cpu_ab\\r\\n\\r\\n"
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            [(host, port)] = await nursery.start(server.serve)
            stream = await trio.open_tcp_stream(host, port)
            for _ in range(50):
                await exchange(stream, request)
            started = time.process_time()
            for _ in range(requests):
                await exchange(stream, request)
            print((time.process_time() - started) / requests * 1e6)
            await stream.aclose()
            nursery.cancel_scope.cancel()

trio.run(main, sys.argv[1], int(sys.argv[2]))
"""


def cpu_us(tree: Path, requests: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree / "examples" / "site"), str(requests)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=90,
    ).stdout
    return float(out.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=900)
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 999:
        parser.error("--requests must be 1 to 999 (one keep-alive connection serves 1000)")
    base: list[float] = []
    new: list[float] = []
    with contextlib.ExitStack() as stack:
        base_tree = stack.enter_context(ab.checkout(args.base))
        new_tree = stack.enter_context(ab.checkout(args.new))
        for round_ in range(1, args.rounds + 1):
            base.append(cpu_us(base_tree, args.requests))
            new.append(cpu_us(new_tree, args.requests))
            print(f"round {round_}: base {base[-1]:.0f} µs/request  new {new[-1]:.0f} µs/request")
    b, n = statistics.median(base), statistics.median(new)
    print(f"median CPU µs/request: base {b:.0f}  new {n:.0f}  ratio new/base {n / b:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
