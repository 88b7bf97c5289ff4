"""A raw HTTP/2 client for tests: the ``h2`` library over a trio stream, one frame at a time
where curl and httpx cannot go (resets, closed windows, floods)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Self

import h2.config
import h2.connection
import h2.events
import h2.settings
import trio


@dataclass
class StreamResult:
    """What one stream got back."""

    headers: dict[bytes, bytes] = field(default_factory=dict)
    fields: list[Any] = field(default_factory=list)  # as decoded (HPACK tuple types kept)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  # the server's RST_STREAM error code

    @property
    def status(self) -> int:
        return int(self.headers.get(b":status", b"0"))

    @property
    def done(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """One HTTP/2 connection (prior knowledge, or a stream that negotiated ``h2``)."""

    def __init__(self, stream: trio.abc.Stream, *, settings: dict[int, int] | None = None):
        self.stream = stream
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.results: dict[int, StreamResult] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False  # the server closed the connection
        self.corrupted = False  # a test sent bytes that break the framing
        self.auto_window = True  # give back window as bodies arrive

    @classmethod
    async def connect(cls, port: int, **kwargs: Any) -> H2Client:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        client = cls(stream, **kwargs)
        await client.flush()
        return client

    def ignore_stream_limit(self) -> None:
        """Open streams past the server's MAX_CONCURRENT_STREAMS (h2 would refuse to)."""
        values = dict(self.conn.remote_settings)
        values[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        self.conn.remote_settings = h2.settings.Settings(client=False, initial_values=values)

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data and not self.closed:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.closed = True

    async def send_raw(self, data: bytes) -> None:
        await self.flush()
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self.closed = True

    def request(
        self,
        path: str = "/",
        *,
        method: str = "GET",
        body: bytes | None = None,
        end: bool = True,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> int:
        """Queue a request (call ``flush``); its stream id."""
        sid: int = self.conn.get_next_available_stream_id()
        headers = [
            (b":method", method.encode()),
            (b":path", path.encode()),
            (b":scheme", b"http"),
            (b":authority", b"127.0.0.1"),
            *(extra or []),
        ]
        self.conn.send_headers(sid, headers, end_stream=end and body is None)
        if body is not None:
            self.conn.send_data(sid, body, end_stream=end)
        self.results[sid] = StreamResult()
        return sid

    async def get(self, path: str = "/", **kwargs: Any) -> StreamResult:
        sid = self.request(path, **kwargs)
        await self.flush()
        await self.until(lambda: self.results[sid].done)
        return self.results[sid]

    async def until(self, done: Any, timeout: float = 10) -> None:
        """Read frames until ``done()`` (or the server closes; then ``done()`` must hold)."""
        with trio.fail_after(timeout):
            while not done():
                if self.closed:
                    raise AssertionError("the server closed the connection")
                await self.receive_once()

    async def until_closed(self, timeout: float = 10) -> None:
        with trio.fail_after(timeout):
            while not self.closed:
                await self.receive_once()

    async def receive_once(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._event(event)
        await self.flush()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            self.results[event.stream_id].headers.update(dict(event.headers or []))
            self.results[event.stream_id].fields += event.headers or []
        elif isinstance(event, h2.events.DataReceived):
            self.results[event.stream_id].body += event.data or b""
            if self.auto_window and event.flow_controlled_length:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.results[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            if event.stream_id in self.results:
                self.results[event.stream_id].reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


ZERO_WINDOW = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
NO_LIMIT = math.inf
