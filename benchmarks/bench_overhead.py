"""How many requests/s ``trioiis bench`` drives, next to ``wrk -t1``, against canned floors.

    .venv/bin/python benchmarks/bench_overhead.py [--duration 5] [--connections 50] [--rounds 3]
        [--floors raw_trio,httptools_trio] [--no-write]

For each floor server (``benchmarks/raw_trio.py``: no HTTP parsing, a canned answer;
``benchmarks/httptools_trio.py``: llhttp parsing, a canned answer), started on a free
127.0.0.1 port, it measures, interleaved (wrk, bench, wrk, bench, ...), ``--rounds`` times
each:

* ``wrk -t1 -c50 -d5s http://127.0.0.1:PORT/``
* ``trioiis bench http://127.0.0.1:PORT/ -c 50 --duration 5 --quiet --json -``

and prints the median requests/s of each and their ratio (bench / wrk; the goal is at least
0.5 per bench process). wrk is installed with apt-get when missing. The section "trioiis
bench overhead" of ``benchmarks/RESULTS.md`` is replaced (or added) with the numbers and the
commands (``--no-write`` to skip). Each server is always stopped; every run is bounded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hello import (
    HOST,
    RESULTS,
    ROOT,
    free_port,
    stop,
    wait_until_accepting,
    write_results_section,
)

HERE = Path(__file__).resolve().parent

SECTION = "## trioiis bench overhead"
FLOORS = {
    "raw_trio": "no HTTP parsing, canned answer",
    "httptools_trio": "llhttp parsing, canned answer",
}


def trioiis_program() -> list[str]:
    trioiis = ROOT / ".venv" / "bin" / "trioiis"
    return [str(trioiis)] if trioiis.exists() else [sys.executable, "-m", "trioiis.cli"]


def wrk_command(wrk: str, url: str, args: argparse.Namespace) -> list[str]:
    return [wrk, "-t1", f"-c{args.connections}", f"-d{round(args.duration)}s", url]


def bench_command(url: str, args: argparse.Namespace) -> list[str]:
    return [
        *trioiis_program(),
        "bench",
        url,
        "-c",
        str(args.connections),
        "--duration",
        f"{args.duration:g}",
        "--quiet",
        "--json",
        "-",
    ]


def ensure_wrk() -> str | None:
    """The path of wrk, installing the Debian package first when it is missing."""
    if (wrk := shutil.which("wrk")) is not None:
        return wrk
    prefix = [] if os.geteuid() == 0 else ["sudo", "-n"]
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        print("$", shlex.join(prefix + command), flush=True)
        if subprocess.run(prefix + command, check=False, timeout=600).returncode != 0:
            return None
    return shutil.which("wrk")


def run_wrk(command: list[str], duration: float) -> float:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration + 30, check=True
    )
    match = re.search(r"Requests/sec:\s*([\d.]+)", result.stdout)
    if match is None:
        raise RuntimeError(f"could not read Requests/sec from wrk: {result.stdout!r}")
    return float(match.group(1))


def run_bench(command: list[str], duration: float) -> tuple[float, dict[str, int]]:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=duration + 60, check=True
    )
    report = json.loads(result.stdout)
    requests = report["requests"]
    return float(report["throughput"]["completed_per_s"]), {
        "errors": int(requests["errors"]),
        "completed": int(requests["completed"]),
    }


def section(
    results: dict[str, dict[str, list[float]]], commands: dict[str, str], errors: int
) -> str:
    lines = [
        SECTION,
        "",
        "How many requests/s `trioiis bench` drives (one process, llhttp response parsing), next",
        "to wrk with one thread and the same 50 connections, against canned floor servers.",
        "Interleaved rounds (wrk, bench, wrk, bench, ...), medians; Python",
        f"{platform.python_version()}, 2 cores shared by the server, wrk or the bench, and other",
        f"users' work (load average {os.getloadavg()[0]:.1f} at the end), so the ratio moves",
        "with the machine's load. The goal is at least 0.5 per bench process.",
        "",
        "```sh",
        ".venv/bin/python benchmarks/bench_overhead.py",
        "```",
        "",
        "| floor server | wrk -t1 req/s | trioiis bench req/s | bench / wrk "
        "| rounds (wrk; bench) |",
        "|---|---:|---:|---:|---|",
    ]
    for floor, rates in results.items():
        wrk, bench = statistics.median(rates["wrk"]), statistics.median(rates["bench"])
        rounds = "; ".join(", ".join(f"{r:,.0f}" for r in rates[k]) for k in ("wrk", "bench"))
        lines.append(
            f"| `{floor}.py` ({FLOORS[floor]}) | {wrk:,.0f} | {bench:,.0f} | "
            f"**{bench / wrk:.2f}** | {rounds} |"
        )
    lines += [
        "",
        f"trioiis bench errors over all rounds: {errors}.",
        "",
        "Commands (PORT is a free port):",
        "",
        *(f"* {name}: `{command}`" for name, command in commands.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="(default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="(default 3)")
    parser.add_argument("--floors", default=",".join(FLOORS), help="(default: all)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    if wrk is None:
        print("wrk is not installed and apt-get could not install it", file=sys.stderr)
        return 2

    results: dict[str, dict[str, list[float]]] = {}
    commands: dict[str, str] = {}
    errors = 0
    for floor in args.floors.split(","):
        port = free_port()
        url = f"http://{HOST}:{port}/"
        server = [sys.executable, str(HERE / f"{floor}.py"), str(port)]
        wrk_cmd, bench_cmd = wrk_command(wrk, url, args), bench_command(url, args)
        rates: dict[str, list[float]] = {"wrk": [], "bench": []}
        with tempfile.TemporaryFile() as server_log:
            process = subprocess.Popen(
                server, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log
            )
            try:
                wait_until_accepting(process, port)
                for round_number in range(1, args.rounds + 1):
                    rates["wrk"].append(run_wrk(wrk_cmd, args.duration))
                    rate, counts = run_bench(bench_cmd, args.duration)
                    rates["bench"].append(rate)
                    errors += counts["errors"]
                    print(
                        f"{floor} round {round_number}: wrk {rates['wrk'][-1]:,.0f} req/s, "
                        f"trioiis bench {rate:,.0f} req/s ({counts['errors']} errors)",
                        flush=True,
                    )
            except Exception:
                stop(process)
                server_log.seek(0)
                sys.stderr.write(server_log.read().decode(errors="replace"))
                raise
            finally:
                stop(process)
        results[floor] = rates

        def shown(command: list[str], port: int = port) -> str:
            text = shlex.join(command).replace(str(port), "PORT")
            return text.replace(str(ROOT) + "/", "").replace(sys.executable, ".venv/bin/python")

        commands[f"server ({floor})"] = shown(server)
        commands["wrk"], commands["bench"] = shown(wrk_cmd), shown(bench_cmd)
        wrk_median = statistics.median(rates["wrk"])
        bench_median = statistics.median(rates["bench"])
        print(f"{floor}: wrk {wrk_median:,.0f}, bench {bench_median:,.0f}, "
              f"ratio {bench_median / wrk_median:.2f}")  # fmt: skip
    if not args.no_write:
        write_results_section(SECTION, section(results, commands, errors))
        print(f"written: {RESULTS.relative_to(ROOT)}, section {SECTION[3:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
