"""The transport seam (``transport.py``) in memory: the whole pipeline without a socket.

``HttpServer.serve_in_memory`` runs one request through the same code as a socket's request
(context, forwarded headers, site, access log, counters, lifecycle) over a ``MemoryTransport``
that the test made and drives. The test plays the peer: it gives the request body, reads the
``MemoryResponse``, and makes the peer slow (``window``), gone (``disconnect``) or too slow
for the server (``give_up``).

Theory of operation
-------------------
1. **Queue, then hand over** (seam rule 1). ``send_*`` queue pieces (head, body, end, raw);
   nothing moves until ``try_write``, ``write`` or ``transmit_file`` hands them to the
   ``MemoryResponse`` in order. A piece moves whole or, for body bytes, in part; a cancelled
   ``write`` leaves exactly the unmoved bytes queued, so a later write finishes the response.
2. **Back-pressure is the test's.** ``window`` is how many more body bytes the peer takes
   (None: any number). Head and end take no room; body and raw bytes do. A write that finds
   the window shut waits (a pending I/O: ``cancel_io`` ends it) until ``grant``/``open_window``,
   ``disconnect``, ``give_up`` or ``reset``. ``wait_write_blocked`` lets the test see it wait.
3. **Counts are what moved** (rule 2): ``body_bytes_sent`` is the body bytes in
   ``response.body``; framing and queued bytes never count. **Complete means delivered**
   (rule 3): the head and the end moved, or the head of a bodiless answer (HEAD, 1xx, 204,
   304), or the last byte of a Content-Length body.
4. **Only what every protocol needs is framed**: HEAD, 1xx, 204 and 304 answers drop their
   body; ``Content-Length`` is checked (malformed, conflicting, too many or too few bytes:
   ``FramingError``, nothing queued), as is any control byte in the head. No header is added
   or removed: the response holds what the pipeline sent.
5. **The peer going away is an event** (rule 4): ``disconnect`` calls the watcher once; then a
   write or a read of a body not all received raises ``PeerGoneError``. ``give_up`` plays the
   server giving up on a slow peer: ``PeerTooSlowError``, and the watcher is not called.
6. **The request body** is given whole (``body=b"..."``) or fed by the test (``body=None``,
   then ``feed``/``end_body``; ``body_length`` declares a Content-Length). A read waits for
   the feed; a cancelled read loses no byte.
"""

from __future__ import annotations

import collections
import enum
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, final

import trio

from .._errors import BodyTooLargeError
from .http1_writer import FramingError
from .transport import PeerGoneError, PeerTooSlowError

#: File bytes read per piece by ``transmit_file``.
FILE_PIECE: Final = 65536
# Bytes no header or reason may hold (HTAB is allowed), as the HTTP/1.1 writer refuses them.
_CONTROLS: Final = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_MAX_LENGTH_DIGITS: Final = 20


def _has_control(data: bytes) -> bool:
    return len(data.translate(None, _CONTROLS)) != len(data)


class _Kind(enum.Enum):
    HEAD = "head"
    BODY = "body"
    END = "end"
    RAW = "raw"


@dataclass(slots=True)
class MemoryResponse:
    """What reached the peer of a ``MemoryTransport``, in the order it moved."""

    #: The status of the head once it moved (None before, and for a raw response).
    status: int | None = None
    reason: bytes = b""
    #: The headers exactly as the pipeline sent them (no Date, Server or framing added).
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    #: The head asked for the connection to end after this response.
    close: bool = False
    #: The body bytes that moved (a raw response's bytes too).
    body: bytearray = field(default_factory=bytearray)
    #: A module framed its own response (``suppress_headers``): ``body`` is raw bytes.
    raw: bool = False
    #: The end of the response moved (after ``send_end``).
    ended: bool = False
    #: The response was complete when the request ended (seam rule 3).
    complete: bool = False
    #: The transport was reset: the peer saw an abort.
    reset: bool = False

    def header(self, name: bytes | str) -> bytes | None:
        """The first value of header ``name`` (any case), or None."""
        wanted = (name.encode("latin-1") if isinstance(name, str) else name).lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@final
class MemoryTransport:
    """``Transport`` for one request in memory; the test plays the peer (module docstring).

    ``method`` decides whether the response may have a body (HEAD has none). ``body``: the
    whole request body, or None for one the test feeds (``body_length``: its declared
    length, None for one of unknown length). ``window``: how many response body bytes the
    peer takes before writes wait (None: no limit). ``max_body_bytes``: a body longer than
    that is refused with ``BodyTooLargeError`` (None: no limit).
    """

    __slots__ = (
        "_body_buffer", "_body_done", "_body_length", "_body_received", "_body_refused",
        "_body_taken", "_broken", "_changed", "_close", "_gone", "_head",
        "_length", "_max_body_bytes", "_no_body", "_queue", "_queued_body", "_raw",
        "_reset", "_sent", "_too_slow", "_waiting", "_watcher",
        "method", "response", "window",
    )  # fmt: skip

    def __init__(
        self,
        *,
        method: str = "GET",
        body: bytes | None = b"",
        body_length: int | None = None,
        window: int | None = None,
        max_body_bytes: int | None = None,
    ) -> None:
        self.method = method
        #: What reached the peer so far (the test reads it).
        self.response = MemoryResponse()
        #: Response body bytes the peer takes before writes wait; None: no limit.
        self.window = window
        self._queue: collections.deque[tuple[_Kind, bytes]] = collections.deque()
        self._head: tuple[int, bytes, list[tuple[bytes, bytes]], bool] | None = None
        self._no_body = method == "HEAD"
        self._length: int | None = None  # the response's Content-Length
        self._queued_body = 0  # body bytes queued (for the Content-Length checks)
        self._sent = 0  # body bytes moved (rule 2)
        self._close = False
        self._raw = False
        self._reset = False
        self._broken = False  # a file transfer was cut short: the body cannot go on
        self._gone = False
        self._too_slow = False
        self._watcher: Callable[[], None] | None = None
        # The request body.
        self._body_buffer = bytearray(body or b"")
        # Every byte has arrived (given whole, or fed up to its length).
        self._body_done = body is not None or body_length == 0
        self._body_length = len(self._body_buffer) if body is not None else body_length
        self._body_received = len(self._body_buffer)
        self._body_taken = 0
        self._body_refused = False
        self._max_body_bytes = max_body_bytes
        # For the test's waits: set and replaced on every change of state.
        self._changed = trio.Event()
        self._waiting = {"write": 0, "read": 0}

    # ------------------------------------------------------------ the response (seam)

    def send_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> None:
        if self._reset:
            return
        if self._head is not None or self._raw:
            raise FramingError("the head was sent already")
        length: int | None = None
        chunked = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-length":
                values = {v.strip() for v in value.split(b",")}
                if len(values) != 1:
                    raise FramingError("conflicting Content-Length headers")
                text = values.pop()
                if not text.isdigit() or len(text) > _MAX_LENGTH_DIGITS:
                    raise FramingError("bad Content-Length")
                if length is not None and int(text) != length:
                    raise FramingError("conflicting Content-Length headers")
                length = int(text)
            elif lower == b"transfer-encoding":
                chunked = True
            if _has_control(name) or _has_control(value):
                raise FramingError("control character in the response head")
        if _has_control(reason):
            raise FramingError("control character in the response head")
        self._no_body = self._no_body or status < 200 or status in (204, 304)
        self._length = None if chunked or self._no_body else length
        self._close = self._close or close
        self._head = (status, reason, list(headers), close)
        self._queue.append((_Kind.HEAD, b""))

    def send_body(self, data: bytes) -> int:
        if self._reset or not data or self._no_body:
            return 0
        if self._length is not None and self._queued_body + len(data) > self._length:
            raise FramingError("too much data for the declared Content-Length")
        self._queued_body += len(data)
        self._queue.append((_Kind.BODY, data))
        return len(data)

    def send_end(self) -> None:
        if self._reset:
            return
        if self._length is not None and self._queued_body < self._length:
            raise FramingError("too little data for the declared Content-Length")
        self._queue.append((_Kind.END, b""))

    def send_raw(self, data: bytes) -> int:
        if self._reset:
            return 0
        self._raw = True
        if data:
            self._queued_body += len(data)  # (raw bytes count as body, as on HTTP/1.1)
            self._queue.append((_Kind.RAW, data))
        return len(data)

    def try_write(self) -> bool:
        return self._hand_over()

    async def write(self) -> None:
        """Hand over everything queued, waiting for the window (rule 2).

        Raises:
            PeerGoneError: ``disconnect`` (or ``reset``) before everything moved.
            PeerTooSlowError: ``give_up``.

        Cancellation: exactly the bytes not moved stay queued, in order.
        """
        if self._hand_over():
            await trio.lowlevel.cancel_shielded_checkpoint()
            return
        while True:
            self._check_peer()
            await self._wait_for_the_test("write")
            if self._reset:
                raise PeerGoneError("the connection was reset")
            if self._hand_over():
                return

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """The file range as body bytes, read in ``FILE_PIECE`` parts in a worker thread.

        Raises:
            PeerGoneError, PeerTooSlowError: as ``write``.
            EOFError: the file ended before ``count`` bytes.
            FramingError: more bytes than the Content-Length (nothing was sent).
            OSError: reading the file failed.

        Cancellation: stops between pieces; the response cannot be completed any more.
        """
        if self._reset or self._no_body or count <= 0:
            return 0
        if self._length is not None and self._queued_body + count > self._length:
            raise FramingError("too much data for the declared Content-Length")
        self._queued_body += count
        sent = 0
        try:
            while sent < count:
                size = min(FILE_PIECE, count - sent)
                data = await trio.to_thread.run_sync(os.pread, fd, size, offset + sent)
                if not data:
                    raise EOFError("the file ended early")
                self._queue.append((_Kind.BODY, data))
                sent += len(data)
                await self.write()
        except BaseException:
            self._broken = True  # the body is cut short: this response cannot go on
            raise
        return sent

    def reset(self) -> None:
        self._reset = True
        self._queue.clear()
        self.response.reset = True
        self.response.complete = False
        self._note_change()

    @property
    def body_bytes_sent(self) -> int:
        return self._sent

    @property
    def body_bytes_queued(self) -> int:
        return self._queued_body

    @property
    def head_written(self) -> bool:
        return self.response.status is not None

    @property
    def response_complete(self) -> bool:
        response = self.response
        if self._reset or self._raw or response.status is None:
            return False
        return (
            response.ended
            or self._no_body
            or (self._length is not None and self._sent == self._length)
        )

    @property
    def keep_alive(self) -> bool:
        return (
            self.response.ended
            and not (self._close or self._raw or self._reset or self._broken or self._gone)
            and not self._queue
            and self.body_remaining == 0
        )

    # ------------------------------------------------------------ the request body (seam)

    async def receive_body(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the request body; ``b""`` once it is all read.

        Raises:
            BodyTooLargeError: the body is longer than ``max_body_bytes``.
            PeerGoneError: ``disconnect`` before the whole body arrived.
            PeerTooSlowError: ``give_up``.

        Cancellation: loses no byte; what was not returned stays for the next call.
        """
        await trio.lowlevel.checkpoint()  # a cancel point before any byte is taken
        while True:
            if self._too_slow:
                raise PeerTooSlowError("the server gave up on the client's body")
            limit = self._max_body_bytes
            if self._body_refused or (
                limit is not None and max(self._body_received, self._body_length or 0) > limit
            ):
                self._body_refused = True  # the same answer to every later read
                raise BodyTooLargeError("request body too large")
            if self._body_buffer:
                data = bytes(self._body_buffer[:max_bytes])
                del self._body_buffer[:max_bytes]
                self._body_taken += len(data)
                return data
            if self._body_done:
                return b""
            if self._gone:
                raise PeerGoneError("the client left mid-body")
            await self._wait_for_the_test("read")

    @property
    def body_remaining(self) -> int | None:
        if self._body_length is not None:
            return self._body_length - self._body_taken
        return 0 if self._body_done and not self._body_buffer else None

    # ------------------------------------------------------------ the peer (seam)

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        """As ``Transport.watch_peer``: called once on ``disconnect``, at once if it came."""
        self._watcher = callback
        if callback is not None and self._gone:
            self._peer_left()

    # ------------------------------------------------------------ the test's side

    def feed(self, data: bytes) -> None:
        """The client sends ``data`` of its body (``body=None``); a waiting read gets it.

        Raises:
            ValueError: the body was given whole, ended, or ``data`` goes past
                ``body_length``.
        """
        if self._body_done:
            raise ValueError("the request body has ended")
        if self._body_length is not None and self._body_received + len(data) > self._body_length:
            raise ValueError("more body bytes than body_length")
        self._body_buffer += data
        self._body_received += len(data)
        if self._body_length is not None and self._body_received == self._body_length:
            self._body_done = True
        self._note_change()

    def end_body(self) -> None:
        """The client's body ends here (a body of unknown length).

        Raises:
            ValueError: ``body_length`` bytes have not all been fed.
        """
        if self._body_length is not None and self._body_received != self._body_length:
            raise ValueError("the body ends before body_length bytes")
        self._body_done = True
        self._note_change()

    def grant(self, size: int) -> None:
        """The peer takes ``size`` more response body bytes; waiting writes go on."""
        if self.window is not None:
            self.window += size
        self._note_change()

    def open_window(self) -> None:
        """The peer takes everything from now on."""
        self.window = None
        self._note_change()

    def disconnect(self) -> None:
        """The peer goes away (EOF/RST, RST_STREAM): the watcher is called once."""
        if self._gone:
            return
        self._gone = True
        self._note_change()
        self._peer_left()

    def give_up(self) -> None:
        """The server gives up on a peer too slow (as ``send_timeout`` or a minimum rate
        would): waiting and later writes and reads raise ``PeerTooSlowError``."""
        self._too_slow = True
        self._note_change()

    @property
    def queued(self) -> int:
        """Body (and raw) bytes queued and not moved yet."""
        return sum(len(data) for kind, data in self._queue if kind in (_Kind.BODY, _Kind.RAW))

    async def wait_write_blocked(self) -> None:
        """Wait until a write waits for the window (or the peer)."""
        while not self._waiting["write"]:
            await self._changed.wait()

    async def wait_read_blocked(self) -> None:
        """Wait until a read waits for body bytes the test has not fed yet."""
        while not self._waiting["read"]:
            await self._changed.wait()

    # ------------------------------------------------------------ inside

    def _note_change(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _wait_for_the_test(self, kind: Literal["write", "read"]) -> None:
        """Wait for the next change the test makes (a grant, a feed, the peer leaving),
        counted in ``_waiting`` for ``wait_write_blocked``/``wait_read_blocked``."""
        self._waiting[kind] += 1
        self._note_change()
        changed = self._changed  # (the next change, not the one just noted)
        try:
            await changed.wait()
        finally:
            self._waiting[kind] -= 1

    def _check_peer(self) -> None:
        if self._too_slow:
            raise PeerTooSlowError("the server gave up on a client too slow to read")
        if self._gone:
            raise PeerGoneError("the client is gone")

    def _peer_left(self) -> None:
        callback, self._watcher = self._watcher, None
        if callback is not None:
            callback()

    def _hand_over(self) -> bool:
        """Move queued pieces to the response as far as the window allows (rule 1, 2);
        True when nothing is left. Nothing moves to a peer gone or given up on."""
        queue = self._queue
        if not queue:
            return True
        if self._gone or self._too_slow:
            return False
        response = self.response
        moved = False
        while queue:
            kind, data = queue[0]
            if kind is _Kind.HEAD:
                assert self._head is not None
                status, reason, headers, close = self._head
                response.status, response.reason = status, reason
                response.headers, response.close = headers, close
            elif kind is _Kind.END:
                response.ended = True
            else:
                size = len(data) if self.window is None else min(self.window, len(data))
                if size == 0:
                    break
                response.body += data[:size]
                response.raw = response.raw or kind is _Kind.RAW
                self._sent += size
                if self.window is not None:
                    self.window -= size
                if size < len(data):
                    queue[0] = (kind, data[size:])
                    moved = True
                    continue
            queue.popleft()
            moved = True
        if moved:
            response.complete = self.response_complete
            self._note_change()
        return not queue


if TYPE_CHECKING:  # mypy holds MemoryTransport to the seam
    from .transport import Transport

    _SEAM: Transport = MemoryTransport()
