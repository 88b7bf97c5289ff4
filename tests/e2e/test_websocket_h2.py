"""WebSockets over HTTP/2 (RFC 8441 extended CONNECT) on a real loopback socket, with a raw
``h2`` client and ``wsproto`` framing (tests/e2e/ws_h2.py): the native API and a hosted
FastAPI app on one stream of a connection, close codes both ways, RST_STREAM mid-socket,
flow control for messages larger than the window, and shutdown's 1001."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import h2.errors
import h2.settings
import pytest
import trio
from wsproto.events import BytesMessage, CloseConnection, TextMessage

import trioiis
from trioiis.config import config_from_mapping

from . import ws_apps
from .ws_apps import EVENTS, reached
from .ws_h2 import H2WebSocket, Served, h2_server
from .ws_helpers import NATIVE_HANDLERS, Seen, access_lines, echo, native_module

E = h2.errors.ErrorCodes


def asgi_server(site: Path, app: str) -> contextlib.AbstractAsyncContextManager[Served]:
    """``app`` of tests/e2e/ws_apps.py at ``/ws/*``, beside ``site``'s static files."""
    config = config_from_mapping(
        {"handlers": [{"path": "/ws/*", "asgi": f"tests.e2e.ws_apps:{app}"}]}
    )
    return h2_server(root=site, modules=config.modules, handlers=config.handlers)


@pytest.fixture(autouse=True)
def _fresh_events() -> None:
    EVENTS.clear()
    ws_apps.REACHED.clear()


async def test_settings_advertise_extended_connect_and_echo_text_and_binary() -> None:
    seen = Seen()
    big = os.urandom(300_000)  # several times the stream's initial window, both ways
    with access_lines() as log:
        async with h2_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as served:
            client = served.client
            ws = await H2WebSocket.open(client)
            assert client.conn.remote_settings.enable_connect_protocol == 1
            assert ws.result.status == 200
            assert b"sec-websocket-accept" not in ws.result.headers  # RFC 8441 §5
            assert await ws.echo("héllo") == "héllo"
            assert await ws.echo(big) == big
            answer = await ws.close(1000)
            line = await log.wait_for("/ws")
    assert (answer.code, ws.result.ended, ws.result.reset) == (1000, True, None)
    assert seen.close_status == [trioiis.CloseStatus(1000, "")]
    assert "CONNECT /ws" in line
    assert " 200 " in line
    assert "completed" in line
    assert "ws_close=1000" in line
    assert int(line.split("ws_in=")[1].split()[0]) > len(big)


async def test_close_code_from_the_module_reaches_the_client_then_end_stream() -> None:
    seen = Seen()

    async def closer(ctx: Any, ws: trioiis.WebSocketContext, seen: Seen) -> None:
        await ws.send_connection_close(4002, "go away")
        seen.fragments.append(await ws.read_fragment())

    with access_lines() as log:
        async with h2_server(native_module(closer, seen), handlers=NATIVE_HANDLERS) as served:
            client = served.client
            ws = await H2WebSocket.open(client)
            event = await ws.next_event()
            assert isinstance(event, CloseConnection)
            assert (event.code, event.reason) == (4002, "go away")
            await ws.send(event.response())
            await client.until(lambda: ws.result.done)
            line = await log.wait_for("/ws")
    assert ws.result.ended
    assert ws.result.reset is None
    assert seen.fragments[0].close
    assert "completed" in line
    assert "ws_close=4002" in line


async def test_close_code_from_the_client_reaches_the_module() -> None:
    seen = Seen()
    async with h2_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as served:
        client = served.client
        ws = await H2WebSocket.open(client)
        answer = await ws.close(4001, "bye now")
        with trio.fail_after(10):
            await seen.ended.wait()
    assert (answer.code, answer.reason) == (4001, "bye now")
    assert seen.close_status == [trioiis.CloseStatus(4001, "bye now")]


async def test_rst_stream_mid_socket_cancels_that_request_only() -> None:
    """RST_STREAM on one WebSocket stream is that peer gone (the pending read is cancelled:
    cancelled_by_client, 1006); the WebSocket on another stream and plain requests on the
    same connection go on."""
    seen = Seen()

    async def wait_or_echo(ctx: trioiis.HttpContext, ws: trioiis.WebSocketContext, seen: Seen):
        if ctx.request.path == "/ws/wait":
            await ws.read_fragment()
        else:
            await echo(ctx, ws, seen)

    with access_lines() as log:
        async with h2_server(native_module(wait_or_echo, seen), handlers=NATIVE_HANDLERS) as served:
            client = served.client
            other = await H2WebSocket.open(client, "/ws/echo")
            victim = await H2WebSocket.open(client, "/ws/wait")
            assert await other.echo("before") == "before"
            await victim.reset()
            line = await log.wait_for("/ws/wait")
            assert await other.echo(b"after") == b"after"
            plain = await client.get("/nothing-here")
            await other.close()
    assert "cancelled_by_client" in line
    assert "ws_close=1006" in line
    assert any(isinstance(e, trio.Cancelled) for e in seen.errors)
    assert plain.status == 404
    assert served.running.server.counters.http2["streams_reset_by_client"] == 1


async def test_end_stream_without_a_close_frame_is_the_peer_gone() -> None:
    seen = Seen()

    async def wait_forever(ctx: Any, ws: trioiis.WebSocketContext, seen: Seen) -> None:
        await ws.read_fragment()
        await ws.read_fragment()

    with access_lines() as log:
        async with h2_server(native_module(wait_forever, seen), handlers=NATIVE_HANDLERS) as served:
            client = served.client
            ws = await H2WebSocket.open(client)
            await ws.send(TextMessage("last"), end=True)
            line = await log.wait_for("/ws")
            await client.until(lambda: ws.result.done)
    assert "cancelled_by_client" in line
    assert "ws_close=1006" in line
    assert ws.result.reset == E.CANCEL  # the server's side ended by a reset


async def test_a_module_that_does_not_read_pushes_back_through_flow_control() -> None:
    """The stream's window is reopened only as the WebSocket reads: a module that reads
    nothing holds at most its receive queue plus the window, whatever the client sends."""
    seen = Seen()
    limits = trioiis.WebSocketLimits(receive_queue=64 * 1024)
    stop = trio.Event()

    async def sleeper(ctx: Any, ws: trioiis.WebSocketContext, seen: Seen) -> None:
        await stop.wait()

    async with h2_server(
        native_module(sleeper, seen, limits=limits), handlers=NATIVE_HANDLERS
    ) as served:
        client = served.client
        ws = await H2WebSocket.open(client)
        chunk = BytesMessage(b"x" * 16384)
        sent = 0
        with trio.move_on_after(2):
            while sent < 16 * 1024 * 1024:
                if client.conn.local_flow_control_window(ws.sid) < 32768:
                    await client.receive_once()  # wait for WINDOW_UPDATE
                    continue
                await ws.send(chunk)
                sent += 16384
        queued = seen.contexts[0]._ws._incoming_bytes
        stop.set()
    window = served.running.server.config.limits.receive_buffer
    assert sent < 16 * 1024 * 1024  # the client was pushed back
    assert queued <= limits.receive_queue + 65536
    assert sent <= queued + window + 65536 + 3 * 16384


async def test_fastapi_websocket_route_over_h2(site: Path) -> None:
    async with asgi_server(site, "fastapi_app") as served:
        client = served.client
        ws = await H2WebSocket.open(
            client, "/ws/json", extra=[(b"sec-websocket-protocol", b"chat")]
        )
        assert ws.result.headers[b"sec-websocket-protocol"] == b"chat"
        await ws.send(TextMessage('{"a": 1}'))
        assert await ws.receive_message() == '{"got":{"a":1},"path":"/ws/json"}'
        echo_ws = await H2WebSocket.open(client, "/ws/echo")
        assert await echo_ws.echo(b"\x00\x01") == b"\x00\x01"
        await echo_ws.close(4000, "done")
        await ws.reset()
        with trio.fail_after(10):
            await reached("/ws/echo disconnect").wait()
            await reached("/ws/json disconnect").wait()
    assert ("disconnect", "/ws/echo", 4000) in EVENTS
    assert ("disconnect", "/ws/json", 1006) in EVENTS


async def test_app_denial_and_malformed_handshake_over_h2(site: Path) -> None:
    async with asgi_server(site, "conformance") as served:
        client = served.client
        denied = await H2WebSocket.open(client, "/ws/deny")
        await client.until(lambda: denied.result.done)
        rejected = await H2WebSocket.open(client, "/ws/reject")
        await client.until(lambda: rejected.result.done)
        sid = client.request(  # no Sec-WebSocket-Version
            "/ws/wait", method="CONNECT", end=False, extra=[(b":protocol", b"websocket")]
        )
        await client.flush()
        await client.until(lambda: client.results[sid].done)
    assert (denied.result.status, bytes(denied.result.body)) == (401, b"token required")
    assert rejected.result.status == 403
    assert client.results[sid].status == 400


async def test_graceful_shutdown_closes_h2_sockets_with_1001(site: Path) -> None:
    async with asgi_server(site, "conformance") as served:
        client = served.client
        first = await H2WebSocket.open(client, "/ws/wait")
        second = await H2WebSocket.open(client, "/ws/wait")
        with trio.fail_after(10):
            await reached("/ws/wait").wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(served.running.server.shutdown, 5)
            codes = []
            for ws in (first, second):
                event = await ws.next_event()
                assert isinstance(event, CloseConnection)
                codes.append(event.code)
                await ws.send(event.response())
            await client.until_closed()
    assert codes == [1001, 1001]
    assert client.goaway is not None
    assert EVENTS.count(("disconnect", "/ws/wait", 1001)) == 2


async def test_client_goaway_ends_every_websocket_of_the_connection(site: Path) -> None:
    async with asgi_server(site, "conformance") as served:
        client = served.client
        await H2WebSocket.open(client, "/ws/wait")
        with trio.fail_after(10):
            await reached("/ws/wait").wait()
        client.conn.close_connection()
        await client.flush()
        with trio.fail_after(10):
            await reached("/ws/wait disconnect").wait()
    assert ("disconnect", "/ws/wait", 1006) in EVENTS
