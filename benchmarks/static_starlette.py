"""Static files, trioiis against Starlette's StaticFiles under Hypercorn-trio and Uvicorn:
one command, bounded, installs nothing.

    .venv/bin/python benchmarks/static_starlette.py [--duration 5] [--rounds 3] [--no-write]

Needs ``wrk`` on the PATH and the ``bench`` extra (hypercorn, uvicorn) plus starlette. Makes
a temp folder with ``1k.bin`` and ``1m.bin`` of random bytes, serves it with
``trioiis serve FOLDER``, with ``StaticFiles(directory=FOLDER)`` under
``hypercorn --worker-class trio`` and under ``uvicorn --http httptools``, each on 127.0.0.1
and a free port, checks every server answers both files in full, then measures interleaved
rounds of ``wrk -t1 -c50`` (every server for 1K, then for 1M; ``--rounds`` times) and prints
the medians and the ratios trioiis ÷ peer. Writes the section "Static files vs Starlette
StaticFiles" of ``benchmarks/RESULTS.md`` unless ``--no-write``. Every server is
stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hello
import static

HOST = hello.HOST
SECTION = "## Static files vs Starlette StaticFiles"
APP = "static_starlette_app:app"  # benchmarks/static_starlette_app.py, folder from the env


def commands(folder: Path, ports: dict[str, int]) -> dict[str, list[str]]:
    return {
        "trioiis": static.trioiis_command(folder, ports["trioiis"]),
        "hypercorn-trio": [
            sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0",
            "--bind", f"{HOST}:{ports['hypercorn-trio']}", "--log-level", "warning",
            "benchmarks/static_starlette_app.py:app",
        ],
        "uvicorn-httptools": [
            sys.executable, "-m", "uvicorn", "--app-dir", "benchmarks", "--host", HOST,
            "--port", str(ports["uvicorn-httptools"]), "--http", "httptools", "--loop",
            "asyncio", "--no-access-log", "--log-level", "warning", APP,
        ],
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not on the PATH: apt-get install -y wrk", file=sys.stderr)
        return 2
    servers = ("trioiis", "hypercorn-trio", "uvicorn-httptools")
    rates: dict[tuple[str, str], list[float]] = {}
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="trioiis-static-") as temp:
        folder = Path(temp)
        for name, size in static.FILES.values():
            (folder / name).write_bytes(os.urandom(size))
        ports = {server: hello.free_port() for server in servers}
        env = {**os.environ, "STATIC_FOLDER": str(folder)}
        try:
            for server, argv in commands(folder, ports).items():
                processes.append(
                    subprocess.Popen(
                        argv, cwd=hello.ROOT, env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )  # fmt: skip
                hello.wait_until_accepting(processes[-1], ports[server])
                for name, size in static.FILES.values():
                    static.check(ports[server], name, size)
            for round_no in range(1, args.rounds + 1):
                for size, (name, _) in static.FILES.items():
                    for server in servers:
                        url = f"http://{HOST}:{ports[server]}/{name}"
                        rps, _, _ = static.run_wrk(wrk, url, args)
                        rates.setdefault((server, size), []).append(rps)
                        print(f"round {round_no} {server:18} {size}: {rps:8.0f} req/s", flush=True)
        finally:
            for process in processes:
                hello.stop(process)
    command = shlex.join([".venv/bin/python", "benchmarks/static_starlette.py", *sys.argv[1:]])
    lines = [
        SECTION,
        "",
        f"Command: `{command}` (wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"{args.rounds} interleaved rounds, medians; random bytes, so nothing is compressed).",
        "",
        "| file | " + " | ".join(f"{s} req/s" for s in servers) + " | trioiis ÷ Hypercorn-trio"
        " | trioiis ÷ Uvicorn |",
        "|---" * (len(servers) + 3) + "|",
    ]
    for size in static.FILES:
        medians = [statistics.median(rates[server, size]) for server in servers]
        cells = " | ".join(f"{m:,.0f}".replace(",", " ") for m in medians)
        lines.append(
            f"| {size} | {cells} | {medians[0] / medians[1]:.2f} | {medians[0] / medians[2]:.2f} |"
        )
    section = "\n".join(lines) + "\n"
    print(section)
    if not args.no_write:
        hello.write_results_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
