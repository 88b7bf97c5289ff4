"""Hello throughput with one process vs ``--workers 2``, side by side.

    .venv/bin/python benchmarks/workers.py [--duration 5] [--rounds 2] [--connections 50]

Runs ``trioiis serve examples/site --module hello=…`` as one process (A) and with
``--workers 2`` (B), interleaved A B A B so that noise from other work on the machine hits
both; each run waits for the ``trioiis serving`` line (printed once every worker is ready),
checks ``/hello``, measures with ``wrk -t1`` and stops the server (SIGTERM). Prints each run,
the medians and the ratio B/A, and records them in benchmarks/RESULTS.md (``--no-record``
to skip). Needs wrk (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import os
import re
import select
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hello import (
    ROOT,
    check_hello,
    free_port,
    run_wrk,
    server_command,
    stop,
    write_results_section,
)

HEADING = "## Worker processes: hello, 1 process vs --workers 2"
START_TIMEOUT = 30.0


def start(port: int, workers: int) -> subprocess.Popen[bytes]:
    command = server_command(port) + (["--workers", str(workers)] if workers else [])
    with tempfile.TemporaryFile() as errors:  # the server's stderr, shown if it fails
        # Unbuffered: a line read never leaves the next one in a buffer select cannot see.
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, bufsize=0
        )
        assert process.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        line = b""
        while not line.startswith(b"trioiis serving"):
            left = deadline - time.monotonic()
            readable, _, _ = select.select([process.stdout], [], [], max(left, 0))
            line = process.stdout.readline() if readable else b""
            if not line:
                stop(process)
                errors.seek(0)
                sys.stderr.write(errors.read().decode(errors="replace")[-2000:])
                raise RuntimeError(f"no serving line within {START_TIMEOUT} s")
    check_hello(port)
    return process


def measure(wrk: str, workers: int, args: argparse.Namespace) -> tuple[float, str]:
    port = free_port()
    process = start(port, workers)
    try:
        return run_wrk(wrk, port, args)
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds a run (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--connections", type=int, default=50, help="(default 50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--no-record", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2
    runs: dict[int, list[float]] = {0: [], 2: []}
    wrk_command = ""
    for round_number in range(1, args.rounds + 1):
        for workers in (0, 2):
            rate, wrk_command = measure(wrk, workers, args)
            runs[workers].append(rate)
            label = "--workers 2" if workers else "1 process"
            print(f"round {round_number}: {label}: {rate:,.0f} req/s", flush=True)
    one, two = statistics.median(runs[0]), statistics.median(runs[2])
    ratio = two / one
    print(f"median: 1 process {one:,.0f} req/s, --workers 2 {two:,.0f} req/s; ratio {ratio:.2f}")
    if not args.no_record:
        command = shlex.join(["python", "benchmarks/workers.py", *(argv or sys.argv[1:])])
        each = ", ".join
        shown_wrk = re.sub(r":\d+/", ":PORT/", wrk_command)
        write_results_section(
            HEADING,
            f"{HEADING}\n\n"
            f"`{command}` (wrk: `{shown_wrk}`), runs"
            f" interleaved A B A B; `GET /hello` from examples/modules/hello.py.\n\n"
            f"| server | runs (req/s) | median |\n|---|---|---|\n"
            f"| 1 process | {each(f'{r:,.0f}' for r in runs[0])} | {one:,.0f} |\n"
            f"| `--workers 2` | {each(f'{r:,.0f}' for r in runs[2])} | {two:,.0f} |\n\n"
            f"Ratio `--workers 2` / 1 process: **{ratio:.2f}**. The machine has 2 cores, and wrk"
            f" itself needs one of them, and other agents were using the CPU at the same time"
            f" (1-minute load average {os.getloadavg()[0]:.1f} at the end of the run), so the"
            f" absolute numbers are low and noisy; a clean 2x is not possible here.\n",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
