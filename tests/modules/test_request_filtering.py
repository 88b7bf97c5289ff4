"""request_filtering over real sockets: each refusal, its IIS sub-status, options, safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.helpers import StatusProbe, builtin, raw_request, running_server
from tests.modules.rawhttp import fetch, parse_response
from trioiis import Notification
from trioiis.modules import DEFAULT_MODULES, request_filtering
from trioiis.testing import check_cancellation_safety


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "app.config").write_text("secret=1\n")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool.txt").write_text("tool\n")
    return tmp_path


def serve(root: Path, options: dict[str, Any] | None = None) -> Any:
    probe = StatusProbe()
    server = running_server(
        builtin("request_filtering", options),
        builtin("static_file"),
        (*probe.module(), None),
        root=root,
        builtin_modules=False,
    )
    return server, probe


def test_request_filtering_is_a_default_module_and_runs_first() -> None:
    assert DEFAULT_MODULES[0] == "request_filtering"
    server = trioiis.HttpServer(trioiis.ServerConfig(bindings=("127.0.0.1:0",)))
    assert server.pipeline.order_for(Notification.BEGIN_REQUEST)[0] == "request_filtering"


async def test_ordinary_request_passes(root: Path) -> None:
    server, _ = serve(root)
    async with server as srv, srv.client() as client:
        response = await client.get("/hello.txt?a=1")
    assert response.status_code == 200
    assert response.text == "hello\n"


async def test_content_length_over_max_body_is_413_1(root: Path) -> None:
    server, probe = serve(root, {"max_body": 10})
    async with server as srv:
        raw = await raw_request(
            srv.port,
            b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
        )
    response = parse_response(raw)
    assert response.status == 413
    assert response.headers["connection"] == "close"
    assert (probe.seen[0].status, probe.seen[0].sub_status) == (413, 1)


async def test_body_at_max_body_passes_the_filter(root: Path) -> None:
    server, probe = serve(root, {"max_body": 11})
    async with server as srv, srv.client() as client:
        response = await client.post("/hello.txt", content=b"hello world")
    assert response.status_code == 405  # static_file's answer: the filter let it through
    assert probe.seen[0].sub_status == 0


async def test_url_over_max_url_is_414(root: Path) -> None:
    server, probe = serve(root, {"max_url": 100})
    async with server as srv:
        long = await fetch(srv.port, "/" + "a" * 100)
        short = await fetch(srv.port, "/hello.txt?" + "q" * 200)  # the query does not count
    assert long.status == 414
    assert (probe.seen[0].status, probe.seen[0].sub_status) == (414, 14)
    assert short.status == 200


async def test_default_max_url_is_4096(root: Path) -> None:
    server, _ = serve(root)
    async with server as srv:
        over = await fetch(srv.port, "/" + "a" * 4096)
        at = await fetch(srv.port, "/" + "a" * 4095)
    assert over.status == 414
    assert at.status == 404


async def test_query_over_max_query_is_404_15(root: Path) -> None:
    server, probe = serve(root)
    async with server as srv:
        over = await fetch(srv.port, "/hello.txt?" + "q" * 2049)
        at = await fetch(srv.port, "/hello.txt?" + "q" * 2048)
    assert over.status == 404
    assert (probe.seen[0].status, probe.seen[0].sub_status) == (404, 15)
    assert at.status == 200


async def test_verb_not_allowed_is_405_6_with_allow(root: Path) -> None:
    server, probe = serve(root, {"verbs": ["get", "HEAD"]})
    async with server as srv:
        delete = await fetch(srv.port, "/hello.txt", method="DELETE")
        get = await fetch(srv.port, "/hello.txt")
    assert delete.status == 405
    assert delete.headers["allow"] == "GET, HEAD"
    assert (probe.seen[0].status, probe.seen[0].sub_status) == (405, 6)
    assert get.status == 200


async def test_denied_extension_is_404_7_case_insensitively(root: Path) -> None:
    server, probe = serve(root, {"deny_extensions": [".config", "exe"]})
    async with server as srv:
        config = await fetch(srv.port, "/app.CONFIG")
        encoded = await fetch(srv.port, "/app%2Econfig")
        exe = await fetch(srv.port, "/x.exe")
        plain = await fetch(srv.port, "/hello.txt")
    assert (config.status, encoded.status, exe.status, plain.status) == (404, 404, 404, 200)
    assert b"secret" not in config.body
    assert [(s.status, s.sub_status) for s in probe.seen[:3]] == [(404, 7)] * 3


async def test_denied_segment_is_404_8_case_insensitively(root: Path) -> None:
    server, probe = serve(root, {"deny_segments": ["bin"]})
    async with server as srv:
        denied = await fetch(srv.port, "/BIN/tool.txt")
        encoded = await fetch(srv.port, "/%62in/tool.txt")
        other = await fetch(srv.port, "/binary")
    assert (denied.status, encoded.status) == (404, 404)
    assert [(s.status, s.sub_status) for s in probe.seen[:2]] == [(404, 8)] * 2
    assert other.status == 404
    assert probe.seen[2].sub_status == 0  # static_file's own 404, not a refusal


async def test_refusal_gets_the_custom_error_page_when_loaded(root: Path) -> None:
    async with running_server(
        builtin("request_filtering", {"deny_segments": ["bin"]}),
        builtin("static_file"),
        builtin("custom_errors"),
        root=root,
        builtin_modules=False,
    ) as srv:
        response = await fetch(srv.port, "/bin/tool.txt")
    assert response.status == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert b"<h1>404 Not Found</h1>" in response.body


@pytest.mark.parametrize(
    "options",
    [
        {"max_bdy": 1},
        {"max_body": "1"},
        {"max_url": -1},
        {"max_query": True},
        {"verbs": "GET"},
        {"verbs": []},
        {"deny_extensions": [1]},
        {"deny_segments": ["a/b"]},
    ],
)
def test_bad_options_are_a_config_error(options: dict[str, Any]) -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig(builtin_modules=False))
    with pytest.raises(trioiis.ConfigError) as info:
        server.register_module("request_filtering", request_filtering.register_module, options)
    assert "\n" not in str(info.value)
    assert "request_filtering" in str(info.value)


FILTERS = {"max_body": 10, "deny_segments": ["bin"]}


def with_options(register: Any, options: dict[str, Any]) -> Any:
    """``register`` as if loaded with ``options`` (for check_cancellation_safety)."""

    def register_module(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.options = options
        register(version, info, server)

    return register_module


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /bin/tool.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    ],
)
def test_request_filtering_is_cancellation_safe(root: Path, request_bytes: bytes) -> None:
    outcome = check_cancellation_safety(
        [
            ("request_filtering", with_options(request_filtering.register_module, FILTERS)),
            builtin("static_file")[:2],
        ],
        request_bytes,
        root=root,
        config={"builtin_modules": False},
    )
    assert outcome.status in (200, 404, 413)
