"""How long ``trioiis.testing.check_cancellation_safety`` takes, this tree against a base
revision, interleaved in one run.

    .venv/bin/python benchmarks/kit.py [--base main] [--rounds 3]

Two workloads, each checked in all three modes (client disconnect, ``cancel_io()``, server
shutdown) at every checkpoint, as a module author's test would:

* ``upload``: ``examples/modules/upload_safe.py`` with a 12-byte ``PUT /upload``;
* ``100 checkpoints``: a module awaiting ``trio.lowlevel.checkpoint()`` in a loop, sized so that the
  request reaches 100 checkpoints (so 1 clean run + 300 cancelled ones).

Each measurement runs in a fresh interpreter (``PYTHONPATH`` pointing at the tree) and the
revisions alternate A B A B ... so that the machine's noise falls on both; the medians and
the ratio this tree / base are printed. The base is checked out into a temporary git
worktree (``ab.checkout``), removed at the end. Bounded: rounds x 2 x 2 runs of a few
seconds each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import ab

ROOT = ab.ROOT
UPLOAD = b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nhello world!"
GET = b"GET /loop HTTP/1.1\r\nHost: x\r\n\r\n"
TARGET_CHECKPOINTS = 100


def loop_module(sleeps: int):  # -> (name, register_module)
    import trio

    import trioiis

    class Loop(trioiis.HttpModule):
        async def on_begin_request(self, ctx, provider):
            for _ in range(sleeps):
                await trio.lowlevel.checkpoint()
            ctx.response.write(b"done\n")
            return trioiis.Status.FINISH_REQUEST

    def register(version, info, server):
        info.set_request_notifications(
            trioiis.SimpleFactory(Loop), trioiis.Notification.BEGIN_REQUEST
        )

    return "loop", register


def worker() -> None:
    """In the measured tree: time both workloads, print JSON."""
    from examples.modules import upload_safe
    from trioiis.testing import check_cancellation_safety

    results = {}
    started = time.perf_counter()
    outcome = check_cancellation_safety(("upload", upload_safe.register_module), UPLOAD)
    results["upload"] = (time.perf_counter() - started, outcome.checkpoints)
    # Size the loop so that the request reaches TARGET_CHECKPOINTS (the server's own
    # checkpoints come on top of the module's).
    sleeps = TARGET_CHECKPOINTS
    probe = check_cancellation_safety(loop_module(sleeps), GET, modes=())
    sleeps -= probe.checkpoints - TARGET_CHECKPOINTS
    started = time.perf_counter()
    outcome = check_cancellation_safety(loop_module(sleeps), GET)
    results["100 checkpoints"] = (time.perf_counter() - started, outcome.checkpoints)
    print(json.dumps(results))


def measure(tree: Path) -> dict[str, tuple[float, int]]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker"],
        cwd=tree,
        env={"PYTHONPATH": f"{tree}:{ROOT / 'benchmarks'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return {k: (v[0], v[1]) for k, v in json.loads(done.stdout.splitlines()[-1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git revision to compare against")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    seconds: dict[tuple[str, str], list[float]] = {}
    checkpoints: dict[tuple[str, str], int] = {}
    with ab.checkout(args.base) as base:
        for round_number in range(1, args.rounds + 1):
            for label, tree in (("base", base), ("this", ROOT)):
                for workload, (took, count) in measure(tree).items():
                    seconds.setdefault((label, workload), []).append(took)
                    checkpoints[(label, workload)] = count
                    print(f"round {round_number} {label:4} {workload:16} {took:6.2f} s", flush=True)
    print(f"\nmedians of {args.rounds} rounds, all three modes at every checkpoint:")
    print(f"{'workload':16} {'checkpoints':>11} {'base s':>8} {'this s':>8} {'this/base':>9}")
    for workload in ("upload", "100 checkpoints"):
        old = statistics.median(seconds[("base", workload)])
        new = statistics.median(seconds[("this", workload)])
        count = checkpoints[("this", workload)]
        print(f"{workload:16} {count:>11} {old:8.2f} {new:8.2f} {new / old:8.2f}x")


if __name__ == "__main__":
    main()
