"""Hosted apps end to end: a Starlette app (on Trio) and a Flask app beside static files,
mounted by ``[[handlers]]`` tables, over real loopback sockets."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.e2e import app_samples
from tests.e2e.app_samples import EVENTS, closed, reached
from tests.helpers import (
    Running,
    builtin,
    raw_request,
    register,
    running_server,
    statuses_in,
)
from trioiis import ConfigError, HttpContext, HttpModule, HttpServer, Notification, ServerConfig
from trioiis._context.mapping import HandlerMapping
from trioiis.config import config_from_mapping, load_config

SAMPLES = "tests.e2e.app_samples"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "apps" / "trioiis.toml"


@pytest.fixture(autouse=True)
def _fresh_events() -> None:
    EVENTS.clear()
    app_samples.REACHED.clear()
    app_samples.CLOSED.clear()


def apps_config(*handlers: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """``running_server`` keywords for ``[[handlers]]`` tables, read by the real config
    loader (so the asgi/wsgi keys are what is tested)."""
    config = config_from_mapping({"handlers": list(handlers)})
    return {"modules": config.modules, "handlers": config.handlers, **extra}


STARLETTE = {"path": "/app/*", "asgi": f"{SAMPLES}:starlette_app"}
FLASK = {"path": "/shop/*", "wsgi": f"{SAMPLES}:flask_app"}


def running_apps(site: Path, *handlers: dict[str, Any], **extra: Any) -> Any:
    return running_server(root=site, **apps_config(*handlers, **extra))


async def chunks(n: int, size: int) -> AsyncIterator[bytes]:
    for i in range(n):
        yield bytes([97 + i % 26]) * size


# ---------------------------------------------------------------- ASGI (Starlette)


async def test_asgi_starlette_routes_mounted_beside_static_files(
    site: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "access.log"
    async with (
        running_apps(site, STARLETTE, FLASK, access_log=str(log_file)) as srv,
        srv.client() as client,
    ):
        hello = await client.get("/app/hello?q=42")
        home = await client.get("/")
        missing = await client.get("/app/nowhere")
        outside = await client.get("/application")
    # The lifespan's state reached the request; root_path is the mount point and path the
    # full path (ASGI 3), which Starlette routes on.
    assert hello.status_code == 200
    assert hello.text == "hello from lifespan|/app|/app/hello|/app/hello|42"
    assert home.status_code == 200
    assert "home" in home.text  # the static folder is still served
    assert missing.status_code == 404  # Starlette's own 404
    assert outside.status_code == 404  # /application is not under /app/*
    # Startup ran on Trio before the first request; shutdown after the last one.
    assert EVENTS[0] == ("startup", "trio")
    assert EVENTS[-1] == ("shutdown",)
    lines = log_file.read_text().splitlines()
    assert any('"GET /app/hello?q=42 HTTP/1.1" 200' in line for line in lines)
    assert any('"GET /app/nowhere HTTP/1.1" 404' in line for line in lines)


async def test_asgi_streams_the_request_and_the_response_body(site: Path) -> None:
    async with running_apps(site, STARLETTE) as srv, srv.client() as client:
        echoed = await client.post("/app/echo", content=chunks(40, 5000))
        async with client.stream("GET", "/app/count?n=200") as counted:
            pieces = [piece async for piece in counted.aiter_raw()]
    expected = b"".join([bytes([97 + i % 26]) * 5000 for i in range(40)]).upper()
    assert echoed.status_code == 200
    assert echoed.content == expected
    assert echoed.headers["transfer-encoding"] == "chunked"  # streamed, not buffered
    assert b"".join(pieces) == b"".join(f"{i}\n".encode() for i in range(200))
    assert counted.headers["transfer-encoding"] == "chunked"


async def test_asgi_app_error_is_a_500_through_custom_errors(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_apps(site, STARLETTE) as srv, srv.client() as client:
        response = await client.get("/app/boom")
        after = await client.get("/app/hello")  # the server goes on
    assert response.status_code == 500
    assert "<h1>500 Internal Server Error</h1>" in response.text  # custom_errors' page
    assert "the app broke" not in response.text
    assert after.status_code == 200
    failures = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert any("the app broke" in str(r.exc_info[1]) for r in failures if r.exc_info)


async def test_asgi_client_disconnect_delivers_http_disconnect(site: Path) -> None:
    async with running_apps(site, STARLETTE) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(
                b"POST /app/raw/x HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
            )
            await reached("body-read").wait()
            await stream.aclose()
            await reached("disconnect").wait()
    assert ("disconnect", "/app/raw/x") in EVENTS


async def test_asgi_app_ignoring_the_disconnect_is_cancelled_after_the_grace(
    site: Path, tmp_path: Path
) -> None:
    """``disconnect_grace`` bounds what an app does after its client left: one that never
    calls ``receive()`` is cancelled (well before shutdown), and the request is logged as
    cancelled by its client."""
    log_file = tmp_path / "access.log"
    options = {"app": f"{SAMPLES}:conformance", "root_path": "/c", "disconnect_grace": 0.05}
    quick = builtin("asgi", options)
    async with running_server(
        quick,
        root=site,
        handlers=(HandlerMapping("/c/*", ("asgi",)),),
        access_log=str(log_file),
    ) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(b"GET /c/ignore-disconnect HTTP/1.1\r\nHost: t\r\n\r\n")
            await reached("ignoring").wait()
            await stream.aclose()
            await reached("cancelled").wait()
    assert ("cancelled", "/ignore-disconnect") in EVENTS
    assert '"GET /c/ignore-disconnect HTTP/1.1"' in log_file.read_text()
    assert "cancelled_by_client" in log_file.read_text()


async def test_asgi_cancel_io_on_a_read_delivers_http_disconnect(site: Path) -> None:
    """A module cancels the app's pending body read with ``cancel_io()``: the app's
    ``receive()`` answers ``http.disconnect`` instead of raising."""
    cancelled: list[int] = []

    async def cancel_when_reading(ctx: HttpContext) -> None:
        await reached("chunk").wait()
        while ctx.pending_io_count == 0:  # bounded by the test's fail_after
            await trio.lowlevel.checkpoint()
        cancelled.append(ctx.cancel_io())

    class Canceller(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            ctx.start_soon(cancel_when_reading, ctx)

    canceller = ("canceller", register(Canceller, Notification.BEGIN_REQUEST))
    config = apps_config(STARLETTE)
    async with running_server(canceller, root=site, **config) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(
                    b"POST /app/raw/y HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"
                )
                await reached("disconnect").wait()
                head = b""
                while b"\r\n\r\n" not in head:
                    head += await stream.receive_some(65536)
    assert cancelled == [1]
    assert ("disconnect", "/app/raw/y") in EVENTS
    # The app returned without a response: the client still gets a well-formed one.
    assert statuses_in(head) == [500]


async def test_asgi_lifespan_startup_failure_stops_the_server() -> None:
    config = config_from_mapping(
        {"handlers": [{"path": "/*", "asgi": f"{SAMPLES}:failing_startup"}]}
    )
    server = HttpServer(
        ServerConfig(bindings=("127.0.0.1:0",), modules=config.modules, handlers=config.handlers)
    )
    with trio.fail_after(10), pytest.raises(ConfigError) as caught:
        await server.serve()
    assert str(caught.value) == (
        "module 'asgi /*' failed to start: LifespanError: asgi /*: lifespan startup failed:"
        " database unreachable"
    )


async def test_asgi_asyncio_lifespan_stops_the_server_with_a_clear_error() -> None:
    config = config_from_mapping(
        {"handlers": [{"path": "/*", "asgi": f"{SAMPLES}:asyncio_lifespan"}]}
    )
    server = HttpServer(
        ServerConfig(bindings=("127.0.0.1:0",), modules=config.modules, handlers=config.handlers)
    )
    with trio.fail_after(10), pytest.raises(ConfigError) as caught:
        await server.serve()
    message = str(caught.value)
    assert message.startswith("module 'asgi /*' failed to start: AsyncioAppError: ASGI app")
    assert "needs asyncio" in message
    assert "\n" not in message


async def test_asgi_asyncio_only_app_gets_a_clear_error(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        running_apps(site, {"path": "/aio/*", "asgi": f"{SAMPLES}:asyncio_only"}) as srv,
        srv.client() as client,
    ):
        response = await client.get("/aio/x")
    assert response.status_code == 500
    messages = [str(r.exc_info[1]) for r in caplog.records if r.exc_info]
    assert any("needs asyncio" in m and "Starlette" in m for m in messages)


# ---------------------------------------------------------------- ASGI conformance

CONFORMANCE = {"path": "/c/*", "asgi": f"{SAMPLES}:conformance"}


async def test_asgi_conformance_scope(site: Path) -> None:
    """The http scope's keys and types (Uvicorn's test_http scope checks, Hypercorn's
    test_http_scope): bytes raw_path and query_string, lower-case header names, the
    mount point as root_path and the full path as path."""
    async with running_apps(site, CONFORMANCE) as srv, srv.client() as client:
        response = await client.get("/c/scope?a=%20b", headers={"X-Test": "Yes"})
    scope = eval(response.text)  # the app's repr of plain literals
    assert scope == {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/c/scope",
        "raw_path": b"/c/scope",
        "query_string": b"a=%20b",
        "root_path": "/c",
        "headers": [(b"x-test", b"Yes")],
        "lower": True,
        "asgi": "3.0",
        "client": "127.0.0.1",
        "server_port_is_int": True,
    }


@pytest.mark.parametrize(
    "path", ["/c/no-response", "/c/start-twice", "/c/body-before-start", "/c/bad-type"]
)
async def test_asgi_conformance_protocol_errors_are_500(site: Path, path: str) -> None:
    """Uvicorn's no-response, double-start, body-before-start and unknown-message cases:
    the client gets a 500, and the connection goes on."""
    async with running_apps(site, CONFORMANCE) as srv, srv.client() as client:
        response = await client.get(path)
        after = await client.get("/c/headers")
    assert response.status_code == 500
    assert after.status_code == 201


@pytest.mark.parametrize("path", ["/c/raise-after-body", "/c/incomplete"])
async def test_asgi_conformance_unfinished_response_is_cut_off(site: Path, path: str) -> None:
    """Once headers were sent, a failure (or an app that stops early) must not look like
    a complete response: the connection is reset, the chunked body never terminated."""
    async with running_apps(site, CONFORMANCE) as srv:
        raw = await raw_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    assert statuses_in(raw) == [200]
    assert b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n")


async def test_asgi_conformance_headers_and_framing(site: Path) -> None:
    """Repeated headers kept in order, the app's Content-Length kept, empty final body;
    HEAD gets the headers and no body (Hypercorn's test_http HEAD case)."""
    async with running_apps(site, CONFORMANCE) as srv, srv.client() as client:
        response = await client.get("/c/headers")
        head = await client.head("/c/headers")
        after = await client.get("/c/after-complete")
    assert response.status_code == 201
    assert response.content == b"hello"
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]
    assert response.headers["content-length"] == "5"
    assert response.headers["x-app"] == "yes"
    assert head.status_code == 201
    assert head.content == b""
    assert after.text == "done"
    assert ("after-complete", "http.disconnect") in EVENTS


async def test_asgi_conformance_paths_and_versions(site: Path) -> None:
    """Uvicorn's test_raw_path (percent-escapes decoded in ``path`` except ``%2F``, which
    would change the path's segments; ``raw_path`` as received) and test_http10_request."""
    async with running_apps(site, CONFORMANCE) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /c/echo-path/one%2Ftwo%2Dthree HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        old = await raw_request(srv.port, b"GET /c/echo-path HTTP/1.0\r\nHost: t\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n/c/echo-path/one%2Ftwo-three|/c/echo-path/one%2Ftwo%2Dthree|1.1")
    assert old.endswith(b"\r\n\r\n/c/echo-path|/c/echo-path|1.0")


@pytest.mark.parametrize("path", ["/c/undersized", "/c/oversized"])
async def test_asgi_conformance_wrong_content_length_closes(site: Path, path: str) -> None:
    """Uvicorn's test_undersized_request / test_oversized_request: a body that disagrees
    with the app's Content-Length never goes out as a complete response; the connection
    closes."""
    async with running_apps(site, CONFORMANCE) as srv:
        raw = await raw_request(srv.port, f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert not (b"content-length: 10" in head.lower() and len(body) == 10)


async def test_asgi_conformance_app_framing_headers(site: Path) -> None:
    """Uvicorn's test_close (the app's ``Connection: close`` closes the connection after the
    response) and test_chunked_encoding (the app's own ``Transfer-Encoding: chunked``: one
    well-formed chunked body)."""
    async with running_apps(site, CONFORMANCE) as srv:
        closed = await raw_request(srv.port, b"GET /c/close HTTP/1.1\r\nHost: t\r\n\r\n")
        chunked = await raw_request(
            srv.port, b"GET /c/chunked HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
    assert statuses_in(closed) == [204]  # raw_request read until the server closed
    assert statuses_in(chunked) == [200]
    assert b"Hello, world!" in chunked
    assert chunked.count(b"0\r\n\r\n") == 1


async def test_asgi_conformance_100_continue_when_the_app_reads(site: Path) -> None:
    """Uvicorn's test_100_continue_sent_when_body_consumed: the client waits for
    ``100 Continue``, which goes out when the app's ``receive()`` first reads the body."""
    async with running_apps(site, CONFORMANCE) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(
                    b"POST /c/body-size HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 4\r\nConnection: close\r\n\r\n"
                )
                interim = b""
                while b"\r\n\r\n" not in interim:
                    interim += await stream.receive_some(65536)
                await stream.send_all(b"abcd")
                rest = b""
                while chunk := await stream.receive_some(65536):
                    rest += chunk
    assert interim.startswith(b"HTTP/1.1 100 ")
    assert statuses_in(interim + rest) == [100, 200]
    assert (interim + rest).endswith(b"\r\n\r\n4")


@pytest.mark.parametrize("chunked", [False, True])
async def test_asgi_conformance_request_body_in_pieces(site: Path, chunked: bool) -> None:
    body = chunks(50, 4000) if chunked else b"z" * 200_000
    async with running_apps(site, CONFORMANCE) as srv, srv.client() as client:
        response = await client.post("/c/body-size", content=body)
    assert response.text == ("200000" if not chunked else str(50 * 4000))


# ---------------------------------------------------------------- WSGI (Flask)


async def test_wsgi_flask_routes_mounted_beside_static_files(site: Path, tmp_path: Path) -> None:
    log_file = tmp_path / "access.log"
    async with (
        running_apps(site, FLASK, access_log=str(log_file)) as srv,
        srv.client() as client,
    ):
        hello = await client.get("/shop/hello?q=7")
        home = await client.get("/")
        missing = await client.get("/shop/nowhere")
    assert hello.status_code == 200
    assert hello.text == "/shop|/hello|7"  # SCRIPT_NAME is the mount point
    assert "home" in home.text
    assert missing.status_code == 404
    lines = log_file.read_text().splitlines()
    assert any('"GET /shop/hello?q=7 HTTP/1.1" 200' in line for line in lines)


async def test_wsgi_streams_both_ways_and_closes_the_iterable(site: Path) -> None:
    async with running_apps(site, FLASK) as srv, srv.client() as client:
        echoed = await client.post("/shop/echo", content=chunks(40, 5000))
        counted = await client.get("/shop/count?n=500")
    expected = b"".join([bytes([97 + i % 26]) * 5000 for i in range(40)]).upper()
    assert echoed.content == expected
    assert echoed.headers["transfer-encoding"] == "chunked"
    assert counted.text == "".join(f"{i}\n" for i in range(500))
    assert ("closed", "/count") in EVENTS


async def test_wsgi_app_error_is_a_500_through_custom_errors(site: Path) -> None:
    async with running_apps(site, FLASK) as srv, srv.client() as client:
        response = await client.get("/shop/boom")
        after = await client.get("/shop/hello")
    assert response.status_code == 500
    assert "<h1>500 Internal Server Error</h1>" in response.text
    assert "the app broke" not in response.text
    assert after.status_code == 200


async def test_wsgi_client_gone_abandons_the_thread_which_still_closes(site: Path) -> None:
    """The client leaves mid-stream: the request ends at once, the worker thread's next
    write fails, and the app's iterable is closed in that thread."""
    async with running_apps(site, FLASK) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(b"GET /shop/forever HTTP/1.1\r\nHost: t\r\n\r\n")
            received = 0
            while received < 200_000:
                received += len(await stream.receive_some(65536))
            await stream.aclose()
            # close() runs in the abandoned worker thread: wait for it there.
            assert await trio.to_thread.run_sync(closed("/forever").wait, 10)
    assert ("closed", "/forever") in EVENTS


# ---------------------------------------------------------------- a real config file


async def test_example_config_serves_starlette_flask_and_static() -> None:
    """examples/apps/trioiis.toml as shipped (only its binding and log moved)."""
    config_file = EXAMPLE_CONFIG
    server = HttpServer(load_config(config_file, bindings=("127.0.0.1:0",), access_log=None))
    async with trio.open_nursery() as nursery:
        ((host, port),) = await nursery.start(server.serve)
        srv = Running(server, host, port)
        async with srv.client() as client:
            api = await client.get("/api/hello")
            counted = await client.get("/api/count?n=2")
            shop = await client.get("/shop/")
            echo = await client.post("/shop/echo", content=b"ping")
            static = await client.get("/")
        await server.shutdown(grace=2)
    assert api.json() == {"hello": "world", "root_path": "/api", "path": "/api/hello"}
    assert counted.text == "0\n1\n"
    assert shop.text == "the shop, mounted at /shop"
    assert echo.content == b"ping"
    assert "Static files, a Starlette app and a Flask app" in static.text
