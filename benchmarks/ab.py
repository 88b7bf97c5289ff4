"""A/B: ``GET /hello`` throughput of two git revisions of trioiis, interleaved in one run.

    .venv/bin/python benchmarks/ab.py BASE [NEW] [--rounds 5] [--duration 3] [--http h11]

Checks out each revision into a temporary git worktree (``NEW`` defaults to the work tree as it
is, uncommitted changes included), starts each in turn with the same command as
``benchmarks/hello.py`` (``PYTHONPATH`` pointing at that checkout), drives it with
``wrk -t1 -c50`` and alternates A B A B ... so that the machine's noise falls on both. Prints
each round, the medians and the ratio NEW/BASE, in requests/s and in server CPU microseconds
per request (utime + stime of the server process over the wrk run: steadier than requests/s
on a busy machine). Bounded: rounds x 2 wrk runs of ``duration``
seconds; the worktrees are removed at the end. Needs wrk (``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import compare
import hello

ROOT = hello.ROOT


@contextlib.contextmanager
def checkout(revision: str | None) -> Iterator[Path]:
    """The tree to run: ROOT itself for None, else a temporary worktree of ``revision``."""
    if revision is None:
        yield ROOT
        return
    folder = Path(tempfile.mkdtemp(prefix="trioiis-ab-"))
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(folder), revision],
        check=True,
    )
    try:
        yield folder
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder)], check=False
        )
        shutil.rmtree(folder, ignore_errors=True)


def measure(tree: Path, wrk: str, args: argparse.Namespace) -> tuple[float, float]:
    """(requests/s, server CPU microseconds per request) for one wrk run."""
    port = hello.free_port()
    command = [sys.executable, "-m", "trioiis.cli", *hello.server_command(port)[1:]]
    if args.http != "h11":
        command += ["--http", args.http]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    process = subprocess.Popen(command, cwd=tree, env=env, stderr=subprocess.DEVNULL)
    try:
        hello.wait_until_accepting(process, port)
        hello.check_hello(port)
        cpu_before = compare.cpu_seconds(process.pid)
        out = subprocess.run(
            [wrk, "-t1", "-c50", f"-d{args.duration}s", f"http://{hello.HOST}:{port}/hello"],
            capture_output=True,
            text=True,
            timeout=args.duration + 30,
            check=True,
        ).stdout
        cpu = compare.cpu_seconds(process.pid) - cpu_before
    finally:
        hello.stop(process)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None:
        raise RuntimeError(f"no request count in wrk's output:\n{out}")
    return float(rate.group(1)), cpu / int(count.group(1)) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="git revision to compare against (e.g. main~1)")
    parser.add_argument("new", nargs="?", help="git revision (default: the work tree as it is)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--http", default="h11", help="--http value for NEW's server")
    args = parser.parse_args()
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed: apt-get install -y wrk", file=sys.stderr)
        return 2
    base_runs: list[tuple[float, float]] = []
    new_runs: list[tuple[float, float]] = []
    with checkout(args.base) as base_tree, checkout(args.new) as new_tree:
        for round_number in range(1, args.rounds + 1):
            http, args.http = args.http, "h11"  # BASE always runs its default parser
            base_runs.append(measure(base_tree, wrk, args))
            args.http = http
            new_runs.append(measure(new_tree, wrk, args))
            (base_rate, base_cpu), (new_rate, new_cpu) = base_runs[-1], new_runs[-1]
            print(
                f"round {round_number}: base {base_rate:.0f} req/s {base_cpu:.0f} us/req"
                f"  new {new_rate:.0f} req/s {new_cpu:.0f} us/req"
            )
    for index, unit in ((0, "req/s"), (1, "CPU us/req")):
        base = statistics.median(run[index] for run in base_runs)
        new = statistics.median(run[index] for run in new_runs)
        print(f"median {unit}: base {base:.0f}  new {new:.0f}  ratio new/base {new / base:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
