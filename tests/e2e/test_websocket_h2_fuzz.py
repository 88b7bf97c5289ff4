"""Hypothesis: random WebSocket frame sequences (valid and invalid, cut at random points) in
the DATA of an HTTP/2 extended-CONNECT stream (RFC 8441), ended by END_STREAM, RST_STREAM or
the connection's loss, never crash the server, never log an error, always end the stream,
and leave no task behind (``trio.run`` returns only once every task ended, ``fail_after``
bounds it). The connection is served over a memory stream pair (the server's HTTP/2
driver as a socket would run it)."""

from __future__ import annotations

import logging

import h2.config
import h2.connection
import h2.errors
import h2.events
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trioiis
from trioiis import HandlerMapping, Notification

from ..helpers import register
from .test_websocket_fuzz import FUZZ_EXAMPLES, WIRE, Echo, _Errors

ENDINGS = ("end_stream", "rst_stream", "connection_lost")


class _Client:
    """The raw h2 side of the exchange: one CONNECT stream."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.conn.initiate_connection()
        self.sid = self.conn.get_next_available_stream_id()
        self.status = 0
        self.data = bytearray()
        self.done = False  # the server ended or reset the stream
        self.closed = False  # the server closed the connection

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.closed = True

    async def receive(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return
        for ev in self.conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                self.status = int(dict(ev.headers or [])[b":status"])
            elif isinstance(ev, h2.events.DataReceived):
                self.data += ev.data or b""
                if ev.flow_controlled_length:
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded | h2.events.StreamReset):
                self.done = True
        await self.flush()


async def _exchange(wire: bytes, cuts: list[int], ending: str) -> _Client:
    server = trioiis.HttpServer(trioiis.ServerConfig(handlers=(HandlerMapping("*", ("echo",)),)))
    server.register_module("echo", register(Echo, Notification.EXECUTE_REQUEST_HANDLER))
    near, far = trio.testing.memory_stream_pair()
    client = _Client(near)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            local = ("127.0.0.1", 80)
            nursery.start_soon(
                lambda: server._serve_http2(far, ("127.0.0.1", 1), local, secure=False)
            )
            client.conn.send_headers(
                client.sid,
                [
                    (b":method", b"CONNECT"),
                    (b":protocol", b"websocket"),
                    (b":scheme", b"http"),
                    (b":path", b"/ws"),
                    (b":authority", b"t"),
                    (b"sec-websocket-version", b"13"),
                    (b"sec-websocket-extensions", b"permessage-deflate"),
                ],
            )
            await client.flush()
            while not client.status and not client.closed:
                await client.receive()
            nursery.start_soon(_read_rest, client)
            previous = 0
            for cut in [*sorted({c for c in cuts if c < len(wire)}), len(wire)]:
                piece = memoryview(wire)[previous:cut]
                previous = cut
                while piece and not (client.done or client.closed):
                    room = min(
                        client.conn.local_flow_control_window(client.sid),
                        client.conn.max_outbound_frame_size,
                    )
                    if room <= 0:
                        await trio.testing.wait_all_tasks_blocked()
                        if client.conn.local_flow_control_window(client.sid) <= 0:
                            break  # the server stopped reading (it is failing the socket)
                        continue
                    client.conn.send_data(client.sid, bytes(piece[:room]))
                    piece = piece[room:]
                    await client.flush()
                await trio.testing.wait_all_tasks_blocked()
            if not (client.done or client.closed):
                if ending == "end_stream":
                    client.conn.end_stream(client.sid)
                elif ending == "rst_stream":
                    client.conn.reset_stream(client.sid, h2.errors.ErrorCodes.CANCEL)
                    client.done = True  # (the stream ended here: nothing more comes on it)
                await client.flush()
            if ending != "connection_lost":
                await trio.testing.wait_all_tasks_blocked()
            await near.aclose()  # the client leaves: the connection ends
    server.pipeline.terminate()
    return client


async def _read_rest(client: _Client) -> None:
    while not client.closed:
        await client.receive()


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
        client = trio.run(_exchange, wire, cuts, ending)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert client.status == 200
    if client.data:  # the server's frames are unmasked and start with a known opcode
        assert client.data[0] & 0x0F in (0, 1, 2, 8, 9, 10)
        assert not client.data[1] & 0x80
        event(f"server sent opcode {client.data[0] & 0x0F}")
    if ending != "connection_lost":
        assert client.done  # the server ended (END_STREAM) or reset its side
