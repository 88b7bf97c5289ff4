"""Does a server get cheaper per request when many connections are busy at once?

    .venv/bin/python benchmarks/batching.py [--duration 3] [--rounds 2] [--only a,b,...]

For each server (the floors of ``compare.py``, a trio+h11 loop with a cancel scope per write
but no nursery, and trioiis), ``wrk -t1 -c1`` and then ``wrk -t1 -c50`` against ``/hello``,
alternating, and the server's CPU time per request from ``/proc`` (user + system, all its
threads). With one connection every request costs at least one readiness wake-up of its
own; with fifty, one ``epoll_wait`` can return many ready sockets and one scheduler pass run
many tasks, so a server that batches gets cheaper per request. Printed: CPU µs per request at
-c1 and -c50 (medians over the rounds) and their ratio. CPU time on a shared machine is
noisier than callgrind's counts: compare ratios within one run. Loopback only; every run is
bounded by wrk's duration; servers are stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare

SCOPE_ONLY = compare.Server(
    "trio+h11+scope",
    "trio + h11 with a cancel scope per write and no request nursery",
    lambda port: [sys.executable, "benchmarks/h11_trio.py", str(port), "--scope-only"],
)
DEFAULT = "trio+h11,trio+h11+scope,design-h11,trioiis,trio+httptools,design-httptools,trioiis-fast"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--rounds", type=int, default=2, help="c1/c50 pairs per server (2)")
    parser.add_argument("--only", default=DEFAULT, help=f"servers ({DEFAULT})")
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        parser.error("wrk is not on the PATH (apt-get install -y wrk)")
    servers = {s.key: s for s in (*compare.SERVERS, SCOPE_ONLY)}
    print("| server | CPU µs/request at -c1 | at -c50 | -c50 ÷ -c1 |\n|---|---|---|---|")
    for key in args.only.split(","):
        server = servers[key]
        single: list[float] = []
        many: list[float] = []
        with contextlib.ExitStack() as stack:
            running = compare.start(server, stack)
            for _ in range(args.rounds):
                single.append(compare.measure(wrk, running, 1, args.duration).cpu_us)
                many.append(compare.measure(wrk, running, 50, args.duration).cpu_us)
        one, fifty = statistics.median(single), statistics.median(many)
        print(f"| {key} | {one:.0f} | {fifty:.0f} | {fifty / one:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
