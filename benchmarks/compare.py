"""Peers side by side: trioiis against the floors, Hypercorn and Uvicorn.

    .venv/bin/python benchmarks/compare.py [--duration 5] [--rounds 3] [--idle 2000]
        [--warmup 1] [--connections 50] [--only trioiis,raw-trio,...] [--budget 360] [--no-write]

One command, bounded in time, installs nothing (``make bench`` installs the ``bench`` extra,
then runs this). It checks what is importable and on the PATH and skips a peer it cannot run,
with a note saying what is missing. Then:

1. Starts every server as a subprocess of this interpreter on 127.0.0.1 and a free port, one
   after the other, polls a TCP connect (a bounded number of tries) until each accepts, and
   checks that ``GET /hello`` answers ``Hello, world!``:

   * ``trioiis``: ``trioiis serve examples/site --module hello=...`` (the full pipeline, the
     built-in modules loaded);
   * ``trioiis-fast``: the same with ``--http fast`` (llhttp parses the request heads);
   * ``raw-trio``: ``benchmarks/raw_trio.py`` (no HTTP parsing, a canned response);
   * ``trio+h11``: ``benchmarks/h11_trio.py`` (the least an h11-based Trio server does);
   * ``trio+httptools``: ``benchmarks/httptools_trio.py`` (the same with llhttp: the floor
     for ``--http fast``);
   * ``design-h11`` and ``design-httptools``: the same two loops with ``--design`` (a nursery
     per request and a cancel scope per write: the floors of trioiis's design);
   * ``hypercorn-trio``: Hypercorn ``--worker-class trio --workers 0`` (in-process, no
     worker subprocess), ``benchmarks/asgi_hello.py``;
   * ``uvicorn-h11`` and ``uvicorn-httptools``: Uvicorn ``--http h11`` / ``--http httptools``,
     ``--loop asyncio``, no access log, the same ASGI app.

   The peers' keep-alive timeouts are raised to trioiis's 75 s, and Hypercorn's backlog to
   2048, so that neither closes nor refuses the idle connections of step 3.
2. Warms each one up with ``--warmup`` seconds of wrk, then measures interleaved rounds
   (A B C ..., A B C ..., ``--rounds`` times) of ``wrk -t1 -c50 -dDs --latency``. Per run:
   requests/s, p50/p99 latency, CPU µs per request (utime + stime of the server's process
   tree from ``/proc/PID/stat`` before and after, divided by the requests wrk completed) and
   RSS after the run (``VmRSS``). The table shows the medians over the rounds and the RSS
   after the last one.
3. Memory per idle keep-alive connection, each server freshly started: RSS after a short
   warm-up, then ``--idle`` connections (default 2000) each sending one request and reading
   its response, then left open and idle; RSS again; the delta divided by the connections.
   ``RLIMIT_NOFILE`` is raised to its hard limit first (the servers inherit it).
4. Prints the table and writes it, with this command and the versions, as the section
   "Peers side by side" at the end of ``benchmarks/RESULTS.md`` (replacing that
   section if it is there, keeping the others; ``--no-write`` leaves the file alone).

Every server is stopped in a ``finally`` (SIGTERM, then a kill after 5 s). With the defaults
the whole run takes about two minutes; every wait and every load loop is bounded, and no new
measurement starts after ``--budget`` seconds (360; what is left is skipped with a note).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import importlib.util
import os
import re
import resource
import select
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hello  # the start/stop helpers of benchmarks/hello.py

HERE = Path(__file__).resolve().parent

ROOT = hello.ROOT
HOST = hello.HOST  # loopback only
PATH = "/hello"
BODY = b"Hello, world!\n"
RESULTS = hello.RESULTS
SECTION = "## Peers side by side"
CLK_TCK = os.sysconf("SC_CLK_TCK")
WRK_SLACK = 30  # seconds wrk may take beyond -d before it is killed
IDLE_CONCURRENCY = 50  # connections being opened at once in the idle-memory test
IDLE_TIMEOUT = 60.0  # hard bound on one server's idle-memory test (it takes a few seconds)
IDLE_SETTLE = 1.0  # seconds between the last connection opened and the RSS reading
KEEP_ALIVE = "75"  # trioiis's default keep_alive_timeout, given to the peers too


# ---------------------------------------------------------------- the servers


@dataclass(frozen=True)
class Server:
    key: str
    what: str
    argv: Callable[[int], list[str]]
    needs: tuple[str, ...] = ()  # modules that must be importable

    def missing(self) -> list[str]:
        return [name for name in self.needs if importlib.util.find_spec(name) is None]


def _uvicorn(http: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            "benchmarks",
            "--host",
            HOST,
            "--port",
            str(port),
            "--http",
            http,
            "--loop",
            "asyncio",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            KEEP_ALIVE,
            "asgi_hello:app",
        ]

    return argv


SERVERS: tuple[Server, ...] = (
    Server("trioiis", "full pipeline, hello module", hello.server_command, ("trioiis",)),
    Server(
        "trioiis-fast",
        "the same with --http fast (llhttp heads)",
        lambda port: [*hello.server_command(port), "--http", "fast"],
        ("trioiis", "httptools"),
    ),
    Server(
        "raw-trio",
        "no HTTP parsing, canned response",
        lambda port: [sys.executable, "benchmarks/raw_trio.py", str(port)],
    ),
    Server(
        "trio+h11",
        "minimal trio + h11 loop",
        lambda port: [sys.executable, "benchmarks/h11_trio.py", str(port)],
        ("h11",),
    ),
    Server(
        "trio+httptools",
        "minimal trio + httptools (llhttp) loop",
        lambda port: [sys.executable, "benchmarks/httptools_trio.py", str(port)],
        ("httptools",),
    ),
    Server(
        "design-h11",
        "trio + h11 + a nursery per request + a cancel scope per write",
        lambda port: [sys.executable, "benchmarks/h11_trio.py", str(port), "--design"],
        ("h11",),
    ),
    Server(
        "design-httptools",
        "trio + httptools + a nursery per request + a cancel scope per write",
        lambda port: [sys.executable, "benchmarks/httptools_trio.py", str(port), "--design"],
        ("httptools",),
    ),
    Server(
        "hypercorn-trio",
        "Hypercorn, trio worker, raw ASGI app",
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
            "--keep-alive",
            KEEP_ALIVE,
            "--backlog",
            "2048",
            "--log-level",
            "warning",
            "benchmarks/asgi_hello.py:app",
        ],
        ("hypercorn",),
    ),
    Server("uvicorn-h11", "Uvicorn, h11, asyncio, raw ASGI app", _uvicorn("h11"), ("uvicorn",)),
    Server(
        "uvicorn-httptools",
        "Uvicorn, httptools, asyncio, raw ASGI app",
        _uvicorn("httptools"),
        ("uvicorn", "httptools"),
    ),
)


def shown(argv: Sequence[str]) -> str:
    """A command line as one would type it from the project root (PORT for the port)."""
    words = [
        ".venv/bin/python" if word == sys.executable else word.replace(str(ROOT) + "/", "")
        for word in argv
    ]
    return shlex.join(words).replace("65535", "PORT")


@dataclass
class Running:
    server: Server
    port: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def log_tail(self, lines: int = 15) -> str:
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def start(server: Server, stack: contextlib.ExitStack) -> Running:
    """Start ``server`` on a free port; stopped when ``stack`` closes, whatever happens."""
    port = hello.free_port()
    log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
    process = subprocess.Popen(
        server.argv(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL
    )
    stack.callback(hello.stop, process)
    running = Running(server, port, process, log)
    try:
        hello.wait_until_accepting(process, port)
        check_hello(port)
    except (RuntimeError, OSError) as exc:
        hello.stop(process)
        raise RuntimeError(f"{exc}\n--- its stderr:\n{running.log_tail()}") from exc
    return running


def check_hello(port: int) -> None:
    """One keep-alive request (raw_trio never closes), so that no 404 is benchmarked."""
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        sock.sendall(request)
        response = b""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            head, sep, body = response.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    if not response.startswith(b"HTTP/1.1 200 ") or not response.endswith(BODY):
        raise RuntimeError(f"GET {PATH} did not answer {BODY!r}: {response[:300]!r}")


# ---------------------------------------------------------------- /proc


def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # from field 3 (state) on


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Hypercorn or Uvicorn could spawn workers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                children.setdefault(int(_stat_fields(int(entry))[1]), []).append(int(entry))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, all threads (worker threads included)."""
    ticks = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = _stat_fields(each)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / CLK_TCK


def rss_kib(pid: int) -> int:
    total = 0
    for each in process_tree(pid):
        with contextlib.suppress(OSError), open(f"/proc/{each}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# ---------------------------------------------------------------- wrk


@dataclass
class Run:
    rps: float
    requests: int
    p50_ms: float
    p99_ms: float
    cpu_us: float
    rss_kib: int
    problems: str = ""


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency(out: str, percent: str) -> float:
    match = re.search(rf"(?m)^\s*{percent}%\s+([\d.]+)(us|ms|s|m)\s*$", out)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else float("nan")


def wrk_command(wrk: str, port: int, connections: int, duration: int) -> list[str]:
    return [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--latency",
        f"http://{HOST}:{port}{PATH}",
    ]


def measure(wrk: str, running: Running, connections: int, duration: int) -> Run:
    pid = running.process.pid
    command = wrk_command(wrk, running.port, connections, duration)
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + WRK_SLACK
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before
    rss = rss_kib(pid)
    rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rps is None or count is None:
        raise RuntimeError(f"could not read wrk's output:\n{out}")
    problems = []
    for pattern in (r"Non-2xx or 3xx responses: \d+", r"Socket errors: [^\n]+"):
        if found := re.search(pattern, out):
            problems.append(found.group(0))
    if running.process.poll() is not None:
        problems.append(f"the server exited ({running.process.returncode})")
    requests = int(count.group(1))
    return Run(
        rps=float(rps.group(1)),
        requests=requests,
        p50_ms=_latency(out, "50"),
        p99_ms=_latency(out, "99"),
        cpu_us=cpu * 1e6 / requests if requests else float("nan"),
        rss_kib=rss,
        problems="; ".join(problems),
    )


# ---------------------------------------------------------------- idle keep-alive memory


@dataclass
class Idle:
    connections: int
    opened: int
    still_open: int
    rss_before_kib: int
    rss_after_kib: int

    @property
    def kib_per_connection(self) -> float:
        return (self.rss_after_kib - self.rss_before_kib) / max(1, self.opened)


async def _one_request(port: int, limiter: trio.CapacityLimiter) -> trio.SocketStream:
    request = f"GET {PATH} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()
    async with limiter:
        stream = await trio.open_tcp_stream(HOST, port)
        try:
            await stream.send_all(request)
            status, _close = await hello.read_response(stream, bytearray())
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        if status != 200:
            await trio.aclose_forcefully(stream)
            raise RuntimeError(f"status {status}")
    return stream


def _count_still_open(streams: list[trio.SocketStream]) -> int:
    """Connections on which the server has sent nothing since (no EOF, no data, no error)."""
    poller = select.poll()
    flags = select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)
    for stream in streams:
        poller.register(stream.socket.fileno(), flags)
    return len(streams) - len(poller.poll(0))


async def idle_memory(pid: int, port: int, count: int, timeout: float) -> Idle:
    streams: list[trio.SocketStream] = []
    limiter = trio.CapacityLimiter(IDLE_CONCURRENCY)
    try:
        with trio.fail_after(timeout):
            # Warm-up: every code path of a keep-alive request has run, then nothing is open.
            for _ in range(3):
                warm = [await _one_request(port, limiter) for _ in range(10)]
                for stream in warm:
                    await trio.aclose_forcefully(stream)
            await trio.sleep(0.5)
            before = rss_kib(pid)

            async def open_one() -> None:
                streams.append(await _one_request(port, limiter))

            async with trio.open_nursery() as nursery:
                for _ in range(count):
                    nursery.start_soon(open_one)
            await trio.sleep(IDLE_SETTLE)
            after = rss_kib(pid)
            return Idle(count, len(streams), _count_still_open(streams), before, after)
    finally:
        for stream in streams:
            await trio.aclose_forcefully(stream)


def raise_nofile() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


# ---------------------------------------------------------------- report


@dataclass
class Row:
    server: Server
    runs: list[Run] = field(default_factory=list)
    idle: Idle | None = None
    note: str = ""

    def median(self, name: str) -> float:
        values = [getattr(run, name) for run in self.runs]
        return statistics.median(values) if values else float("nan")


def _fmt(value: float, digits: int = 0) -> str:
    return "-" if value != value else f"{value:,.{digits}f}".replace(",", " ")


def table(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    base = next((row for row in rows if row.server.key == "trioiis" and row.runs), None)
    base_rps = base.median("rps") if base else float("nan")
    base_cpu = base.median("cpu_us") if base else float("nan")
    head = [
        "server",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "RSS MiB",
        "req/s ÷ trioiis",
        "trioiis ÷ req/s",
        "CPU ÷ trioiis",
        "KiB/idle conn",
    ]
    body = []
    for row in rows:
        if not row.runs and row.idle is None:
            continue
        rps, cpu = row.median("rps"), row.median("cpu_us")
        idle = row.idle
        body.append(
            [
                row.server.key,
                _fmt(rps),
                _fmt(row.median("p50_ms"), 2),
                _fmt(row.median("p99_ms"), 2),
                _fmt(cpu),
                _fmt(row.runs[-1].rss_kib / 1024, 1) if row.runs else "-",
                _fmt(rps / base_rps, 2),
                _fmt(base_rps / rps, 2),
                _fmt(cpu / base_cpu, 2),
                _fmt(idle.kib_per_connection, 1) if idle else "-",
            ]
        )
    return head, body


def print_table(head: list[str], body: list[list[str]]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(cell) for cell in column) for column in zip(head, *body, strict=True)]
        for line in (head, *body):
            print("  ".join(cell.rjust(width) for cell, width in zip(line, widths, strict=True)))
        return
    rich_table = Table(title="medians over the rounds; RSS after the last round")
    for i, name in enumerate(head):
        rich_table.add_column(name, justify="left" if i == 0 else "right")
    for line in body:
        rich_table.add_row(*line)
    Console(width=max(150, shutil.get_terminal_size().columns)).print(rich_table)


def goals(rows: list[Row]) -> list[str]:
    """The issue's goals that this run can check (trioiis ÷ peer, and idle memory)."""
    by_key = {row.server.key: row for row in rows}
    trioiis = by_key.get("trioiis")
    if trioiis is None or not trioiis.runs:
        return []
    lines = []
    fast = by_key.get("trioiis-fast")
    for mine, key, target, floor_key in (
        (trioiis, "hypercorn-trio", 3.0, "design-h11"),
        (trioiis, "uvicorn-h11", 1.5, "design-h11"),
        # Issue 26's instruction goals (within 1.1x and 1.33x of the design floors) read as
        # requests/s ratios; the bare loop beside them shows what the floor itself costs.
        (trioiis, "design-h11", 1 / 1.1, "trio+h11"),
        (fast, "uvicorn-h11", 1.5, "design-httptools"),
        (fast, "design-httptools", 1 / 1.33, "trio+httptools"),
    ):
        peer = by_key.get(key)
        if mine is not None and mine.runs and peer is not None and peer.runs:
            ratio = mine.median("rps") / peer.median("rps")
            verdict = "met" if ratio >= target else "not met"
            name = mine.server.key
            line = f"{name} ÷ {key} = {ratio:.2f} (goal ≥ {target:g}x): {verdict}"
            # The same ratio for the floor loop: a goal above the floor's own figure asks the
            # pipeline to cost less than nothing.
            floor = by_key.get(floor_key)
            if floor is not None and floor.runs:
                line += (
                    f"; {floor_key} (floor) ÷ {key} = "
                    f"{floor.median('rps') / peer.median('rps'):.2f}"
                )
            lines.append(line)
    if trioiis.idle is not None:
        kib = trioiis.idle.kib_per_connection
        verdict = "met" if kib <= 6.0 else "not met"
        lines.append(
            f"trioiis memory per idle keep-alive connection = {kib:.1f} KiB (goal ≤ 6): {verdict}"
        )
    return lines


def versions() -> str:
    parts = [f"Python {sys.version.split()[0]}"]
    for name in ("trio", "h11", "hypercorn", "uvicorn", "httptools"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            parts.append(f"{name} {importlib.metadata.version(name)}")
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, timeout=10, check=False)
        parts.append(" ".join(out.stdout.split()[:2]))
    return ", ".join(parts)


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "trioiis"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head} with uncommitted changes in trioiis/" if dirty else head


def markdown(
    rows: list[Row], args: argparse.Namespace, command: str, notes: list[str], nofile: int
) -> str:
    head, body = table(rows)
    out = [
        SECTION,
        "",
        f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC on the shared "
        f"{os.cpu_count()}-core machine, loopback only, git {git_state()}; {versions()}. "
        f"Load average (1 min) at the start {args.load_before:.2f}, at the end "
        f"{os.getloadavg()[0]:.2f}: other work on the machine slows every server alike only "
        "if it is steady, so compare within a round.",
        "",
        f"Command: `{command}`"
        + (" (what `make bench` runs)" if command.endswith("compare.py") else "")
        + ". Written by the script itself; the table shows the medians over the rounds.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(line) + " |" for line in body),
        "",
        f"Each round ran `wrk -t1 -c{args.connections} -d{args.duration}s --latency "
        f"http://127.0.0.1:PORT/hello` against every server in turn ({args.rounds} rounds, "
        f"after {args.warmup} s of warm-up each). CPU is utime + stime of the server's process "
        "tree over the run (all threads) divided by the requests wrk completed, so it includes "
        "accepting the connections. RSS is VmRSS after the last round. *req/s ÷ trioiis* "
        "above 1 means faster than trioiis; *trioiis ÷ req/s* is how the issue states its "
        "goals.",
        "",
        "Requests/s per round:",
        "",
        "| server | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |",
        "|---|" + "---|" * args.rounds,
    ]
    for row in rows:
        if row.runs:
            cells = [_fmt(run.rps) for run in row.runs] + ["-"] * (args.rounds - len(row.runs))
            out.append(f"| {row.server.key} | " + " | ".join(cells) + " |")
    idle_rows = [row for row in rows if row.idle is not None]
    if idle_rows:
        out += [
            "",
            f"Memory per idle keep-alive connection: each server freshly started, 3 x 10 "
            f"warm-up requests, RSS, then {args.idle} connections opened ({IDLE_CONCURRENCY} "
            f"at a time) that each sent one request and read its response, {IDLE_SETTLE:g} s "
            f"idle, RSS again (RLIMIT_NOFILE {nofile}).",
            "",
            "| server | RSS before MiB | RSS with idle connections MiB | KiB per connection "
            "| still open at the reading |",
            "|---|---|---|---|---|",
        ]
        for row in idle_rows:
            idle = row.idle
            assert idle is not None
            out.append(
                f"| {row.server.key} | {idle.rss_before_kib / 1024:.1f} | "
                f"{idle.rss_after_kib / 1024:.1f} | {idle.kib_per_connection:.1f} | "
                f"{idle.still_open} / {idle.connections} |"
            )
    if lines := goals(rows):
        out += [
            "",
            "Goals that this run checks (hello; the fast-path goals are `--http fast`'s), "
            "each with the same ratio for its floor (the design floors: the same parser, a "
            "nursery per request and a cancel scope per write, no pipeline):",
            "",
        ]
        out += [f"* {line}" for line in lines]
    out += ["", "Server commands (from the project root; PORT is a free port):", ""]
    for row in rows:
        out.append(f"* {row.server.key} ({row.server.what}): `{shown(row.server.argv(65535))}`")
    if notes:
        out += ["", "Notes from the run:", ""]
        out += [f"* {note}" for note in notes]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (5)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before (1; 0: none)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument(
        "--idle", type=int, default=2000, help="idle keep-alive connections (2000; 0: skip)"
    )
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated servers to run: " + ",".join(s.key for s in SERVERS),
    )
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    parser.add_argument(
        "--budget",
        type=int,
        default=360,
        help="seconds after which no new measurement starts; what is left is skipped (360)",
    )
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or args.warmup < 0 or args.idle < 0:
        parser.error("--duration and --rounds must be at least 1, --warmup and --idle at least 0")
    command = shlex.join([".venv/bin/python", "benchmarks/compare.py", *argv])

    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not on the PATH (apt-get install -y wrk); nothing measured", file=sys.stderr)
        return 2
    wanted = {key for key in args.only.split(",") if key}
    unknown = wanted - {s.key for s in SERVERS}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")
    nofile = raise_nofile()[0]
    if args.idle and args.idle + 100 > nofile:
        parser.error(f"--idle {args.idle} needs more file descriptors than RLIMIT_NOFILE {nofile}")

    notes: list[str] = []
    rows: list[Row] = []
    for server in SERVERS:
        if wanted and server.key not in wanted:
            continue
        row = Row(server)
        rows.append(row)
        if missing := server.missing():
            row.note = (
                f"skipped {server.key}: not importable: {', '.join(missing)} "
                "(`make bench` installs the bench extra)"
            )
            notes.append(row.note)
            print(row.note)

    started = time.monotonic()
    deadline = started + args.budget

    def over_budget(step: str, needs: float) -> bool:
        if time.monotonic() + needs <= deadline:
            return False
        note = f"--budget {args.budget} s reached: skipped {step} and what follows it"
        if note not in notes:
            notes.append(note)
            print(note)
        return True

    args.load_before = os.getloadavg()[0]
    print(f"load average (1 min): {args.load_before:.2f} on {os.cpu_count()} cores")
    # ---- throughput: every server up at once (idle ones cost nothing), rounds interleaved
    with contextlib.ExitStack() as stack:
        live: list[tuple[Row, Running]] = []
        for row in rows:
            if row.note:
                continue
            try:
                running = start(row.server, stack)
            except RuntimeError as exc:
                row.note = f"skipped {row.server.key}: it did not start or answer: {exc}"
                notes.append(row.note.splitlines()[0])
                print(row.note)
                continue
            shown_argv = shown(row.server.argv(running.port))
            print(f"started {row.server.key} on port {running.port}: {shown_argv}")
            live.append((row, running))
        if args.warmup:
            for _row, running in live:
                measure(wrk, running, args.connections, args.warmup)
        for round_number in range(1, args.rounds + 1):
            if over_budget(f"round {round_number}", len(live) * (args.duration + 1)):
                break
            for row, running in live:
                run = measure(wrk, running, args.connections, args.duration)
                row.runs.append(run)
                problems = f"  !! {run.problems}" if run.problems else ""
                print(
                    f"round {round_number} {row.server.key:>18}: {run.rps:8.0f} req/s  "
                    f"p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms  "
                    f"{run.cpu_us:6.0f} µs CPU/req  RSS {run.rss_kib / 1024:6.1f} MiB{problems}"
                )
                if run.problems:
                    notes.append(f"{row.server.key}, round {round_number}: {run.problems}")
    # ---- memory per idle keep-alive connection: each server fresh, one at a time
    if args.idle:
        for row in rows:
            if row.note:
                continue
            if over_budget(f"the idle-connection test of {row.server.key}", 15):
                break
            timeout = min(IDLE_TIMEOUT, deadline - time.monotonic())
            with contextlib.ExitStack() as stack:
                try:
                    running = start(row.server, stack)
                    pid, port = running.process.pid, running.port
                    row.idle = trio.run(idle_memory, pid, port, args.idle, timeout)
                except Exception as exc:  # one server's failure must not lose the others
                    note = f"{row.server.key}: idle-connection test failed: {exc!r}"
                    notes.append(note.splitlines()[0])
                    print(note)
                    continue
            idle = row.idle
            print(
                f"idle {row.server.key:>18}: {idle.kib_per_connection:5.1f} KiB per connection "
                f"({idle.rss_before_kib / 1024:.1f} → {idle.rss_after_kib / 1024:.1f} MiB, "
                f"{idle.still_open}/{idle.connections} still open)"
            )
            if idle.still_open < idle.connections:
                notes.append(
                    f"{row.server.key}: only {idle.still_open} of {idle.connections} idle "
                    "connections were still open when RSS was read"
                )

    head, body = table(rows)
    print()
    print_table(head, body)
    for line in goals(rows):
        print(line)
    for note in notes:
        print(f"note: {note}")
    print(f"command: {command}  ({time.monotonic() - started:.0f} s)")
    if not args.no_write:
        hello.write_results_section(SECTION, markdown(rows, args, command, notes, nofile))
        print(f"written: {RESULTS.relative_to(ROOT)}, section {SECTION[3:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
