"""The HTTP/2 driver: one connection, many streams, each stream a request in its own nursery.

Theory of operation
-------------------
1. **Tasks.** The connection task reads frames (``serve``) and feeds them to the ``h2``
   state machine; a writer task is the only one that waits on the socket to send; every
   stream's request runs through the same pipeline run as an HTTP/1.1 request (the
   ``run_stream`` callback: ``_new_context`` and ``_run``), so each has its own request
   nursery. Streams and the writer run in the server's connection nursery (``tasks``),
   as HTTP/1.1's request loop does, and the idle clock is the server's (``IdleClock``):
   an idle connection is its reading task alone, with no nursery and no deadline of its
   own. Nothing outlives the connection: its task waits for every stream's tail, then
   for the writer, before the socket closes.
2. **Output.** Streams push frames into ``h2`` (never awaiting); the connection moves
   ``h2``'s bytes to its own output buffer and records, per DATA frame, the output offset
   it ends at. The writer hands the buffer to the kernel (on plain sockets a request first
   tries a non-blocking send itself: no task switch for a small response) and, as offsets
   pass, credits each stream's ``body_bytes_sent`` and completion (``http2_transport``
   rule 2). A cancelled stream write never cuts a frame: only the writer touches the wire.
   The writer task is started when output waits and ends once the connection has neither
   output nor streams: an idle connection is its reading task alone.
3. **Cancellation.** The client's RST_STREAM is that stream's disconnect: its transport's
   ``peer_gone`` cancels its request nursery (``HttpContext._peer_gone``); other streams
   go on. The client's GOAWAY or the connection's loss cancel every stream the same way.
   When the server cuts the connection (a flood, a protocol error, a client that reads
   nothing for ``send_timeout``) every stream's ``server_aborted`` cancels its request
   instead, and the outcome is ``aborted_by_server``.
4. **Ending.** A graceful GOAWAY (the server draining, ``set_need_disconnect``,
   ``max_requests_per_connection``) carries the last stream id the server will answer;
   streams above it are refused (REFUSED_STREAM), the ones below it finish, then the
   connection closes. It is written by hand (``hyperframe``): ``h2`` would refuse to send
   anything more after its own GOAWAY.
5. **Limits** (``Limits.h2_*``, each refusal counted in ``ServerCounters`` and logged once
   per connection): concurrent streams (REFUSED_STREAM beyond it), the header list size
   (``h2``/``hpack`` refuse more, also across CONTINUATION frames: GOAWAY), and per
   ``h2_flood_window`` seconds the client's RST_STREAM (rapid reset, CVE-2023-44487),
   PING, SETTINGS and WINDOW_UPDATE frames: past a limit, GOAWAY ENHANCE_YOUR_CALM. A
   window left closed past ``send_timeout`` resets that stream; a connection with no
   stream for ``keep_alive_timeout`` gets GOAWAY and is closed.

Stream priorities (PRIORITY frames, the priority fields of HEADERS) are ignored: streams
are served in the order their frames arrive.
"""

from __future__ import annotations

import contextlib
import logging
import socket as stdlib_socket
from collections.abc import Awaitable, Callable
from typing import Final, Protocol, final

import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
import trio.lowlevel
from hyperframe.frame import GoAwayFrame

from .._observability.counters import ServerCounters
from .h2_fields import check_trailers, request_head
from .h2_lean import (
    SERVER_CONFIG,
    LeanH2Connection,
    compact_hpack,
    compact_settings,
    quiet_hpack_logs,
    shared_local_settings,
)
from .http1 import Limits, RequestHead
from .http2_transport import Http2Transport

log = logging.getLogger("trioiis.http2")

#: The client connection preface (RFC 9113 §3.4): how prior-knowledge h2c is detected.
PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_RECEIVE_SIZE: Final = 65536
#: The connection-level receive window the server opens at once (streams have their own).
_CONNECTION_WINDOW: Final = 1 << 24
_E = h2.errors.ErrorCodes
#: Seconds between looks at a preface that arrived in parts (readable stays true).
_PREFACE_PAUSE: Final = 0.005

#: Runs one stream's request (the server's pipeline run), given its connection.
RunStream = Callable[["Http2Connection", Http2Transport, RequestHead], Awaitable[None]]


class IdleClock(Protocol):
    """The server's clock of idle connections (``IdleReaper``): ``expire`` is called on a
    connection watched past ``timeout`` (an idle connection is its reading task alone: no
    cancel scope carries its deadline)."""

    def watch(self, connection: Http2Connection, timeout: float) -> None: ...

    def forget(self, connection: Http2Connection) -> None: ...


class _Flood:
    """Frames of one kind counted per window; ``hit`` says when the limit is passed."""

    __slots__ = ("count", "limit", "start")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.start = 0.0

    def hit(self, now: float, window: float) -> bool:
        if now - self.start > window:
            self.start, self.count = now, 0
        self.count += 1
        return self.limit > 0 and self.count > self.limit


@final
class Http2Connection:
    """One HTTP/2 connection (theory of operation in this module's docstring)."""

    __slots__ = (
        "_clock", "_drain_asked", "_drained", "_flushed", "_frames", "_last_served",
        "_last_stream", "_nursery", "_on_refused", "_out", "_peer", "_pings", "_queued", "_raw",
        "_reading",
        "_refusal_logged", "_resets", "_run_stream", "_served", "_settings", "_streams",
        "_tasks", "_window_updates", "_writer_ended", "_writer_running", "_writer_scope",
        "_writer_waiting", "_writing", "_written",
        "closing", "counters", "failed", "limits", "local", "lost", "machine", "remote",
        "secure", "stream", "too_slow",
    )  # fmt: skip

    def __init__(
        self,
        stream: trio.abc.Stream,
        limits: Limits,
        counters: ServerCounters,
        run_stream: RunStream,
        *,
        tasks: trio.Nursery,
        idle_clock: IdleClock,
        raw_socket: stdlib_socket.socket | None = None,
        remote: tuple[str, int] = ("", 0),
        local: tuple[str, int] = ("", 0),
        secure: bool = False,
        peer: str = "",
        on_refused: Callable[[Http2Connection], None] | None = None,
    ) -> None:
        """``tasks``: the nursery the streams' requests and the writer run in (the server's
        connection nursery: the connection's own task waits for them before it ends);
        ``idle_clock``: keeps the connection's ``keep_alive_timeout`` while it has no
        stream; ``remote``, ``local``, ``secure``: the connection's addresses and TLS, for
        ``run_stream`` and ``on_refused``."""
        self.stream = stream
        # Called for each malformed request refused with RST_STREAM: the server logs and
        # counts it as HTTP/1.1's refused heads (no request is missing from the reports).
        self._on_refused = on_refused
        self.limits = limits
        self.counters = counters
        self._run_stream = run_stream
        self._tasks = tasks
        self._clock = idle_clock
        self._raw = raw_socket
        self.remote = remote
        self.local = local
        self.secure = secure
        self._peer = peer
        self.machine = machine = LeanH2Connection(config=SERVER_CONFIG)
        compact_settings(machine.remote_settings)
        compact_hpack(machine)
        quiet_hpack_logs()
        self._streams: dict[int, Http2Transport] = {}
        self._out = bytearray()
        self._queued = 0  # output bytes ever buffered: the offset the next one goes at
        self._written = 0  # output bytes ever handed to the kernel (or TLS)
        # (offset its last byte ends at, stream, body bytes, END_STREAM) per frame, in order
        # (a list: an idle connection's is empty, and a deque's first block is ~700 bytes).
        self._frames: list[tuple[int, Http2Transport, int, bool]] = []
        self._writer_waiting: trio.Event | None = None
        self._writing = False  # the writer is inside a send
        self._writer_running = False  # a writer task exists (it may be waiting)
        self._writer_scope: trio.CancelScope | None = None  # the writer's send in flight
        self._writer_ended: trio.Event | None = None  # made when someone waits for it
        self._drained: trio.Event | None = None
        self._flushed: trio.Event | None = None  # set by the writer when the output is empty
        self._nursery: trio.Nursery | None = None  # ``tasks`` while serving
        self._reading: trio.CancelScope | None = None
        #: The client left, reset the connection or broke the protocol.
        self.lost = False
        #: The writer gave up on a client that stopped reading (``send_timeout``).
        self.too_slow = False
        #: A connection error: GOAWAY with an error code is on its way, streams are cancelled.
        self.failed = False
        #: GOAWAY went out: no new stream is served; the connection closes when the last ends.
        self.closing = False
        self._last_stream = 0  # the highest stream id received
        self._last_served = 0  # the highest stream id served (not refused)
        self._served = 0
        self._resets = _Flood(limits.h2_max_resets)
        self._pings = _Flood(limits.h2_max_pings)
        self._settings = _Flood(limits.h2_max_settings)
        self._window_updates = _Flood(limits.h2_max_window_updates)
        self._refusal_logged = False
        self._drain_asked = False

    # ------------------------------------------------------------ serving

    async def serve(self, already_read: bytes = b"") -> None:
        """Serve the connection until it ends; ``already_read``: bytes the detector took.

        Cancellation: every stream's request is cancelled (its tail still runs, shielded),
            then the socket closes.
        """
        self._initiate()
        self.counters.http2["connections"] += 1
        try:
            self._nursery = self._tasks
            self.send_now()  # the server's SETTINGS
            try:
                with trio.CancelScope() as self._reading:
                    if self._drain_asked:
                        self.goaway()
                    self._idle_clock()
                    if already_read:
                        self._feed(already_read)
                    await self._read_loop()
            finally:
                self._reading = None
                self._clock.forget(self)
                if self.lost or not self.closing:
                    self._lose()  # every stream still running is cancelled
                await self._wait_streams()
                await self._flush()
        finally:
            self._nursery = None  # no task starts any more
            await self._stop_writer()
            for transport in list(self._streams.values()):
                transport.peer_gone()
            self._streams.clear()
            self._frames.clear()
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)

    def _initiate(self) -> None:
        """The server's SETTINGS and connection window, queued for sending."""
        limits = self.limits
        machine = self.machine
        advertised = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: limits.h2_max_header_list_size,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: min(limits.receive_buffer, 2**31 - 1),
            # RFC 8441: a stream may be a WebSocket (extended CONNECT, ``:protocol``).
            h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
        }
        machine.local_settings = shared_local_settings(advertised)
        machine.initiate_connection()
        # h2 would answer one stream too many by failing the whole batch of frames it came
        # in; the connection refuses that stream alone (REFUSED_STREAM) instead.
        advertised[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 2**31 - 1
        machine.local_settings = shared_local_settings(advertised)
        machine.decoder.max_header_list_size = limits.h2_max_header_list_size
        machine.increment_flow_control_window(_CONNECTION_WINDOW - 65535)
        self._pull()

    async def _read_loop(self) -> None:
        """Read and feed the client's bytes until EOF, the connection closes, or it fails.
        On plain sockets an idle connection waits in ``wait_readable`` in this very frame:
        a few coroutine frames fewer than ``SocketStream.receive_some`` (about 1.7 KiB per
        idle connection)."""
        raw, stream = self._raw, self.stream
        data: bytes | bytearray | None
        while not (self.closing and not self._streams):
            try:
                if raw is None:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                else:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    while (data := _receive_now(raw)) is None:
                        await trio.lowlevel.wait_readable(raw)
                    await trio.lowlevel.cancel_shielded_checkpoint()  # a client always sending
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                data = b""
            if not data:
                self.lost = True
                return
            self._feed(bytes(data))
            data = b""  # not held while the connection waits (a DATA frame may be 64 KiB)
            if self.lost or self.failed:
                return

    def _feed(self, data: bytes) -> None:
        """Bytes from the client into ``h2``; act on its events."""
        try:
            events = self.machine.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)
            return
        for event in events:
            self._event(event)
            if self.lost or self.failed:
                break
        self._pull()
        self.send_now()

    def _event(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.StreamEnded):
            transport = self._streams.get(event.stream_id)
            if transport is not None:
                transport.body_ended()
        elif isinstance(event, h2.events.StreamReset):
            transport = self._streams.get(event.stream_id)
            if transport is not None:
                self.counters.http2["streams_reset_by_client"] += 1
                transport.peer_gone()  # that request's nursery is cancelled (rule 3)
            if self._flooded(self._resets):
                self._calm("rapid reset", "rapid_reset")
        elif isinstance(event, h2.events.WindowUpdated):
            if self._flooded(self._window_updates):
                self._calm("WINDOW_UPDATE flood", "window_update_flood")
                return
            if event.stream_id == 0:
                for transport in self._streams.values():
                    transport.window_opened()
            else:
                transport = self._streams.get(event.stream_id)
                if transport is not None:
                    transport.window_opened()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            if self._flooded(self._settings):
                self._calm("SETTINGS flood", "settings_flood")
                return
            compact_settings(self.machine.remote_settings)  # (a new setting: a new deque)
            for transport in self._streams.values():
                transport.window_opened()  # INITIAL_WINDOW_SIZE may have grown
        elif isinstance(event, h2.events.PingReceived):
            if self._flooded(self._pings):
                self._calm("PING flood", "ping_flood")
        elif isinstance(event, h2.events.TrailersReceived):
            try:
                check_trailers(event.headers or ())
            except h2.exceptions.ProtocolError as exc:
                self._protocol_error(exc)
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.lost = True  # the client's GOAWAY: every stream is cancelled (rule 3)
            self._lose()

    def _flooded(self, frames: _Flood) -> bool:
        """One more frame of a kind counted per ``h2_flood_window``: past its limit?"""
        return frames.hit(trio.current_time(), self.limits.h2_flood_window)

    def _request(self, event: h2.events.RequestReceived) -> None:
        sid = event.stream_id
        self._last_stream = max(self._last_stream, sid)
        limits = self.limits
        try:
            head, protocol = request_head(event.headers or (), ended=event.stream_ended is not None)
        except h2.exceptions.ProtocolError as exc:
            self._protocol_error(exc)  # a malformed block: as h2 would, GOAWAY
            return
        if self.closing:
            self.counters.http2["streams_after_goaway"] += 1
            self._refuse(sid)  # above the GOAWAY's last stream id: the client may retry it
            return
        if len(self._streams) >= limits.h2_max_concurrent_streams:
            self.counters.http2["streams_refused"] += 1
            if not self._refusal_logged:
                self._refusal_logged = True
                log.warning(
                    "HTTP/2 client %s opened more than %d concurrent streams: refused",
                    self._peer,
                    limits.h2_max_concurrent_streams,
                )
            self._refuse(sid)
            return
        if head is None:
            self._refuse(sid, _E.PROTOCOL_ERROR)
            if self._on_refused is not None:
                self._on_refused(self)
            return
        transport = Http2Transport(
            self,
            sid,
            head_only=head.method == "HEAD",
            request_length=head.content_length,
            connect_protocol=protocol,
        )
        self._streams[sid] = transport
        self._last_served = sid
        if event.stream_ended is not None:
            transport.body_ended()
        self._served += 1
        self.counters.http2["streams"] += 1
        if limits.max_requests_per_connection and (
            self._served >= limits.max_requests_per_connection
        ):
            self.counters.http2["max_requests_goaway"] += 1
            self.goaway()  # this is the last stream it answers
        assert self._nursery is not None
        if len(self._streams) == 1:
            self._idle_clock()  # (moving a deadline costs: only when the connection turns busy)
        self._nursery.start_soon(self._stream_task, transport, head, name="trioiis h2 stream")

    def _refuse(self, sid: int, code: _E = _E.REFUSED_STREAM) -> None:
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.machine.reset_stream(sid, code)

    def _data(self, event: h2.events.DataReceived) -> None:
        data = event.data or b""
        flow = event.flow_controlled_length or 0
        sid = event.stream_id
        transport = self._streams.get(sid)
        if transport is None or transport.was_reset:
            self._return_window(flow, sid)
            return
        if flow > len(data):
            self._return_window(flow - len(data), sid)  # padding counts, but is not body
        transport.data_received(data)

    def _return_window(self, n: int, sid: int) -> None:
        if n <= 0:
            return
        try:
            self.machine.acknowledge_received_data(n, sid)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            self.machine.increment_flow_control_window(n)  # the stream is gone: the connection's

    async def _stream_task(self, transport: Http2Transport, head: RequestHead) -> None:
        """One stream's request (its own nursery inside ``run_stream``)."""
        try:
            await self._run_stream(self, transport, head)
        except Exception:
            log.exception("internal error on HTTP/2 stream %d", transport.stream_id)
        finally:
            self._stream_ended(transport)

    def _stream_ended(self, transport: Http2Transport) -> None:
        sid = transport.stream_id
        streams = self._streams
        streams.pop(sid, None)
        if not streams:
            self._streams = {}  # (an emptied dict keeps its table: a new one is smaller)
        if not transport.was_reset and not self.lost:
            if not transport.response_complete and not transport.end_sent:
                # The request ended without a whole response: the client must not wait.
                transport.reset()
            elif not transport.body_complete:
                # Answered before the body was read: the client may stop sending.
                self._refuse(sid, _E.NO_ERROR)
        unread = transport.unread_body()
        if unread:
            self._return_window(unread, sid)
        if transport.close_after and not self.closing:
            self.goaway()
        self._pull()
        self.send_now()
        if not self._streams:
            self._idle_clock()
            # h2 keeps a closed stream's state until it counts open streams (~1 KiB)
            self.machine.open_inbound_streams  # noqa: B018 - the count drops closed streams
            self._wake_writer()  # (a writer waiting with nothing to send ends)
        if self.closing and not self._streams and not (self.lost or self.failed):
            self._send_goaway()
        if self._drained is not None and not self._streams:
            self._drained.set()

    async def _wait_streams(self) -> None:
        """Wait until every stream's request ended (their tails are bounded)."""
        if self._streams:
            self._drained = trio.Event()
            with trio.CancelScope(shield=True):
                await self._drained.wait()

    # ------------------------------------------------------------ the idle clock, ending

    def _idle_clock(self) -> None:
        """No stream: the connection may idle ``keep_alive_timeout``; a stream: no limit."""
        if self._reading is None:
            return
        if self._streams:
            self._clock.forget(self)
        else:
            self._clock.watch(self, self.limits.keep_alive_timeout)

    def expire(self) -> None:
        """The idle clock ran out (no stream for ``keep_alive_timeout``): GOAWAY, then the
        connection closes. No checkpoint."""
        if self._streams or self.closing or self._reading is None:
            return
        self.counters.http2["idle_closed"] += 1
        self.goaway()

    def _stop_reading(self) -> None:
        if self._reading is not None:
            self._reading.cancel()

    def goaway(self) -> None:
        """Stop taking streams: new ones are refused (REFUSED_STREAM, safe to retry), the
        ones in flight finish, then GOAWAY with the last stream id served goes out and the
        connection closes (rule 4). The GOAWAY waits for the streams in flight because
        clients built on ``h2`` (httpx among them) drop every frame after one."""
        if self.closing:
            return
        self.closing = True
        if not self._streams:
            self._send_goaway()

    def _send_goaway(self) -> None:
        self._pull()
        frame = GoAwayFrame(stream_id=0, last_stream_id=self._last_served, error_code=0)
        self._append(frame.serialize())
        self.send_now()
        self._stop_reading()

    def drain(self) -> None:
        """The server is shutting down: GOAWAY; streams in flight finish (the server's grace
        bounds them)."""
        if self._reading is None:
            self._drain_asked = True  # not serving yet: GOAWAY as soon as it does
            return
        self.goaway()

    def _calm(self, what: str, counter: str) -> None:
        """A flood limit passed: GOAWAY ENHANCE_YOUR_CALM, and the connection is dropped."""
        self.counters.http2[counter] += 1
        log.warning("HTTP/2 client %s: %s; GOAWAY ENHANCE_YOUR_CALM", self._peer, what)
        self._fail(_E.ENHANCE_YOUR_CALM)

    def _protocol_error(self, exc: h2.exceptions.ProtocolError) -> None:
        code = _E.PROTOCOL_ERROR
        if (
            isinstance(exc, h2.exceptions.DenialOfServiceError)
            or "CONTINUATION" in str(exc).upper()
        ):
            code = _E.ENHANCE_YOUR_CALM
            self.counters.http2["header_flood"] += 1
            log.warning("HTTP/2 client %s: %s; GOAWAY ENHANCE_YOUR_CALM", self._peer, exc)
        elif isinstance(exc, h2.exceptions.FlowControlError):
            code = _E.FLOW_CONTROL_ERROR
        else:
            log.debug("HTTP/2 client %s broke the protocol: %s", self._peer, exc)
        self.counters.http2["protocol_errors"] += 1
        self._fail(code)

    def _fail(self, code: _E) -> None:
        """A connection error: GOAWAY with ``code`` now, every stream cancelled, then the
        connection closes (after the GOAWAY went out)."""
        self._pull()
        if not self.failed:
            self.failed = True
            self.closing = True
            try:
                self.machine.close_connection(error_code=code, last_stream_id=self._last_stream)
            except h2.exceptions.ProtocolError:
                frame = GoAwayFrame(
                    stream_id=0, last_stream_id=self._last_stream, error_code=int(code)
                )
                self._append(frame.serialize())
            self._pull()
        for transport in list(self._streams.values()):
            transport.server_aborted()  # the server cut the client: aborted_by_server
        self.send_now()
        self._stop_reading()

    def _lose(self) -> None:
        """The connection is gone (for the streams): every request hears it (rule 3)."""
        self.lost = True
        if self._flushed is not None:
            self._flushed.set()
        for transport in list(self._streams.values()):
            transport.peer_gone()
        self._wake_writer()

    # ------------------------------------------------------------ output

    def _append(self, data: bytes) -> None:
        self._out += data
        self._queued += len(data)

    def _pull(self) -> int:
        """Move what ``h2`` queued to the output buffer; the offset its end is at."""
        data = self.machine.data_to_send()
        if data:
            self._append(data)
        return self._queued

    def record(self, transport: Http2Transport, body: int, *, end: bool) -> int:
        """A frame of ``transport`` was pushed into ``h2``: the offset its end will be at."""
        offset = self._pull()
        self._frames.append((offset, transport, body, end))
        return offset

    def written_through(self, offset: int) -> bool:
        return self._written >= offset

    def reset_stream(self, transport: Http2Transport, code: _E) -> None:
        """RST_STREAM for ``transport`` (a module's ``reset_connection``, a stall)."""
        self._refuse(transport.stream_id, code)
        self._pull()
        self.send_now()

    def window_stalled(self, transport: Http2Transport) -> None:
        self.counters.http2["window_stalls"] += 1
        log.warning(
            "HTTP/2 client %s left stream %d's window closed for %g s: reset",
            self._peer,
            transport.stream_id,
            self.limits.send_timeout,
        )

    def stream_too_slow(self, transport: Http2Transport, counter: str, what: str) -> None:
        """The server gives up on one stream's client (a minimum rate, ``body_timeout``)."""
        self.counters.http2[counter] += 1
        log.warning("HTTP/2 client %s %s on stream %d", self._peer, what, transport.stream_id)

    def consumed(self, transport: Http2Transport, n: int) -> None:
        """The request read ``n`` body bytes: reopen that much window (rule 3 of the
        transport)."""
        self._return_window(n, transport.stream_id)
        self._pull()
        self.send_now()

    def send_now(self) -> None:
        """Hand the output to the kernel without waiting, when the writer is not inside a
        send (plain sockets only); wake the writer for the rest."""
        if not self._out:
            return
        raw = self._raw
        if raw is not None and not self._writing and not self.lost:
            try:
                sent = raw.send(self._out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._lose()
                return
            self._advance(sent)
        if self._out:
            self._wake_writer()

    def _advance(self, sent: int) -> None:
        if not sent:
            return
        del self._out[:sent]
        if not self._out and self._flushed is not None:
            self._flushed.set()
        self._written += sent
        frames = self._frames
        written = self._written
        done = 0
        for offset, transport, body, end in frames:
            if offset > written:
                break
            transport.frames_written(body, end)
            transport.progress()
            done += 1
        del frames[:done]

    def _wake_writer(self) -> None:
        """Wake the writer, or start one when output waits and none runs."""
        waiting, self._writer_waiting = self._writer_waiting, None
        if waiting is not None:
            waiting.set()
        elif not self._writer_running and self._out and self._nursery is not None:
            self._writer_running = True
            self._nursery.start_soon(self._writer, name="trioiis h2 writer")

    async def _writer(self) -> None:
        """The only task that waits on the socket to send (rule 2); it ends when nothing
        is left to send and no stream is open (``_wake_writer`` starts the next one), or
        when the connection ends (``_stop_writer``)."""
        try:
            await self._write_until_idle()
        except Exception:
            log.exception("internal error in the HTTP/2 writer of %s", self._peer)
            self._out.clear()
            self._lose()
            self._stop_reading()
        finally:
            self._writer_scope = None
            self._writer_running = False
            self._writer_waiting = None
            if self._writer_ended is not None:
                self._writer_ended.set()

    def _ended(self) -> bool:
        """The connection's task is ending: no task starts, the writer stops."""
        return self._nursery is None

    async def _stop_writer(self) -> None:
        """End the writer task, if one runs, and wait until it has (it runs in the
        server's nursery: it must not outlive the connection).

        Cancellation: shielded (the writer ends at its next checkpoint)."""
        if not self._writer_running:
            return
        self._writer_ended = ended = trio.Event()
        if self._writer_scope is not None:
            self._writer_scope.cancel()  # a send in flight: stopped, not timed out
        elif self._writer_waiting is not None:
            self._writer_waiting.set()
        with trio.CancelScope(shield=True):
            await ended.wait()

    async def _write_until_idle(self) -> None:
        raw, stream = self._raw, self.stream
        limits = self.limits
        while True:
            if self._ended():
                return  # the connection ended (``_stop_writer``)
            if not self._out:
                if not self._streams:
                    return
                self._writer_waiting = trio.Event()
                await self._writer_waiting.wait()
                continue
            self._writing = True
            self._writer_scope = waited = trio.move_on_after(limits.send_timeout)
            try:
                with waited:
                    if raw is not None:
                        await trio.lowlevel.wait_writable(raw)
                        sent = raw.send(self._out)
                    else:
                        data = bytes(self._out)
                        await stream.send_all(data)
                        sent = len(data)
            except BlockingIOError:
                sent = 0
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                self._writing = False
                self._out.clear()
                self._lose()
                self._stop_reading()
                return
            finally:
                self._writing = False
                self._writer_scope = None
            if waited.cancelled_caught:
                if self._ended():
                    return  # stopped by ``_stop_writer``
                self.too_slow = True
                self.counters.http2["write_timeouts"] += 1
                log.warning(
                    "HTTP/2 client %s read nothing for %g s: closed",
                    self._peer,
                    limits.send_timeout,
                )
                self._out.clear()
                for transport in list(self._streams.values()):
                    transport.server_aborted()
                self._lose()
                self._stop_reading()
                return
            self._advance(sent)

    async def _flush(self) -> None:
        """Before the close: let the writer send what is left, then close our side and
        drop what the client still sends until its EOF (a lingering close: unread bytes
        at close would make an RST that destroys the GOAWAY in flight). Bounded by
        ``linger_timeout``.

        Cancellation: shielded (bounded).
        """
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.limits.linger_timeout
            while self._out and not self.lost and not self.too_slow:
                self._flushed = trio.Event()
                self._wake_writer()
                await self._flushed.wait()
            raw = self._raw
            if raw is None or self.too_slow:
                return
            try:
                raw.shutdown(stdlib_socket.SHUT_WR)
                while await self.stream.receive_some(_RECEIVE_SIZE):
                    pass
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass


async def sniff_preface(raw: stdlib_socket.socket) -> bool:
    """True when the client's first bytes on ``raw`` are the HTTP/2 connection preface
    (prior-knowledge h2c); nothing is consumed (``MSG_PEEK``). False for anything else and
    for EOF. Waits for the bytes: the caller bounds it.

    Cancellation: safe; nothing was read.
    """
    while True:
        await trio.lowlevel.wait_readable(raw)
        try:
            data = raw.recv(len(PREFACE), stdlib_socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return False
        if not data or not PREFACE.startswith(data):
            return False
        if len(data) == len(PREFACE):
            return True
        await trio.sleep(_PREFACE_PAUSE)  # a part of the preface: wait for the rest


def _receive_now(raw: stdlib_socket.socket) -> bytes | None:
    """What the client sent (b"" at EOF), or None when nothing waits. (The wait is the
    caller's, outside any ``except``: waiting inside one would hold the exception.)"""
    try:
        return raw.recv(_RECEIVE_SIZE)
    except BlockingIOError:
        return None
