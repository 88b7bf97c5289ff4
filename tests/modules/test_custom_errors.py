"""custom_errors over real sockets: built-in and site pages, what is left alone, options,
children with DISABLE_CUSTOM_ERROR, and cancellation safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.helpers import builtin, register, running_server
from tests.modules.rawhttp import fetch
from trioiis import ExecuteFlags, HttpContext, HttpModule, Notification, Status
from trioiis.modules import DEFAULT_MODULES, custom_errors
from trioiis.testing import check_cancellation_safety


@pytest.fixture
def root(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    return site


def failing(message: str) -> tuple[str, Any]:
    class Failing(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.raw_path == "/boom":
                raise RuntimeError(message)
            return Status.CONTINUE

    return "failing", register(Failing, Notification.BEGIN_REQUEST)


def answering(status: int, body: bytes, **kwargs: Any) -> tuple[str, Any]:
    """Answers /answer with ``status`` and ``body`` (set_status kwargs passed on)."""

    class Answer(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.raw_path != "/answer":
                return Status.CONTINUE
            ctx.response.set_status(status, **kwargs)
            if body:
                ctx.response.set_header("Content-Type", "text/plain")
                ctx.response.write(body)
            return Status.FINISH_REQUEST

    return "answer", register(Answer, Notification.BEGIN_REQUEST)


def test_custom_errors_is_a_default_module() -> None:
    assert "custom_errors" in DEFAULT_MODULES


async def test_missing_file_gets_the_builtin_page_without_the_path(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/private/folder/missing-file.txt")
    assert response.status == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.body))
    assert b"<title>404 Not Found</title>" in response.body
    assert b"<h1>404 Not Found</h1>" in response.body
    for leak in (b"private", b"missing-file", str(root).encode()):
        assert leak not in response.body


async def test_site_page_is_used_when_present(root: Path) -> None:
    (root / "404.html").write_text("<p>our own 404</p>")
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/missing")
    assert response.status == 404
    assert response.body == b"<p>our own 404</p>"
    assert response.headers["content-type"] == "text/html; charset=utf-8"


async def test_error_pages_folder_option(root: Path) -> None:
    (root / "errors").mkdir()
    (root / "errors" / "404.html").write_text("<p>from errors/</p>")
    (root / "404.html").write_text("<p>root page, not used</p>")
    async with running_server(
        builtin("static_file"),
        builtin("custom_errors", {"error_pages": "errors"}),
        root=root,
        builtin_modules=False,
    ) as srv:
        response = await fetch(srv.port, "/missing")
    assert response.body == b"<p>from errors/</p>"


async def test_a_folder_named_like_a_page_is_not_used(root: Path) -> None:
    (root / "404.html").mkdir()
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/missing")
    assert b"<h1>404 Not Found</h1>" in response.body


async def test_module_exception_gets_a_500_page_without_traceback(root: Path) -> None:
    async with running_server(failing("password=hunter2 in /etc/secret"), root=root) as srv:
        response = await fetch(srv.port, "/boom")
    assert response.status == 500
    assert b"<h1>500 Internal Server Error</h1>" in response.body
    for leak in (b"hunter2", b"Traceback", b"RuntimeError", b"/etc"):
        assert leak not in response.body


async def test_500_page_from_the_site(root: Path) -> None:
    (root / "500.html").write_text("<p>sorry</p>")
    async with running_server(failing("x"), root=root) as srv:
        response = await fetch(srv.port, "/boom")
    assert (response.status, response.body) == (500, b"<p>sorry</p>")


async def test_status_page_for_any_code_with_escaped_standard_reason(root: Path) -> None:
    async with running_server(answering(418, b"", reason="<script>x</script>"), root=root) as srv:
        response = await fetch(srv.port, "/answer")
    assert response.status == 418
    assert b"<h1>418 I&#x27;m a Teapot</h1>" in response.body
    assert b"<script>" not in response.body


async def test_a_body_the_module_wrote_is_kept(root: Path) -> None:
    async with running_server(answering(404, b"my own words"), root=root) as srv:
        response = await fetch(srv.port, "/answer")
    assert (response.status, response.body) == (404, b"my own words")


async def test_try_skip_custom_errors_is_honoured(root: Path) -> None:
    async with running_server(answering(503, b"", try_skip_custom_errors=True), root=root) as srv:
        response = await fetch(srv.port, "/answer")
    assert (response.status, response.body) == (503, b"")


async def test_success_statuses_are_left_alone(root: Path) -> None:
    async with running_server(answering(204, b""), root=root) as srv:
        response = await fetch(srv.port, "/answer")
        hello = await fetch(srv.port, "/hello.txt")
    assert (response.status, response.body) == (204, b"")
    assert hello.body == b"hello\n"


async def test_head_gets_no_body(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/missing", method="HEAD")
    assert response.status == 404
    assert response.body == b""


async def test_head_carries_the_headers_get_would(root: Path) -> None:
    """RFC 9110 §9.3.2: a HEAD answer's headers are the GET's (the error page's type and
    length), only the body is left out."""
    async with running_server(root=root) as srv:
        head = await fetch(srv.port, "/missing", method="HEAD")
        get = await fetch(srv.port, "/missing")
    assert (head.status, get.status) == (404, 404)
    for name in ("content-type", "content-length", "x-content-type-options"):
        assert head.headers[name] == get.headers[name], name
    assert head.headers["content-type"].startswith("text/html")
    assert int(head.headers["content-length"]) == len(get.body) > 14


async def test_405_keeps_its_allow_header(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/hello.txt", method="DELETE")
    assert response.status == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert b"<h1>405 Method Not Allowed</h1>" in response.body


async def test_mode_off_leaves_errors_alone(root: Path) -> None:
    async with running_server(
        builtin("static_file"),
        builtin("custom_errors", {"mode": "off"}),
        root=root,
        builtin_modules=False,
    ) as srv:
        response = await fetch(srv.port, "/missing")
    assert response.body == b"404 Not Found\n"


def child_runner(flags: ExecuteFlags) -> tuple[str, Any]:
    """/parent runs a child for /missing with ``flags``."""

    class Parent(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.raw_path != "/parent":
                return Status.CONTINUE
            child = ctx.clone_context()
            child.request.set_url("/missing")
            await ctx.run_child(child, flags)
            return Status.FINISH_REQUEST

    return "parent", register(Parent, Notification.BEGIN_REQUEST)


async def test_disable_custom_error_child_keeps_its_error(root: Path) -> None:
    async with running_server(child_runner(ExecuteFlags.DISABLE_CUSTOM_ERROR), root=root) as srv:
        response = await fetch(srv.port, "/parent")
    assert response.status == 404
    assert b"404 Not Found\n" in response.body  # the child's own text (chunked: a child's)
    assert b"<h1>" not in response.body


async def test_child_without_the_flag_gets_the_page(root: Path) -> None:
    async with running_server(child_runner(ExecuteFlags(0)), root=root) as srv:
        response = await fetch(srv.port, "/parent")
    assert response.status == 404
    assert b"<h1>404 Not Found</h1>" in response.body


async def test_buffered_child_error_is_not_paged_into_the_parent(root: Path) -> None:
    async with running_server(child_runner(ExecuteFlags.BUFFER_RESPONSE), root=root) as srv:
        response = await fetch(srv.port, "/parent")
    assert response.status == 200
    assert b"<h1>" not in response.body


@pytest.mark.parametrize(
    "options",
    [{"mode": "on"}, {"mode": 1}, {"error_pages": 3}, {"pages": "x"}],
)
def test_bad_options_are_a_config_error(options: dict[str, Any]) -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig(builtin_modules=False))
    with pytest.raises(trioiis.ConfigError) as info:
        server.register_module("custom_errors", custom_errors.register_module, options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("page", [False, True])
def test_custom_errors_is_cancellation_safe(tmp_path: Path, page: bool) -> None:
    if page:
        (tmp_path / "404.html").write_text("<p>missing</p>")
    outcome = check_cancellation_safety(
        [], b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n", root=tmp_path
    )
    assert outcome.status == 404
