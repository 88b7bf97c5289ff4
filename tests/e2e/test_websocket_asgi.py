"""WebSockets for hosted ASGI apps (FastAPI beside static files, a raw conformance app)
over real sockets with the ``websockets`` client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from websockets.exceptions import ConnectionClosed, InvalidStatus

from trioiis.config import config_from_mapping

from ..helpers import raw_request, running_server
from . import ws_apps
from .ws_apps import EVENTS, reached
from .ws_helpers import access_lines, client, handshake, in_thread, reset

APPS = "tests.e2e.ws_apps"


@pytest.fixture(autouse=True)
def _fresh_events() -> None:
    EVENTS.clear()
    ws_apps.REACHED.clear()


def serve(site: Path, app: str, **options: Any) -> Any:
    config = config_from_mapping(
        {"handlers": [{"path": "/ws/*", "asgi": f"{APPS}:{app}", **options}]}
    )
    return running_server(root=site, modules=config.modules, handlers=config.handlers)


async def wait_for_event(event: tuple[Any, ...]) -> None:
    """Wait until the app at ``event[1]`` saw its disconnect, then check it was ``event``."""
    with trio.fail_after(10):
        await reached(f"{event[1]} disconnect").wait()
    assert event in EVENTS


async def test_fastapi_websocket_route_beside_static_files(site: Path) -> None:
    async with serve(site, "fastapi_app") as srv:

        def talk() -> tuple[Any, Any, Any]:
            with client(srv.port, "/ws/echo", max_size=None) as ws:
                ws.send("hi")
                text = ws.recv()
                ws.send(b"\x00" * 1_000_000)
                binary = ws.recv()
            with client(srv.port, "/ws/json", subprotocols=["chat"]) as ws:
                ws.send(json.dumps({"n": 1}))
                answer = (json.loads(ws.recv()), ws.subprotocol)
            return text, binary, answer

        text, binary, answer = await in_thread(talk)
        async with httpx.AsyncClient(base_url=srv.url) as http:
            home = await http.get("/")
            plain = await http.get("/ws/plain")
    assert text == "hi"
    assert binary == b"\x00" * 1_000_000
    assert answer == ({"got": {"n": 1}, "path": "/ws/json"}, "chat")
    assert home.status_code == 200  # static files still served
    assert plain.json() == {"hello": "http"}  # the app's HTTP routes too
    assert ("disconnect", "/ws/echo", 1000) in EVENTS


async def test_accept_with_subprotocol_and_headers(site: Path) -> None:
    async with serve(site, "conformance") as srv:

        def talk() -> tuple[str | None, str | None, str]:
            with client(srv.port, "/ws/wait", subprotocols=["other", "chat"]) as ws:
                ws.send("x")
                echo = ws.recv()
                assert ws.response is not None
                return ws.subprotocol, ws.response.headers.get("x-hello"), str(echo)

        assert await in_thread(talk) == ("chat", "world", "x")


async def test_close_code_and_reason_from_the_app(site: Path) -> None:
    async with serve(site, "conformance") as srv:

        def talk() -> tuple[int, str]:
            with client(srv.port, "/ws/close") as ws:
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(timeout=10)
                rcvd = caught.value.rcvd
                assert rcvd is not None
                return rcvd.code, rcvd.reason

        assert await in_thread(talk) == (4100, "nope")
        await wait_for_event(("disconnect", "/ws/close", 4100))


async def test_close_code_from_the_client_reaches_the_app(site: Path) -> None:
    with access_lines() as log:
        async with serve(site, "conformance") as srv:

            def talk() -> None:
                with client(srv.port, "/ws/wait") as ws:
                    ws.close(4200, "done")

            await in_thread(talk)
            await wait_for_event(("disconnect", "/ws/wait", 4200))
            line = await log.wait_for("/ws/wait")
    assert "completed" in line
    assert "ws_close=4200" in line


async def test_vanished_client_gives_the_app_websocket_disconnect_1006(site: Path) -> None:
    with access_lines() as log:
        async with serve(site, "conformance") as srv:
            sock = await in_thread(lambda: handshake(srv.port, "/ws/wait"))
            with trio.fail_after(10):
                await reached("/ws/wait").wait()
            reset(sock)
            await wait_for_event(("disconnect", "/ws/wait", 1006))
            line = await log.wait_for("/ws/wait")
    assert "cancelled_by_client" in line


async def test_denial_response_extension(site: Path) -> None:
    async with serve(site, "conformance") as srv:

        def talk() -> tuple[int, bytes, str | None]:
            with pytest.raises(InvalidStatus) as caught:
                client(srv.port, "/ws/deny")
            response = caught.value.response
            return response.status_code, response.body, response.headers.get("x-why")

        assert await in_thread(talk) == (401, b"token required", "no token")


async def test_close_before_accept_is_a_403(site: Path) -> None:
    async with serve(site, "conformance") as srv:

        def talk() -> int:
            with pytest.raises(InvalidStatus) as caught:
                client(srv.port, "/ws/reject")
            return caught.value.response.status_code

        assert await in_thread(talk) == 403


async def test_app_returning_with_the_socket_open_closes_1000_raising_closes_1011(
    site: Path,
) -> None:
    async with serve(site, "conformance") as srv:

        def code(path: str) -> int:
            with client(srv.port, path) as ws:
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(timeout=10)
                assert caught.value.rcvd is not None
                return caught.value.rcvd.code

        assert await in_thread(lambda: code("/ws/return")) == 1000
        assert await in_thread(lambda: code("/ws/raise")) == 1011


async def test_malformed_handshake_gets_a_400_without_the_app(site: Path) -> None:
    async with serve(site, "conformance") as srv, httpx.AsyncClient(base_url=srv.url) as http:
        response = await http.get(
            "/ws/wait", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        )
    assert response.status_code == 400
    assert "Sec-WebSocket-Version" in response.text


async def test_http10_upgrade_is_refused(site: Path) -> None:
    async with serve(site, "conformance") as srv:
        raw = await raw_request(
            srv.port,
            b"GET /ws/wait HTTP/1.0\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert b"needs HTTP/1.1" in raw


async def test_graceful_shutdown_closes_sockets_with_1001(site: Path) -> None:
    codes: list[int] = []
    async with serve(site, "conformance") as srv:

        def talk() -> None:
            with client(srv.port, "/ws/wait") as ws:
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(timeout=20)
                assert caught.value.rcvd is not None
                codes.append(caught.value.rcvd.code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(in_thread, talk)
            with trio.fail_after(10):
                await reached("/ws/wait").wait()
            await srv.server.shutdown(grace=5)
    assert codes == [1001]
    assert ("disconnect", "/ws/wait", 1001) in EVENTS
