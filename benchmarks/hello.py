"""Loopback throughput of ``GET /hello``: one command, bounded, installs nothing.

    .venv/bin/python benchmarks/hello.py [--duration 5] [--connections 50] [--client auto]

1. Starts ``trioiis serve examples/site --bind 127.0.0.1:PORT --module
   hello=examples/modules/hello.py:register_module`` in a subprocess, on a free port, and polls
   a TCP connect (a bounded number of tries) until it accepts connections; then checks that
   ``/hello`` answers ``Hello, world!``.
2. Measures requests/s with ``wrk -t1 -c50 -d5s`` when ``wrk`` is on the PATH, else with a
   built-in trio client: 50 keep-alive connections, one request at a time each, for the same
   duration. The built-in client is Python too, so it may be the bottleneck; prefer wrk
   (``apt-get install -y wrk``).
3. Prints the number and the commands used, and always stops the server (SIGTERM, then kill).
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
PATH = "/hello"
EXPECTED_BODY = b"Hello, world!\n"
READY_TRIES = 100  # connect attempts, READY_INTERVAL apart, before giving up
READY_INTERVAL = 0.05
STOP_TIMEOUT = 10.0
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")
_CONNECTION_CLOSE = re.compile(rb"(?im)^connection:\s*close\s*$")


RESULTS = ROOT / "benchmarks" / "RESULTS.md"


def write_results_section(heading: str, section: str) -> None:
    """Put ``section`` (which starts with the ``## heading`` line) into RESULTS.md: in place
    of the section with that heading, or at the end; every other section is kept."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    start_at = text.find("\n" + heading + "\n")
    if start_at < 0:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        after = text.find("\n## ", start_at + 1)
        rest = "" if after < 0 else text[after:]
        text = text[: start_at + 1] + section + rest
    RESULTS.write_text(text)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_command(port: int) -> list[str]:
    trioiis = ROOT / ".venv" / "bin" / "trioiis"
    program = [str(trioiis)] if trioiis.exists() else [sys.executable, "-m", "trioiis.cli"]
    return [
        *program,
        "serve",
        "examples/site",
        "--bind",
        f"{HOST}:{port}",
        "--module",
        "hello=examples/modules/hello.py:register_module",
    ]


def wait_until_accepting(process: subprocess.Popen[bytes], port: int) -> None:
    """Poll a TCP connect until the server accepts, at most READY_TRIES times."""
    for _ in range(READY_TRIES):
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1.0):
                return
        except OSError:
            time.sleep(READY_INTERVAL)
    raise RuntimeError(f"the server did not accept connections after {READY_TRIES} tries")


def check_hello(port: int) -> None:
    """One request, so that we do not benchmark a 404."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    if not response.startswith(b"HTTP/1.1 200 ") or not response.endswith(EXPECTED_BODY):
        raise RuntimeError(f"GET {PATH} did not answer {EXPECTED_BODY!r}: {response[:200]!r}")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (graceful shutdown), then kill if it is still running."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------- wrk


def run_wrk(wrk: str, port: int, args: argparse.Namespace) -> tuple[float, str]:
    duration = max(1, round(args.duration))
    command = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{duration}s",
        "--latency",
        f"http://{HOST}:{port}{PATH}",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=True
    )
    print(result.stdout)
    match = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError("could not read Requests/sec from wrk's output")
    if "Non-2xx or 3xx responses" in result.stdout:
        print("warning: some responses were not 2xx/3xx", file=sys.stderr)
    return float(match.group(1)), shlex.join(command)


# ---------------------------------------------------------------- built-in client


@dataclass
class Tally:
    ok: int = 0
    other_status: int = 0
    reconnects: int = 0
    latencies: list[float] = field(default_factory=list)


async def read_response(stream: trio.SocketStream, buf: bytearray) -> tuple[int, bool]:
    """Read one response with a Content-Length from ``stream``; returns (status, close)."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = await stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("the server closed the connection")
        buf += data
    head = bytes(buf[:end])
    length = _CONTENT_LENGTH.search(head)
    if length is None:
        raise RuntimeError(f"response without Content-Length: {head[:200]!r}")
    total = end + 4 + int(length.group(1))
    while len(buf) < total:
        data = await stream.receive_some(65536)
        if not data:
            raise trio.BrokenResourceError("the server closed the connection")
        buf += data
    del buf[:total]
    return int(head[9:12]), _CONNECTION_CLOSE.search(head) is not None


async def keep_alive_loop(port: int, request: bytes, tally: Tally) -> None:
    """One connection: a request, its response, the next request… until cancelled."""
    while True:
        stream = await trio.open_tcp_stream(HOST, port)
        buf = bytearray()
        try:
            while True:
                started = trio.current_time()
                await stream.send_all(request)
                status, close = await read_response(stream, buf)
                tally.latencies.append(trio.current_time() - started)
                if status == 200:
                    tally.ok += 1
                else:
                    tally.other_status += 1
                if close:
                    break
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)
        tally.reconnects += 1


async def drive(port: int, connections: int, duration: float) -> Tally:
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    tally = Tally()
    with trio.fail_after(duration + 30):  # a hard bound, whatever happens
        async with trio.open_nursery() as nursery:
            for _ in range(connections):
                nursery.start_soon(keep_alive_loop, port, request, tally)
            await trio.sleep(duration)
            nursery.cancel_scope.cancel()
    return tally


def run_builtin(port: int, args: argparse.Namespace) -> tuple[float, str]:
    started = time.perf_counter()
    tally = trio.run(drive, port, args.connections, args.duration)
    elapsed = time.perf_counter() - started
    latencies = sorted(tally.latencies)

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    if latencies:
        print(
            f"responses: {tally.ok} ok, {tally.other_status} other status, "
            f"{tally.reconnects} reconnects; latency p50 {percentile(0.50):.2f} ms, "
            f"p99 {percentile(0.99):.2f} ms"
        )
    if tally.other_status:
        print("warning: some responses were not 200", file=sys.stderr)
    description = (
        f"built-in trio client: {args.connections} keep-alive connections, "
        f"{args.duration:g} s, GET {PATH}"
    )
    return tally.ok / elapsed, description


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="(default 50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument(
        "--client",
        choices=["auto", "wrk", "builtin"],
        default="auto",
        help="load generator: wrk if installed (auto), or the built-in trio client",
    )
    args = parser.parse_args(argv)

    wrk = shutil.which("wrk") if args.client in ("auto", "wrk") else None
    if args.client == "wrk" and wrk is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if wrk is None and args.client == "auto":
        print("wrk not found, using the built-in trio client (apt-get install -y wrk for wrk)")

    port = free_port()
    command = server_command(port)
    with tempfile.TemporaryFile() as server_log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log)
        try:
            wait_until_accepting(process, port)
            check_hello(port)
            if wrk is not None:
                rate, load_command = run_wrk(wrk, port, args)
            else:
                rate, load_command = run_builtin(port, args)
        except Exception:
            stop(process)
            server_log.seek(0)
            sys.stderr.write(server_log.read().decode(errors="replace"))
            raise
        finally:
            with contextlib.suppress(Exception):
                stop(process)

    print(f"server: (cd {ROOT} && {shlex.join(command)})")
    print(f"load:   {load_command}")
    print(f"requests/s: {rate:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
