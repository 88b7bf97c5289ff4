"""The HTTP/1.1 side of the load generator: one request's bytes, built once, and the reading
of responses with llhttp (``httptools``, when installed) or h11.

Every request of a run is the same, so its bytes are built once (``RequestBytes``) and sent
as they are; the response parser of a connection is made once and reused for every response
on it. A response is read into the connection's own buffer, so the steady state of a
keep-alive connection allocates no bytes per request.

llhttp cannot know that a response answers ``HEAD`` (it would wait for the body its
``Content-Length`` announces), so ``HEAD`` runs are parsed with h11.
"""

from __future__ import annotations

from typing import Any, Protocol

import h11

try:
    import httptools
except ImportError:  # pragma: no cover - depends on the installed extras
    httptools = None  # type: ignore[assignment]

from .options import BenchOptions
from .transport import Connection, ConnectionLost, PlainConnection

USER_AGENT = "trioiis-bench"
_HAVE_LLHTTP = httptools is not None


class ProtocolFailure(Exception):
    """The response was not valid HTTP/1.1."""


class ResponseReader(Protocol):
    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        """Parse ``data``; True once the response is complete. Raises ProtocolFailure."""

    def finish(self) -> int:
        """The complete response's status; prepares for the next response."""

    @property
    def keep_alive(self) -> bool:
        """After ``finish``: whether the connection may carry another request."""


class LlhttpReader:
    """Responses through llhttp: the parser is reused from one response to the next."""

    __slots__ = ("_complete", "_keep_alive", "_parser")

    def __init__(self) -> None:
        self._complete = False
        self._keep_alive = True
        self._parser: Any = httptools.HttpResponseParser(self)

    def on_message_complete(self) -> None:
        # llhttp forgets the message's keep-alive state once the callback returns.
        self._keep_alive = self._parser.should_keep_alive()
        self._complete = True

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise ProtocolFailure(str(exc)) from exc
        return self._complete

    def finish(self) -> int:
        self._complete = False
        return int(self._parser.get_status_code())

    @property
    def keep_alive(self) -> bool:
        return bool(self._keep_alive)


class H11Reader:
    """Responses through h11 (when httptools is not installed, and for ``HEAD``)."""

    __slots__ = ("_connection", "_reusable", "_status", "method")

    def __init__(self, method: bytes = b"GET") -> None:
        self._connection = h11.Connection(h11.CLIENT)
        self._status = 0
        self._reusable = True
        self.method = method
        # h11 tracks the client's side too: it must see a request before a response.
        self._start_request()

    def _start_request(self) -> None:
        connection = self._connection
        connection.send(h11.Request(method=self.method, target="/", headers=[("Host", "x")]))
        connection.send(h11.EndOfMessage())

    def feed(self, data: bytes | bytearray | memoryview) -> bool:
        connection = self._connection
        connection.receive_data(bytes(data))
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                raise ProtocolFailure(str(exc)) from exc
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return False
            if isinstance(event, h11.Response):
                self._status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                return True
            elif isinstance(event, h11.ConnectionClosed):
                raise ProtocolFailure("connection closed")

    def finish(self) -> int:
        connection = self._connection
        self._reusable = connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if self._reusable:
            connection.start_next_cycle()
            self._start_request()
        return self._status

    @property
    def keep_alive(self) -> bool:
        return self._reusable


def parser_name(options: BenchOptions) -> str:
    """``llhttp`` or ``h11``: which parser the run's responses go through."""
    return "llhttp" if _HAVE_LLHTTP and options.method != "HEAD" else "h11"


class RequestBytes:
    """The run's one request, as bytes: whole, and cut in the middle of its body."""

    __slots__ = ("half", "method", "whole")

    def __init__(self, options: BenchOptions) -> None:
        target = options.target
        lines = [
            f"{options.method} {target.target} HTTP/1.1",
            f"Host: {target.host_header}",
            f"User-Agent: {USER_AGENT}",
        ]
        body = b"x" * options.body_size
        if body or options.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        if not options.keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        self.whole = head + body
        self.half = head + body[: len(body) // 2]
        self.method = options.method.encode("ascii")

    def new_reader(self, options: BenchOptions) -> ResponseReader:
        if parser_name(options) == "llhttp":
            return LlhttpReader()
        return H11Reader(self.method)


async def read_response(connection: Connection, reader: ResponseReader) -> int:
    """Read one whole response; its status. Raises ConnectionLost or ProtocolFailure.

    Cancellation: a checkpoint; a cancelled read leaves half a response on the connection,
    which must then be closed."""
    receive = connection.receive
    feed = reader.feed
    try:
        while not feed(await receive()):
            pass
    except ConnectionLost as lost:
        return status_at_end(reader, lost)
    return reader.finish()


async def exchange(connection: Connection, request: bytes, reader: ResponseReader) -> int:
    """Send ``request`` and read its whole response; its status. Raises ConnectionLost or
    ProtocolFailure.

    Cancellation: as ``read_response``."""
    if isinstance(connection, PlainConnection):
        try:
            await connection.exchange(request, reader.feed)
        except ConnectionLost as lost:
            return status_at_end(reader, lost)
        return reader.finish()
    await connection.send_all(request)
    return await read_response(connection, reader)


def status_at_end(reader: ResponseReader, lost: ConnectionLost) -> int:
    """The connection ended in the middle of a response: its status if that end was the
    response's end (h11: a body delimited by the connection's end), else ``lost`` again."""
    if lost.args[0] == "closed" and isinstance(reader, H11Reader) and reader.feed(b""):
        return reader.finish()
    raise lost
