"""Python calls per request under cProfile: a quick, deterministic guide while optimizing.

    .venv/bin/python benchmarks/calls.py [--target hello|static] [--requests 400]
        [--http h11|fast] [--top 40] [--sort calls|tottime]

Runs ``trioiis serve`` in this process (the same configuration as ``instructions.py``'s
targets: ``examples/site`` with the hello module, or a temporary folder with a 1 KiB file and
the default modules), sends ``--requests`` keep-alive ``GET`` requests one at a time over one
loopback connection from a client thread (after 50 of warm-up), and profiles only the
server's thread while they run. Prints the Python function calls per request and the
functions called most. Call counts do not depend on the machine's load; instructions.py
(callgrind) is the number of record. Bounded: every socket wait has a timeout.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import socket
import sys
import tempfile
import threading
from pathlib import Path

import trio

from trioiis import HttpServer, cli

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only
TIMEOUT = 30.0
WARMUP = 50
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")


def exchange(sock: socket.socket, request: bytes) -> None:
    """Send one request and read its whole (Content-Length framed) 200 answer."""
    sock.sendall(request)
    response = b""
    while True:
        head, sep, body = response.partition(b"\r\n\r\n")
        length = _LENGTH.search(head)
        if sep and length and len(body) >= int(length.group(1)):
            if not response.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"unexpected answer: {response[:200]!r}")
            return
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed")
        response += chunk


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=("hello", "static"), default="hello")
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--http", choices=("h11", "fast"), default="h11")
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", choices=("calls", "tottime"), default="calls")
    parser.add_argument("--dump", help="also save the profile here (for pstats)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        if args.target == "hello":
            serve_args = [
                str(ROOT / "examples" / "site"),
                "--module",
                f"hello={ROOT / 'examples' / 'modules' / 'hello.py'}:register_module",
            ]
            path = "/hello"
        else:
            (Path(tmp) / "kib.bin").write_bytes(bytes(range(256)) * 4)
            serve_args, path = [tmp], "/kib.bin"
        options = cli._parser().parse_args(
            ["serve", *serve_args, "--bind", f"{HOST}:0", "--http", args.http]
        )
        server = HttpServer(cli.build_config(options))
        profile = cProfile.Profile()
        bound: list[tuple[str, int]] = []
        failure: list[BaseException] = []

        def client(token: trio.lowlevel.TrioToken, done: trio.Event) -> None:
            """Runs in a thread; switches the profile on and off in the server's thread."""
            try:
                port = bound[0][1]
                request = (
                    f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                    "User-Agent: calls.py\r\nAccept: */*\r\n\r\n"
                ).encode()
                with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    for _ in range(WARMUP):
                        exchange(sock, request)
                    trio.from_thread.run_sync(profile.enable, trio_token=token)
                    for _ in range(args.requests):
                        exchange(sock, request)
                    trio.from_thread.run_sync(profile.disable, trio_token=token)
            except BaseException as exc:  # reported by the server thread
                failure.append(exc)
            finally:
                trio.from_thread.run_sync(done.set, trio_token=token)

        async def run() -> None:
            async with trio.open_nursery() as nursery:
                bound.extend(await nursery.start(server.serve))
                done = trio.Event()
                token = trio.lowlevel.current_trio_token()
                thread = threading.Thread(target=client, args=(token, done), daemon=True)
                thread.start()
                with trio.fail_after(TIMEOUT + args.requests):
                    await done.wait()
                nursery.cancel_scope.cancel()

        trio.run(run)
    if failure:
        raise failure[0]
    if args.dump:
        profile.dump_stats(args.dump)
    stats = pstats.Stats(profile)
    total = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
    package = str(ROOT / "trioiis")
    own = sum(entry[1] for key, entry in stats.stats.items() if key[0].startswith(package))  # type: ignore[attr-defined]
    print(
        f"{args.target} ({args.http}): {total / args.requests:.1f} Python calls per request,"
        f" {own / args.requests:.1f} of them to trioiis's own functions"
        " (the rest moves a little with how the scheduler's wake-ups fall)"
    )
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][1] if args.sort == "calls" else item[1][2],
        reverse=True,
    )
    for (file, line, name), (_, calls, tottime, _, _) in rows[: args.top]:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
        print(
            f"{calls / args.requests:8.2f}  {tottime * 1e6 / args.requests:7.1f}us  {name}  {where}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
