"""Hypothesis: random WebSocket frame sequences (valid and invalid, cut at random points)
sent after a real handshake through ``HttpServer.handle_stream`` over a memory stream pair
never crash the server, never log an error, and leave no task behind (``trio.run`` only
returns once every task ended, and ``fail_after`` bounds it)."""

from __future__ import annotations

import logging
import os
import struct

import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trioiis
from trioiis import HandlerMapping, Notification, Status

from ..helpers import exchange_in_pieces, register

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"
)
LIMITS = trioiis.WebSocketLimits(
    max_message_size=4096, receive_queue=2048, ping_interval=None, close_timeout=1.0
)


def encode(opcode: int, payload: bytes, *, fin: bool, rsv: int, masked: bool) -> bytes:
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, (0x80 if masked else 0) | n)
    else:
        head = struct.pack("!BBH", first, (0x80 if masked else 0) | 126, n)
    if not masked:
        return head + payload
    mask = b"\x01\x02\x03\x04"
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=100).map(str.encode),
    st.builds(
        lambda code, reason: struct.pack("!H", code) + reason.encode(),
        st.sampled_from([1000, 1001, 1002, 1005, 1006, 1011, 2999, 3000, 4999, 5000]),
        st.text(max_size=20),
    ),
    st.integers(0, 6000).map(lambda n: b"a" * n),  # some past max_message_size
)
FRAMES = st.builds(
    encode,
    st.sampled_from([0, 1, 2, 8, 9, 10, 3, 7, 11, 15]),
    PAYLOADS,
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 4, 2]),
    masked=st.sampled_from([True, True, True, False]),
)
WIRE = st.lists(FRAMES, max_size=12).map(b"".join)


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Echo(trioiis.HttpModule):
    async def on_execute_request_handler(
        self, ctx: trioiis.HttpContext, provider: object
    ) -> Status:
        ctx.set_request_handled()
        async with trioiis.accept_websocket(ctx, limits=LIMITS) as ws:
            while not (fragment := await ws.read_fragment(1000)).close:
                try:
                    await ws.write_fragment(fragment.data, utf8=fragment.utf8, final=fragment.final)
                except trioiis.WebSocketClosedError:
                    break  # the peer's close came in between (answered by the server)
        return Status.CONTINUE


async def _exchange(wire: bytes, cuts: list[int]) -> bytes:
    server = trioiis.HttpServer(trioiis.ServerConfig(handlers=(HandlerMapping("*", ("echo",)),)))
    server.register_module("echo", register(Echo, Notification.EXECUTE_REQUEST_HANDLER))
    pieces = [len(HANDSHAKE) + c for c in cuts]
    return await exchange_in_pieces(
        server, HANDSHAKE + wire, pieces, timeout=10, peer_may_break=True
    )


FUZZ_EXAMPLES = int(os.environ.get("TRIOIIS_FUZZ_EXAMPLES", "100"))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(wire=WIRE, data=st.data())
def test_fuzz_frame_sequences_never_crash_the_server(wire: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8), label="cuts")
    errors = _Errors()
    logger = logging.getLogger("trioiis")
    logger.addHandler(errors)
    try:
        raw = trio.run(_exchange, wire, cuts)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    assert raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    after = raw.partition(b"\r\n\r\n")[2]
    # The server's frames are unmasked and start with a known opcode.
    if after:
        assert after[0] & 0x0F in (0, 1, 2, 8, 9, 10)
        assert not after[1] & 0x80
        event(f"server sent opcode {after[0] & 0x0F}")
