"""``trioiis serve --workers N`` and socket activation: real processes on 127.0.0.1 port 0.

The supervisor prints ``trioiis worker PID ready`` for each worker and then the usual
``trioiis serving`` line; tests wait for those lines, never sleep. To know which worker has a
request, the HOLD module below blocks its whole worker (its event loop) inside a handler
until the test writes a line to a FIFO: while one worker is held, every new connection must
be taken by another one, and opening the FIFO for writing returns exactly when the held
worker is inside the handler.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_cli import COMMAND, TIMEOUT, Cli, cli, write_module

READY = re.compile(r"^trioiis worker (\d+) ready$")

HOLD = """
import os
from pathlib import Path

import trioiis
from trioiis import Notification, Status

FIFO = {fifo!r}


class Hold(trioiis.HttpModule):
    async def on_begin_request(self, ctx, provider):
        ctx.response.set_header("X-Worker-Pid", str(os.getpid()))
        if ctx.request.path != "/hold":
            return Status.CONTINUE
        Path(FIFO + ".pid").write_text(str(os.getpid()))
        with open(FIFO) as fifo:  # blocks this worker until the test writes a line
            line = fifo.readline().strip()
        ctx.response.write(f"held {{line}}".encode())
        return Status.FINISH_REQUEST


def register_module(server_version, info, server):
    info.set_request_notifications(trioiis.SimpleFactory(Hold), Notification.BEGIN_REQUEST)
"""


class Held:
    """One /hold request in flight on some worker (``pid``), answered by ``release``."""

    def __init__(self, url: str, fifo: Path) -> None:
        self.fifo = fifo
        self.response: list[httpx.Response | BaseException] = []
        self._thread = threading.Thread(target=self._get, args=(url,), daemon=True)
        self._thread.start()
        opened: list[int] = []
        opener = threading.Thread(
            target=lambda: opened.append(os.open(fifo, os.O_WRONLY)), daemon=True
        )
        opener.start()
        opener.join(TIMEOUT)
        if not opened:  # unblock the opener before failing
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
            raise AssertionError("no worker took /hold")
        self._fd = opened[0]
        self.pid = int(Path(f"{fifo}.pid").read_text())

    def _get(self, url: str) -> None:
        try:
            with httpx.Client(timeout=TIMEOUT) as client:
                self.response.append(client.get(f"{url}hold"))
        except BaseException as exc:
            self.response.append(exc)

    def release(self, line: str = "ok") -> httpx.Response:
        os.write(self._fd, f"{line}\n".encode())
        os.close(self._fd)
        self._thread.join(TIMEOUT)
        assert self.response, "the held request did not finish"
        result = self.response[0]
        assert isinstance(result, httpx.Response), result
        return result


@pytest.fixture
def hold(tmp_path: Path) -> tuple[Path, Path]:
    """(the FIFO, the HOLD module file)."""
    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    return fifo, write_module(tmp_path, "hold", HOLD.format(fifo=str(fifo)))


def start(cli_process: Cli, workers: int) -> tuple[str, set[int]]:
    """Wait for every worker and the serving line: (base URL, worker pids)."""
    pids = set()
    for _ in range(workers):
        match = READY.match(cli_process.wait_line("out", READY.match))
        assert match is not None
        pids.add(int(match[1]))
    return cli_process.serving(), pids


def get_pid(url: str, path: str = "hello.txt") -> int:
    """A GET on a new connection; the pid of the worker that answered."""
    with httpx.Client(timeout=TIMEOUT, headers={"Connection": "close"}) as client:
        response = client.get(url + path)
    assert response.status_code == 200, response
    return int(response.headers["x-worker-pid"])


@contextlib.contextmanager
def workers(
    site: Path, module: Path, count: int, *extra: str
) -> Iterator[tuple[Cli, str, set[int]]]:
    args = (
        "serve",
        str(site),
        "--bind",
        "127.0.0.1:0",
        "--module",
        f"hold={module}:register_module",
    )
    with cli(*args, "--workers", str(count), *extra) as process:
        url, pids = start(process, count)
        yield process, url, pids


def wait_exit(pid: int) -> None:
    """Until process ``pid`` (not our child) has exited; bounded (a pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        readable, _, _ = select.select([fd], [], [], TIMEOUT)
        assert readable, f"process {pid} still runs"
    finally:
        os.close(fd)


def test_every_worker_takes_requests(site: Path, hold: tuple[Path, Path]) -> None:
    fifo, module = hold
    with workers(site, module, 2) as (process, url, pids):
        assert len(pids) == 2
        held = Held(url, fifo)
        other = get_pid(url)  # the held worker cannot accept: the other one answers
        assert {held.pid, other} == pids
        response = held.release()
        assert response.text == "held ok"
        assert int(response.headers["x-worker-pid"]) == held.pid
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait() == 0


def test_a_killed_worker_loses_no_other_connection_and_comes_back(
    site: Path, hold: tuple[Path, Path]
) -> None:
    fifo, module = hold
    with workers(site, module, 2) as (process, url, pids):
        held = Held(url, fifo)
        (victim,) = pids - {held.pid}
        os.kill(victim, signal.SIGKILL)
        match = READY.match(process.wait_line("out", READY.match))
        assert match is not None
        newcomer = int(match[1])
        assert newcomer not in pids
        # The held request, on the surviving worker, is answered in full.
        assert held.release("survived").text == "held survived"
        # And the new worker takes requests: hold one worker, the other answers.
        again = Held(url, fifo)
        assert {again.pid, get_pid(url)} == {held.pid, newcomer}
        again.release()
        assert "exited (status -9)" in process.wait_line("err", lambda line: "exited" in line)


def test_sighup_replaces_every_worker_and_drops_no_request(
    tmp_path: Path, site: Path, hold: tuple[Path, Path]
) -> None:
    _, module = hold
    config = tmp_path / "trioiis.toml"
    config.write_text("shutdown_grace = 5\n")
    with workers(site, module, 2, "--config", str(config)) as (process, url, pids):
        results: list[int | str] = []
        done = threading.Event()

        def load() -> None:  # light, bounded: one request at a time, at most 3000 a thread
            with httpx.Client(timeout=TIMEOUT, headers={"Connection": "close"}) as client:
                for _ in range(3000):
                    if done.is_set():
                        return
                    try:
                        response = client.get(url + "hello.txt")
                        results.append(response.status_code)
                    except httpx.HTTPError as exc:
                        results.append(repr(exc))

        loaders = [threading.Thread(target=load, daemon=True) for _ in range(2)]
        for loader in loaders:
            loader.start()
        process.proc.send_signal(signal.SIGHUP)
        line = process.wait_line("out", lambda text: text.startswith("trioiis reloaded"))
        new_pids = {int(pid) for pid in line.split(": workers ")[1].split()}
        seen = len(results)
        # A few more requests after the reload, all from the new workers.
        after = {get_pid(url) for _ in range(4)}
        done.set()
        for loader in loaders:
            loader.join(TIMEOUT)
            assert not loader.is_alive()
        assert len(new_pids) == 2
        assert not new_pids & pids
        assert after <= new_pids
        assert seen > 0
        assert results == [200] * len(results)
        # An invalid configuration is refused and the workers keep serving.
        config.write_text("root = [\n")
        process.proc.send_signal(signal.SIGHUP)
        refused = process.wait_line("out", lambda text: text.startswith("trioiis: reload"))
        assert "reload refused" in refused
        assert get_pid(url) in new_pids


def test_sigterm_drains_requests_in_flight(site: Path, hold: tuple[Path, Path]) -> None:
    fifo, module = hold
    with workers(site, module, 2) as (process, url, pids):
        held = Held(url, fifo)
        process.proc.send_signal(signal.SIGTERM)
        (other,) = pids - {held.pid}
        wait_exit(other)  # the idle worker is gone; the held one waits for its request
        assert process.proc.poll() is None
        assert held.release("drained").text == "held drained"
        assert process.wait() == 0
        wait_exit(held.pid)


def test_workers_stop_when_the_supervisor_is_killed(site: Path, hold: tuple[Path, Path]) -> None:
    _, module = hold
    with workers(site, module, 2) as (process, _, pids):
        process.proc.kill()
        process.wait()
        for pid in pids:
            wait_exit(pid)


@pytest.mark.parametrize("count", ["-1", "0"])
def test_workers_must_be_positive(site: Path, count: str) -> None:
    with cli("serve", str(site), "--bind", "127.0.0.1:0", "--workers", count) as process:
        assert process.wait() == 2
        last = process.rest("err")[-1]
    assert last.startswith("trioiis serve: error: argument -w/--workers:")
    assert last.endswith(
        f"{count} workers: give at least 1 (leave --workers out to serve in this process)"
    )


# Puts the socket given as argv[1] on descriptor 3 and says so in LISTEN_FDS / LISTEN_PID,
# as systemd does, then runs the rest of argv.
ACTIVATE = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); "
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid())); "
    "os.execv(sys.executable, [sys.executable, '-m', 'trioiis.cli', *sys.argv[2:]])"
)


@pytest.mark.parametrize("count", [0, 2], ids=["single", "supervisor"])
def test_systemd_socket_activation(site: Path, hold: tuple[Path, Path], count: int) -> None:
    _, module = hold
    listener = socket.create_server(("127.0.0.1", 0))
    with listener:
        port = listener.getsockname()[1]
        args = ["serve", str(site), "--module", f"hold={module}:register_module"]
        if count:
            args += ["--workers", str(count)]
        process = Cli(
            str(listener.fileno()),
            *args,
            command=[sys.executable, "-c", ACTIVATE],
            pass_fds=(listener.fileno(),),
        )
        with contextlib.closing(process):
            url, _ = start(process, count)
            assert url == f"http://127.0.0.1:{port}/"
            listener.close()  # only the server holds it now
            get_pid(url)
            process.proc.send_signal(signal.SIGTERM)
            assert process.wait() == 0


def test_bench_does_not_take_one_workers_status_for_the_servers(site: Path) -> None:
    """With ``--workers 2`` the status endpoint answers from whichever worker accepted the
    connection, with that process's share of the requests: the bench must not report its
    before/after difference as the server's figures, and says why."""
    args = ("serve", str(site), "--bind", "127.0.0.1:0", "--module", "status")
    with cli(*args, "--workers", "2") as process:
        url, _ = start(process, 2)
        with httpx.Client(timeout=TIMEOUT) as client:
            assert client.get(url + "_trioiis/status").json()["processes"] == 2
        bench = subprocess.run(
            [*COMMAND, "bench", url + "hello.txt", "-n", "40", "-c", "4", "-q", "--json", "-"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait() == 0
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)
    assert report["requests"]["completed"] == 40
    assert report["server"] is None
    assert "2 worker processes" in report["server_note"]


def test_https_redirect_is_shared_by_every_worker(
    site: Path, tls_files: dict[str, Path], tmp_path: Path
) -> None:
    """The supervisor opens the ``https_redirect`` listener once and every worker inherits
    it: both workers come up (none fails on a port another one holds) and the redirect
    points at the TLS binding."""
    config = tmp_path / "redirect.toml"
    config.write_text(
        f'tls_cert = "{tls_files["tls_cert"]}"\n'
        f'tls_key = "{tls_files["tls_key"]}"\n'
        'https_redirect = ["127.0.0.1:0"]\n'
    )
    args = ("serve", str(site), "--bind", "127.0.0.1:0", "--config", str(config))
    with cli(*args, "--workers", "2") as process:
        for _ in range(2):
            process.wait_line("out", READY.match)
        serving = process.wait_line("out", lambda text: text.startswith("trioiis serving"))
        https_port = int(serving.rstrip("/").rsplit(":", 1)[1])
        redirect = process.wait_line("out", lambda text: "redirecting" in text)
        match = re.search(r"http://([\d.]+):(\d+)/", redirect)
        assert match is not None
        with httpx.Client(timeout=TIMEOUT) as client:
            for _ in range(4):  # new connections: whichever worker accepts answers
                response = client.get(
                    f"http://{match[1]}:{match[2]}/hello.txt?x=1", headers={"Connection": "close"}
                )
                assert response.status_code == 301
                location = f"https://{match[1]}:{https_port}/hello.txt?x=1"
                assert response.headers["location"] == location
        process.proc.send_signal(signal.SIGTERM)
        assert process.wait() == 0
    errors = []
    while (text := process.lines["err"].get(timeout=TIMEOUT)) is not None:
        errors.append(text)
    assert not [text for text in errors if "exited (status" in text and "status 0" not in text]
