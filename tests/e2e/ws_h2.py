"""A WebSocket client over HTTP/2 (RFC 8441 extended CONNECT) for tests: the raw ``h2``
client (tests/h2_client.py) carries one stream, ``wsproto`` (no handshake of its own)
makes and reads the WebSocket frames in its DATA. No library client speaks RFC 8441."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import h2.errors
from wsproto.connection import Connection, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Event,
    Message,
    Ping,
    TextMessage,
)

from tests.h2_client import H2Client, StreamResult
from tests.helpers import Running, running_server


@dataclass
class Served:
    """A running server and one HTTP/2 (h2c prior knowledge) client connected to it."""

    running: Running
    client: H2Client


@contextlib.asynccontextmanager
async def h2_server(*modules: Any, **config: Any) -> AsyncIterator[Served]:
    """``running_server`` with one HTTP/2 client connected."""
    async with contextlib.AsyncExitStack() as stack:
        running = await stack.enter_async_context(running_server(*modules, **config))
        client = await stack.enter_async_context(await H2Client.connect(running.port))
        yield Served(running, client)


@dataclass
class H2WebSocket:
    """One WebSocket on stream ``sid`` of ``client``'s connection."""

    client: H2Client
    sid: int
    ws: Connection = field(default_factory=lambda: Connection(ConnectionType.CLIENT))
    read: int = 0  # bytes of the stream's DATA fed to wsproto
    events: list[Event] = field(default_factory=list)

    @classmethod
    async def open(
        cls,
        client: H2Client,
        path: str = "/ws",
        *,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> H2WebSocket:
        """Send the extended CONNECT and wait for the response head (any status)."""
        sid = client.request(
            path,
            method="CONNECT",
            end=False,
            extra=[(b":protocol", b"websocket"), (b"sec-websocket-version", b"13"), *(extra or [])],
        )
        await client.flush()
        await client.until(lambda: bool(client.results[sid].headers) or client.results[sid].done)
        return cls(client, sid)

    @property
    def result(self) -> StreamResult:
        return self.client.results[self.sid]

    async def send(self, event: Event, *, end: bool = False) -> None:
        """One WebSocket event as DATA (``end``: END_STREAM with it)."""
        await self.send_bytes(self.ws.send(event), end=end)

    async def send_bytes(self, data: bytes, *, end: bool = False) -> None:
        """Bytes on the stream, within its flow-control window (waits for WINDOW_UPDATE)."""
        conn = self.client.conn
        view = memoryview(data)
        while True:
            room = min(conn.local_flow_control_window(self.sid), conn.max_outbound_frame_size)
            if view and room <= 0:
                await self.client.receive_once()
                continue
            chunk, view = view[:room], view[room:]
            conn.send_data(self.sid, bytes(chunk), end_stream=end and not view)
            await self.client.flush()
            if not view:
                return

    def _feed(self) -> None:
        body = self.result.body
        if len(body) > self.read:
            self.ws.receive_data(bytes(body[self.read :]))
            self.read = len(body)
            for event in self.ws.events():
                if isinstance(event, Ping):
                    self.client.conn.send_data(self.sid, self.ws.send(event.response()))
                self.events.append(event)

    async def next_event(self) -> Event:
        """The next WebSocket event (pings are answered on the way)."""
        while not self.events:
            self._feed()
            if self.events:
                break
            await self.client.until(lambda: len(self.result.body) > self.read or self.result.done)
            self._feed()
            if not self.events and self.result.done:
                raise ConnectionError(f"stream ended without an event: {self.result}")
        await self.client.flush()
        return self.events.pop(0)

    async def receive_message(self) -> bytes | str:
        """One whole message (fragments joined)."""
        parts: list[bytes | str] = []
        while True:
            event = await self.next_event()
            if isinstance(event, Ping):
                continue
            assert isinstance(event, Message), event
            parts.append(event.data)
            if event.message_finished:
                if isinstance(event, TextMessage):
                    return "".join(str(p) for p in parts)
                return b"".join(bytes(p) for p in parts)

    async def echo(self, message: bytes | str) -> bytes | str:
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        await self.send(event)
        return await self.receive_message()

    async def close(self, code: int = 1000, reason: str = "") -> CloseConnection:
        """Send a close frame, wait for the server's answer and the stream's end."""
        await self.send(CloseConnection(code, reason))
        event = await self.next_event()
        assert isinstance(event, CloseConnection), event
        await self.client.until(lambda: self.result.done)
        return event

    async def reset(self) -> None:
        """RST_STREAM (CANCEL): the peer vanishes, the connection stays."""
        self.client.conn.reset_stream(self.sid, h2.errors.ErrorCodes.CANCEL)
        await self.client.flush()
