"""The event-loop watchdog's cost: hello through the full pipeline, watchdog on
(``watchdog_threshold = 0.5``, the default) and off (``0``), side by side.

    .venv/bin/python benchmarks/watchdog.py [--rounds 3] [--seconds 3]

Starts two ``trioiis serve`` processes on 127.0.0.1 (free ports; examples/site with the hello
module), waits for their serving lines, then runs ``trioiis bench URL/hello -c 10 -d S``
against each in turn, A B A B …, and prints completed requests per second for each run, the
medians and their ratio (on/off). Bounded: every run is S seconds, every wait 30 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
HELLO = "examples/modules/hello.py:register_module"


def start(folder: Path, name: str, threshold: float) -> tuple[subprocess.Popen[str], str]:
    config = folder / f"{name}.toml"
    config.write_text(
        f'root = "{REPO / "examples/site"}"\nbindings = ["127.0.0.1:0"]\n'
        f"watchdog_threshold = {threshold}\n"
    )
    process = subprocess.Popen(
        [str(BIN / "trioiis"), "serve", "--config", str(config), "-m", f"hello={HELLO}"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # the serving line comes first
        if line.startswith("trioiis serving"):
            return process, line.split(" on ")[1].strip()
    raise RuntimeError(f"{name}: no serving line")


def bench(url: str, seconds: float, out: Path) -> float:
    subprocess.run(
        [
            str(BIN / "trioiis"),
            "bench",
            url + "hello",
            "-c",
            "10",
            "-d",
            str(seconds),
            "-q",
            "--json",
            str(out),
        ],
        check=True,
        timeout=seconds + 30,
    )
    return float(json.loads(out.read_text())["throughput"]["completed_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        servers = {"on": start(folder, "on", 0.5), "off": start(folder, "off", 0)}
        try:
            rates: dict[str, list[float]] = {"on": [], "off": []}
            for _ in range(args.rounds):
                for name, (_, url) in servers.items():
                    rates[name].append(bench(url, args.seconds, folder / "out.json"))
        finally:
            for process, _ in servers.values():
                process.terminate()
                process.wait(timeout=30)
    for name, values in rates.items():
        runs = ", ".join(f"{v:,.0f}" for v in values)
        print(f"watchdog {name:3}: {runs}  median {statistics.median(values):,.0f} req/s")
    ratio = statistics.median(rates["on"]) / statistics.median(rates["off"])
    print(f"on/off: {ratio:.3f}")


if __name__ == "__main__":
    main()
