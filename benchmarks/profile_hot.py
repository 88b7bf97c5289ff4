"""Where trioiis spends its time under wrk load: pyinstrument on ``/hello`` and a 1 KiB file.

    .venv/bin/pip install pyinstrument      # a profiler, not a project dependency
    .venv/bin/python benchmarks/profile_hot.py [--target both] [--duration 10] [--top 10]

For each target, starts ``trioiis serve`` in a subprocess (this file with ``--serve``: the CLI
run in-process under pyinstrument's sampling profiler, ``async_mode="disabled"`` so every
trio task on the main thread is sampled), checks the URL answers 200, drives it with
``wrk -t1 -c50 -dDs``, stops it with SIGTERM and reads the saved session:

* ``hello``: ``examples/site`` with ``--module hello=examples/modules/hello.py:register_module``,
  ``GET /hello``;
* ``static``: a temporary folder holding ``kib.txt`` (1 KiB), served by the built-in
  static file module, ``GET /kib.txt``.

It prints the functions with the most self time and the most inclusive time, as shares of
the samples taken inside ``trio.run`` minus those waiting in epoll (start-up is left out),
plus the CPU split between the main thread and trio's worker threads (which pyinstrument
does not sample) from ``/proc/PID/task``. Bounded: one wrk run per target, every wait
bounded, the server stopped in a ``finally``. Installs nothing; loopback only.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare  # /proc readers, check, start/stop conventions
import hello

ROOT = hello.ROOT
HOST = hello.HOST
TRIO_RUN = ("run", "trio/_core/_run.py")  # samples inside trio.run count
IDLE = ("get_events", "trio/_core/_io_epoll.py")  # trio's epoll wait: idle, not work


def serve_profiled(session_path: str, interval: float, cli_args: list[str]) -> int:
    """Run ``trioiis`` in this process under pyinstrument; save the session at exit."""
    from pyinstrument import Profiler

    from trioiis import cli

    profiler = Profiler(interval=interval, async_mode="disabled")
    profiler.start()
    try:
        return cli.main(cli_args)
    finally:
        profiler.stop().save(session_path)


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of the main thread and of all other threads of ``pid``."""
    main = other = 0.0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                text = f.read()
        except OSError:
            continue  # a worker thread that just exited
        fields = text[text.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / compare.CLK_TCK
        if int(tid) == pid:
            main += seconds
        else:
            other += seconds
    return main, other


def check_ok(port: int, path: str) -> None:
    request = f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((HOST, port), timeout=5.0) as sock:
        sock.sendall(request.encode())
        sock.settimeout(5.0)
        response = b""
        while len(response) < 65536 and (chunk := sock.recv(65536)):
            response += chunk
    if not response.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"GET {path} did not answer 200: {response[:300]!r}")


def _is(identifier: str, function: str, file_suffix: str) -> bool:
    name, _, rest = identifier.partition("\x00")
    return name == function and rest.partition("\x00")[0].endswith(file_suffix)


def _name(identifier: str) -> tuple[str, str]:
    function, _, rest = identifier.partition("\x00")
    file, _, line = rest.partition("\x00")
    short = file
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            short = file.split(marker, 1)[1]
            break
    return function, f"{short}:{line}"


def report(session_path: str, top: int) -> None:
    from pyinstrument.session import Session

    session = Session.load(session_path)
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    busy = idle = 0.0
    for stack, duration in session.frame_records:
        ids = [frame.split("\x01", 1)[0] for frame in stack]
        if not any(_is(i, *TRIO_RUN) for i in ids):
            continue  # start-up and shut-down outside trio.run
        if any(_is(i, *IDLE) for i in ids):
            idle += duration  # the scheduler waiting in (or just back from) epoll
            continue
        where = _name(ids[-1])[1]
        busy += duration
        self_time[ids[-1]] += duration
        for identifier in set(ids):
            inclusive[identifier] += duration
        package = (
            "trioiis"
            if where.startswith("trioiis/")
            else "examples"
            if where.startswith("examples/")
            else where.split("/", 1)[0].split(".", 1)[0].split(":", 1)[0]
        )
        packages[package] += duration
    total = busy + idle
    print(
        f"samples in trio.run: {total:.2f} s, of which waiting in epoll {idle:.2f} s "
        f"({100 * idle / total if total else 0:.1f}%); shares below are of the {busy:.2f} s busy"
    )
    print("\nself time by package (leaf frame):")
    for package, seconds in packages.most_common(8):
        print(f"  {100 * seconds / busy:5.1f}%  {package}")
    print(f"\ntop {top} by self time:")
    for identifier, seconds in self_time.most_common(top):
        function, where = _name(identifier)
        print(f"  {100 * seconds / busy:5.1f}%  {function:<40} {where}")
    print(f"\ntop {3 * top} by inclusive time (each function once per sample):")
    # The stem every sample shares (the CLI, trio.run, the task runner) says nothing.
    below_stem = [(i, t) for i, t in inclusive.most_common() if t < 0.97 * busy]
    for identifier, seconds in below_stem[: 3 * top]:
        function, where = _name(identifier)
        print(f"  {100 * seconds / busy:5.1f}%  {function:<40} {where}")


def profile_target(target: str, args: argparse.Namespace, wrk: str, workdir: Path) -> None:
    port = hello.free_port()
    if target == "hello":
        site, path = "examples/site", "/hello"
        extra = ["--module", "hello=examples/modules/hello.py:register_module"]
    else:
        site_dir = workdir / "static"
        site_dir.mkdir()
        (site_dir / "kib.txt").write_bytes((b"0123456789abcde\n" * 64)[: args.size])
        site, path, extra = str(site_dir), "/kib.txt", []
    session_path = str(workdir / f"{target}.pyisession")
    cli_args = ["serve", site, "--bind", f"{HOST}:{port}", *extra]
    command = [
        sys.executable,
        __file__,
        "--serve",
        session_path,
        "--interval",
        str(args.interval),
        "--",
        *cli_args,
    ]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            hello.wait_until_accepting(process, port)
            check_ok(port, path)
            main_before, other_before = thread_cpu(process.pid)
            out = subprocess.run(
                [wrk, "-t1", "-c50", f"-d{args.duration}s", f"http://{HOST}:{port}{path}"],
                capture_output=True,
                text=True,
                check=True,
                timeout=args.duration + compare.WRK_SLACK,
            ).stdout
            main_after, other_after = thread_cpu(process.pid)
        finally:
            hello.stop(process)
        if not os.path.exists(session_path):
            log.seek(0)
            raise RuntimeError(f"no session saved; server stderr:\n{log.read().decode()}")
    rate = next((line for line in out.splitlines() if "Requests/sec" in line), "?").strip()
    main_cpu, other_cpu = main_after - main_before, other_after - other_before
    print(f"\n=== {target}: GET {path} under pyinstrument, wrk -t1 -c50 -d{args.duration}s")
    print(f"server: .venv/bin/trioiis {' '.join(cli_args)}  (port {port})")
    print(f"wrk {rate} (profiled, so slower than unprofiled)")
    print(
        f"CPU during the run: main thread {main_cpu:.2f} s, other threads {other_cpu:.2f} s "
        "(trio.to_thread workers; pyinstrument samples the main thread only)"
    )
    report(session_path, args.top)
    if args.keep:
        kept = Path(tempfile.gettempdir()) / f"trioiis-{target}.pyisession"
        shutil.copy(session_path, kept)
        print(f"session kept: {kept} (pyinstrument --load {kept} -r html -o out.html)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=["hello", "static", "both"], default="both")
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk (10)")
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval (1 ms)")
    parser.add_argument("--size", type=int, default=1024, help="static file bytes (1024)")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep the sessions in the temp dir")
    parser.add_argument("--serve", metavar="SESSION", help=argparse.SUPPRESS)
    parser.add_argument("cli_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve_profiled(args.serve, args.interval, args.cli_args)
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        print("pyinstrument is not installed: .venv/bin/pip install pyinstrument", file=sys.stderr)
        return 2
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not on the PATH (apt-get install -y wrk)", file=sys.stderr)
        return 2
    if not 1 <= args.duration <= 120:
        parser.error("--duration must be between 1 and 120 seconds")
    targets = ["hello", "static"] if args.target == "both" else [args.target]
    with tempfile.TemporaryDirectory(prefix="trioiis-profile-") as workdir:
        for target in targets:
            profile_target(target, args, wrk, Path(workdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
