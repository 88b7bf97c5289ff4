"""The transport seam: one request's protocol-neutral view of the wire (DESIGN.md).

The pipeline and the context never touch a protocol driver. Each request gets one
``Transport``: it sends the response head, body bytes and file ranges, receives the request
body, resets, says whether the connection is kept, and reports the peer going away as an
event. ``Http1Connection`` implements it for the one request an HTTP/1.1 connection serves
at a time (``http1.py`` rule 9). HTTP/2 streams and WebSockets plug in here, and a transport
in memory runs the whole pipeline without sockets for tests.

Rules every implementation keeps:

1. **Queue, then write.** ``send_head``, ``send_body``, ``send_end`` and ``send_raw`` only
   queue (no I/O, no checkpoint); ``try_write`` pushes what it can without waiting;
   ``write`` and ``transmit_file`` are the pending I/O, each wrapped by the context in a
   cancel scope of its own (``cancel_io``). A cancelled write leaves the unsent bytes queued
   in order, so the response stays well-formed (or, where that cannot be known, the
   transport marks itself unable to keep the connection).
2. **Counts are what moved.** ``body_bytes_sent`` is the response-body bytes handed to the
   kernel (or to TLS, or to the peer's stream): never framing, never bytes still queued;
   exact also for a response cut short.
3. **Complete means delivered.** ``response_complete`` turns True once the last byte of a
   complete response was handed over: after ``send_end``, or as soon as a Content-Length
   body's last declared byte went out. Likewise ``head_written`` turns True only once the
   status line (HTTP/2: HEADERS) was handed over: a head queued, then dropped (framing
   refused, a reset, a peer gone first), never reached the client.
4. **The peer going away is an event.** ``watch_peer(callback)`` calls ``callback`` once when
   the peer closes or resets (HTTP/1.1 EOF/RST, HTTP/2 RST_STREAM, a WebSocket peer gone);
   a write or read then raises ``PeerGoneError``. When the server gives up on a peer that is
   too slow (``send_timeout``, the minimum rates) a write or read raises
   ``PeerTooSlowError`` instead, and the peer callback is not called: the server cut it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class PeerGoneError(Exception):
    """The peer closed or reset the connection (or its stream) while a write or read waited."""


class PeerTooSlowError(Exception):
    """The server gave up on the peer: ``send_timeout``, ``body_timeout`` or a minimum rate."""


class Transport(Protocol):
    """One request's view of the wire (rules 1-4 in this module's docstring)."""

    # -- the response

    def send_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> None:
        """Queue the status line and headers; ``close``: the connection ends after this
        response (HTTP/1.1 says ``Connection: close``).

        Raises:
            FramingError: the headers contradict each other or hold a forbidden byte.
        """

    def send_body(self, data: bytes) -> int:
        """Queue body bytes (dropped where the response has no body: HEAD, 204, 304);
        returns how many were queued (``len(data)``, or 0 when dropped).

        Raises:
            FramingError: more bytes than the Content-Length.
        """

    def send_end(self) -> None:
        """Queue the end of the response.

        Raises:
            FramingError: fewer bytes than the Content-Length.
        """

    def send_raw(self, data: bytes) -> int:
        """Queue bytes framed by a module itself (``suppress_headers``); the connection ends
        after them. Returns ``len(data)``.

        Raises:
            NotSupportedError: the protocol has no raw byte stream (HTTP/2).
        """

    def try_write(self) -> bool:
        """Hand over what is queued without waiting; True when nothing is left (no
        checkpoint)."""

    async def write(self) -> None:
        """Hand over everything queued.

        Raises:
            PeerGoneError, PeerTooSlowError: as rule 4.

        Cancellation: rule 1; ``body_bytes_sent`` counts what moved before the cancel.
        """

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """Queue and send ``count`` bytes of the open file ``fd`` from ``offset`` as body
        bytes (zero-copy where the protocol allows). Returns the file bytes sent.

        Raises:
            PeerGoneError, PeerTooSlowError: as rule 4.
            EOFError: the file ended before ``count`` bytes.
            FramingError: more bytes than the Content-Length.
            OSError: reading the file failed.

        Cancellation: stops between sends; the response cannot be completed any more.
        """
        ...

    def reset(self) -> None:
        """Abort now (TCP RST, RST_STREAM); nothing more is sent."""

    @property
    def body_bytes_sent(self) -> int:
        """Rule 2."""
        ...

    @property
    def body_bytes_queued(self) -> int:
        """The response-body bytes queued so far, sent or not (so a write can tell which of
        the bytes that went out were its own)."""
        ...

    @property
    def response_complete(self) -> bool:
        """Rule 3."""
        ...

    @property
    def head_written(self) -> bool:
        """Rule 3: the response's status line was handed over."""
        ...

    @property
    def keep_alive(self) -> bool:
        """True while the connection would be kept after this response."""
        ...

    # -- the request body

    async def receive_body(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the request body; ``b""`` once it is all read.

        Raises:
            BodyTooLargeError, MalformedBodyError: the client's body is refused.
            PeerGoneError, PeerTooSlowError: as rule 4.

        Cancellation: loses no byte; unread bytes stay buffered for the next call.
        """
        ...

    @property
    def body_remaining(self) -> int | None:
        """Body bytes not yet received; None while unknown (a chunked body)."""
        ...

    # -- the peer

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` once when the peer goes away (rule 4); at once if it has.
        ``None`` stops watching."""
