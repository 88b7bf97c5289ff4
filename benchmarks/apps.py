"""A Starlette app under trioiis, Hypercorn (trio worker) and Uvicorn, side by side.

    .venv/bin/python benchmarks/apps.py [--duration 4] [--rounds 3] [--warmup 1]
        [--connections 50] [--only trioiis,hypercorn-trio,...] [--no-write]

The same ``benchmarks/starlette_hello.py`` app (``GET /hello`` → ``Hello, world!``) is served by:

* ``trioiis``: ``trioiis serve examples/site --asgi '/*=benchmarks/starlette_hello.py:app'``:
  the app as a handler module, with the default modules (request filtering, static files,
  custom errors, compression) loaded, i.e. the full pipeline;
* ``trioiis-fast``: the same with ``--http fast`` (llhttp parses bodiless request heads);
* ``hypercorn-trio``: Hypercorn ``--worker-class trio --workers 0``;
* ``uvicorn-h11`` and ``uvicorn-httptools``: Uvicorn ``--loop asyncio``, no access log.

It reuses benchmarks/compare.py's machinery: each server is a subprocess on 127.0.0.1 and a
free port, checked with one ``GET /hello``, warmed up with ``--warmup`` seconds of wrk, then
measured in interleaved rounds (A B C D, A B C D, ...) of ``wrk -t1 -cN -dDs --latency``. The
table shows the medians of requests/s, p50/p99 latency and CPU µs per request (server process
tree), and each server's requests/s as a ratio to trioiis's. The table and this command are
written as the section "Hosted apps: Starlette under each server" of RESULTS.md
(``--no-write`` to skip). Every server is stopped in a ``finally``; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import shlex
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # the servers' start/measure helpers of benchmarks/compare.py
import hello

SECTION = "## Hosted apps: Starlette under each server"
HOST = hello.HOST
APP = "starlette_hello:app"


def _trioiis(port: int) -> list[str]:
    command = hello.server_command(port)
    at = command.index("--module")
    return [*command[:at], "--asgi", "/*=benchmarks/starlette_hello.py:app"]


def _trioiis_fast(port: int) -> list[str]:
    return [*_trioiis(port), "--http", "fast"]


def _uvicorn(http: str) -> compare.Server:
    def argv(port: int) -> list[str]:
        command = compare._uvicorn(http)(port)
        return [*command[:-1], APP]

    return compare.Server(
        f"uvicorn-{http}",
        f"Uvicorn, {http}, asyncio",
        argv,
        ("uvicorn", "starlette") + (("httptools",) if http == "httptools" else ()),
    )


def _hypercorn(port: int) -> list[str]:
    command = next(s for s in compare.SERVERS if s.key == "hypercorn-trio").argv(port)
    return [*command[:-1], "benchmarks/starlette_hello.py:app"]


SERVERS: tuple[compare.Server, ...] = (
    compare.Server("trioiis", "asgi handler module, full pipeline", _trioiis, ("starlette",)),
    compare.Server(
        "trioiis-fast", "the same, --http fast", _trioiis_fast, ("starlette", "httptools")
    ),
    compare.Server("hypercorn-trio", "Hypercorn, trio worker", _hypercorn, ("hypercorn",)),
    _uvicorn("h11"),
    _uvicorn("httptools"),
)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run (4)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of wrk before (1)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--only", default="", help="comma-separated servers to run")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    if args.duration < 1 or args.rounds < 1 or args.warmup < 0:
        parser.error("--duration and --rounds must be at least 1, --warmup at least 0")
    command = shlex.join([".venv/bin/python", "benchmarks/apps.py", *argv])
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not on the PATH (apt-get install -y wrk); nothing measured", file=sys.stderr)
        return 2
    wanted = {key for key in args.only.split(",") if key}
    servers = [s for s in SERVERS if not wanted or s.key in wanted]
    notes = []
    for server in list(servers):
        if missing := server.missing():
            notes.append(f"skipped {server.key}: not importable: {', '.join(missing)}")
            servers.remove(server)
    load = os.getloadavg()[0]
    print(f"load average (1 min): {load:.2f} on {os.cpu_count()} cores")
    runs: dict[str, list[compare.Run]] = {s.key: [] for s in servers}
    with contextlib.ExitStack() as stack:
        running = [compare.start(server, stack) for server in servers]
        for each in running:
            if args.warmup:
                compare.measure(wrk, each, args.connections, args.warmup)
        for round_number in range(args.rounds):
            for each in running:  # interleaved: A B C D, A B C D, ...
                run = compare.measure(wrk, each, args.connections, args.duration)
                runs[each.server.key].append(run)
                print(
                    f"round {round_number + 1} {each.server.key}: {run.rps:,.0f} req/s"
                    f" p99 {run.p99_ms:.2f} ms {run.problems}"
                )
    base = statistics.median(r.rps for r in runs["trioiis"]) if runs.get("trioiis") else None
    head = ["server", "what", "req/s", "vs trioiis", "p50 ms", "p99 ms", "CPU µs/req"]
    body = []
    for server in servers:
        rs = runs[server.key]
        rps = statistics.median(r.rps for r in rs)
        body.append(
            [
                server.key,
                server.what,
                f"{rps:,.0f}",
                f"{rps / base:.2f}" if base else "-",
                f"{statistics.median(r.p50_ms for r in rs):.2f}",
                f"{statistics.median(r.p99_ms for r in rs):.2f}",
                f"{statistics.median(r.cpu_us for r in rs):.0f}",
            ]
        )
    compare.print_table(head, body)
    if not args.no_write:
        lines = [
            SECTION,
            "",
            f"`{command}` — wrk -t1 -c{args.connections} -d{args.duration}s, {args.rounds}"
            f" interleaved rounds (medians), {os.cpu_count()} cores, load average"
            f" {load:.2f} before; {compare.versions()},"
            f" starlette {importlib.metadata.version('starlette')}.",
            "",
            "| " + " | ".join(head) + " |",
            "|" + "---|" * len(head),
            *("| " + " | ".join(row) + " |" for row in body),
            "",
            "Requests/s per round (the machine is shared: compare within a round):",
            "",
            "| server | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " |",
            "|" + "---|" * (args.rounds + 1),
            *(
                f"| {s.key} | " + " | ".join(f"{r.rps:,.0f}" for r in runs[s.key]) + " |"
                for s in servers
            ),
            "",
            "CPU µs per request is utime + stime of the server's process tree over a run divided"
            " by the requests wrk completed: the least noisy column on a loaded machine.",
            "",
            *(f"* {note}" for note in notes),
        ]
        hello.write_results_section(SECTION, "\n".join(lines).rstrip("\n") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
