"""HTTP/1.1's implementation of the transport seam (``transport.py``): one request's view of
an ``Http1Connection``.

One ``Http1Transport`` per request. The connection serves one request at a time, so the
transport only forwards; what it adds is the translation of the driver's errors into the
seam's (``PeerGoneError``, ``PeerTooSlowError``, the body errors), and the peer callback the
connection's reader calls when the client goes away while this request runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import final

import trio

from .errors import BodyTooLargeError, MalformedBodyError
from .http1 import HeadError, Http1Connection, PeerTooSlowError, UpgradedStream
from .transport import PeerGoneError
from .transport import PeerTooSlowError as SeamPeerTooSlowError


@final
class Http1Transport:
    """``Transport`` over one HTTP/1.1 connection, for the request it is reading now."""

    __slots__ = ("_http", "_on_peer_gone")

    def __init__(self, http: Http1Connection) -> None:
        self._http = http
        self._on_peer_gone: Callable[[], None] | None = None

    # -- the response

    def send_head(
        self, status: int, reason: bytes, headers: list[tuple[bytes, bytes]], *, close: bool
    ) -> None:
        self._http.queue_head(status, headers, reason, close=close)

    def send_body(self, data: bytes) -> None:
        self._http.queue_body(data)

    def send_end(self) -> None:
        self._http.queue_end()

    def send_raw(self, data: bytes) -> None:
        self._http.queue_raw(data)

    def try_write(self) -> bool:
        return self._http.try_write()

    async def write(self) -> None:
        """Send everything queued (see ``Http1Connection.write_queued``).

        Raises:
            PeerGoneError: the client closed or reset the connection.
            PeerTooSlowError: ``send_timeout`` or ``min_send_rate``.

        Cancellation: on a socket exactly the unsent bytes stay queued; elsewhere (TLS) the
            connection is marked broken and closes after this response.
        """
        try:
            await self._http.write_queued()
        except PeerTooSlowError as exc:
            raise SeamPeerTooSlowError(str(exc)) from exc
        except trio.BrokenResourceError as exc:
            raise PeerGoneError(str(exc) or "the client is gone") from exc

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """``os.sendfile`` on the server's own plain sockets, worker-thread reads elsewhere.

        Raises:
            PeerGoneError, PeerTooSlowError: as ``write``.
            EOFError, FramingError, OSError: see ``Http1Connection.send_file``.

        Cancellation: stops between sends; the connection closes after this response.
        """
        try:
            return await self._http.send_file(fd, offset, count)
        except PeerTooSlowError as exc:
            raise SeamPeerTooSlowError(str(exc)) from exc
        except trio.BrokenResourceError as exc:
            raise PeerGoneError(str(exc) or "the client is gone") from exc

    def reset(self) -> None:
        self._http.reset_now()

    @property
    def body_bytes_sent(self) -> int:
        return self._http.body_bytes_sent

    @property
    def response_complete(self) -> bool:
        return self._http.response_complete

    @property
    def keep_alive(self) -> bool:
        return self._http.can_keep_alive

    # -- the request body

    async def receive_body(self, max_bytes: int) -> bytes:
        """See ``Http1Connection.receive_body``.

        Raises:
            BodyTooLargeError: past ``max_body_bytes`` (413).
            MalformedBodyError: broken chunked framing (400).
            PeerGoneError: the client left mid-body.
            PeerTooSlowError: ``body_timeout`` or ``min_body_rate``.

        Cancellation: loses no byte.
        """
        try:
            return await self._http.receive_body(max_bytes)
        except HeadError as exc:
            if exc.status == 413:
                raise BodyTooLargeError(str(exc)) from exc
            raise MalformedBodyError(str(exc)) from exc
        except PeerTooSlowError as exc:
            raise SeamPeerTooSlowError(str(exc)) from exc
        except trio.BrokenResourceError as exc:
            raise PeerGoneError(str(exc) or "client closed the connection mid-body") from exc

    @property
    def body_remaining(self) -> int | None:
        return self._http.body_remaining

    # -- switching protocols

    def upgrade(self, headers: list[tuple[bytes, bytes]]) -> UpgradedStream:
        """Queue ``101 Switching Protocols`` and hand over the connection's bytes (see
        ``Http1Connection.upgrade``); the peer callback keeps working as before.

        Raises:
            FramingError: a control character in a header.
        """
        return self._http.upgrade(headers)

    # -- the peer

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        """As ``Transport.watch_peer``; ``None`` stops watching (the request ended)."""
        self._on_peer_gone = callback
        if callback is not None and self._http.eof:
            self.peer_gone()

    def peer_gone(self) -> None:
        """The connection's reader saw EOF or RST while this request ran: tell the watcher
        (once)."""
        callback, self._on_peer_gone = self._on_peer_gone, None
        if callback is not None:
            callback()
