"""Log rotation without copytruncate: rename the files, send SIGUSR1, and the next lines
go to new files at the configured paths; the error log gets the server's own lines, with
timestamps; every access-log line names its site. The real CLI on 127.0.0.1 port 0."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.e2e.test_cli import cli
from tests.e2e.test_startup import LOG_LINE


def test_sigusr1_reopens_the_access_and_error_logs(tmp_path: Path, site: Path) -> None:
    config = tmp_path / "trioiis.toml"
    config.write_text(
        f'root = "{site}"\nbindings = ["127.0.0.1:0"]\naccess_log = "logs/access.log"\n'
        'error_log = "logs/error.log"\n'
    )
    logs = tmp_path / "logs"
    with cli("serve", "--config", str(config)) as server:
        url = server.serving()
        assert httpx.get(url + "hello.txt", timeout=10).status_code == 200
        (logs / "access.log").rename(logs / "access.log.1")
        (logs / "error.log").rename(logs / "error.log.1")
        server.proc.send_signal(signal.SIGUSR1)
        server.wait_line("err", lambda line: "logs reopened" in line)
        assert httpx.get(url + "index.html", timeout=10).status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    old, new = (logs / "access.log.1").read_text(), (logs / "access.log").read_text()
    assert "GET /hello.txt" in old
    assert "GET /index.html" not in old
    assert "GET /index.html" in new
    assert "GET /hello.txt" not in new
    assert new.rstrip("\n").endswith(" default")  # the site's name ends the line
    errors = (logs / "error.log").read_text().splitlines()
    assert any("logs reopened" in line and LOG_LINE.match(line) for line in errors), errors
