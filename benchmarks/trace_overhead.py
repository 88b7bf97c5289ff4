"""What the tracing hooks cost: ``GET /hello`` with tracing off, on, and without the hooks.

    .venv/bin/python benchmarks/trace_overhead.py [--duration 3] [--rounds 3] [--base REF]

Three ``trioiis serve examples/site --module hello=examples/modules/hello.py:register_module``
servers run side by side, each in a subprocess on a free 127.0.0.1 port:

* ``no hooks``: the code of ``--base`` (default: ``git merge-base HEAD main``, the commit
  this branch started from, before the hooks existed), exported with ``git archive`` into a
  temporary folder and run from there (``PYTHONPATH`` points at it);
* ``tracing off``: this tree, no ``--trace-dir`` (every hook is one ``is None`` branch);
* ``tracing on``: this tree, ``--trace-dir TMP --trace-when "status>=600"``, a rule that
  never matches (every request records its timeline, none is written).

After one warm-up run each, ``--rounds`` interleaved rounds (A B C, A B C, ...) of
``wrk -t1 -c50 -dNs`` measure requests/s; the medians and the ratios to ``no hooks`` are
printed and written as the section "Tracing overhead" of ``benchmarks/RESULTS.md``
(``--no-write`` to skip). Every server is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from compare import cpu_seconds
from hello import (
    HOST,
    RESULTS,
    ROOT,
    check_hello,
    free_port,
    stop,
    wait_until_accepting,
    write_results_section,
)

SECTION = "## Tracing overhead"
PATH = "/hello"


@dataclass
class Server:
    name: str
    tree: Path
    extra: list[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU µs per request

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "trioiis.cli",
            "serve",
            "examples/site",
            "--bind",
            f"{HOST}:{self.port}",
            "--module",
            "hello=examples/modules/hello.py:register_module",
            *self.extra,
        ]

    def start(self) -> None:
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": str(self.tree)}
        self.process = subprocess.Popen(
            self.command(),
            cwd=self.tree,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_accepting(self.process, self.port)
        check_hello(self.port)


def export(ref: str, folder: Path) -> str:
    """``git archive`` of ``ref`` into ``folder``; returns the commit's short hash."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    archive = folder / "base.tar"
    subprocess.run(["git", "archive", "-o", str(archive), commit], cwd=ROOT, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(folder / "tree", filter="data")
    return commit


def merge_base() -> str:
    return subprocess.run(
        ["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def wrk(binary: str, server: Server, seconds: int, connections: int) -> tuple[float, float]:
    """One wrk run: (requests/s, server CPU µs per request)."""
    assert server.process is not None
    url = f"http://{HOST}:{server.port}{PATH}"
    command = [binary, "-t1", f"-c{connections}", f"-d{seconds}s", url]
    cpu_before = cpu_seconds(server.process.pid)
    out = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 30, check=True
    ).stdout
    cpu = cpu_seconds(server.process.pid) - cpu_before
    rate = re.search(r"Requests/sec:\s*([\d.]+)", out)
    count = re.search(r"(\d+) requests in", out)
    if rate is None or count is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk did not measure 2xx answers:\n{out}")
    return float(rate.group(1)), cpu / max(1, int(count.group(1))) * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run (3)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3)")
    parser.add_argument("--connections", type=int, default=50, help="(50)")
    parser.add_argument("--base", default=None, help="git ref without the hooks (merge-base)")
    parser.add_argument("--no-write", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    binary = shutil.which("wrk")
    if binary is None:
        print("wrk is not installed (apt-get install -y wrk)", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        base = export(args.base or merge_base(), folder)
        traces = folder / "traces"
        servers = [
            Server("no hooks", folder / "tree", []),
            Server("tracing off", ROOT, []),
            Server(
                "tracing on",
                ROOT,
                ["--trace-dir", str(traces), "--trace-when", "status>=600"],
            ),
        ]
        try:
            for server in servers:
                server.start()
            for server in servers:  # warm-up, not counted
                wrk(binary, server, 1, args.connections)
            for number in range(1, args.rounds + 1):
                for server in servers:
                    rate, cpu_us = wrk(binary, server, args.duration, args.connections)
                    server.rates.append(rate)
                    server.cpu_us.append(cpu_us)
                print(
                    f"round {number}: "
                    + ", ".join(
                        f"{s.name} {s.rates[-1]:,.0f}/s {s.cpu_us[-1]:.0f} µs" for s in servers
                    ),
                    flush=True,
                )
        finally:
            for server in servers:
                if server.process is not None:
                    with contextlib.suppress(Exception):
                        stop(server.process)
        written = len(list(traces.glob("trace-*.json"))) if traces.exists() else 0

    medians = {s.name: statistics.median(s.rates) for s in servers}
    cpu = {s.name: statistics.median(s.cpu_us) for s in servers}
    floor, cpu_floor = medians["no hooks"], cpu["no hooks"]
    rows = [
        f"| {s.name} | {medians[s.name]:,.0f} | {medians[s.name] / floor:.3f} | "
        f"{cpu[s.name]:.0f} | {cpu[s.name] / cpu_floor:.3f} | "
        + ", ".join(f"{r:,.0f}" for r in s.rates)
        + " |"
        for s in servers
    ]
    off, on = medians["tracing off"], medians["tracing on"]
    summary = (
        f"Throughput, tracing off / no hooks: **{off / floor:.3f}**; tracing on (rule never "
        f"matches) / tracing off: **{on / off:.3f}**. Server CPU per request, tracing off / "
        f"no hooks: **{cpu['tracing off'] / cpu_floor:.3f}**; tracing on / tracing off: "
        f"**{cpu['tracing on'] / cpu['tracing off']:.3f}**. Trace files written: {written} "
        "(expected 0)."
    )
    table = "\n".join(
        [
            "| server | requests/s (median) | ratio | CPU µs/request (median) | ratio | "
            "requests/s per round |",
            "|---|---:|---:|---:|---:|---|",
            *rows,
        ]
    )
    print(table)
    print(summary)
    if not args.no_write:
        section = f"""{SECTION}

`GET /hello` (the `hello` example module, all default modules loaded) on three servers side
by side: the code before the tracing hooks (`{base}`, the merge-base with main), this tree
with tracing off, and this tree with `--trace-dir` and a rule that never matches
(`status>=600`: every request records its timeline, none is written). {args.rounds}
interleaved rounds of `wrk -t1 -c{args.connections} -d{args.duration}s` after a 1 s warm-up
each; medians (Python {platform.python_version()}). The machine has 2 cores shared with
other work, so requests/s swings with its load; the server's CPU time per request (utime +
stime from `/proc/PID/stat` around each run, divided by wrk's request count) is the steadier
figure.

```sh
.venv/bin/python benchmarks/trace_overhead.py --duration {args.duration} --rounds {args.rounds}
```

{table}

{summary}
"""
        write_results_section(SECTION, section)
        print(f"written: {RESULTS.relative_to(ROOT)}, section {SECTION[3:]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
