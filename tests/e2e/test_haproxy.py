"""The deployment recipe (docs/deployment.md), for real: HAProxy (the Debian package) on
127.0.0.1 in front of two trioiis instances, PROXY protocol v2 to both, HTTP health checks.

Skipped only when the ``haproxy`` binary is absent (``.ci/run`` installs it where it can).
Waits are for lines (trioiis's serving line, HAProxy's "Server ... is DOWN" warning) or
bounded connection attempts, never sleeps.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_cli import TIMEOUT, Cli, cli

HAPROXY = shutil.which("haproxy") or next(
    (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if Path(p).is_file()), None
)
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy; .ci/run does)"
)
WHOAMI = "examples/modules/whoami.py:register_module"

CONFIG = """
global
    maxconn 100

defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s

frontend web
    bind 127.0.0.1:{port}
    default_backend trioiis

backend trioiis
    balance roundrobin
    option httpchk
    http-check send meth GET uri /hello.txt ver HTTP/1.1 hdr Host localhost
    http-check expect status 200
    server a 127.0.0.1:{a} send-proxy-v2 check check-send-proxy inter 100ms fall 2 rise 1
    server b 127.0.0.1:{b} send-proxy-v2 check check-send-proxy inter 100ms fall 2 rise 1
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def whoami(port: int) -> tuple[int, str, int]:
    """GET /whoami through a new connection: (our own source port, the REMOTE_ADDR and the
    REMOTE_PORT the backend saw, the backend's pid)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
        mine = sock.getsockname()[1]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), raw
    address, remote_port, pid = body.decode().split()
    assert address == "127.0.0.1"
    assert int(remote_port) == mine  # the client's own port: PROXY v2 carried it
    return mine, address, int(pid)


def wait_accepting(port: int) -> None:
    """Bounded: until HAProxy's frontend accepts a connection."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise


@contextlib.contextmanager
def backend(site: Path, config: Path) -> Iterator[tuple[Cli, int]]:
    args = ["serve", str(site), "--config", str(config), "--module", f"whoami={WHOAMI}"]
    with cli(*args, "--bind", "127.0.0.1:0") as process:
        url = process.serving()
        yield process, int(url.rstrip("/").rsplit(":", 1)[1])


def test_haproxy_with_proxy_v2_and_health_checks(tmp_path: Path, site: Path) -> None:
    assert HAPROXY is not None
    config = tmp_path / "trioiis.toml"
    config.write_text("proxy_protocol = true\nshutdown_grace = 2\n")
    with backend(site, config) as (a, a_port), backend(site, config) as (b, b_port):
        front = free_port()
        haproxy_cfg = tmp_path / "haproxy.cfg"
        haproxy_cfg.write_text(CONFIG.format(port=front, a=a_port, b=b_port))
        # -db: stay in the foreground; HAProxy prints server state changes on stderr.
        with contextlib.closing(Cli("-db", "-f", str(haproxy_cfg), command=[HAPROXY])) as proxy:
            wait_accepting(front)
            pids = {whoami(front)[2] for _ in range(4)}  # round robin: both backends
            assert pids == {a.proc.pid, b.proc.pid}
            # Stop b: its health checks fail, HAProxy takes it out, a serves everything.
            b.proc.send_signal(signal.SIGTERM)
            assert b.wait() == 0
            proxy.wait_line("err", lambda line: "trioiis/b is DOWN" in line)
            assert {whoami(front)[2] for _ in range(4)} == {a.proc.pid}
            proxy.proc.send_signal(signal.SIGTERM)
            proxy.wait()
