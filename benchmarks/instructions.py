"""Instructions per request under callgrind: a noise-free A/B for a busy 2-core machine.

    .venv/bin/python benchmarks/instructions.py [--requests 300] [--warmup 100]
        [--only trioiis,raw-trio,...] [--rev REV ...] [--no-static] [--no-watchdog]
        [--no-write]

wrk's requests/s move by 10-20 % from one run to the next on a shared machine; the number of
machine instructions a server executes for a request does not (within about 1 %: CPython's
own work is deterministic once ``PYTHONHASHSEED`` is fixed). So each server of
``compare.py`` (trioiis, trioiis-fast, the raw-Trio, trio+h11 and trio+httptools floors,
Hypercorn's Trio worker, Uvicorn) is started under ``valgrind --tool=callgrind
--instr-atstart=no`` on 127.0.0.1 and a free port; a client in this process sends
``--warmup`` requests on one keep-alive connection, then turns instrumentation on
(``callgrind_control -i on``), sends ``--requests`` more on a second connection, one at a time
(each answer read in full before the next request), turns it off and dumps the counts. The
server's instructions divided by the requests is the number reported, with its ratio to
trioiis. ``--rev REV`` (repeatable) adds trioiis as of a git revision (a temporary
worktree), for A/B of a change (and that revision with ``--http fast`` when ``--only``
names ``trioiis-fast``). Unless ``--no-static``, trioiis (and each ``--rev``) is also
measured serving a 1 KiB file with its default modules (``GET /kib.bin`` from a temporary
folder: the static-file path, the small-file cache revalidated by ``stat``).

``--concurrent N`` keeps N connections busy at once: a request is sent on each, then every
answer is read, and again (``--requests`` in all); a server that batches its wake-ups (one
``epoll_wait`` returning many ready sockets, one scheduler pass running many tasks) gets
cheaper per request than at 1.

``--no-watchdog`` runs every trioiis that has the event-loop watchdog with it off
(``watchdog_threshold = 0``). The watchdog's heartbeat task and thread wake 8 times a second
of wall time, whatever the load; under callgrind a request takes about a hundred times
longer than at full speed, so their share per request grows with the run's wall time (how
busy the machine is) and is not work a request does. Revisions before the watchdog run as
they are.

What it measures is the cost of one request on a connection that waits for each answer
(one readiness wake-up per request); wrk with 50 connections lets servers batch wake-ups, so
the ratios here are not the requests/s ratios of compare.py, but a change that removes
instructions here removes them there too. Needs valgrind (``apt-get install -y valgrind``);
installs nothing. Bounded: every wait has a timeout, every server is stopped in a
``finally``; about 30 s per server.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab
import compare
import hello

ROOT = hello.ROOT
HOST = hello.HOST  # loopback only
SECTION = "## Instructions per request (callgrind)"
START_TIMEOUT = 180.0  # seconds a server may take to accept under valgrind
ANSWER_TIMEOUT = 30.0  # seconds for one answer under valgrind
MAX_REQUESTS = 999  # below trioiis's max_requests_per_connection (1000)
_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Target:
    key: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path = ROOT  # (python -m imports from here first)
    path: str = compare.PATH
    body: bytes = compare.BODY


def request_bytes(port: int, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUser-Agent: instructions.py\r\n"
        "Accept: */*\r\n\r\n"
    ).encode()


def exchange(sock: socket.socket, request: bytes, expected: bytes) -> None:
    """Send one request and read its whole answer (Content-Length framed)."""
    if request:
        sock.sendall(request)
    response = b""
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while True:
        head, sep, body = response.partition(b"\r\n\r\n")
        length = _LENGTH.search(head)
        if sep and length and len(body) >= int(length.group(1)):
            if not response.startswith(b"HTTP/1.1 200 ") or body != expected:
                raise RuntimeError(f"unexpected answer: {response[:300]!r}")
            return
        if time.monotonic() > deadline:
            raise RuntimeError("no answer in time")
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"connection closed after {response[:300]!r}")
        response += chunk


def connect(process: subprocess.Popen[bytes], port: int) -> socket.socket:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            sock = socket.create_connection((HOST, port), timeout=ANSWER_TIMEOUT)
        except OSError:
            time.sleep(0.2)
            continue
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    raise RuntimeError(f"the server did not accept connections within {START_TIMEOUT:g} s")


def callgrind_total(path: Path) -> int:
    """The ``totals:`` line of a callgrind dump (0 when collection was off)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    return 0


class Callgrind:
    """A server run under callgrind, counting only inside ``counting()``::

        with Callgrind(argv, cwd=folder, env={...}) as server:
            ...                       # start-up and warm-up: not counted
            with server.counting():
                ...                   # the measured load
        server.total                  # instructions counted, once the server stopped

    ``env`` is added to this process's environment (with a fixed PYTHONHASHSEED).

    Raises:
        RuntimeError: at the end of the ``with``, when nothing was counted.
    """

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self._argv = argv
        self._cwd = cwd
        self._env = env or {}
        self._folder = tempfile.TemporaryDirectory()
        self.process: subprocess.Popen[bytes] | None = None
        self.total = 0

    def __enter__(self) -> Self:
        out = Path(self._folder.name) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={out}", *self._argv]  # fmt: skip
        env = dict(os.environ, PYTHONHASHSEED="0", **self._env)
        self.process = subprocess.Popen(
            command, cwd=self._cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def _control(self, *flags: str) -> None:
        assert self.process is not None
        subprocess.run(["callgrind_control", *flags, str(self.process.pid)], **_QUIET)

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        """Instructions are counted inside this block only (then dumped)."""
        self._control("-i", "on")
        yield
        self._control("-i", "off")
        self._control("-d")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        try:
            hello.stop(self.process)
            dumps = Path(self._folder.name).glob("callgrind.out*")
            self.total = max((callgrind_total(path) for path in dumps), default=0)
        finally:
            self._folder.cleanup()
        if exc[0] is None and not self.total:
            raise RuntimeError("callgrind counted nothing")


def measure(target: Target, args: argparse.Namespace) -> float:
    """The target's instructions per request."""
    port = hello.free_port()
    argv = [arg.replace("65535", str(port)) for arg in target.argv]
    with Callgrind(argv, cwd=target.cwd, env=target.env) as server:
        assert server.process is not None
        request, expected = request_bytes(port, target.path), target.body
        with connect(server.process, port) as warm:
            for _ in range(args.warmup):
                exchange(warm, request, expected)
        with contextlib.ExitStack() as conns:
            socks = [
                conns.enter_context(connect(server.process, port)) for _ in range(args.concurrent)
            ]
            for sock in socks:  # each connection is set up before counting starts
                exchange(sock, request, expected)
            with server.counting():
                for _ in range(args.requests // len(socks)):
                    for sock in socks:  # every connection's request is out at once...
                        sock.sendall(request)
                    for sock in socks:  # ...before any answer is read
                        exchange(sock, b"", expected)
    return server.total / (args.requests // args.concurrent * args.concurrent)


_QUIET: dict[str, object] = {
    "check": True,
    "stdout": subprocess.DEVNULL,
    "stderr": subprocess.DEVNULL,
    "timeout": 60,
}


def trioiis_at(tree: Path, key: str) -> Target:
    return Target(
        key,
        [
            sys.executable,
            "-m",
            "trioiis.cli",
            "serve",
            str(tree / "examples" / "site"),
            "--bind",
            f"{HOST}:65535",
            "--module",
            f"hello={tree / 'examples' / 'modules' / 'hello.py'}:register_module",
        ],
        {"PYTHONPATH": str(tree)},
        tree,
    )


#: The static target's file: 1 KiB that no module compresses (served from the small-file
#: cache, revalidated by stat, after the first request).
STATIC_NAME = "kib.bin"
STATIC_BODY = bytes(range(256)) * 4


def static_at(tree: Path, key: str, folder: Path) -> Target:
    """trioiis of ``tree`` serving ``folder`` with its default modules (no hello)."""
    argv = [sys.executable, "-m", "trioiis.cli", "serve", str(folder), "--bind", f"{HOST}:65535"]
    return Target(key, argv, {"PYTHONPATH": str(tree)}, tree, f"/{STATIC_NAME}", STATIC_BODY)


def without_watchdog(target: Target, config: Path) -> Target:
    """``target`` with ``--config config`` (watchdog off) if its trioiis has a watchdog."""
    if "watchdog_threshold" not in (target.cwd / "trioiis" / "config.py").read_text():
        return target
    argv = [*target.argv, "--config", str(config)]
    return Target(target.key, argv, target.env, target.cwd, target.path, target.body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300, help="counted requests (300)")
    parser.add_argument("--warmup", type=int, default=100, help="requests before (100)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated servers of compare.py: "
        + ",".join(server.key for server in compare.SERVERS),
    )
    parser.add_argument(
        "--rev", action="append", default=[], help="also trioiis at this git revision"
    )
    parser.add_argument(
        "--no-static",
        action="store_true",
        help="skip trioiis serving a 1 KiB static file (run with trioiis and each --rev)",
    )
    parser.add_argument(
        "--no-watchdog",
        action="store_true",
        help="run trioiis with watchdog_threshold = 0 (where it has the watchdog)",
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=1,
        help="connections that each have a request in flight at once (1): with more, the "
        "server can batch its wake-ups",
    )
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if not 1 <= args.concurrent <= 50:
        parser.error("--concurrent must be 1 to 50")
    if not 1 <= args.requests <= MAX_REQUESTS or not 0 <= args.warmup <= MAX_REQUESTS:
        parser.error(f"--requests and --warmup must be at most {MAX_REQUESTS}")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not on the PATH (apt-get install -y valgrind)")
    wanted = {key for key in args.only.split(",") if key}
    unknown = wanted - {server.key for server in compare.SERVERS}
    if unknown:
        parser.error(f"unknown servers: {', '.join(sorted(unknown))}")

    results: list[tuple[str, float]] = []
    notes: list[str] = []
    with contextlib.ExitStack() as stack:
        targets = []
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        (folder / STATIC_NAME).write_bytes(STATIC_BODY)
        static = not args.no_static and (not wanted or "trioiis" in wanted)
        for rev in args.rev:
            tree = stack.enter_context(ab.checkout(rev))  # a temporary worktree
            targets.append(trioiis_at(tree, f"trioiis@{rev}"))
            if "trioiis-fast" in wanted:  # (that revision with --http fast too)
                fast = trioiis_at(tree, f"trioiis-fast@{rev}")
                targets.append(Target(fast.key, [*fast.argv, "--http", "fast"], fast.env, tree))
            if static:
                targets.append(static_at(tree, f"trioiis@{rev} static 1 KiB", folder))
        if static:
            targets.append(static_at(ROOT, "trioiis static 1 KiB", folder))
        for server in compare.SERVERS:
            if wanted and server.key not in wanted:
                continue
            if missing := server.missing():
                notes.append(f"{server.key} skipped: {', '.join(missing)} not importable")
                continue
            targets.append(Target(server.key, server.argv(65535), {}))
        if args.no_watchdog:
            config = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "off.toml"
            config.write_text("watchdog_threshold = 0\n")
            targets = [
                without_watchdog(t, config) if t.key.startswith("trioiis") else t for t in targets
            ]
        for target in targets:
            try:
                count = measure(target, args)
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                notes.append(f"{target.key} failed: {exc}")
                print(f"{target.key}: failed: {exc}", file=sys.stderr)
                continue
            results.append((target.key, count))
            print(f"{target.key:>24}: {count:12,.0f} instructions/request", flush=True)

    mine = dict(results).get("trioiis")  # (the static rows are ratios to it too)
    command = [sys.executable, "benchmarks/instructions.py", *(argv or sys.argv[1:])]
    lines = [
        SECTION,
        "",
        f"`{compare.shown(command)}`"
        f" on {compare.git_state()}; {compare.versions()}. Each server under callgrind, "
        f"{args.requests} sequential `GET /hello` on one keep-alive connection after "
        f"{args.warmup} of warm-up: machine instructions the server executed per request "
        "(the same within about 1 % from run to run, whatever else the machine does).",
        "",
        "| server | instructions/request | ÷ trioiis |",
        "|---|---|---|",
    ]
    for key, count in results:
        ratio = f"{count / mine:.2f}" if mine else "-"
        lines.append(f"| {key} | {count:,.0f} | {ratio} |")
    if goal_lines := goals(dict(results)):
        lines += ["", "Issue 26's instruction goals, each beside its floor:", ""]
        lines += [f"* {line}" for line in goal_lines]
    if notes:
        lines += ["", *(f"* {note}" for note in notes)]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write and results:
        hello.write_results_section(SECTION, text)
    return 0 if results else 1


#: (server, its design floor, the bare loop of the same parser, the goal: at most this many
#: times the design floor's instructions).
GOALS = (
    ("trioiis", "design-h11", "trio+h11", 1.1),
    ("trioiis-fast", "design-httptools", "trio+httptools", 1.33),
)


def goals(counts: dict[str, float]) -> list[str]:
    """Issue 26's goals this run can check, each with the floors' own figures."""
    lines = []
    for key, floor, bare, target in GOALS:
        if key not in counts or floor not in counts:
            continue
        ratio = counts[key] / counts[floor]
        verdict = "met" if ratio <= target else "not met"
        line = f"{key} ÷ {floor} = {ratio:.2f} (goal ≤ {target:g}x): {verdict}"
        if bare in counts:
            line += f"; {floor} ÷ {bare} = {counts[floor] / counts[bare]:.2f}"
        lines.append(line)
    return lines


if __name__ == "__main__":
    sys.exit(main())
