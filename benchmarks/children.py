"""Cost of child requests: ``GET /compose`` (two buffered children) vs one static file.

    .venv/bin/python benchmarks/children.py [--duration 5] [--rounds 3]

Starts ``trioiis serve examples/site`` with ``examples/modules/compose.py`` in a subprocess
and measures, interleaved (plain, compose, plain, compose, ...), requests/s of
``/parts/header.html`` (one request through the pipeline) and ``/compose`` (a parent plus two
child requests, each through the whole pipeline). Needs ``wrk`` (``apt-get install -y wrk``);
it installs nothing itself. Prints each round, the medians, and their ratio.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hello  # the start/stop helpers of benchmarks/hello.py

ROOT = Path(__file__).resolve().parent.parent


def serve(port: int) -> subprocess.Popen[bytes]:
    command = [
        *hello.server_command(port)[:-2],
        "--module",
        "compose=examples/modules/compose.py:register_module",
    ]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    hello.wait_until_accepting(process, port)
    return process


def wrk(port: int, path: str, duration: int) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c50", f"-d{duration}s", f"http://127.0.0.1:{port}{path}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"{path} answered errors:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    port = hello.free_port()
    process = serve(port)
    try:
        plain, composed = [], []
        for i in range(args.rounds):
            plain.append(wrk(port, "/parts/header.html", args.duration))
            composed.append(wrk(port, "/compose", args.duration))
            print(f"round {i + 1}: plain {plain[-1]:.0f} req/s, compose {composed[-1]:.0f} req/s")
    finally:
        hello.stop(process)
    p, c = statistics.median(plain), statistics.median(composed)
    print(
        f"command: python benchmarks/children.py --duration {args.duration} --rounds {args.rounds}"
    )
    print(f"median: plain {p:.0f} req/s, compose (parent + 2 buffered children) {c:.0f} req/s")
    print(f"ratio compose/plain: {c / p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
