"""A self-hoster's first hour with the ``trioiis`` command: help, version, options, the
start-up banner, timestamped logs, and ``check-config`` finding at check time what
``serve`` would fail on. Real processes on 127.0.0.1 port 0 (the Cli helper of test_cli)."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import httpx
import pytest
import trustme

from tests.e2e.test_cli import REPO, cli, run_fails
from trioiis.config import parse_binding

#: A server log line: ISO time with its UTC offset, level, logger, message.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} (INFO|WARNING|ERROR) trioiis")


def output_of(*args: str) -> tuple[int, list[str], list[str]]:
    with cli(*args) as process:
        status = process.wait()
        return status, process.rest("out"), process.rest("err")


# ------------------------------------------------------------------ help and options


def test_top_level_help_is_plain_text_and_lists_every_command() -> None:
    status, out, _ = output_of("--help")
    text = "\n".join(out)
    assert status == 0
    assert "``" not in text  # no raw reST
    for command in ("serve", "check-config", "bench"):
        assert re.search(rf"^\s+{command}\s+\S", text, re.MULTILINE), command


def test_serve_help_gives_every_option_a_text_and_default() -> None:
    status, out, _ = output_of("serve", "--help")
    text = " ".join(line.strip() for line in out)
    assert status == 0
    for option in ("--bind", "--module", "--handler", "--access-log", "--workers"):
        described = re.search(rf"{option} \S+ (.*?)\(default: [^)]+\)", text)
        assert described is not None, option
        assert described[1].strip(), option  # a text before the default
    assert "-b HOST:PORT[,http2=off], --bind HOST:PORT[,http2=off]" in text
    assert "-w N, --workers N" in text


def test_version() -> None:
    status, out, _ = output_of("--version")
    assert status == 0
    assert re.fullmatch(r"trioiis \d+\.\d+\.\d+\S*", out[0])


@pytest.mark.parametrize("level", ["info", "Error", "WARNING", "debug"])
def test_log_level_in_any_case(site: Path, level: str) -> None:
    with cli("serve", str(site), "-b", "127.0.0.1:0", "--log-level", level) as server:
        url = server.serving()
        assert httpx.get(url + "hello.txt", timeout=10).text == "hello\n"


def test_unknown_log_level_and_zero_workers_are_refused(site: Path) -> None:
    status, _, err = output_of("serve", str(site), "--log-level", "loud")
    assert status == 2
    assert "invalid choice: 'LOUD'" in err[-1]
    status, _, err = output_of("serve", str(site), "-w", "0")
    assert status == 2
    assert "0 workers: give at least 1" in err[-1]


def test_bind_without_host_means_every_interface(tmp_path: Path, site: Path) -> None:
    assert parse_binding(":8080") == ("", 8080)
    config = tmp_path / "any.toml"
    config.write_text(f'root = "{site}"\nbindings = [":8080", "[::1]:8081"]\n')
    status, out, _ = output_of("check-config", str(config))
    assert (status, out) == (0, [f"{config}: ok"])


# ------------------------------------------------------------------ the banner and logs


def tls_pair(ca: trustme.CA, folder: Path, *names: str) -> tuple[Path, Path]:
    cert, key = folder / f"{names[0]}.crt", folder / f"{names[0]}.key"
    issued = ca.issue_cert(*names)
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return cert, key


def test_banner_shows_bindings_sites_modules_mappings_apps_and_certificates(
    tmp_path: Path, site: Path, ca: trustme.CA
) -> None:
    cert, key = tls_pair(ca, tmp_path, "127.0.0.1")
    blog_cert, blog_key = tls_pair(ca, tmp_path, "blog.example.test")
    (tmp_path / "blog").mkdir()
    config = tmp_path / "trioiis.toml"
    config.write_text(
        f"""
        root = "{site}"
        bindings = ["127.0.0.1:0"]
        tls_cert = "{cert}"
        tls_key = "{key}"
        [[modules]]
        name = "directory_listing"
        [[handlers]]
        path = "*.txt"
        modules = ["static_file"]
        [[handlers]]
        path = "/api/*"
        asgi = "{REPO}/examples/apps/starlette_app.py:app"
        [[sites]]
        name = "blog"
        root = "blog"
        hosts = ["blog.example.test"]
        tls_cert = "{blog_cert.name}"
        tls_key = "{blog_key.name}"
        """
    )
    with cli("serve", "--config", str(config)) as server:
        first = server.wait_line("out", lambda line: line.startswith("trioiis serving"))
        assert re.fullmatch(rf"trioiis serving {site} on https://127\.0\.0\.1:\d+/", first)
        lines = [server.wait_line("out", lambda line: True) for _ in range(9)]
    assert lines[0] == f"  site default: {site} (unknown hosts)"
    assert lines[1] == f"  site blog: {tmp_path / 'blog'} for blog.example.test"
    assert lines[2] == (
        "  modules, in order: request_filtering, static_file, default_document,"
        " custom_errors, compression, directory_listing, asgi /api/*"
    )
    assert lines[3] == "  handler *.txt -> static_file"
    assert lines[4] == f"  app /api/* -> asgi {REPO}/examples/apps/starlette_app.py:app"
    assert lines.pop(5) == "  redirect /api -> /api/"
    assert lines[5] == "  handler * (default) -> static_file, default_document, directory_listing"
    expiry = r"expires \d{4}-\d\d-\d\d \(\d+ days left\)"
    assert re.fullmatch(rf"  tls certificate: .+ for 127\.0\.0\.1, {expiry}", lines[6])
    assert re.fullmatch(
        rf"  tls certificate of site blog: .+ for blog\.example\.test, {expiry}", lines[7]
    )


def test_banner_is_printed_once_and_log_lines_have_timestamps(tmp_path: Path, site: Path) -> None:
    with cli("serve", str(site), "-b", "127.0.0.1:0", "--access-log", "-") as server:
        url = server.serving()
        httpx.get(url + "hello.txt", timeout=10)
        server.wait_line("err", lambda line: '"GET /hello.txt HTTP/1.1" 200' in line)
        server.proc.send_signal(signal.SIGUSR1)  # logs "logs reopened" at INFO
        reopened = server.wait_line("err", lambda line: "logs reopened" in line)
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
        out = server.rest("out")
    assert LOG_LINE.match(reopened), reopened
    assert sum(url in line for line in out) == 1  # the URL once, not twice
    assert not any(url in line for line in server.seen["err"])


# ------------------------------------------------------------------ check-config = serve's checks


@pytest.fixture
def pair(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path]:
    return tls_pair(ca, tmp_path, "127.0.0.1")


def other_key(ca: trustme.CA, tmp_path: Path) -> Path:
    return tls_pair(ca, tmp_path, "other.example.test")[1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'tls_cert = "missing.pem"\ntls_key = "{key}"',
            "cannot read TLS certificate {tmp}/missing.pem: No such file",
        ),
        ('tls_cert = "{tmp}"\ntls_key = "{key}"', "cannot read TLS certificate {tmp}:"),
        ('tls_cert = "{cert}"\ntls_key = "{other}"', "are not a matching PEM pair"),
        (
            'bindings = ["127.0.0.1:8080", "127.0.0.1:8080"]',
            "binding '127.0.0.1:8080' is listed twice",
        ),
        (
            'bindings = [":8080", "127.0.0.1:8080"]',
            "binding '127.0.0.1:8080' collides with ':8080'",
        ),
        (
            '[[modules]]\nname = "compresion"',
            "unknown built-in module 'compresion' (did you mean 'compression'?)",
        ),
        ('access_log = "notes.txt/access.log"', "access_log {tmp}/notes.txt/access.log cannot"),
        (
            'https_redirect = ["127.0.0.1:8080"]',
            "https_redirect needs tls_cert and tls_key",
        ),
    ],
)
def test_check_config_finds_what_serve_would_fail_on(
    tmp_path: Path, site: Path, pair: tuple[Path, Path], ca: trustme.CA, text: str, message: str
) -> None:
    (tmp_path / "notes.txt").write_text("a file, not a folder\n")
    cert, key = pair
    fields = {"tmp": tmp_path, "cert": cert, "key": key, "other": other_key(ca, tmp_path)}
    config = tmp_path / "bad.toml"
    config.write_text(f'root = "{site}"\n' + text.format(**fields) + "\n")
    line = run_fails("check-config", str(config))
    assert message.format(**fields) in line
    # serve refuses the same configuration with the same message, before it binds.
    assert message.format(**fields) in run_fails("serve", "--config", str(config))


def test_misspelled_module_on_the_command_line(site: Path) -> None:
    line = run_fails("serve", str(site), "-b", "127.0.0.1:0", "--module", "directory_lsting")
    assert "unknown built-in module 'directory_lsting' (did you mean 'directory_listing'?)" in line


def test_access_log_is_relative_to_the_config_file_and_its_folder_is_made(
    tmp_path: Path, site: Path
) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    config = folder / "trioiis.toml"
    config.write_text(
        f'root = "{site}"\nbindings = ["127.0.0.1:0"]\naccess_log = "logs/access.log"\n'
    )
    with cli("check-config", str(config)) as process:
        assert process.wait() == 0
    assert not (folder / "logs").exists()  # check-config creates nothing
    with cli("serve", "--config", str(config)) as server:  # run from the repository
        url = server.serving()
        assert httpx.get(url + "hello.txt", timeout=10).status_code == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0
    assert '"GET /hello.txt HTTP/1.1" 200' in (folder / "logs" / "access.log").read_text()
    assert not (REPO / "logs").exists()
