"""The overhead of ``trioiis bench`` itself: how many requests/s it drives vs wrk (issue 6).

    .venv/bin/python benchmarks/bench_overhead.py [--duration 5] [--connections 50] [--rounds 3]

Starts ``benchmarks/raw_trio.py`` (the raw-Trio floor: no HTTP parsing, a canned answer) on a
free 127.0.0.1 port, then measures, interleaved (wrk, bench, wrk, bench, ...), ``--rounds``
times each:

* ``wrk -t1 -c50 -d5s http://127.0.0.1:PORT/``
* ``trioiis bench http://127.0.0.1:PORT/ -c 50 --duration 5 --quiet --json -``

and prints the median requests/s of each and their ratio (bench / wrk). The section
"trioiis bench overhead (issue 6)" of ``benchmarks/RESULTS.md`` is replaced (or added) with
the numbers and the commands (``--no-write`` to skip). The server is always stopped.
"""

from __future__ import annotations

import argparse
import json
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

SECTION = "## trioiis bench overhead (issue 6)"


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
    wrk_rates: list[float],
    bench_rates: list[float],
    wrk_cmd: str,
    bench_cmd: str,
    server_cmd: str,
    errors: int,
) -> str:
    wrk_median = statistics.median(wrk_rates)
    bench_median = statistics.median(bench_rates)
    ratio = bench_median / wrk_median if wrk_median else 0.0
    lines = [
        SECTION,
        "",
        "How many requests/s `trioiis bench` itself can drive, against the raw-Trio floor server",
        "(`benchmarks/raw_trio.py`, a canned answer), compared with wrk using one thread and the",
        f"same connection count. {len(wrk_rates)} interleaved rounds each, medians "
        f"(Python {platform.python_version()}).",
        "",
        "```sh",
        ".venv/bin/python benchmarks/bench_overhead.py",
        "```",
        "",
        "| load generator | requests/s (median) | rounds |",
        "|---|---:|---|",
        f"| wrk -t1 | {wrk_median:,.0f} | {', '.join(f'{r:,.0f}' for r in wrk_rates)} |",
        f"| trioiis bench | {bench_median:,.0f} | {', '.join(f'{r:,.0f}' for r in bench_rates)} |",
        "",
        f"Ratio trioiis bench / wrk: **{ratio:.2f}**"
        + (
            "."
            if ratio >= 1
            else f" — trioiis bench drives {1 / ratio:.1f}x fewer requests/s than wrk "
            "(a Python/Trio client with h11 parsing and an HdrHistogram per request vs wrk's C "
            "loop), so on a server faster than that the bench is the bottleneck: compare "
            "servers with wrk for raw throughput, and with trioiis bench for cancellation."
        ),
        f"trioiis bench errors over all rounds: {errors}.",
        "",
        "Commands (PORT is a free port):",
        "",
        f"* server: `{server_cmd}`",
        f"* wrk: `{wrk_cmd}`",
        f"* bench: `{bench_cmd}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds (default 5)")
    parser.add_argument("--connections", type=int, default=50, help="(default 50)")
    parser.add_argument("--rounds", type=int, default=3, help="(default 3)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2

    port = free_port()
    url = f"http://{HOST}:{port}/"
    server = [sys.executable, str(HERE / "raw_trio.py"), str(port)]
    wrk_cmd, bench_cmd = wrk_command(wrk, url, args), bench_command(url, args)
    wrk_rates: list[float] = []
    bench_rates: list[float] = []
    errors = 0
    with tempfile.TemporaryFile() as server_log:
        process = subprocess.Popen(server, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log)
        try:
            wait_until_accepting(process, port)
            for round_number in range(1, args.rounds + 1):
                wrk_rates.append(run_wrk(wrk_cmd, args.duration))
                rate, counts = run_bench(bench_cmd, args.duration)
                bench_rates.append(rate)
                errors += counts["errors"]
                print(
                    f"round {round_number}: wrk {wrk_rates[-1]:,.0f} req/s, "
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

    def shown(command: list[str]) -> str:
        text = shlex.join(command).replace(str(port), "PORT")
        return text.replace(str(ROOT) + "/", "").replace(sys.executable, ".venv/bin/python")

    wrk_median, bench_median = statistics.median(wrk_rates), statistics.median(bench_rates)
    print(f"wrk -t1:        {wrk_median:,.0f} req/s (median of {args.rounds})")
    print(f"trioiis bench:  {bench_median:,.0f} req/s (median of {args.rounds})")
    print(f"ratio bench/wrk: {bench_median / wrk_median:.2f}")
    if not args.no_write:
        write_results_section(
            SECTION,
            section(
                wrk_rates,
                bench_rates,
                shown(wrk_cmd),
                shown(bench_cmd),
                shown(server),
                errors,
            ),
        )
        print(f"written: {RESULTS.relative_to(ROOT)}, section {SECTION[3:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
