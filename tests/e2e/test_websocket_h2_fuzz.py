"""Hypothesis: random WebSocket frame sequences (valid and invalid, cut at random points) in
the DATA of an HTTP/2 extended-CONNECT stream (RFC 8441), ended by END_STREAM, RST_STREAM or
the connection's loss, never crash the server, never log an error, always end the stream,
and leave no task behind (``trio.run`` returns only once every task ended, ``fail_after``
bounds it). The connection is served over a memory stream pair (the server's HTTP/2
driver as a socket would run it)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable

import h2.errors
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trioiis
from tests.h2_client import H2Client, StreamResult
from trioiis import HandlerMapping, Notification
from trioiis._server.idle import IdleReaper

from ..helpers import register
from .test_websocket_fuzz import FUZZ_EXAMPLES, WIRE, Echo, _Errors

ENDINGS = ("end_stream", "rst_stream", "connection_lost")
CONNECT = [
    (b":protocol", b"websocket"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-extensions", b"permessage-deflate"),
]


async def _exchange(wire: bytes, cuts: list[int], ending: str) -> StreamResult:
    server = trioiis.HttpServer(trioiis.ServerConfig(handlers=(HandlerMapping("*", ("echo",)),)))
    server.register_module("echo", register(Echo, Notification.EXECUTE_REQUEST_HANDLER))
    near, far = trio.testing.memory_stream_pair()
    client = H2Client(near)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            local = ("127.0.0.1", 80)
            clock = IdleReaper()
            nursery.start_soon(clock.run)
            nursery.start_soon(
                lambda: serve_then_stop(
                    server._serve_http2(
                        far, ("127.0.0.1", 1), local, secure=False, tasks=nursery, idle_clock=clock
                    ),
                    nursery.cancel_scope,
                )
            )
            sid = client.request("/ws", method="CONNECT", end=False, extra=CONNECT)
            await client.flush()
            result = client.results[sid]
            await client.until(lambda: bool(result.headers))
            nursery.start_soon(_read_rest, client)
            previous = 0
            for cut in [*sorted({c for c in cuts if c < len(wire)}), len(wire)]:
                piece = memoryview(wire)[previous:cut]
                previous = cut
                while piece and not (result.done or client.closed):
                    room = min(
                        client.conn.local_flow_control_window(sid),
                        client.conn.max_outbound_frame_size,
                    )
                    if room <= 0:
                        await trio.testing.wait_all_tasks_blocked()
                        if client.conn.local_flow_control_window(sid) <= 0:
                            break  # the server stopped reading (it is failing the socket)
                        continue
                    client.conn.send_data(sid, bytes(piece[:room]))
                    piece = piece[room:]
                    await client.flush()
                await trio.testing.wait_all_tasks_blocked()
            if not (result.done or client.closed):
                if ending == "end_stream":
                    client.conn.end_stream(sid)
                elif ending == "rst_stream":
                    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    result.reset = h2.errors.ErrorCodes.CANCEL  # (ours: nothing more comes)
                await client.flush()
            if ending != "connection_lost":
                await trio.testing.wait_all_tasks_blocked()
            await near.aclose()  # the client leaves: the connection ends
    server.pipeline.terminate()
    return result


async def serve_then_stop(serving: Awaitable[None], tasks: trio.CancelScope) -> None:
    """The connection, then the end of the nursery's other tasks (the idle clock's)."""
    await serving
    tasks.cancel()


async def _read_rest(client: H2Client) -> None:
    while not client.closed:
        await client.receive_once()


@settings(
    max_examples=max(10, FUZZ_EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(wire=WIRE, data=st.data())
def test_fuzz_frame_sequences_on_an_h2_stream_never_crash_the_server(
    wire: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8), label="cuts")
    ending = data.draw(st.sampled_from(ENDINGS), label="ending")
    errors = _Errors()
    logger = logging.getLogger("trioiis")
    logger.addHandler(errors)
    try:
        result = trio.run(_exchange, wire, cuts, ending)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert result.status == 200
    data = result.body
    if data:  # the server's frames are unmasked and start with a known opcode
        assert data[0] & 0x0F in (0, 1, 2, 8, 9, 10)
        assert not data[1] & 0x80
        event(f"server sent opcode {data[0] & 0x0F}")
    if ending != "connection_lost":
        assert result.done  # the server ended (END_STREAM) or reset its side
