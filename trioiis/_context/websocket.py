"""WebSockets (RFC 6455): wsproto over an upgraded byte stream, as one long request.

Theory of operation
-------------------
1. **The socket is the request.** A handler (a native module through ``accept_websocket``,
   or the asgi module for a ``websocket`` scope) accepts the upgrade of the request it
   runs: ``101 Switching Protocols`` (HTTP/1.1) or ``200`` (an HTTP/2 extended CONNECT,
   RFC 8441) goes out through the request's transport, which hands over its byte stream
   (``UpgradedByteStream``: the HTTP/1.1 connection's bytes, or one HTTP/2 stream's DATA
   with its flow control) and is replaced on the wire by a ``WebSocketTransport``. Above
   that seam nothing knows which protocol carries the socket. The request
   nursery lives until the socket ends; the access log gets the request's one line then,
   with the bytes each way after the 101 and the close code.
2. **No reader task; one keeper task.** Bytes are parsed in the task that read them (the
   HTTP/1.1 connection's reader, the HTTP/2 connection's frame reader): the stream calls
   ``_feed`` as they arrive, which turns them into a bounded queue of message data for the
   handler and answers pings and the peer's close at once, without waiting (a frame the
   socket does not take at once is left to the keeper). The keeper, a request task that
   ends with the request, does every wait: pings every ``ping_interval``, the pong
   timeout, the shutdown close 1001, the end of a failed connection, and those frames.
   So a message costs one task switch (the handler's), and an idle socket one task less.
3. **Back-pressure both ways.** Parsing stops once ``receive_queue`` bytes of message
   data wait for the handler: the bytes stay in the stream, which stops reading (then TCP,
   or HTTP/2 flow control, pushes back on the peer); ``take`` resumes it. Every send awaits
   the socket (``send_timeout`` ends a peer that stopped reading). A message is bounded by
   ``max_message_size`` (close 1009), also after permessage-deflate: inflation stops one
   byte past the limit, so a compression bomb costs at most that much memory.
4. **Outcome.** The peer's close frame (its own close, or its answer to ours) is the
   response complete: ``completed``, also when the peer leaves right after it, before our
   answer went out (the bytes it sent before leaving are parsed when the transport reports
   it gone, so neither its last messages nor its close frame are lost). A peer that
   vanishes without a close frame (EOF/RST; over HTTP/2 its END_STREAM or RST_STREAM, or
   the connection's loss) is ``cancelled_by_client``: the request nursery
   is cancelled at once, as for any request. The server failing the
   connection (a protocol error, an oversized message, the pong or close-handshake timeout,
   ``close_tcp_connection``, shutdown past its grace) is ``aborted_by_server``.
5. **Pending I/O.** Each native ``read_fragment``/``write_fragment`` (and the send of a
   close frame) runs in a pending-I/O scope of the context (``ctx.cancel_io()``) and in a
   scope of its own that ``cancel_outstanding_io()`` cancels; either completes the call with
   ``OperationAbortedError`` carrying the bytes moved. A cancelled read loses no byte; a
   cancelled write leaves the rest of its frame queued, sent before the next frame, so the
   stream stays well-formed.
"""

from __future__ import annotations

import codecs
import contextlib
import math
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

import trio
from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError, generate_accept_token

from .._constants import ERROR_INVALID_PARAMETER, ERROR_OPERATION_ABORTED
from .._errors import CompletionInfo, ConnectionInvalidError, HResultError, OperationAbortedError
from .._lifecycle import Event
from .._protocol.transport import PeerGoneError, PeerTooSlowError, Transport
from .sending import note_progress

if TYPE_CHECKING:
    from .context import HttpContext

#: Bytes asked of the stream per read.
_RECEIVE_SIZE: Final = 65536
#: The close code of a connection that ended without a close frame (RFC 6455 §7.1.5).
ABNORMAL_CLOSURE: Final = 1006


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketLimits:
    """Limits of one WebSocket, with the close each one ends it with.

    Attributes:
        max_message_size: bytes in one message (after inflating); more → close 1009.
        receive_queue: message bytes read ahead of the handler; then reading stops and TCP
            pushes back on the peer (back-pressure).
        ping_interval: seconds between the server's pings; None sends none.
        ping_timeout: seconds a ping may wait for its pong; then close 1011 and the
            connection is dropped (a dead peer is found).
        close_timeout: seconds the close handshake may take (the peer's answer to our close
            frame); then the connection is dropped.
        compression: accept permessage-deflate when the client offers it.
    """

    max_message_size: int = 16 * 1024 * 1024
    receive_queue: int = 1024 * 1024
    ping_interval: float | None = 20.0
    ping_timeout: float = 20.0
    close_timeout: float = 10.0
    compression: bool = True


@dataclass(frozen=True, slots=True)
class CloseStatus:
    """A close frame's status code and reason (``get_close_status``)."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class WebSocketFragment:
    """What one ``read_fragment`` returns (IIS ``ReadFragment``'s out parameters).

    Attributes:
        data: message bytes (UTF-8 for a text message; a character may be split between
            two fragments).
        utf8: part of a text message.
        final: the last fragment of its message.
        close: the connection is closing: no data, see ``get_close_status()``.
    """

    data: bytes
    utf8: bool
    final: bool
    close: bool = False


class WebSocketClosedError(HResultError):
    """A send on a WebSocket that is closing or closed (ERROR_INVALID_PARAMETER)."""

    def __init__(self, message: str = "the WebSocket is closed") -> None:
        super().__init__(message, hresult=ERROR_INVALID_PARAMETER)


class WebSocketHandshakeError(HResultError):
    """The request is not a WebSocket upgrade this server can accept (the handler should
    answer it with a 400 or 426), or its transport cannot switch protocols."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hresult=ERROR_INVALID_PARAMETER)


# ---------------------------------------------------------------- the seam below


@runtime_checkable
class UpgradedByteStream(Protocol):
    """The bytes of an upgraded connection, both ways: ``http1.UpgradedStream`` (the
    socket after the 101) or ``http2_transport.Http2ConnectStream`` (one stream's DATA)."""

    @property
    def connection(self) -> object:
        """The connection the stream lives on (what the server's shutdown names)."""
        ...

    @property
    def bytes_sent(self) -> int: ...
    @property
    def bytes_queued(self) -> int: ...
    @property
    def bytes_received(self) -> int: ...

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no checkpoint, in the reader's task) each time bytes arrive."""

    def receive_nowait(self, max_bytes: int | None = None) -> bytes:
        """What arrived and was not read yet, at most ``max_bytes`` (no checkpoint); the
        rest stays for the next call (back-pressure: the stream stops reading when full)."""
        ...

    def queue(self, data: bytes | bytearray) -> None: ...
    def try_flush(self) -> bool: ...

    async def flush(self) -> None:
        """Send what is queued; a cancel leaves exactly the unsent bytes queued."""

    def finish(self) -> None:
        """Our side ends in order, after what is queued (the close handshake is done)."""

    def reset(self) -> None:
        """Abort the stream now (the peer sees a reset)."""


@runtime_checkable
class Upgradable(Protocol):
    """A transport that can switch protocols with a 101 (HTTP/1.1's)."""

    def upgrade(self, headers: list[tuple[bytes, bytes]]) -> UpgradedByteStream: ...


@runtime_checkable
class Tunnelable(Protocol):
    """A transport whose request may be an extended CONNECT (HTTP/2's, RFC 8441)."""

    @property
    def connect_protocol(self) -> bytes | None: ...

    def accept_connect(self, headers: list[tuple[bytes, bytes]]) -> UpgradedByteStream: ...


# ---------------------------------------------------------------- the handshake


def is_websocket_request(ctx: HttpContext) -> bool:
    """True when the request asks to become a WebSocket: over HTTP/1.1 ``Upgrade:
    websocket`` with ``Connection: upgrade``, over HTTP/2 an extended CONNECT with
    ``:protocol websocket`` (RFC 8441); ``accept_websocket`` then checks the rest."""
    if _is_extended_connect(ctx):
        return True
    request = ctx.request
    upgrade = request.get_header("upgrade") or ""
    connection = request.get_header("connection") or ""
    return "websocket" in _tokens(upgrade) and "upgrade" in _tokens(connection)


def _is_extended_connect(ctx: HttpContext) -> bool:
    transport = ctx._wire.transport
    return (
        ctx.request.method == "CONNECT"
        and isinstance(transport, Tunnelable)
        and transport.connect_protocol == b"websocket"
    )


def _tokens(value: str) -> list[str]:
    return [part.strip().lower() for part in value.split(",")]


def offered_subprotocols(ctx: HttpContext) -> list[str]:
    """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in its order."""
    values = ctx.request.headers.get_all("sec-websocket-protocol")
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


class _BoundedDeflate(PerMessageDeflate):
    """permessage-deflate whose inflation of one message stops one byte past ``limit``
    (wsproto inflates a whole frame at once): a compression bomb is refused with 1009
    having cost at most ``limit`` bytes. Uses wsproto's private decompressor state
    (pinned below wsproto 2)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit
        self._inflated = 0

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        decompressor = self._decompressor
        assert decompressor is not None
        try:
            out = decompressor.decompress(bytes(data), self._limit + 1 - self._inflated)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if decompressor.unconsumed_tail or self._inflated > self._limit:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        result = super().frame_inbound_complete(proto, fin)
        if fin:
            self._inflated = 0
        return result


def handshake_problem(ctx: HttpContext) -> str | None:
    """Why the request is not a WebSocket upgrade ``accept`` can take, or None."""
    try:
        _handshake_headers(ctx, None, (), WebSocketLimits(compression=False))
    except WebSocketHandshakeError as exc:
        return str(exc)
    return None


def _handshake_headers(
    ctx: HttpContext,
    subprotocol: str | None,
    headers: Iterable[tuple[bytes, bytes]],
    limits: WebSocketLimits,
) -> tuple[list[tuple[bytes, bytes]], list[Extension]]:
    """The 101's headers and the extensions agreed on.

    Raises:
        WebSocketHandshakeError: not a valid version-13 upgrade, or a subprotocol not offered.
    """
    request = ctx.request
    tunnel = _is_extended_connect(ctx)  # RFC 8441 §5: no key, no accept, a 200
    if not tunnel:
        if request.method != "GET" or not is_websocket_request(ctx):
            raise WebSocketHandshakeError("not a WebSocket upgrade request")
        if request.http_version != "1.1":
            raise WebSocketHandshakeError("a WebSocket upgrade needs HTTP/1.1")
    if (request.get_header("sec-websocket-version") or "").strip() != "13":
        raise WebSocketHandshakeError("Sec-WebSocket-Version must be 13")
    out: list[tuple[bytes, bytes]] = []
    if not tunnel:
        key = (request.get_header("sec-websocket-key") or "").strip()
        if not key:
            raise WebSocketHandshakeError("Sec-WebSocket-Key is missing")
        out += [
            (b"upgrade", b"websocket"),
            (b"connection", b"Upgrade"),
            (b"sec-websocket-accept", generate_accept_token(key.encode("latin-1"))),
        ]
    if subprotocol is not None and subprotocol not in offered_subprotocols(ctx):
        raise WebSocketHandshakeError(f"subprotocol {subprotocol!r} was not offered")
    if subprotocol is not None:
        out.append((b"sec-websocket-protocol", subprotocol.encode("latin-1")))
    extensions: list[Extension] = []
    offers = [
        o.strip()
        for value in request.headers.get_all("sec-websocket-extensions")
        for o in value.split(",")
    ]
    if limits.compression and offers:
        deflate = _BoundedDeflate(limits.max_message_size)
        accepted = server_extensions_handshake(offers, [deflate])
        if accepted is not None:
            out.append((b"sec-websocket-extensions", accepted))
            extensions.append(deflate)
    reserved = {name for name, _ in out}
    out += [(n.lower(), v) for n, v in headers if n.lower() not in reserved]
    return out, extensions


# ---------------------------------------------------------------- the engine


@final
class WebSocket:
    """One accepted WebSocket: wsproto over the upgraded stream (rules 2 to 4).

    Created by ``accept``; handlers use ``WebSocketContext`` (native) or the asgi module.
    """

    # Slots: an idle socket holds one for as long as it is open.
    __slots__ = (
        "_arrived", "_conn", "_failing", "_going_away", "_incoming", "_incoming_bytes",
        "_keeper", "_message_size", "_must_flush", "_paused", "_pings", "_pong_due", "clean",
        "ctx", "ended", "limits", "read_closed", "received_close", "sent_close", "stream",
        "subprotocol",
    )  # fmt: skip

    def __init__(
        self,
        ctx: HttpContext,
        stream: UpgradedByteStream,
        limits: WebSocketLimits,
        extensions: list[Extension],
        subprotocol: str | None,
    ) -> None:
        self.ctx = ctx
        self.stream = stream
        self.limits = limits
        self.subprotocol = subprotocol
        self._conn = Connection(ConnectionType.SERVER, extensions)
        #: Message data waiting for the handler: (text, data, message finished).
        self._incoming: deque[tuple[bool, bytes, bool]] = deque()
        self._incoming_bytes = 0
        self._message_size = 0
        self._arrived = trio.lowlevel.ParkingLot()  # handlers wait for data here
        self._keeper = trio.lowlevel.ParkingLot()  # the keeper waits for work here
        self._paused = False  # the receive queue is full: bytes wait in the stream
        self._failing = False  # a close was queued to fail the connection: the keeper drops it
        self._must_flush = False  # engine frames wait for the keeper to send them
        self._going_away = False  # server shutdown: the keeper closes with 1001
        #: The peer's close frame, once received.
        self.received_close: CloseStatus | None = None
        #: The close frame we sent (or tried to), once sent.
        self.sent_close: CloseStatus | None = None
        #: No more message data will arrive (close received, connection lost or failed).
        self.read_closed = False
        #: The close handshake completed both ways (rule 4).
        self.clean = False
        self.ended = trio.Event()  # clean close, lost, or failed
        self._pong_due: float | None = None  # when the outstanding ping times out
        self._pings = 0

    # -------------------------------------------------------- state

    @property
    def close_code(self) -> int:
        """The code for the log and for a handler told of the end: the peer's close code,
        else the one we sent, else 1006."""
        if self.received_close is not None:
            return self.received_close.code
        if self.sent_close is not None:
            return self.sent_close.code
        return ABNORMAL_CLOSURE

    def _remote_closing(self) -> bool:
        return self._conn.state is ConnectionState.REMOTE_CLOSING

    def _handshake_done(self) -> bool:
        return self._conn.state is ConnectionState.CLOSED

    @property
    def can_send(self) -> bool:
        return self._conn.state is ConnectionState.OPEN and not self.ended.is_set()

    def _end(self) -> None:
        self.read_closed = True
        self.ended.set()
        self._arrived.unpark_all()
        self._kick()

    def stop_receiving(self) -> None:
        """No more message data for the handler (its request is ending)."""
        self.read_closed = True
        self._arrived.unpark_all()

    def peer_gone(self) -> None:
        """The transport saw the peer go (EOF/RST): no more data; 1006 unless it closed.

        Bytes the receive queue held back are parsed here (rule 4): message data is queued
        for the handler, and a close frame makes the close clean."""
        conn = self._conn
        data = b"" if self.ended.is_set() else self.stream.receive_nowait()
        if data and conn.state is ConnectionState.OPEN:
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, TextMessage | BytesMessage) and not self.read_closed:
                    payload = (
                        event.data.encode() if isinstance(event.data, str) else bytes(event.data)
                    )
                    self._message_size += len(payload)
                    if self._message_size > self.limits.max_message_size:
                        break
                    self._incoming.append(
                        (isinstance(event, TextMessage), payload, event.message_finished)
                    )
                    self._incoming_bytes += len(payload)
                elif isinstance(event, CloseConnection):
                    if self._remote_closing():  # a real close frame, not a parse error
                        self.received_close = CloseStatus(event.code, event.reason or "")
                        self._closed_cleanly()
                    break
        self._end()

    def going_away(self) -> None:
        """Server shutdown: the keeper sends close 1001 and waits for the answer."""
        self._going_away = True
        self._kick()

    # -------------------------------------------------------- reading (rule 2)

    def start(self) -> None:
        """Start the socket: the stream calls ``_feed`` as bytes arrive (what arrived
        already is parsed now), and the keeper task runs beside the handler."""
        _OPEN.setdefault(self.stream.connection, set()).add(self)
        self.stream.listen(self._feed)
        self._feed()
        self.ctx.start_soon(self.keep_alive)

    def _forget(self) -> None:
        sockets = _OPEN.get(self.stream.connection)
        if sockets is not None:
            sockets.discard(self)
            if not sockets:
                del _OPEN[self.stream.connection]

    def _feed(self) -> None:
        """Bytes to events at once, in the task that read them (rule 2). Never waits and
        never raises: what the socket does not take at once, and the end of a failed
        connection, are the keeper's."""
        conn, stream, limits = self._conn, self.stream, self.limits
        more = True
        while more and not self.ended.is_set() and not self._failing:
            if self._incoming_bytes >= limits.receive_queue:
                self._paused = True  # ``take`` feeds again once there is room
                return
            if self._paused:
                self._paused = False
                if self._pong_due is not None:  # pongs were not read meanwhile
                    self._pong_due = max(self._pong_due, trio.current_time() + limits.ping_timeout)
            data = stream.receive_nowait(_RECEIVE_SIZE)
            if not data:
                return
            more = len(data) == _RECEIVE_SIZE  # (a shorter read emptied the stream)
            if conn.state is ConnectionState.CLOSED:
                continue  # bytes after the close handshake: dropped
            conn.receive_data(data)
            for event in conn.events():
                if isinstance(event, TextMessage | BytesMessage):
                    if self.read_closed:
                        continue  # we are closing: data is dropped (RFC 6455 §5.5.1)
                    payload = (
                        event.data.encode() if isinstance(event.data, str) else bytes(event.data)
                    )
                    self._message_size += len(payload)
                    if self._message_size > limits.max_message_size:
                        self._fail(1009, "message too big")
                        return
                    if event.message_finished:
                        self._message_size = 0
                    self._incoming.append(
                        (isinstance(event, TextMessage), payload, event.message_finished)
                    )
                    self._incoming_bytes += len(payload)
                    self._arrived.unpark_all()
                elif isinstance(event, Ping):
                    if conn.state is ConnectionState.OPEN:
                        self._send_soon(conn.send(event.response()))
                elif isinstance(event, Pong):
                    self._pong_due = None
                elif isinstance(event, CloseConnection):
                    if conn.state is ConnectionState.OPEN:
                        # wsproto refused what it read (its events say so as a close).
                        self._fail(event.code, event.reason or "")
                        return
                    self._peer_closed(event)
                    return

    def _peer_closed(self, event: CloseConnection) -> None:
        conn = self._conn
        self.received_close = CloseStatus(event.code, event.reason or "")
        frame = b""
        if conn.state is ConnectionState.REMOTE_CLOSING:
            reply = event.response()
            self.sent_close = CloseStatus(reply.code, reply.reason or "")
            frame = bytes(conn.send(reply))
        # The peer's close came: complete (rule 4) before our answer goes, so a peer that
        # leaves as soon as it has it is not taken for one that vanished.
        self._closed_cleanly()
        if frame:
            self._send_soon(frame)
        self.stream.finish()

    def _closed_cleanly(self) -> None:
        """Both close frames went (rule 4): the response is complete."""
        self.clean = True
        self._end()
        note_progress(self.ctx)

    # -------------------------------------------------------- the keeper (rule 2)

    def _kick(self) -> None:
        self._keeper.unpark_all()

    async def keep_alive(self) -> None:
        """The keeper task: pings, the pong timeout, the shutdown close, the end of a
        failed connection, and the engine's frames the socket did not take at once.

        Cancellation: a request task; cancelled with the request.
        """
        limits = self.limits
        interval = limits.ping_interval
        next_ping = math.inf if interval is None else trio.current_time() + interval
        try:
            while True:
                if self._failing:
                    await self._drop()
                    return
                if self._must_flush:
                    self._must_flush = False
                    await self._send_frame(b"")
                    continue
                if self.ended.is_set():
                    return
                if self._going_away:
                    with contextlib.suppress(
                        WebSocketClosedError, ConnectionInvalidError, OperationAbortedError
                    ):
                        await self.close(1001, "server shutting down")
                    continue
                now = trio.current_time()
                if self._pong_due is not None and now >= self._pong_due and not self._paused:
                    self._fail(1011, "keepalive ping timeout")
                    continue
                if interval is not None and now >= next_ping:
                    next_ping = now + interval
                    if self._pong_due is None and self.can_send:
                        self._pings += 1
                        self._pong_due = now + limits.ping_timeout
                        await self._send_frame(self._conn.send(Ping(str(self._pings).encode())))
                    continue
                with trio.move_on_at(min(next_ping, self._pong_due or math.inf)):
                    await self._keeper.park()
        finally:
            self._forget()

    # -------------------------------------------------------- sending

    def _send_soon(self, frame: bytes) -> None:
        """Queue an engine frame (a pong, the answer to a close) and send what the socket
        takes now; the keeper sends the rest (no wait here)."""
        stream = self.stream
        stream.queue(frame)
        if not stream.try_flush():
            self._must_flush = True
            self._kick()

    async def _send_frame(self, frame: bytes | bytearray) -> None:
        """Queue ``frame`` and send everything queued (the keeper's frames).

        Cancellation: the rest of the frame stays queued (rule 5)."""
        stream = self.stream
        if frame:
            stream.queue(frame)
        if stream.try_flush():
            return
        try:
            await stream.flush()
        except (PeerGoneError, PeerTooSlowError) as exc:
            self._lost(exc)

    def _lost(self, exc: PeerGoneError | PeerTooSlowError) -> ConnectionInvalidError:
        """A send failed: the peer is gone or too slow (the request hears why)."""
        self._end()
        return self.ctx._wire_broken(exc)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 §7.1.7): close ``code`` once, then the keeper
        drops it (``_drop``); the server cut it (rule 4)."""
        self.read_closed = True
        self._arrived.unpark_all()
        if self._conn.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            self.sent_close = CloseStatus(code, reason)
            self.stream.queue(self._conn.send(CloseConnection(code, reason)))
            self.stream.try_flush()
        self._failing = True
        self._kick()

    async def _drop(self) -> None:
        """The end of a failed connection: its close frame gets ``close_timeout`` to go
        out, then the connection is dropped."""
        with trio.move_on_after(self.limits.close_timeout):
            with contextlib.suppress(PeerGoneError, PeerTooSlowError):
                await self.stream.flush()
        self._end()
        self.ctx._server_aborted(reading=False)
        self.stream.reset()

    def frame_message(self, data: bytes | str, *, final: bool = True) -> bytes:
        """The frame for ``data`` (text when ``str``), not sent yet.

        Raises:
            WebSocketClosedError: a close was sent or received (or the connection ended).
        """
        if not self.can_send:
            raise WebSocketClosedError()
        try:
            message: TextMessage | BytesMessage = (
                TextMessage(data=data, message_finished=final)
                if isinstance(data, str)
                else BytesMessage(data=data, message_finished=final)
            )
            return bytes(self._conn.send(message))
        except LocalProtocolError as exc:
            raise WebSocketClosedError(str(exc)) from exc

    async def send(self, frame: bytes) -> None:
        """Send a frame made by ``frame_message`` (a pending I/O of the request's context).

        Raises:
            ConnectionInvalidError: the peer is gone or too slow to read.

        Cancellation: ``ctx.cancel_io()`` raises ``OperationAbortedError``; the rest of the
            frame stays queued and goes out before the next one.
        """
        stream = self.stream
        stream.queue(frame)
        if stream.try_flush():
            return
        try:
            with self.ctx._pending_io(None, "websocket write"):
                await stream.flush()
        except (PeerGoneError, PeerTooSlowError) as exc:
            raise self._lost(exc) from exc

    async def send_close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame (once); the peer's answer completes the close (the reader).

        Raises:
            ConnectionInvalidError: the peer is gone or too slow.

        Cancellation: as ``send``.
        """
        if self._conn.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            await trio.lowlevel.checkpoint()
            return
        self.sent_close = CloseStatus(code, reason)
        frame = bytes(self._conn.send(CloseConnection(code, reason)))
        self.read_closed = True
        self._arrived.unpark_all()
        await self.send(frame)
        if self._handshake_done():
            self._closed_cleanly()
            self.stream.finish()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close: send the close frame if not yet sent, then wait for the handshake to end
        (``close_timeout``; then the connection is dropped and the server cut it).

        Cancellation: the wait stops; the request's end then drops the connection.
        """
        if not self.ended.is_set():
            try:
                await self.send_close(code, reason)
            except ConnectionInvalidError:
                return
            with trio.move_on_after(self.limits.close_timeout):
                await self.ended.wait()
            if not self.ended.is_set():
                self._end()
                self.ctx._server_aborted(reading=False)
                self.stream.reset()
        else:
            await trio.lowlevel.checkpoint()

    # -------------------------------------------------------- receiving

    def take(self, max_bytes: int) -> tuple[bool, bytes, bool] | None:
        """The next piece of message data, at most ``max_bytes``: (text, data, message
        finished); None when none waits (no checkpoint)."""
        if not self._incoming:
            return None
        text, data, finished = self._incoming[0]
        if len(data) > max_bytes:
            self._incoming[0] = (text, data[max_bytes:], finished)
            data, finished = data[:max_bytes], False
        else:
            self._incoming.popleft()
        self._incoming_bytes -= len(data)
        if self._paused and self._incoming_bytes < self.limits.receive_queue:
            self._feed()  # room again: what waits in the stream
        return text, data, finished

    async def wait_data(self) -> None:
        """Until message data waits or no more will come.

        Cancellation: nothing is lost."""
        if self._incoming or self.read_closed:
            await trio.lowlevel.checkpoint()
            return
        await self._arrived.park()

    async def receive_message(self) -> bytes | str | None:
        """One whole message (``str`` for text), or None once the connection is closing.

        Cancellation: a message partly taken is lost (the asgi module is cancelled only
            with its request)."""
        parts: list[bytes] = []
        text = False
        while True:
            piece = self.take(1 << 62)
            if piece is None:
                if self.read_closed:
                    return None
                await self._arrived.park()
                continue
            text, data, finished = piece
            parts.append(data)
            if finished:
                joined = b"".join(parts)
                return joined.decode() if text else joined


# ---------------------------------------------------------------- on the wire


@final
class WebSocketTransport:
    """The transport of a request once it became a WebSocket (``transport.py`` rules):
    no HTTP response any more; its body bytes are the bytes sent after the 101, and it is
    complete once the close handshake is (rule 4)."""

    __slots__ = ("_inner", "websocket")

    def __init__(self, inner: Transport, websocket: WebSocket) -> None:
        self._inner = inner
        self.websocket = websocket

    def send_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> None:
        raise _framing_error("a response head after the upgrade")

    def send_body(self, data: bytes) -> int:
        if data:
            raise _framing_error("a response body after the upgrade")
        return 0

    def send_end(self) -> None:
        pass

    def send_raw(self, data: bytes) -> int:
        raise _framing_error("raw bytes after the upgrade")

    def try_write(self) -> bool:
        return True

    async def write(self) -> None:
        await trio.lowlevel.checkpoint()

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        raise _framing_error("a file after the upgrade")

    def reset(self) -> None:
        self.websocket._end()
        self.websocket.stream.reset()

    @property
    def body_bytes_sent(self) -> int:
        return self.websocket.stream.bytes_sent

    @property
    def body_bytes_queued(self) -> int:
        return self.websocket.stream.bytes_sent  # (nothing waits in a queue of its own)

    @property
    def bytes_received(self) -> int:
        """Bytes read from the peer after the 101."""
        return self.websocket.stream.bytes_received

    @property
    def response_complete(self) -> bool:
        return self.websocket.clean

    @property
    def head_written(self) -> bool:
        """The 101 (HTTP/2: the 200) went out."""
        return self._inner.head_written

    @property
    def keep_alive(self) -> bool:
        return False

    async def receive_body(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    @property
    def body_remaining(self) -> int | None:
        return 0

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        self._inner.watch_peer(callback)


def _framing_error(what: str) -> Exception:
    from .._protocol.http1_writer import FramingError

    return FramingError(f"{what}: the connection is a WebSocket")


#: The WebSockets open on each connection (``UpgradedByteStream.connection``: one on an
#: HTTP/1.1 connection, any number on an HTTP/2 one), for the server's shutdown close
#: 1001; an entry lives as long as its reader task.
_OPEN: dict[object, set[WebSocket]] = {}


def going_away(connection: object) -> None:
    """Server shutdown: the connection's WebSockets close with 1001 (each one's keeper
    sends the close and waits for the answer within the server's grace)."""
    for websocket in list(_OPEN.get(connection, ())):
        websocket.going_away()


async def accept(
    ctx: HttpContext,
    *,
    subprotocol: str | None = None,
    headers: Iterable[tuple[bytes, bytes]] = (),
    limits: WebSocketLimits | None = None,
) -> WebSocket:
    """Switch the request to a WebSocket (rule 1): send the 101 (the 200 of an HTTP/2
    extended CONNECT), start the reader and the keeper. The handler must close it
    (``WebSocket.close``) before it returns.

    Raises:
        WebSocketHandshakeError: not a valid upgrade; the response was already started; or the
            transport cannot switch protocols.
        ConnectionInvalidError: the peer is gone.

    Cancellation: ``ctx.cancel_io()`` aborts the send of the 101 (``OperationAbortedError``):
        the socket is then accepted but its 101 is still queued.
    """
    limits = limits or WebSocketLimits()
    if ctx._parent is not None or ctx._wire.head_sent:
        raise WebSocketHandshakeError("a WebSocket needs the root request, before any response")
    transport: Transport = ctx._wire.transport
    tunnel = _is_extended_connect(ctx)
    if not tunnel and not isinstance(transport, Upgradable):
        raise WebSocketHandshakeError("this protocol cannot switch to a WebSocket")
    out, extensions = _handshake_headers(ctx, subprotocol, headers, limits)
    ctx._check_alive()
    if not ctx.connection.is_connected():
        raise ConnectionInvalidError("the client is gone")
    response = ctx.response
    stream: UpgradedByteStream
    if isinstance(transport, Tunnelable) and tunnel:
        stream = transport.accept_connect(out)
        response._status, response._reason = 200, "OK"
    else:
        assert isinstance(transport, Upgradable)
        stream = transport.upgrade(out)
        response._status, response._reason = 101, "Switching Protocols"
    websocket = WebSocket(ctx, stream, limits, extensions, subprotocol)
    wire = ctx._wire
    wire.transport = WebSocketTransport(transport, websocket)
    wire.head_sent = True
    wire.status = response._status
    ctx.lifecycle.fire(Event.HEAD_SENT)
    nursery = ctx.nursery
    nursery.cancel_scope.deadline = math.inf  # request_timeout is for HTTP exchanges
    peer_gone = ctx._peer_gone

    def on_peer_gone() -> None:
        websocket.peer_gone()
        peer_gone()

    transport.watch_peer(on_peer_gone)
    websocket.start()
    if not stream.try_flush():
        try:
            with ctx._pending_io(None, "websocket accept"):
                await stream.flush()
        except (PeerGoneError, PeerTooSlowError) as exc:
            raise websocket._lost(exc) from exc
    return websocket


# ---------------------------------------------------------------- the native API


@final
class WebSocketContext:
    """A native module's WebSocket (IIS ``IWebSocketContext``), from ``accept_websocket``.

    One ``read_fragment`` and one ``write_fragment`` may be pending at a time (as in IIS):
    a reader task and a writer task may share the context (full duplex).
    """

    def __init__(self, websocket: WebSocket) -> None:
        self._ws = websocket
        self._scopes: set[trio.CancelScope] = set()
        self._decoder: codecs.IncrementalDecoder | None = None  # a text message being sent

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol agreed on in the handshake."""
        return self._ws.subprotocol

    def _io(self, moved: Callable[[], int], kind: str) -> contextlib.AbstractContextManager[None]:
        return _pending(self, moved, kind)

    async def read_fragment(self, max_bytes: int = 65536) -> WebSocketFragment:
        """The next fragment of message data, at most ``max_bytes`` (IIS ``ReadFragment``);
        ``close=True`` once the peer's close frame came or the connection ended (then
        ``get_close_status()`` says how).

        Raises:
            OperationAbortedError: ``cancel_outstanding_io()`` or ``ctx.cancel_io()``
                (``completion_bytes`` 0: nothing was taken).
            ConnectionInvalidError: the request's connection is gone.

        Cancellation: loses no byte; a fragment is taken only when it is returned. The
            client going away cancels the whole request (``trio.Cancelled``).
        """
        if max_bytes <= 0:
            raise HResultError("max_bytes must be positive", hresult=ERROR_INVALID_PARAMETER)
        ws = self._ws
        while True:
            piece = ws.take(max_bytes)
            if piece is not None:
                text, data, final = piece
                await trio.lowlevel.checkpoint()
                return WebSocketFragment(data, text, final)
            if ws.read_closed:
                await trio.lowlevel.checkpoint()
                return WebSocketFragment(b"", False, True, close=True)
            with self._io(lambda: 0, "websocket read"):
                await ws.wait_data()

    async def write_fragment(self, data: bytes, *, utf8: bool = False, final: bool = True) -> int:
        """Send ``data`` as one fragment (IIS ``WriteFragment``): part of a text message
        when ``utf8`` (a character may be split between fragments), the message's last
        fragment when ``final``. Returns the bytes sent (``len(data)``).

        Raises:
            OperationAbortedError: ``cancel_outstanding_io()`` or ``ctx.cancel_io()``;
                ``completion_bytes`` are the fragment's bytes the kernel took (the frame's
                wire bytes with permessage-deflate).
            WebSocketClosedError: a close frame was sent or received.
            ConnectionInvalidError: the peer is gone or too slow to read.

        Cancellation: the unsent rest of the frame stays queued and goes out before the
            next frame, so the stream stays well-formed.
        """
        ws = self._ws
        payload: bytes | str = bytes(data)
        if utf8:
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
            try:
                payload = self._decoder.decode(data, final)
            except UnicodeDecodeError as exc:
                self._decoder = None
                raise HResultError(f"not UTF-8: {exc}", hresult=ERROR_INVALID_PARAMETER) from exc
            if final:
                self._decoder = None
        frame = ws.frame_message(payload, final=final)
        stream = ws.stream
        start = stream.bytes_queued
        header = len(frame) - len(payload if isinstance(payload, bytes) else payload.encode())
        header = max(0, min(header, 14))

        def moved() -> int:
            return max(0, min(len(frame) - header, stream.bytes_sent - start - header))

        stream.queue(frame)
        if not stream.try_flush():
            try:
                with self._io(moved, "websocket write"):
                    await stream.flush()
            except (PeerGoneError, PeerTooSlowError) as exc:
                raise ws._lost(exc) from exc
        else:
            await trio.lowlevel.checkpoint()
        return len(data)

    async def send_connection_close(self, status: int = 1000, reason: str = "") -> None:
        """Send a close frame (IIS ``SendConnectionClose``); the peer's answer then comes as
        a ``read_fragment`` with ``close=True``.

        Raises:
            OperationAbortedError: ``cancel_outstanding_io()`` or ``ctx.cancel_io()``.
            ConnectionInvalidError: the peer is gone or too slow to read.

        Cancellation: as ``write_fragment``.
        """
        ws = self._ws
        with self._io(lambda: 0, "websocket close"):
            await ws.send_close(status, reason)

    def get_close_status(self) -> CloseStatus | None:
        """The peer's close frame (IIS ``GetCloseStatus``); ``CloseStatus(1006, "")`` when the
        connection ended without one; None while it is open."""
        ws = self._ws
        if ws.received_close is not None:
            return ws.received_close
        if ws.ended.is_set():
            return CloseStatus(ABNORMAL_CLOSURE, "")
        return None

    def close_tcp_connection(self) -> None:
        """Drop the TCP connection now (IIS ``CloseTcpConnection``; an RST): the server cut
        it. Pending reads return ``close=True``."""
        ws = self._ws
        if not ws.ended.is_set():
            ws._end()
            ws.ctx._reset_connection()

    def cancel_outstanding_io(self) -> int:
        """Cancel this WebSocket's pending ``read_fragment``/``write_fragment``/
        ``send_connection_close`` (IIS ``CancelOutstandingIO``); each raises
        ``OperationAbortedError``. The socket stays open. Returns how many were cancelled."""
        n = 0
        for scope in list(self._scopes):
            if not scope.cancel_called:
                scope.cancel()
                n += 1
        return n


@contextlib.contextmanager
def _pending(owner: WebSocketContext, moved: Callable[[], int], kind: str) -> Iterator[None]:
    """A pending I/O of the request (``ctx.cancel_io``) in a scope of its own
    (``cancel_outstanding_io``); either completes it with ``OperationAbortedError``."""
    ctx = owner._ws.ctx
    scope = trio.CancelScope()
    with ctx._pending_io(moved, kind):
        owner._scopes.add(scope)
        try:
            with scope:
                yield
        finally:
            owner._scopes.discard(scope)
    if scope.cancelled_caught:
        ctx._counters_io_cancelled()
        raise OperationAbortedError(completion=CompletionInfo(moved(), ERROR_OPERATION_ABORTED))


@contextlib.asynccontextmanager
async def accept_websocket(
    ctx: HttpContext,
    *,
    subprotocol: str | None = None,
    headers: Sequence[tuple[bytes, bytes]] = (),
    limits: WebSocketLimits | None = None,
) -> AsyncIterator[WebSocketContext]:
    """Accept the request's WebSocket upgrade and use it (native modules)::

        async with accept_websocket(ctx) as ws:
            while not (fragment := await ws.read_fragment()).close:
                await ws.write_fragment(fragment.data, utf8=fragment.utf8, final=fragment.final)

    On exit the socket is closed: close 1000 (1011 when the block raised) unless a close
    was sent already, then the close handshake is awaited (``close_timeout``).

    Raises:
        WebSocketHandshakeError: not a valid upgrade, or the response was already started.
        ConnectionInvalidError: the peer is gone.

    Cancellation: the client going away cancels the request (the block sees
        ``trio.Cancelled``); the exit then only drops the connection.
    """
    ws = await accept(ctx, subprotocol=subprotocol, headers=headers, limits=limits)
    failed = True
    try:
        yield WebSocketContext(ws)
        failed = False
    finally:
        if not ws.ended.is_set():
            with trio.CancelScope(shield=True) as closing:
                closing.deadline = trio.current_time() + ws.limits.close_timeout
                with contextlib.suppress(ConnectionInvalidError, OperationAbortedError):
                    await ws.close(1011 if failed else 1000)
