"""Hosted ASGI and WSGI apps over HTTP/2: the scope says ``"2"``, a client's RST_STREAM is
the app's ``http.disconnect``, and a Flask app works unchanged."""

from __future__ import annotations

from pathlib import Path

import h2.errors
import httpx
import pytest
import trio

from tests.e2e import app_samples
from tests.e2e.app_samples import EVENTS, reached
from tests.e2e.test_apps import CONFORMANCE, FLASK, STARLETTE, running_apps
from tests.h2_client import H2Client


@pytest.fixture(autouse=True)
def _fresh_events() -> None:
    EVENTS.clear()
    app_samples.REACHED.clear()


async def test_asgi_scope_says_http_version_2(site: Path) -> None:
    async with (
        running_apps(site, CONFORMANCE) as srv,
        httpx.AsyncClient(http1=False, http2=True, base_url=srv.url) as client,
    ):
        response = await client.get("/c/echo-path")
    assert response.http_version == "HTTP/2"
    assert response.text == "/c/echo-path|/c/echo-path|2"


async def test_asgi_app_gets_http_disconnect_on_rst_stream(site: Path) -> None:
    async with running_apps(site, STARLETTE) as srv:
        client = await H2Client.connect(srv.port)
        async with client:
            sid = client.request(
                "/app/raw/x", method="POST", body=b"abc", extra=[(b"content-length", b"3")]
            )
            await client.flush()
            with trio.fail_after(10):
                await reached("body-read").wait()
            client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            await client.flush()
            with trio.fail_after(10):
                await reached("disconnect").wait()
            after = await client.get("/app/hello")  # the same connection goes on
    assert ("disconnect", "/app/raw/x") in EVENTS
    assert after.status == 200


async def test_wsgi_flask_over_http2(site: Path) -> None:
    async with (
        running_apps(site, FLASK) as srv,
        httpx.AsyncClient(http1=False, http2=True, base_url=srv.url) as client,
    ):
        hello = await client.get("/shop/hello?q=7")
        echo = await client.post("/shop/echo", content=b"x" * 100_000)
    assert (hello.http_version, hello.text) == ("HTTP/2", "/shop|/hello|7")
    assert (echo.status_code, echo.content) == (200, b"X" * 100_000)
