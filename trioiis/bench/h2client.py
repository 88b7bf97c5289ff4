"""The HTTP/2 side of the load generator: one connection, many concurrent streams (h2).

``--h2`` on ``http://`` speaks HTTP/2 with prior knowledge (the connection preface straight
away); on ``https://`` it offers ``h2`` by ALPN and refuses a server that does not pick it.

One task per connection reads frames and hands each stream's outcome to the task waiting
for it; each of ``--streams`` tasks sends one request at a time on the connection. Writes
are flushed by whichever task finds the outgoing buffer not already being flushed, so two
tasks never send on the connection at once. ``--abort-mode rst-stream`` abandons a request
by resetting its stream (``RST_STREAM`` with ``CANCEL``); the connection carries on.
"""

from __future__ import annotations

import contextlib
from typing import Any

import trio

try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
except ImportError:  # pragma: no cover - depends on the installed extras
    h2 = None  # type: ignore[assignment]

from .options import BenchOptions
from .transport import Connection, ConnectionLost

ERROR_CANCEL = 0x8


def available() -> bool:
    """True when the ``h2`` package (the ``bench`` extra) is installed."""
    return h2 is not None


class StreamFailed(Exception):
    """A stream ended without a whole response: ``args[0]`` is the error kind
    (``reset`` for RST_STREAM or a lost connection, ``closed``, ``protocol``)."""


class _Stream:
    __slots__ = ("done", "error", "status")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.status = 0
        self.error: str | None = None


class H2Client:
    """One HTTP/2 connection shared by several request tasks.

    ``dead`` is set once the connection can carry no more streams (lost, GOAWAY, a protocol
    error); requests in flight then fail and the owner opens a new connection.
    """

    def __init__(self, connection: Connection, options: BenchOptions) -> None:
        self.transport = connection
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2: Any = h2.connection.H2Connection(config=config)
        self.options = options
        target = options.target
        self.headers = [
            (b":method", options.method.encode("ascii")),
            (b":scheme", target.scheme.encode("ascii")),
            (b":authority", target.host_header.encode("ascii")),
            (b":path", target.target.encode("ascii")),
            (b"user-agent", b"trioiis-bench"),
        ]
        self.body = b"x" * options.body_size
        if self.body or options.method in ("POST", "PUT", "PATCH"):
            self.headers.append((b"content-length", str(len(self.body)).encode("ascii")))
        self.streams: dict[int, _Stream] = {}
        self.dead: str | None = None
        self._flushing = False
        self._changed = trio.Event()  # a window opened, a stream closed, or the end
        #: The server's first SETTINGS frame arrived: its stream limit is known.
        self.settings_received = trio.Event()

    async def start(self) -> None:
        """Send the preface and settings. Raises ConnectionLost."""
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        await self.flush()

    async def flush(self) -> None:
        """Send what h2 has buffered, unless another task is already doing so (it will send
        this too: it loops until the buffer is empty)."""
        if self._flushing:
            return
        self._flushing = True
        try:
            while data := self.h2.data_to_send():
                await self.transport.send_all(data)
        except ConnectionLost as lost:
            self._die(str(lost.args[0]))
        finally:
            self._flushing = False

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    def _die(self, kind: str) -> None:
        if self.dead is None:
            self.dead = kind
        self.settings_received.set()
        for stream in self.streams.values():
            if stream.error is None and not stream.done.is_set():
                stream.error = kind
                stream.done.set()
        self.streams.clear()
        self._wake()

    async def read_frames(self) -> None:
        """Read and dispatch frames until the connection ends (then it is ``dead``).

        Cancellation: leaves the connection to be closed by its owner."""
        try:
            while self.dead is None:
                data = await self.transport.receive()
                try:
                    events = self.h2.receive_data(bytes(data))
                except h2.exceptions.ProtocolError:
                    self._die("protocol")
                    break
                for event in events:
                    self._dispatch(event)
                await self.flush()
        except ConnectionLost as lost:
            self._die(str(lost.args[0]))

    def _dispatch(self, event: Any) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams.get(event.stream_id)
            if stream is not None:
                for name, value in event.headers:
                    if name == b":status":
                        stream.status = int(value)
        elif isinstance(event, h2.events.DataReceived):
            if event.flow_controlled_length:
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.done.set()
            self._wake()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.error = "reset"
                stream.done.set()
            self._wake()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._die("closed")
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.settings_received.set()
            self._wake()
        elif isinstance(event, h2.events.WindowUpdated):
            self._wake()

    async def _wait_for_room(self) -> None:
        """Until the server's settings are known and it allows one more stream."""
        # A server's preface starts with SETTINGS; one that never sends it times requests out.
        await self.settings_received.wait()
        while (
            self.dead is None
            and self.h2.open_outbound_streams >= self.h2.remote_settings.max_concurrent_streams
        ):
            await self._changed.wait()

    async def request(self, abort_after: float | None) -> int | str:
        """One request on a new stream: its status, or ``"aborted"`` when ``abort_after``
        seconds passed first (the stream is then reset with CANCEL).

        Raises:
            StreamFailed: the stream or the connection ended without a response.

        Cancellation: resets the stream (sent with the next flush) and raises.
        """
        await self._wait_for_room()
        if self.dead is not None:
            raise StreamFailed(self.dead)
        h2conn = self.h2
        stream_id = h2conn.get_next_available_stream_id()
        stream = _Stream()
        self.streams[stream_id] = stream
        try:
            h2conn.send_headers(stream_id, self.headers, end_stream=not self.body)
            await self.flush()
            if abort_after is None:
                if self.body:
                    await self._send_body(stream_id)
                await stream.done.wait()
            else:
                with trio.move_on_after(abort_after):
                    if self.body:
                        await self._send_body(stream_id)
                    await stream.done.wait()
                if not stream.done.is_set():
                    self._reset(stream_id)
                    await self.flush()
                    return "aborted"
        except BaseException:
            self._reset(stream_id)
            raise
        if stream.error is not None:
            raise StreamFailed(stream.error)
        return stream.status

    def _reset(self, stream_id: int) -> None:
        if self.streams.pop(stream_id, None) is None or self.dead is not None:
            return
        # A ProtocolError: the stream had just closed on its own.
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.reset_stream(stream_id, error_code=ERROR_CANCEL)

    async def _send_body(self, stream_id: int) -> None:
        view = memoryview(self.body)
        while view:
            if self.dead is not None:
                raise StreamFailed(self.dead)
            room = min(
                self.h2.local_flow_control_window(stream_id),
                self.h2.max_outbound_frame_size,
                len(view),
            )
            if room <= 0:
                await self._changed.wait()
                continue
            self.h2.send_data(stream_id, bytes(view[:room]), end_stream=room == len(view))
            view = view[room:]
            await self.flush()

    def close_now(self) -> None:
        """Close the connection (no GOAWAY: the bench just leaves); streams in flight fail."""
        self._die(self.dead or "closed")
        self.transport.close_now()
