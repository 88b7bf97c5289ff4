"""HTTP/2's implementation of the transport seam (``transport.py``): one stream's view of
an ``Http2Connection`` (``http2.py``).

One ``Http2Transport`` per stream, made by the connection when a request's HEADERS arrive.
It is the stream's state as well as the request's transport:

1. **Queue, then push.** ``send_head``/``send_body``/``send_end`` only queue; ``try_write``
   and ``write`` push what the stream's and the connection's flow-control windows allow
   into the connection's ``h2`` state machine (HEADERS, DATA, END_STREAM) and hand the
   frames to the connection's output. Bytes the window does not admit stay queued here in
   order, so a cancelled ``write`` leaves a well-formed response behind.
2. **Counts are what moved.** Each DATA frame is recorded with the connection-output offset
   its last byte ends at; ``body_bytes_sent`` grows only once the connection wrote past it
   (handed to the kernel, or to TLS). The response is complete once END_STREAM was.
3. **Waits.** ``write`` waits for window (a WINDOW_UPDATE) and for the connection's writer;
   a window that stays closed for ``send_timeout`` is a zero-window stall, and a response
   whose DATA moves slower than ``min_send_rate`` is a client too slow: either way the
   stream is reset (RST_STREAM CANCEL) and the write raises ``PeerTooSlowError``.
   ``receive_body`` waits for DATA, at most ``body_timeout``, and not past the point where
   the body falls below ``min_body_rate``: then it raises ``PeerTooSlowError`` (the
   request answers 408 if it can; the stream ends alone, no GOAWAY). A rate is averaged
   over the time the stream's writes (reads) waited for the client, after ``rate_grace``
   of it: time the request spent elsewhere is not the client's. The
   stream's and the connection's receive windows are reopened as the request consumes the
   body, never before (backpressure): flow control is HTTP/2's back-pressure, so these are
   the same rules as HTTP/1.1's, per stream.
4. **The peer.** The connection calls ``peer_gone`` on the client's RST_STREAM, on its
   GOAWAY and on the connection's loss; the watcher (the request's context) is called once,
   and waiting reads and writes raise ``PeerGoneError``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NoReturn, final

import h2.errors
import h2.exceptions
import trio
from hpack import NeverIndexedHeaderTuple

from .._errors import BodyTooLargeError, MalformedBodyError, NotSupportedError
from .http1 import FILE_PIECE, rate_deadline
from .http1_writer import FramingError
from .transport import PeerGoneError, PeerTooSlowError

if TYPE_CHECKING:
    from .http2 import Http2Connection

#: Headers that mean something only to one HTTP/1.1 connection; HTTP/2 forbids them
#: (RFC 9113 §8.2.2; ``te`` in a response too), so a response's copies are dropped.
CONNECTION_HEADERS: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade")
)
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
#: What a response may not hold in a field's value (the HEADERS would be malformed).
_CONTROL: Final = re.compile(rb"[\r\n\0]")
#: Field names already checked (``_sendable_name``), each to the name that goes out or None
#: (dropped). Bounded: names made up per response cannot grow it without end.
_SENDABLE_NAMES: dict[bytes, bytes | None] = {}
_SENDABLE_NAMES_KEPT: Final = 1024
#: Fields kept out of the HPACK dynamic table (never indexed), as h2 and nghttp2 do: a
#: compression context shared with an attacker must not hold credentials.
NEVER_INDEXED: Final = frozenset((b"authorization", b"proxy-authorization"))


def _sendable_name(name: bytes) -> bytes | None:
    """A response field's name as it goes out (lower-case), or None for a connection-specific
    one (dropped); remembered while ``_SENDABLE_NAMES`` has room.

    Raises:
        FramingError: not a token (or a pseudo-header's name).
    """
    lower: bytes | None = name.lower()
    if lower in CONNECTION_HEADERS:
        lower = None
    elif not lower or lower[0] == 58 or not _TOKEN.fullmatch(lower):  # 58: ":"
        raise FramingError(f"header name {name!r} is not a token")
    if len(_SENDABLE_NAMES) < _SENDABLE_NAMES_KEPT:
        _SENDABLE_NAMES[name] = lower
    return lower


@final
class Http2Transport:
    """``Transport`` over one HTTP/2 stream (rules 1-4 in this module's docstring)."""

    __slots__ = (
        "_bodiless",
        "_body",
        "_body_bytes_sent",
        "_body_ended",
        "_body_error",
        "_body_given_up",
        "_body_read",
        "_body_received",
        "_body_waited",
        "_close_after",
        "_complete",
        "_conn",
        "_content_length",
        "_end_pushed",
        "_end_queued",
        "_gone",
        "_head",
        "_head_written",
        "_last_end",
        "_length",
        "_on_peer_gone",
        "_out",
        "_queued_body",
        "_reset",
        "_send_waited",
        "_too_slow",
        "_waiter",
        "connect_protocol",
        "on_data",
        "on_server_abort",
        "request_length",
        "stream_id",
    )  # fmt: skip

    def __init__(
        self,
        conn: Http2Connection,
        stream_id: int,
        *,
        head_only: bool,
        request_length: int | None,
        connect_protocol: bytes | None = None,
    ) -> None:
        self._conn = conn
        self.stream_id = stream_id
        #: The request's Content-Length, if it sent one.
        self.request_length = request_length
        #: An extended CONNECT's ``:protocol`` (RFC 8441: ``b"websocket"``), else None.
        self.connect_protocol = connect_protocol
        self._on_peer_gone: Callable[[], None] | None = None
        #: Called once when the server cuts the connection (set by the server per request).
        self.on_server_abort: Callable[[], None] | None = None
        #: Called after DATA or END_STREAM arrived (an extended CONNECT's tunnel listens).
        self.on_data: Callable[[], None] | None = None
        self._waiter: trio.Event | None = None  # a read or write waiting for something
        # -- the response
        self._head: list[tuple[bytes, bytes]] | None = None  # queued, not yet pushed
        self._head_written = False  # HEADERS handed to the kernel (rule 2)
        # (lists, not deques: a few items at most, and a deque's first block is ~700 bytes)
        self._out: list[bytes] = []  # body queued, not pushed
        self._queued_body = 0  # body bytes ever queued (Content-Length checks)
        self._length: int | None = None  # the response's Content-Length
        self._bodiless = head_only  # HEAD, 204, 304: no DATA
        self._end_queued = False
        self._end_pushed = False
        self._complete = False
        self._body_bytes_sent = 0
        self._close_after = False
        self._last_end = 0  # connection-output offset of this stream's last frame
        self._reset = False  # we reset the stream: nothing more goes out
        self._gone = False  # the client reset it, or the connection is gone
        self._too_slow = False  # we gave up on the client (a stalled window, a rate)
        self._send_waited = 0.0  # seconds writes waited for the client (min_send_rate)
        # -- the request body
        self._content_length = request_length
        self._body: list[bytes] = []
        self._body_received = 0  # DATA bytes received
        self._body_read = 0  # bytes handed to the request
        self._body_ended = False  # END_STREAM received
        self._body_error: Exception | None = None
        self._body_given_up = False  # too slow: the stream ends alone, after its answer
        self._body_waited = 0.0  # seconds reads waited for the client (min_body_rate)

    def __repr__(self) -> str:
        return f"<Http2Transport stream {self.stream_id}>"

    # -- the response

    def send_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> None:
        """Queue HEADERS (``reason`` has no place in HTTP/2); ``close``: the connection
        sends GOAWAY after this stream.

        Raises:
            FramingError: a malformed Content-Length, or a control byte in a header.
        """
        # What h2 would check and normalize again is done here, once (the connection's h2
        # is configured not to): lower-case names, no connection-specific field, no control
        # byte, values without surrounding whitespace, credentials never indexed.
        fields: list[tuple[bytes, bytes]] = [(b":status", str(status).encode())]
        length: int | None = None
        names = _SENDABLE_NAMES
        for name, value in headers:
            try:
                lower = names[name]
            except KeyError:
                lower = _sendable_name(name)
            if lower is None:
                continue  # connection-specific
            if _CONTROL.search(value):
                raise FramingError(f"header {name!r} holds a control byte")
            value = value.strip(b" \t")
            if lower == b"content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    raise FramingError(f"bad Content-Length {value!r}")
                length = int(value)
            if lower in NEVER_INDEXED:
                fields.append(NeverIndexedHeaderTuple(lower, value))
            else:
                fields.append((lower, value))
        if status in (204, 304) or 100 <= status < 200:
            self._bodiless = True
        self._length = length
        self._head = fields
        # HTTP/1.1 closes after a body it gave up on (the unread rest is in the way); over
        # HTTP/2 that stream's RST_STREAM after the answer is enough: no GOAWAY for it.
        if close and not self._body_given_up:
            self._close_after = True

    def send_body(self, data: bytes) -> int:
        """Queue body bytes (dropped for HEAD, 204 and 304); returns how many were queued.

        Raises:
            FramingError: more bytes than the Content-Length.
        """
        if self._bodiless or not data:
            return 0
        if self._length is not None and self._queued_body + len(data) > self._length:
            raise FramingError("more body bytes than the Content-Length")
        self._queued_body += len(data)
        self._out.append(data)
        if self._length is not None and self._queued_body == self._length:
            self._end_queued = True  # END_STREAM rides on the last DATA frame (rule 3)
        return len(data)

    def send_end(self) -> None:
        """Queue END_STREAM.

        Raises:
            FramingError: fewer bytes than the Content-Length.
        """
        if not self._bodiless and self._length is not None and self._queued_body != self._length:
            raise FramingError("fewer body bytes than the Content-Length")
        self._end_queued = True

    def send_raw(self, data: bytes) -> int:
        """HTTP/2 has no raw byte stream.

        Raises:
            NotSupportedError: always.
        """
        raise NotSupportedError("suppressed headers (raw bytes) are not possible over HTTP/2")

    def try_write(self) -> bool:
        """Push what the windows admit and try to write it now; True when nothing is left
        queued or unwritten (no checkpoint)."""
        if self._reset or self._gone:
            return False  # write() raises what the request must hear
        self._push()
        conn = self._conn
        conn.send_now()
        return not self._pending() and conn.written_through(self._last_offset())

    async def write(self) -> None:
        """Send everything queued, waiting for window and for the connection's writer.

        Raises:
            PeerGoneError: the client reset the stream, sent GOAWAY or left.
            PeerTooSlowError: the window stayed closed for ``send_timeout``, or the
                response fell below ``min_send_rate`` (either way the stream is reset), or
                the connection's writer gave up on the client.

        Cancellation: what the windows did not admit stays queued in order; frames already
            handed to the connection go out.
        """
        conn = self._conn
        limits = conn.limits
        while True:
            self._check_writable()
            self._push()
            conn.send_now()
            window_closed = self._pending()
            if not window_closed and conn.written_through(self._last_offset()):
                return
            # Wait for the client: a WINDOW_UPDATE (or SETTINGS), or the connection's writer
            # (which has its own send_timeout). The rate counts only the time writes wait,
            # as if the waits were back to back: a response that streams now and then is
            # not held to the hours it idled.
            now = trio.current_time()
            by_rate = rate_deadline(
                limits, limits.min_send_rate, now - self._send_waited, self._body_bytes_sent
            )
            stalled = now + limits.send_timeout if window_closed else math.inf
            try:
                with trio.move_on_at(min(stalled, by_rate)) as waited:
                    await self._wait()
            finally:
                self._send_waited += trio.current_time() - now
            if waited.cancelled_caught:
                if by_rate < stalled:
                    rate = limits.min_send_rate
                    what = f"read its response slower than {rate:g} bytes/s"
                    conn.stream_too_slow(self, "slow_reads", what)
                    self._give_up(f"the client {what}")
                conn.window_stalled(self)
                self._give_up(
                    f"the flow-control window stayed closed for {limits.send_timeout:g} s"
                )

    def _give_up(self, why: str) -> NoReturn:
        """The server gives up on this stream's client: RST_STREAM, ``PeerTooSlowError``."""
        self._too_slow = True
        self.reset()
        raise PeerTooSlowError(f"stream {self.stream_id}: {why}")

    def _check_writable(self) -> None:
        conn = self._conn
        if self._too_slow or conn.too_slow:
            raise PeerTooSlowError("the client stopped reading")
        if self._gone or conn.lost:
            raise PeerGoneError(f"stream {self.stream_id}: the client is gone")
        if self._reset:
            raise PeerGoneError(f"stream {self.stream_id} was reset")

    def _pending(self) -> bool:
        """Something queued here that the windows have not admitted yet."""
        return (
            self._head is not None or bool(self._out) or (self._end_queued and not self._end_pushed)
        )

    def _last_offset(self) -> int:
        return self._last_end

    def _push(self) -> None:
        """Rule 1: hand the h2 state machine what the windows admit."""
        conn = self._conn
        machine = conn.machine
        sid = self.stream_id
        try:
            unrecorded = False  # HEADERS pushed, not recorded yet
            if self._head is not None:
                end = self._end_queued and not self._out
                machine.send_headers(sid, self._head, end_stream=end)
                self._head = None
                if end:
                    self._end_pushed = True
                    self._last_end = conn.record(self, 0, end=True)
                else:
                    unrecorded = True  # the next frame's record covers it (no body in it)
            out = self._out
            while out:
                room = min(machine.local_flow_control_window(sid), machine.max_outbound_frame_size)
                if room <= 0:
                    break
                chunk = out[0]
                if len(chunk) > room:
                    out[0] = chunk[room:]
                    chunk = chunk[:room]
                else:
                    del out[0]
                end = self._end_queued and not out
                machine.send_data(sid, chunk, end_stream=end)
                if end:
                    self._end_pushed = True
                self._last_end = conn.record(self, len(chunk), end=end)
                unrecorded = False
            if self._end_queued and not self._end_pushed and not out:
                machine.end_stream(sid)
                self._end_pushed = True
                self._last_end = conn.record(self, 0, end=True)
                unrecorded = False
            if unrecorded:
                self._last_end = conn.record(self, 0, end=False)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self._gone = True  # the stream closed under us (a reset raced the push)

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """Read the file in a worker thread, piece by piece, each sent within flow control
        (no sendfile: HTTP/2 frames every byte). Returns the file bytes sent.

        Raises:
            PeerGoneError, PeerTooSlowError: as ``write``.
            EOFError: the file ended before ``count`` bytes.
            FramingError: more bytes than the Content-Length.
            OSError: reading the file failed.

        Cancellation: stops between pieces; what was queued stays queued in order.
        """
        if self._bodiless:
            return 0  # HEAD, 204, 304: no byte of the file goes out (rule 2), none is read
        sent = 0
        piece = min(FILE_PIECE, 65536)
        while sent < count:
            self._check_writable()
            data = await trio.to_thread.run_sync(
                os.pread, fd, min(piece, count - sent), offset + sent
            )
            if not data:
                raise EOFError(f"{count - sent} bytes short")
            self.send_body(data)
            sent += len(data)
            await self.write()
        return sent

    def reset(self) -> None:
        """RST_STREAM (CANCEL) now; nothing more is sent on this stream."""
        if self._reset or self._gone:
            return
        self._reset = True
        self._out.clear()
        self._head = None
        self._conn.reset_stream(self, h2.errors.ErrorCodes.CANCEL)
        self._wake()

    @property
    def body_bytes_sent(self) -> int:
        return self._body_bytes_sent

    @property
    def body_bytes_queued(self) -> int:
        return self._queued_body

    @property
    def response_complete(self) -> bool:
        return self._complete

    @property
    def head_written(self) -> bool:
        return self._head_written

    @property
    def keep_alive(self) -> bool:
        return not self._close_after and not self._conn.closing

    @property
    def close_after(self) -> bool:
        """``send_head(close=True)`` was asked: GOAWAY after this stream."""
        return self._close_after

    @property
    def end_sent(self) -> bool:
        """END_STREAM was handed to the connection (it may not be written yet)."""
        return self._end_pushed

    @property
    def was_reset(self) -> bool:
        """The stream ended by a reset, ours or the client's."""
        return self._reset or self._gone

    # -- called by the connection

    def frames_written(self, body: int, end: bool) -> None:
        """The connection wrote a frame of this stream (rule 2). HEADERS is a stream's
        first frame, and every push records it: any frame written means it was."""
        self._head_written = True
        self._body_bytes_sent += body
        if end:
            self._complete = True

    def window_opened(self) -> None:
        self._wake()

    def progress(self) -> None:
        self._wake()

    def data_received(self, data: bytes) -> None:
        """A DATA frame's payload (padding already acknowledged by the connection)."""
        limit = self._conn.limits.max_body_bytes
        self._body_received += len(data)
        if self._body_received > limit:
            self._body_error = BodyTooLargeError(f"request body over {limit} bytes")
        elif self._content_length is not None and self._body_received > self._content_length:
            self._body_error = MalformedBodyError("more DATA than the Content-Length")
        self._body.append(data)
        self._wake()
        if self.on_data is not None:
            self.on_data()

    def body_ended(self) -> None:
        """END_STREAM from the client."""
        self._body_ended = True
        if self._content_length is not None and self._body_received != self._content_length:
            self._body_error = MalformedBodyError("DATA length differs from the Content-Length")
        self._wake()
        if self.on_data is not None:
            self.on_data()

    def unread_body(self) -> int:
        """Bytes received but not consumed (the connection returns them to its window)."""
        body = self._body
        if not body:
            return 0
        n = sum(map(len, body))
        body.clear()
        return n

    @property
    def body_complete(self) -> bool:
        return self._body_ended

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.set()

    async def _wait(self) -> None:
        if self._waiter is None:
            self._waiter = trio.Event()
        await self._waiter.wait()

    # -- the request body

    async def receive_body(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the request body from DATA frames; ``b""`` at END_STREAM.
        What is consumed reopens the stream's and the connection's windows.

        Raises:
            BodyTooLargeError: past ``max_body_bytes`` (or a Content-Length above it).
            MalformedBodyError: DATA that contradicts the Content-Length.
            PeerGoneError: the client reset the stream or left.
            PeerTooSlowError: no DATA for ``body_timeout``, or the body fell below
                ``min_body_rate``.

        Cancellation: loses no byte; unread bytes stay buffered for the next call.
        """
        limits = self._conn.limits
        if self._content_length is not None and self._content_length > limits.max_body_bytes:
            await trio.lowlevel.checkpoint()
            raise BodyTooLargeError(f"request body over {limits.max_body_bytes} bytes")
        while True:
            if self._body_error is not None:
                await trio.lowlevel.checkpoint()
                raise self._body_error
            body = self._body
            if body:
                await trio.lowlevel.checkpoint()
                if not body:
                    continue  # (a reset cleared it meanwhile)
                chunk = body[0]
                if len(chunk) > max_bytes:
                    body[0] = chunk[max_bytes:]
                    chunk = chunk[:max_bytes]
                else:
                    del body[0]
                self._body_read += len(chunk)
                self._conn.consumed(self, len(chunk))
                return chunk
            if self._body_ended:
                await trio.lowlevel.checkpoint()
                return b""
            if self._too_slow:
                await trio.lowlevel.checkpoint()
                raise PeerTooSlowError(f"stream {self.stream_id}: the server cut the client")
            if self._gone or self._conn.lost:
                await trio.lowlevel.checkpoint()
                raise PeerGoneError(f"stream {self.stream_id}: the client left mid-body")
            # As for writes, the rate counts only the time reads waited for the client.
            now = trio.current_time()
            idle = now + limits.body_timeout
            by_rate = rate_deadline(
                limits, limits.min_body_rate, now - self._body_waited, self._body_received
            )
            try:
                with trio.move_on_at(min(idle, by_rate)) as waited:
                    await self._wait()
            finally:
                self._body_waited += trio.current_time() - now
            if waited.cancelled_caught:
                why = (
                    f"slower than {limits.min_body_rate:g} bytes/s"
                    if by_rate < idle
                    else f"with nothing for {limits.body_timeout:g} s"
                )
                self._body_given_up = True
                self._conn.stream_too_slow(self, "slow_bodies", f"sent its request body {why}")
                raise PeerTooSlowError(f"stream {self.stream_id}: the client sent its body {why}")

    @property
    def body_remaining(self) -> int | None:
        if self._body_ended:
            return self._body_received - self._body_read
        if self._content_length is None:
            return None
        return max(0, self._content_length - self._body_read)

    # -- a tunnel (extended CONNECT)

    def accept_connect(self, headers: list[tuple[bytes, bytes]]) -> Http2ConnectStream:
        """Queue the ``200`` that accepts an extended CONNECT (RFC 8441) and hand the stream's
        DATA over to another protocol, both ways (``Http2ConnectStream``). Nothing is sent
        yet (``Http2ConnectStream.flush`` sends it).

        Raises:
            FramingError: a control byte in a header; nothing is queued.
        """
        self.send_head(200, b"OK", headers, close=False)
        self._length = None  # the stream's bytes are the tunnel's: no Content-Length
        return Http2ConnectStream(self)

    # -- the peer

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        """As ``Transport.watch_peer``; ``None`` stops watching (the request ended)."""
        self._on_peer_gone = callback
        if callback is not None and self._gone:
            self.peer_gone()

    def server_aborted(self) -> None:
        """The server cut the connection (a flood, a protocol error, a client reading
        nothing): reads and writes raise ``PeerTooSlowError``, the request is told through
        ``on_server_abort`` (once) and the peer watcher is not called (rule 4 of the seam)."""
        self._too_slow = True
        self._on_peer_gone = None
        self._wake()
        callback, self.on_server_abort = self.on_server_abort, None
        if callback is not None:
            callback()

    def peer_gone(self) -> None:
        """The client reset the stream, or the connection went away: wake waiters, tell the
        watcher (once)."""
        self._gone = True
        self._wake()
        callback, self._on_peer_gone = self._on_peer_gone, None
        if callback is not None:
            callback()


@final
class Http2ConnectStream:
    """One HTTP/2 stream's DATA, both ways, once an extended CONNECT was accepted: what a
    WebSocket sits on over HTTP/2 (``websocket.UpgradedByteStream``). Flow control both
    ways: what is sent waits for the stream's window (``Http2Transport.write``, with its
    zero-window stall); what arrives reopens the window only as it is read. The client's
    END_STREAM is the tunnel's EOF, and like its RST_STREAM (or the connection's loss) the
    peer gone. Arrivals are announced to the listener; ``flush`` runs in a task."""

    __slots__ = ("_listener", "_stream", "bytes_received")

    def __init__(self, stream: Http2Transport) -> None:
        self._stream = stream
        self._listener: Callable[[], None] | None = None
        #: Bytes handed to the caller by ``receive_nowait``.
        self.bytes_received = 0

    @property
    def connection(self) -> Http2Connection:
        """The connection the stream lives on (server shutdown closes its tunnels)."""
        return self._stream._conn

    @property
    def bytes_sent(self) -> int:
        """Bytes after the 200 handed to the kernel (or TLS)."""
        return self._stream._body_bytes_sent

    @property
    def bytes_queued(self) -> int:
        """Bytes after the 200 queued so far (sent or not)."""
        return self._stream._queued_body

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now and each time DATA arrives (in the connection's reading
        task, no checkpoint). The client's END_STREAM is the tunnel's EOF: it reaches the
        peer watcher, as its RST_STREAM does."""
        self._listener = callback
        self._stream.on_data = self._arrived
        self._arrived()

    def _arrived(self) -> None:
        stream = self._stream
        if self._listener is not None:
            self._listener()
        if stream._body_ended:
            stream.on_data = None
            callback, stream._on_peer_gone = stream._on_peer_gone, None
            if callback is not None:
                callback()

    def receive_nowait(self, max_bytes: int | None = None) -> bytes:
        """What has arrived and was not read yet, at most ``max_bytes``, without waiting
        (no checkpoint). Only what is read reopens the stream's window (back-pressure)."""
        stream = self._stream
        body = stream._body
        if not body:
            return b""
        if len(body) == 1:
            chunk = body[0]
            if max_bytes is None or len(chunk) <= max_bytes:
                body.clear()
            else:
                body[0] = chunk[max_bytes:]
                chunk = chunk[:max_bytes]
        else:
            joined = b"".join(body)
            body.clear()
            chunk = joined if max_bytes is None else joined[:max_bytes]
            if len(chunk) < len(joined):
                body.append(joined[len(chunk) :])
        stream._body_read += len(chunk)
        self.bytes_received += len(chunk)
        stream._conn.consumed(stream, len(chunk))
        return chunk

    def queue(self, data: bytes | bytearray) -> None:
        """Queue bytes to send after everything queued before (no I/O)."""
        self._stream.send_body(bytes(data))

    def try_flush(self) -> bool:
        """Send what is queued without waiting; True when nothing is left."""
        return self._stream.try_write()

    async def flush(self) -> None:
        """Send everything queued (within the stream's flow-control window).

        Raises:
            transport.PeerTooSlowError: the window stayed closed for ``send_timeout``.
            transport.PeerGoneError: the peer reset the stream or left.

        Cancellation: exactly the unsent bytes stay queued, sent by the next flush."""
        await self._stream.write()

    def finish(self) -> None:
        """Our side ends (END_STREAM after what is queued): the orderly close after the
        tunnel's own close (RFC 8441 §5, TCP's FIN over HTTP/1.1)."""
        stream = self._stream
        if not stream.was_reset:
            stream.send_end()
            stream.try_write()

    def reset(self) -> None:
        """Abort the stream now (RST_STREAM CANCEL); other streams go on."""
        self._stream.reset()
