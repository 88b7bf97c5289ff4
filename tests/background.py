"""Fresh virtual environments made while the rest of the suite runs.

Making one is pip's work in a subprocess (half a minute each), not the code under test: the
session starts it as soon as collection has selected a test that needs it (conftest.py), and
that test waits for it. Each preparation is a command run in an empty folder of its own,
removed at the end of the session.

When the tests run in pytest-xdist's worker processes, the controller starts the
preparations (it alone sees every worker's collection) in folders under the directory named by
``$TRIOIIS_TEST_PREPARATIONS``, which the workers inherit. A preparation's process holds an
exclusive lock on its folder's ``lock`` file until it ends, having written its exit status to
``status``: any process waits for it by taking that lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
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


#: The environment variable naming the folder of every preparation started for this session.
SHARED = "TRIOIIS_TEST_PREPARATIONS"


_own_folder: list[Path] = []  # the folder of preparations, if this process made it


def share() -> None:
    """Name a folder for this session's preparations, for the processes it starts later."""
    if SHARED not in os.environ:
        _own_folder.append(Path(tempfile.mkdtemp(prefix="trioiis-preparations-")))
        os.environ[SHARED] = str(_own_folder[0])


def _folder(name: str) -> Path:
    return Path(os.environ[SHARED]) / name


def _wait(folder: Path) -> Path:
    """The folder, once its command succeeded (else the test fails with its output)."""
    with (folder / "lock").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_SH)  # granted when the preparation's process has ended
    log = (folder / "output.log").read_text()
    status = folder / "status"  # written when the command ended within the time allowed
    assert status.exists(), f"not ready in {TIMEOUT} s: {log}"
    assert status.read_text().strip() == "0", log
    return folder


_started: dict[str, subprocess.Popen[bytes]] = {}


def start(names: set[str]) -> None:
    share()
    for name in sorted(names - set(_started)):
        _, command, env = PREPARATIONS[name]
        folder = _folder(name)
        folder.mkdir()
        # The lock's open file is inherited by the command and its children: released when
        # the last of them ends. ``timeout`` leads a process group of its own, which it (and
        # finish) can kill whole.
        with (folder / "lock").open("wb") as lock, (folder / "output.log").open("wb") as out:
            fcntl.flock(lock, fcntl.LOCK_EX)
            wrapped = ["timeout", str(TIMEOUT), "sh", "-c", '"$@"; echo $? > status', "sh"]
            _started[name] = subprocess.Popen(
                [*wrapped, *command(folder)],
                cwd=folder,
                env=env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                pass_fds=(lock.fileno(),),
            )


def ready(name: str) -> Path:
    """The folder of preparation ``name``, started now if no process of the session did."""
    if SHARED not in os.environ or not _folder(name).exists():
        start({name})
    return _wait(_folder(name))


def finish() -> None:
    """Stop what this process started and is still running, and remove every folder."""
    for process in _started.values():
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    _started.clear()
    for folder in _own_folder:
        shutil.rmtree(folder, ignore_errors=True)
    _own_folder.clear()
