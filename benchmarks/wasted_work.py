"""Wasted work: what a server burns for requests its clients abandoned, for trioiis,
Hypercorn (trio worker) and Uvicorn, measured from outside by ``trioiis bench --server-pid``.

    .venv/bin/python benchmarks/wasted_work.py [--requests 300] [--connections 8] [--no-write]

Every server runs the same CPU-bound handler (``benchmarks/wasted_apps.py``: 20 slices of
pure-Python work, yielding to the event loop between slices; an ASGI app for the peers, a
module for trioiis) in a subprocess on 127.0.0.1 and a free port. For each one in turn, and
each abort mode (FIN, RST), after ``--warmup`` requests that are not measured (first-request
costs such as imports would otherwise inflate the baseline):

    trioiis bench http://127.0.0.1:PORT/burn -n 300 -c 8 --abort-share 0.3 \\
        --abort-after uniform:1:6 --abort-mode fin --baseline-share 0.3 --seed 1 \\
        --server-pid PID --status-path none --json FILE -q

The bench first sends 30 % of the requests without aborts (the server's CPU per completed
request), then the rest with 30 % of them abandoned 1-6 ms after being sent (FIN): the CPU
time beyond what the completed ones cost, divided by the abandoned ones, is the CPU burnt
per abandoned request. The table (and the command) is written as the section "Wasted work"
of ``benchmarks/RESULTS.md`` (``--no-write`` to skip); the JSON reports are left in
``--out`` for ``trioiis bench compare``. Every server is stopped in a ``finally``; the run is
bounded by ``--requests`` and by ``--max-seconds`` per server.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # the peers' start helpers of benchmarks/compare.py
import hello

SECTION = "## Wasted work: CPU burnt per abandoned request"
HOST = hello.HOST
ROOT = hello.ROOT


def _trioiis(port: int) -> list[str]:
    command = hello.server_command(port)
    at = command.index("--module")
    return [*command[:at], "--module", "burn=benchmarks/wasted_apps.py:register_module"]


def _hypercorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0",
        "--bind", f"{HOST}:{port}", "--log-level", "warning", "benchmarks/wasted_apps.py:app",
    ]  # fmt: skip


def _uvicorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "--app-dir", "benchmarks", "--host", HOST,
        "--port", str(port), "--loop", "asyncio", "--no-access-log", "--log-level", "warning",
        "wasted_apps:app",
    ]  # fmt: skip


SERVERS: tuple[compare.Server, ...] = (
    compare.Server("trioiis", "module, trio.sleep(0) between slices", _trioiis, ("trioiis",)),
    compare.Server("hypercorn-trio", "ASGI app, trio worker", _hypercorn, ("hypercorn", "anyio")),
    compare.Server("uvicorn", "ASGI app, asyncio", _uvicorn, ("uvicorn", "anyio")),
)


def bench_command(
    port: int, pid: int, out: Path, args: argparse.Namespace, mode: str = "fin"
) -> list[str]:
    return [
        sys.executable, "-m", "trioiis.cli", "bench", f"http://{HOST}:{port}/burn",
        "-n", str(args.requests), "-c", str(args.connections), "--abort-share", "0.3",
        "--abort-after", "uniform:1:6", "--abort-mode", mode, "--baseline-share", "0.3",
        "--seed", "1", "--server-pid", str(pid), "--status-path", "none",
        "--max-seconds", str(args.max_seconds), "--json", str(out), "-q",
    ]  # fmt: skip


def warmup_command(port: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "trioiis.cli", "bench", f"http://{HOST}:{port}/burn",
        "-n", str(args.warmup), "-c", str(args.connections), "--status-path", "none", "-q",
    ]  # fmt: skip


def start(server: compare.Server, stack: contextlib.ExitStack) -> tuple[int, subprocess.Popen]:
    port = hello.free_port()
    log = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
    process = subprocess.Popen(
        server.argv(port), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, stdin=subprocess.DEVNULL
    )
    stack.callback(hello.stop, process)
    try:
        hello.wait_until_accepting(process, port)
    except (RuntimeError, OSError) as exc:
        log.seek(0)
        raise RuntimeError(f"{server.key}: {exc}\n{log.read().decode(errors='replace')}") from exc
    return port, process


def row(key: str, mode: str, report: dict) -> list[str]:
    waste = report["wasted_work"]
    per_completed = waste["cpu_ms_per_completed"]
    per_abandoned = waste["cpu_ms_per_abandoned"]
    share = (
        f"{per_abandoned / per_completed:.0%}"
        if per_completed and per_abandoned is not None
        else "n/a"
    )
    rss, fds = waste["rss_bytes"], waste["fds"]
    return [
        key,
        mode,
        f"{report['throughput']['completed_per_s']:,.0f}",
        f"{report['requests']['completed']} / {report['requests']['aborted']}",
        f"{per_completed:.2f}" if per_completed is not None else "n/a",
        f"{per_abandoned:.2f}" if per_abandoned is not None else "n/a",
        share,
        " / ".join(f"{rss[k] / 2**20:.1f}" for k in ("before", "peak", "after")),
        " / ".join(str(fds[k]) for k in ("before", "peak", "after")),
        "yes" if waste["measured"]["settled"] else "no",
    ]


HEAD = [
    "server",
    "abort",
    "completed/s",
    "completed / abandoned",
    "CPU ms per completed",
    "CPU ms per abandoned",
    "abandoned / completed",
    "RSS MiB before / peak / after",
    "fds before / peak / after",
    "settled",
]


def markdown(rows: list[list[str]], args: argparse.Namespace) -> str:
    versions = ", ".join(
        f"{name} {importlib.metadata.version(name)}" for name in ("trio", "hypercorn", "uvicorn")
    )
    command = compare.shown(bench_command(65535, 0, Path("FILE"), args, "MODE")).replace(
        "--server-pid 0", "--server-pid PID"
    )
    lines = [
        SECTION,
        "",
        "The same CPU-bound handler (`benchmarks/wasted_apps.py`: 20 slices of pure-Python work,",
        "yielding between slices; an ASGI app for the peers, a module for trioiis) under each",
        "server, loaded by `trioiis bench --server-pid`, which reads the server's CPU time from",
        "/proc, after 50 unmeasured warm-up requests: 30 % of the requests first without aborts",
        "(CPU per completed request), then the rest with 30 % abandoned 1-6 ms after being sent,",
        "closing with FIN or with RST.",
        "*CPU ms per abandoned* is what the server burnt for a request nobody was waiting for any",
        "more; a server that stops the work when the client leaves burns a fraction of a completed",
        "request's cost, one that does not burns all of it.",
        "",
        "```sh",
        ".venv/bin/python benchmarks/wasted_work.py"
        + (f" --requests {args.requests}" if args.requests != 300 else ""),
        "# which runs, for each server and MODE (fin, rst):",
        command,
        "```",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(HEAD))) + "|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
        "",
        f"Python {platform.python_version()}, {versions}; one run each, 2 cores shared with",
        "other users' work: CPU per request moves by up to a third between runs.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=50, help="requests before measuring")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--only", help="comma-separated server keys")
    parser.add_argument("--modes", default="fin,rst", help="abort modes (default fin,rst)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "wasted-work")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = [s for s in SERVERS if not args.only or s.key in args.only.split(",")]
    rows = []
    for server in chosen:
        if server.missing():
            print(f"{server.key}: skipped, needs {', '.join(server.missing())}", file=sys.stderr)
            continue
        for mode in args.modes.split(","):
            out = args.out / f"{server.key}-{mode}.json"
            with contextlib.ExitStack() as stack:
                port, process = start(server, stack)
                # Warm up (first-request costs: imports, caches) outside the measured run.
                subprocess.run(warmup_command(port, args), cwd=ROOT, timeout=120, check=True)
                result = subprocess.run(
                    bench_command(port, process.pid, out, args, mode),
                    cwd=ROOT,
                    timeout=args.max_seconds * 2 + 30,
                    check=False,
                )
            if result.returncode != 0:
                print(f"{server.key}: trioiis bench exited {result.returncode}", file=sys.stderr)
                return 1
            rows.append(row(server.key, mode, json.loads(out.read_text())))
            print(" | ".join(rows[-1]), flush=True)
    text = markdown(rows, args)
    print(text)
    print(f"reports: {args.out}/*.json (trioiis bench compare {args.out}/*.json)")
    if not args.no_write:
        hello.write_results_section(SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
