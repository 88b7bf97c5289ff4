"""The ``trioiis`` command as a user runs it: real processes on 127.0.0.1 port 0.

Each test starts the console script (or ``python -m trioiis.cli``), learns the port from the
``trioiis serving ROOT on http://HOST:PORT/`` line it prints, and never sleeps: every wait is
for a line or an exit, with a timeout. Every process is killed in a ``finally``.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
HELLO = "examples/modules/hello.py:register_module"
SCRIPT = Path(sys.executable).with_name("trioiis")
COMMAND = [str(SCRIPT)] if SCRIPT.is_file() else [sys.executable, "-m", "trioiis.cli"]
SERVING = re.compile(r"^trioiis serving (?P<root>.+) on (?P<url>http://127\.0\.0\.1:(\d+)/)$")
TIMEOUT = 15.0

#: A module whose /slow answer waits for a line on the server's stdin, so that a test can
#: hold a request in flight for exactly as long as it wants (no sleeping on either side).
SLOW_MODULE = """
import sys

import trio

import trioiis
from trioiis import Notification, Status


class SlowModule(trioiis.HttpModule):
    async def on_begin_request(self, ctx, provider):
        if ctx.request.path != "/slow":
            return Status.CONTINUE
        print("slow: started", flush=True)
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        ctx.response.write(f"slow: {line.strip()}".encode())
        return Status.FINISH_REQUEST


def register_module(server_version, info, server):
    info.set_request_notifications(trioiis.SimpleFactory(SlowModule), Notification.BEGIN_REQUEST)
"""


class Cli:
    """A running ``trioiis`` process whose stdout and stderr are read line by line."""

    def __init__(
        self,
        *args: str,
        cwd: Path = REPO,
        command: list[str] = COMMAND,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen(
            [*command, *args],
            cwd=cwd,
            env=env,
            pass_fds=pass_fds,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: dict[str, queue.Queue[str | None]] = {
            "out": queue.Queue(),
            "err": queue.Queue(),
        }
        self.seen: dict[str, list[str]] = {"out": [], "err": []}
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, "out"), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, "err"), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream: IO[str], name: str) -> None:
        for line in iter(stream.readline, ""):
            self.lines[name].put(line.rstrip("\n"))
        self.lines[name].put(None)

    def wait_line(
        self, stream: str, matches: Callable[[str], object], timeout: float = TIMEOUT
    ) -> str:
        """The next line on ``stream`` ("out" or "err") for which ``matches`` is true."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.lines[stream].get(timeout=max(left, 0))
            except queue.Empty:
                raise AssertionError(
                    f"no matching line on std{stream} in {timeout} s; saw {self.seen}"
                ) from None
            if line is None:
                self.lines[stream].put(None)  # stays at EOF
                raise AssertionError(f"std{stream} ended; exit {self.proc.poll()}; saw {self.seen}")
            self.seen[stream].append(line)
            if matches(line):
                return line

    def serving(self) -> str:
        """Wait for the "serving" line; the base URL it shows."""
        line = self.wait_line("out", SERVING.match)
        match = SERVING.match(line)
        assert match is not None
        return match["url"]

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (the process must exit within ``timeout``)."""
        return self.proc.wait(timeout=timeout)

    def rest(self, stream: str) -> list[str]:
        """Every line of ``stream`` after the process has exited (and those already seen)."""
        assert self.proc.poll() is not None
        while True:
            line = self.lines[stream].get(timeout=TIMEOUT)
            if line is None:
                self.lines[stream].put(None)
                return self.seen[stream]
            self.seen[stream].append(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        for reader in self._readers:
            reader.join(timeout=TIMEOUT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def cli(*args: str, cwd: Path = REPO) -> Iterator[Cli]:
    process = Cli(*args, cwd=cwd)
    try:
        yield process
    finally:
        process.close()


def run_fails(*args: str, cwd: Path = REPO) -> str:
    """Run a command that must fail at start: exit 2, nothing on stdout, one line on
    stderr (no traceback). That line."""
    with cli(*args, cwd=cwd) as process:
        status = process.wait()
        out, err = process.rest("out"), process.rest("err")
    assert status == 2, (status, out, err)
    assert out == []
    assert len(err) == 1, err
    assert err[0].startswith("trioiis: ")
    assert "Traceback" not in err[0]
    return err[0]


def write_module(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ serving and stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_a_folder_then_stop_gracefully(site: Path, sig: signal.Signals) -> None:
    with cli("serve", str(site), "--bind", "127.0.0.1:0") as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            response = client.get("/hello.txt")
            assert response.status_code == 200
            assert response.text == "hello\n"
            assert client.get("/dir/").text == "<h1>dir</h1>\n"
        server.proc.send_signal(sig)
        assert server.wait() == 0
        err = server.rest("err")
        assert "trioiis: shutting down" in err
        assert "Traceback" not in "\n".join(err)
    match = SERVING.match(server.seen["out"][0])
    assert match is not None
    assert match["root"] == str(site)


def test_idle_connection_does_not_hold_up_shutdown(tmp_path: Path, site: Path) -> None:
    # linger_timeout is small here: closing a connection lingers for it (see http1.linger).
    config = tmp_path / "site.toml"
    config.write_text("[limits]\nlinger_timeout = 0.1\n")
    with cli("serve", str(site), "--bind", "127.0.0.1:0", "--config", str(config)) as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/hello.txt").status_code == 200
            # The client keeps its connection open, idle; shutdown_grace is 10 s.
            server.proc.send_signal(signal.SIGTERM)
            assert server.wait(timeout=5) == 0


def test_shutdown_lets_a_request_in_flight_finish(tmp_path: Path, site: Path) -> None:
    write_module(tmp_path, "slow", SLOW_MODULE)
    slow = f"{tmp_path}/slow.py:register_module"
    # The pool is left last: the server is killed first, so a failing test cannot hang.
    with (
        ThreadPoolExecutor(1) as pool,
        cli("serve", str(site), "--bind", "127.0.0.1:0", "--module", slow) as server,
    ):
        url = server.serving()
        pending = pool.submit(httpx.get, url + "slow", timeout=TIMEOUT)
        server.wait_line("out", lambda line: line == "slow: started")
        server.proc.send_signal(signal.SIGTERM)
        server.wait_line("err", lambda line: line == "trioiis: shutting down")
        assert server.proc.poll() is None  # still running: the request is in flight
        assert server.proc.stdin is not None
        server.proc.stdin.write("finish\n")
        server.proc.stdin.flush()
        response = pending.result(timeout=TIMEOUT)
        assert (response.status_code, response.text) == (200, "slow: finish")
        assert server.wait() == 0


def test_a_second_signal_stops_without_waiting(tmp_path: Path, site: Path) -> None:
    write_module(tmp_path, "slow", SLOW_MODULE)
    slow = f"{tmp_path}/slow.py:register_module"
    # The pool is left last: the server is killed first, so a failing test cannot hang.
    with (
        ThreadPoolExecutor(1) as pool,
        cli("serve", str(site), "--bind", "127.0.0.1:0", "--module", slow) as server,
    ):
        url = server.serving()
        pending = pool.submit(httpx.get, url + "slow", timeout=TIMEOUT)
        server.wait_line("out", lambda line: line == "slow: started")
        server.proc.send_signal(signal.SIGINT)
        server.wait_line("err", lambda line: line == "trioiis: shutting down")
        server.proc.send_signal(signal.SIGINT)
        # The request never finishes by itself; shutdown_grace is 10 s.
        assert server.wait(timeout=5) == 0
        assert "trioiis: stopping now" in server.rest("err")
        with pytest.raises(httpx.HTTPError):
            pending.result(timeout=TIMEOUT).raise_for_status()


def test_module_from_a_file(site: Path) -> None:
    with cli("serve", str(site), "--bind", "127.0.0.1:0", "--module", f"hello={HELLO}") as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/hello").text == "Hello, world!\n"
            assert client.get("/hello.txt").text == "hello\n"  # static files still served
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0


def test_module_by_package_name_and_handler_mapping(tmp_path: Path, site: Path) -> None:
    # hello answers /hello at BEGIN_REQUEST. /dir/* is mapped to static_file alone, so /dir/
    # gets no default document: the empty 200 of a request that nobody handles.
    args = ["--module", "examples.modules.hello:register_module", "--handler", "/dir/*=static_file"]
    with cli("serve", str(site), "--bind", "127.0.0.1:0", *args) as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/hello").text == "Hello, world!\n"
            assert client.get("/dir/").text == ""
            assert client.get("/").text == "<h1>home</h1>\n"
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0


def test_config_file(tmp_path: Path, site: Path) -> None:
    config = tmp_path / "conf" / "site.toml"
    config.parent.mkdir()
    (tmp_path / "conf" / "modules").mkdir()
    (tmp_path / "conf" / "modules" / "hello.py").write_text(
        (REPO / "examples/modules/hello.py").read_text()
    )
    config.write_text(
        f"""
        root = "{site}"
        bindings = ["127.0.0.1:0"]
        default_documents = ["hello.txt"]

        [[modules]]
        name = "hello"
        target = "modules/hello.py:register_module"   # relative to the file's folder
        """
    )
    access_log = tmp_path / "access.log"
    # Run from another folder: the module path must not depend on the current folder.
    with cli(
        "serve", "--config", str(config), "--access-log", str(access_log), cwd=tmp_path
    ) as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/hello").text == "Hello, world!\n"
            assert client.get("/").text == "hello\n"  # default_documents from the file
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    lines = access_log.read_text().splitlines()
    assert len(lines) == 2
    assert '"GET /hello HTTP/1.1" 200' in lines[0]


def test_command_line_wins_over_config_file(tmp_path: Path, site: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "hello.txt").write_text("other\n")
    config = tmp_path / "site.toml"
    config.write_text(f'root = "{site}"\nbindings = ["127.0.0.1:0"]\n')
    with cli("serve", str(other), "--config", str(config), "--bind", "127.0.0.1:0") as server:
        url = server.serving()
        assert httpx.get(url + "hello.txt", timeout=TIMEOUT).text == "other\n"
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    assert len([line for line in server.seen["out"] if SERVING.match(line)]) == 1


def test_bind_option_turns_http2_off_on_that_binding(site: Path) -> None:
    with cli("serve", str(site), "--bind", "127.0.0.1:0,http2=off") as server:
        url = server.serving()
        port = int(url.rstrip("/").rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # the HTTP/2 preface
            answer = sock.recv(100)
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    assert answer.startswith(b"HTTP/1.1 505 ")  # HTTP/1.1's answer: no h2c on this binding


def test_trace_dir_and_rule_from_the_command_line(tmp_path: Path, site: Path) -> None:
    """The trace of the one request the rule selects is on disk once the process exited."""
    traces = tmp_path / "traces"
    args = ("--trace-dir", str(traces), "--trace-when", "status==404")
    with cli("serve", str(site), "--bind", "127.0.0.1:0", *args) as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/hello.txt").status_code == 200
            assert client.get("/missing.txt").status_code == 404
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    (trace,) = traces.glob("trace-*.json")
    assert '"url": "/missing.txt"' in trace.read_text()
    assert (traces / "viewer.html").is_file()


# ------------------------------------------------------------------ check-config


def test_check_config_ok(tmp_path: Path, site: Path) -> None:
    config = tmp_path / "good.toml"
    config.write_text(
        f"""
        root = "{site}"
        bindings = ["127.0.0.1:0", "[::1]:0"]
        [[modules]]
        name = "hello"
        target = "{REPO / HELLO}"
        [[handlers]]
        path = "*.txt"
        modules = ["static_file"]
        """
    )
    with cli("check-config", str(config)) as process:
        assert process.wait() == 0
        assert process.rest("out") == [f"{config}: ok"]
        assert process.rest("err") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rot = 'x'", "unknown config key(s): rot"),
        ("root = ", "bad.toml: Invalid value"),
        ("[limits]\nmax_body_bytes = -1", "limit 'max_body_bytes' must not be negative"),
        ('root = "missing"', "root folder"),
        ('[[modules]]\nname = "x"\ntarget = "nope.py:register_module"', "nope.py does not exist"),
        ('[[handlers]]\npath = "*"\nmodules = ["ghost"]', "names unknown module 'ghost'"),
        ('trace_when = "status >"', "trace rule 'status >': expected a number"),
        ("trace_max_files = 0", "trace_max_files must be at least 1"),
    ],
)
def test_check_config_bad(tmp_path: Path, site: Path, text: str, message: str) -> None:
    config = tmp_path / "bad.toml"
    root = "" if "root" in text else f'root = "{site}"\n'
    config.write_text(root + text + "\n")
    assert message in run_fails("check-config", str(config))


def test_check_config_missing_file(tmp_path: Path) -> None:
    assert "cannot read config" in run_fails("check-config", str(tmp_path / "missing.toml"))


# ------------------------------------------------------------------ start-up failures

BROKEN_MODULES = {
    "raises_on_import": 'raise RuntimeError("broken\\nover two lines")\n',
    "exits_on_import": "import sys\nsys.exit(3)\n",
    "register_raises": "def register_module(version, info, server):\n    raise ValueError()\n",
    "no_register": "x = 1\n",
}


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("{tmp}/missing.py:register_module", "module file {tmp}/missing.py does not exist"),
        ("{tmp}/raises_on_import.py:register_module", "RuntimeError: broken over two lines"),
        ("{tmp}/exits_on_import.py:register_module", "SystemExit: 3"),
        ("{tmp}/raises_on_import.py", "must be [NAME=]package.module:function"),
        ("x={tmp}/raises_on_import.py", "must be [NAME=]package.module:function"),
        (
            "{tmp}/register_raises.py:register_module",
            "'register_raises' failed to register: ValueError",
        ),
        ("{tmp}/no_register.py:register_module", "has no function 'register_module'"),
        ("no_such_package.mod:register_module", "No module named 'no_such_package'"),
    ],
)
def test_module_that_fails_to_load(tmp_path: Path, site: Path, module: str, message: str) -> None:
    for name, text in BROKEN_MODULES.items():
        write_module(tmp_path, name, text)
    line = run_fails(
        "serve", str(site), "--bind", "127.0.0.1:0", "--module", module.format(tmp=tmp_path)
    )
    assert message.format(tmp=tmp_path) in line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{tmp}/missing"], "root folder {tmp}/missing does not exist"),
        (["{tmp}/file.txt"], "root folder {tmp}/file.txt is not a folder"),
        (["{tmp}", "--handler", "*.txt=ghost"], "handler '*.txt' names unknown module 'ghost'"),
        (["{tmp}", "--handler", "*.txt"], "handler '*.txt' must be PATTERN=MODULE"),
        (["{tmp}", "--bind", "127.0.0.1"], "binding '127.0.0.1' is not HOST:PORT"),
        (["{tmp}", "--bind", "127.0.0.1:70000"], "binding '127.0.0.1:70000' is not HOST:PORT"),
        (["{tmp}", "--bind", "127.0.0.1:²"], "binding '127.0.0.1:²' is not HOST:PORT"),
        (["{tmp}", "--bind", "127.0.0.1:0,http2=no"], "options are http2=on or http2=off"),
        (["{tmp}", "--config", "{tmp}/missing.toml"], "cannot read config"),
        (["{tmp}", "--access-log", "{tmp}/file.txt/access.log"], "access_log {tmp}/file.txt/a"),
        (["{tmp}", "--trace-when", "status>=5xx"], "trace rule 'status>=5xx': '5xx' is not"),
        (["{tmp}", "--trace-dir", "{tmp}/file.txt/traces"], "cannot use trace_dir"),
    ],
)
def test_bad_command_line(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "file.txt").write_text("not a folder")
    line = run_fails("serve", *(a.format(tmp=tmp_path) for a in args))
    assert message.format(tmp=tmp_path) in line


def test_port_already_in_use(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = run_fails("serve", str(site), "--bind", f"127.0.0.1:{port}")
    assert line == f"trioiis: cannot listen on 127.0.0.1:{port}: Address already in use"


# ------------------------------------------------------------------ hosted apps

SAMPLES = "tests.e2e.app_samples"


def test_asgi_and_wsgi_apps_from_the_command_line(site: Path) -> None:
    """``--asgi``/``--wsgi`` mount apps by module name, imported from the current folder
    (the console script does not put it on sys.path by itself)."""
    args = ["--asgi", f"/c/*={SAMPLES}:conformance", "--wsgi", f"/shop/*={SAMPLES}:flask_app"]
    with cli("serve", str(site), "--bind", "127.0.0.1:0", *args) as server:
        url = server.serving()
        with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
            assert client.get("/c/headers").status_code == 201
            assert client.get("/shop/hello?q=1").text == "/shop|/hello|1"
            assert client.get("/").text == "<h1>home</h1>\n"
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--asgi", f"/*={SAMPLES}:failing_startup"],
            "module 'asgi /*' failed to start: LifespanError: asgi /*: lifespan startup"
            " failed: database unreachable",
        ),
        (["--asgi", f"/*={SAMPLES}:nothing"], "has no attribute 'nothing'"),
        (["--asgi", "/*=no_such_app:app"], "cannot import no_such_app"),
        (["--wsgi", "/*"], "--wsgi '/*' must be PATTERN=pkg.module:attribute"),
    ],
)
def test_app_that_fails_to_start_is_one_line(site: Path, args: list[str], message: str) -> None:
    line = run_fails("serve", str(site), "--bind", "127.0.0.1:0", *args)
    assert message in line
