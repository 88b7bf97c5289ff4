"""HTTP/1.1's implementation of the transport seam (``transport.py``): one request's view of
an ``Http1Connection``.

One ``Http1Transport`` per request. The connection serves one request at a time, so the
transport only forwards; what it adds is the translation of the driver's errors into the
seam's (``PeerGoneError``, ``PeerTooSlowError``, the body errors), and the peer callback the
connection's reader calls when the client goes away while this request runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import final

import trio

from .errors import BodyTooLargeError, MalformedBodyError
from .http1 import HeadError, Http1Connection, PeerTooSlowError
from .transport import PeerGoneError
from .transport import PeerTooSlowError as SeamPeerTooSlowError


@final
class Http1Transport:
    """``Transport`` over one HTTP/1.1 connection, for the request it is reading now.

    The queueing members are the connection's own bound methods (the seam costs no call of
    its own on the hot path); the rest translate errors or hold the peer callback.
    """

    __slots__ = (
        "_http", "_on_peer_gone", "reset", "send_body", "send_end", "send_head", "send_raw",
        "try_write",
    )  # fmt: skip

    def __init__(self, http: Http1Connection) -> None:
        self._http = http
        self._on_peer_gone: Callable[[], None] | None = None
        # -- the response: queueing (no I/O), as the seam's rule 1 says
        self.send_head: Callable[..., None] = http.queue_head
        self.send_body: Callable[[bytes], int] = http.queue_body
        self.send_end: Callable[[], None] = http.queue_end
        self.send_raw: Callable[[bytes], int] = http.queue_raw
        self.try_write: Callable[[], bool] = http.try_write
        self.reset: Callable[[], None] = http.reset_now

    async def write(self) -> None:
        """Send everything queued (see ``Http1Connection.write_queued``).

        Raises:
            PeerGoneError: the client closed or reset the connection.
            PeerTooSlowError: ``send_timeout`` or ``min_send_rate``.

        Cancellation: on a socket exactly the unsent bytes stay queued; elsewhere (TLS) the
            connection is marked broken and closes after this response.
        """
        with _seam_errors():
            await self._http.write_queued()

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """``os.sendfile`` on the server's own plain sockets, worker-thread reads elsewhere.

        Raises:
            PeerGoneError, PeerTooSlowError: as ``write``.
            EOFError, FramingError, OSError: see ``Http1Connection.send_file``.

        Cancellation: stops between sends; the connection closes after this response.
        """
        with _seam_errors():
            return await self._http.send_file(fd, offset, count)

    @property
    def body_bytes_sent(self) -> int:
        return self._http.body_bytes_sent

    @property
    def body_bytes_queued(self) -> int:
        return self._http.body_bytes_queued

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
            with _seam_errors():
                return await self._http.receive_body(max_bytes)
        except HeadError as exc:
            if exc.status == 413:
                raise BodyTooLargeError(str(exc)) from exc
            raise MalformedBodyError(str(exc)) from exc

    @property
    def body_remaining(self) -> int | None:
        return self._http.body_remaining

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


@contextlib.contextmanager
def _seam_errors() -> Iterator[None]:
    """The driver's broken-stream errors as the seam's: the server gave up on a slow peer,
    or the peer went away."""
    try:
        yield
    except PeerTooSlowError as exc:
        raise SeamPeerTooSlowError(str(exc)) from exc
    except trio.BrokenResourceError as exc:
        raise PeerGoneError(str(exc) or "the client is gone") from exc
