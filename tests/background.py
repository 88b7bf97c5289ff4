"""Fresh virtual environments made while the rest of the suite runs.

Making one is pip's work in a subprocess (half a minute each), not the code under test: the
session starts it as soon as collection has selected a test that needs it (conftest.py), on
the machine's other core, and that test waits for it. Each preparation is a command run in an
empty folder of its own, removed at the end of the session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Seconds a preparation may take (a venv and pip installs, on a shared machine).
TIMEOUT = 600


def clean_env() -> dict[str, str]:
    """This environment less what would let a fresh environment see trioiis's checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PYTEST"))}
    env.pop("VIRTUAL_ENV", None)
    return env


# A venv with pip, the checkout's wheel built into ``dist``, and that wheel installed alone.
_BARE_INSTALL = """\
import pathlib, subprocess, sys, venv
folder, root = pathlib.Path(sys.argv[1]), sys.argv[2]
venv.EnvBuilder(with_pip=True).create(folder / "venv")
python = str(folder / "venv" / "bin" / "python")
pip = [python, "-m", "pip", "-q"]
subprocess.run([*pip, "wheel", "--no-deps", "-w", str(folder / "dist"), root], check=True)
(wheel,) = (folder / "dist").glob("trioiis-*.whl")
subprocess.run([*pip, "install", str(wheel)], check=True)
"""

#: name -> (the test that needs it, the command for its folder, its environment)
PREPARATIONS: dict[str, tuple[str, Callable[[Path], list[str]], Callable[[], dict[str, str]]]] = {
    # The Makefile rule `make serve` uses, into a venv of its own (tests/test_docs.py).
    "newcomer": (
        "tests/test_docs.py::test_tutorial_example_runs_in_a_fresh_make_serve_environment",
        lambda folder: [
            "make",
            "-s",
            "-C",
            str(ROOT),
            f"VENV={folder}/.venv",
            f"{folder}/.venv/.installed-run",
        ],
        lambda: dict(os.environ),
    ),
    # `pip install trioiis` from the checkout's wheel (tests/test_testing_quickstart.py).
    "bare-install": (
        "tests/test_testing_quickstart.py::test_quickstart_in_a_fresh_venv_with_the_extra",
        lambda folder: [sys.executable, "-c", _BARE_INSTALL, str(folder), str(ROOT)],
        clean_env,
    ),
}


@dataclass
class Preparation:
    folder: Path
    process: subprocess.Popen[bytes]
    log: Path

    def wait(self) -> Path:
        """The folder, once the command succeeded (else the test fails with its output)."""
        try:
            status = self.process.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"not ready in {TIMEOUT} s: {self.log.read_text()}") from None
        assert status == 0, self.log.read_text()
        return self.folder


_started: dict[str, Preparation] = {}


def start(names: set[str]) -> None:
    for name in sorted(names - set(_started)):
        _, command, env = PREPARATIONS[name]
        folder = Path(tempfile.mkdtemp(prefix=f"trioiis-{name}-"))
        log = folder / "output.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                command(folder), cwd=folder, env=env(), stdout=out, stderr=subprocess.STDOUT
            )
        _started[name] = Preparation(folder, process, log)


def ready(name: str) -> Path:
    """The folder of preparation ``name``, started now if the session did not start it."""
    start({name})
    return _started[name].wait()


def finish() -> None:
    """Stop what is still running and remove every folder."""
    for preparation in _started.values():
        if preparation.process.poll() is None:
            preparation.process.kill()
            preparation.process.wait()
        shutil.rmtree(preparation.folder, ignore_errors=True)
    _started.clear()
