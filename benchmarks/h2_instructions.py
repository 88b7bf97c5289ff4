"""HTTP/2 instructions per request under callgrind, h2load ``-c 10 -m 10``: a noise-free A/B
of the HTTP/2 driver for a busy 2-core machine.

    .venv/bin/python benchmarks/h2_instructions.py [--requests 3000] [--warmup 1000]
        [--rev REV ...] [--no-hypercorn] [--no-write]

Each server is started under ``valgrind --tool=callgrind --instr-atstart=no`` on 127.0.0.1
and a free port (prior-knowledge h2c): trioiis with the hello module
(``examples/modules/hello.py``, ``max_requests_per_connection = 0``), each ``--rev`` the same
as of that git revision (a temporary worktree), Hypercorn's Trio worker with
``benchmarks/asgi_h2_apps.py`` (``/hello``, a raw ASGI app) unless ``--no-hypercorn``, and
the floors of ``benchmarks/h2_trio.py`` unless ``--no-floors``: trio + h2 answering at once,
and the design floor (a task, a nursery and a cancel scope per stream, one writer task).
``h2load -c 10 -m 10 -n WARMUP`` warms it up; then instrumentation is turned on
(``callgrind_control -i on``), ``h2load -c 10 -m 10 -n REQUESTS`` runs, instrumentation is
turned off and the counts dumped. The server's instructions divided by the requests is the
number reported (within about 1 % from run to run: ``PYTHONHASHSEED`` is fixed; what varies
is how many streams each read happens to carry). Writes the table and the command as the
section "HTTP/2 instructions per request (issue 21)" of benchmarks/RESULTS.md unless
``--no-write``. Needs valgrind and h2load (``apt-get install -y valgrind nghttp2-client``);
installs nothing. Bounded: every wait has a timeout, every server is stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab
import hello
from instructions import Callgrind, connect

ROOT = hello.ROOT
HOST = "127.0.0.1"
SECTION = "## HTTP/2 instructions per request (issue 21)"
H2LOAD_TIMEOUT = 600.0
CONFIG = """\
[limits]
max_requests_per_connection = 0

[[modules]]
name = "hello"
target = "{tree}/examples/modules/hello.py:register_module"
"""


def _trioiis(tree: Path, work: Path, port: int) -> list[str]:
    conf = work / f"trioiis-{abs(hash(tree))}.toml"
    conf.write_text(CONFIG.format(tree=tree))
    return [
        sys.executable, "-m", "trioiis.cli", "serve", str(work), "--config", str(conf),
        "--bind", f"{HOST}:{port}", "--log-level", "ERROR",
    ]  # fmt: skip


def _hypercorn(port: int) -> list[str]:
    return [
        sys.executable, "-m", "hypercorn", "--worker-class", "trio", "--workers", "0",
        "--bind", f"{HOST}:{port}", "--keep-alive", "75", "--log-level", "error",
        "benchmarks/asgi_h2_apps.py:app",
    ]  # fmt: skip


def _h2load(port: int, count: int) -> None:
    argv = ["h2load", "-c", "10", "-m", "10", "-n", str(count), f"http://{HOST}:{port}/hello"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=H2LOAD_TIMEOUT)
    if done.returncode != 0 or f"{count} succeeded" not in done.stdout:
        raise RuntimeError(f"h2load: {done.stdout[-600:]} {done.stderr[-300:]}")


def measure(argv: list[str], cwd: Path, port: int, args: argparse.Namespace) -> float:
    """Instructions per request of the server ``argv`` under h2load."""
    with Callgrind(argv, cwd=cwd, env={"ASGI_H2_ROOT": str(cwd)}) as server:
        assert server.process is not None
        connect(server.process, port).close()  # (accepting, within START_TIMEOUT)
        _h2load(port, args.warmup)
        with server.counting():
            _h2load(port, args.requests)
    return server.total / args.requests


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=1000)
    parser.add_argument("--rev", action="append", default=[])
    parser.add_argument("--no-hypercorn", action="store_true")
    parser.add_argument("--no-floors", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        trees = [("trioiis", ROOT)]
        for rev in args.rev:
            trees.append((f"trioiis@{rev}", stack.enter_context(ab.checkout(rev))))
        for name, tree in trees:
            port = hello.free_port()
            counts[name] = measure(_trioiis(tree, work, port), tree, port, args)
            print(f"{name:20} {counts[name]:12,.0f} instructions/request", flush=True)
        if not args.no_hypercorn:
            port = hello.free_port()
            counts["hypercorn-trio"] = measure(_hypercorn(port), ROOT, port, args)
            print(f"hypercorn-trio       {counts['hypercorn-trio']:12,.0f}", flush=True)
        if not args.no_floors:
            for name, extra in (("trio + h2", []), ("trio + h2 design floor", ["--design"])):
                port = hello.free_port()
                floor = [sys.executable, "benchmarks/h2_trio.py", str(port), *extra]
                counts[name] = measure(floor, ROOT, port, args)
                print(f"{name:20} {counts[name]:12,.0f}", flush=True)
    base = counts["trioiis"]
    rows = [
        "| server | instructions/request | ÷ trioiis |",
        "|---|---:|---:|",
        *(f"| {name} | {count:,.0f} | {count / base:.2f} |" for name, count in counts.items()),
    ]
    command = " ".join(["benchmarks/h2_instructions.py", *(argv or sys.argv[1:])])
    section = "\n".join(
        [
            SECTION,
            "",
            f"`.venv/bin/python {command}` ({time.strftime('%Y-%m-%d')}): each server under "
            f"callgrind, `h2load -c 10 -m 10 -n {args.requests}` (prior-knowledge h2c, "
            f"`GET /hello`) after {args.warmup} of warm-up; machine instructions the server "
            "executed per request.",
            "",
            *rows,
            "",
        ]
    )
    print(section)
    if not args.no_write:
        hello.write_results_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
