"""Cancellation benchmark scenarios for ``trioiis bench``: one command, bounded, loopback only.

    .venv/bin/python benchmarks/scenarios/run.py NAME|all [--duration 3] [--connections 20]
                                                [--plot-dir DIR] [--json-dir DIR]

Each scenario starts ``trioiis serve examples/site`` on a free 127.0.0.1 port with the
``status`` module and the modules it needs (from ``examples/modules`` and
``benchmarks/scenarios/modules.py``), runs ``trioiis bench`` against it with the scenario's
arguments (bounded by ``--duration`` and a subprocess timeout), prints the report, and always
stops the server. See ``SCENARIOS`` below and ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hello import HOST, ROOT, free_port, stop, wait_until_accepting

HERE = Path(__file__).resolve().parent
SCENARIO_MODULES = "benchmarks/scenarios/modules.py:register_module"


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str
    modules: tuple[str, ...]  # --module values, besides "status"
    path: str
    bench: tuple[str, ...]  # trioiis bench arguments, besides URL, -c and --duration


SCENARIOS = {
    s.name: s
    for s in (
        Scenario(
            "hello",
            "GET /hello answered by examples/modules/hello.py; no aborts",
            ("hello=examples/modules/hello.py:register_module",),
            "/hello",
            (),
        ),
        Scenario(
            "static",
            "GET /index.html from the sample site (static_file); 10% aborted after 1 ms (RST)",
            (),
            "/index.html",
            ("--abort-share", "0.1", "--abort-after", "1", "--abort-mode", "rst"),
        ),
        Scenario(
            "slow-with-aborts",
            "GET /slow (50 ms); 30% abandoned after uniform 5-40 ms (FIN)",
            (f"scenario={SCENARIO_MODULES}",),
            "/slow",
            ("--abort-share", "0.3", "--abort-after", "uniform:5:40", "--abort-mode", "fin"),
        ),
        Scenario(
            "children",
            "GET /compose: a parent and two child requests (examples/modules/compose.py); "
            "20% abandoned after 1 ms",
            ("compose=examples/modules/compose.py:register_module",),
            "/compose",
            ("--abort-share", "0.2", "--abort-after", "1"),
        ),
        Scenario(
            "cancel-io-storm",
            "POST /storm (4 KiB body): the handler cancel_io()s its own body read after 5 ms, "
            "examples/modules/cancel_io_sample.py calls cancel_io() on every SEND_RESPONSE; "
            "half the requests send half their body and are abandoned 20 ms later",
            (
                f"scenario={SCENARIO_MODULES}",
                "cancel_io_sample=examples/modules/cancel_io_sample.py:register_module",
            ),
            "/storm",
            (
                "--method",
                "POST",
                "--body-size",
                "4096",
                "--abort-share",
                "0.5",
                "--abort-after",
                "20",
                "--abort-mode",
                "mid-body",
            ),
        ),
    )
}


def trioiis_program() -> list[str]:
    trioiis = ROOT / ".venv" / "bin" / "trioiis"
    return [str(trioiis)] if trioiis.exists() else [sys.executable, "-m", "trioiis.cli"]


def server_command(scenario: Scenario, port: int) -> list[str]:
    command = [*trioiis_program(), "serve", "examples/site", "--bind", f"{HOST}:{port}"]
    for module in ("status", *scenario.modules):
        command += ["--module", module]
    return command


def bench_command(scenario: Scenario, port: int, args: argparse.Namespace) -> list[str]:
    command = [
        *trioiis_program(),
        "bench",
        f"http://{HOST}:{port}{scenario.path}",
        "-c",
        str(args.connections),
        "--duration",
        f"{args.duration:g}",
        "--seed",
        "1",
        *scenario.bench,
    ]
    if args.plot_dir:
        command += ["--plot", str(Path(args.plot_dir) / f"{scenario.name}.svg")]
    if args.json_dir:
        command += ["--json", str(Path(args.json_dir) / f"{scenario.name}.json")]
    return command


def run_scenario(scenario: Scenario, args: argparse.Namespace) -> int:
    port = free_port()
    server = server_command(scenario, port)
    bench = bench_command(scenario, port, args)
    print(f"=== {scenario.name}: {scenario.what}", flush=True)
    print(f"server: {shlex.join(server)}", flush=True)
    print(f"bench:  {shlex.join(bench)}", flush=True)
    with tempfile.TemporaryFile() as server_log:
        process = subprocess.Popen(server, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log)
        try:
            wait_until_accepting(process, port)
            result = subprocess.run(bench, cwd=ROOT, timeout=args.duration + 60, check=False)
        finally:
            stop(process)
        if result.returncode != 0:
            server_log.seek(0)
            sys.stderr.write(server_log.read().decode(errors="replace")[-4000:])
    print(flush=True)
    return result.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=[*SCENARIOS, "all"], help="a scenario, or all")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds each (default 3)")
    parser.add_argument("--connections", type=int, default=20, help="(default 20)")
    parser.add_argument("--plot-dir", help="write NAME.svg there (needs matplotlib)")
    parser.add_argument("--json-dir", help="write NAME.json there")
    args = parser.parse_args(argv)
    if not 0 < args.duration <= 60:
        parser.error("--duration must be between 0 and 60 seconds")
    for folder in (args.plot_dir, args.json_dir):
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
    names = list(SCENARIOS) if args.name == "all" else [args.name]
    failed = [name for name in names if run_scenario(SCENARIOS[name], args) != 0]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
