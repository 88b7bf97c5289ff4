"""Connections of the load generator: plain TCP on a bare socket, or TLS on a Trio SSLStream.

``connect`` opens one (Trio's ``open_tcp_stream``: IPv4, IPv6, happy eyeballs) and, for
``https://``, wraps it in TLS with ALPN (``h2`` or ``http/1.1``), verifying the certificate
against the system's CAs, ``--ca-bundle``, or not at all with ``--insecure``.

A plain connection leaves Trio's stream layer after connecting: it keeps the bare
non-blocking socket, sends with ``socket.send`` and waits with ``trio.lowlevel.wait_readable``
before ``recv_into`` a buffer it owns, so a request costs two system calls and one wait, and
allocates no bytes object per read (the parsers read the buffer through a memoryview).

Cancellation: every ``await`` here is a Trio checkpoint; a cancelled ``send_all`` or
``receive`` leaves the connection in an unknown state, and the caller closes it.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
from collections.abc import Callable

import trio

from .options import BenchOptions

RECEIVE_SIZE = 65536


class ConnectionLost(Exception):
    """The peer reset or closed the connection (``args[0]``: ``reset`` or ``closed``)."""


class PlainConnection:
    """A connected TCP socket, driven directly (see the module's docstring)."""

    __slots__ = ("_buffer", "_view", "alpn", "received", "sock")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._buffer = bytearray(RECEIVE_SIZE)
        self._view = memoryview(self._buffer)
        self.alpn: str | None = None
        self.received = 0  # bytes

    def _send_some(self, data: bytes | memoryview) -> int:
        """Send what the socket takes now; how much. Raises ConnectionLost."""
        try:
            return self.sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise ConnectionLost("reset") from exc

    def _receive_some(self) -> int:
        """Read what arrived into the buffer: how many bytes, or -1 if nothing had. Raises
        ConnectionLost (``closed`` on end of file)."""
        try:
            count = self.sock.recv_into(self._buffer)
        except BlockingIOError:
            return -1
        except OSError as exc:
            raise ConnectionLost("reset") from exc
        if not count:
            raise ConnectionLost("closed")
        self.received += count
        return count

    async def send_all(self, data: bytes | memoryview) -> None:
        """Send every byte of ``data``. Raises ConnectionLost."""
        view = memoryview(data)[self._send_some(data) :]
        while view:
            await trio.lowlevel.wait_writable(self.sock)
            view = view[self._send_some(view) :]

    async def receive(self) -> memoryview:
        """Wait for bytes and return them (valid until the next call). Raises ConnectionLost
        (``closed`` on end of file)."""
        while True:
            await trio.lowlevel.wait_readable(self.sock)
            if (count := self._receive_some()) >= 0:
                return self._view[:count]

    async def exchange(self, data: bytes, feed: Callable[[memoryview], bool]) -> None:
        """Send ``data`` and feed what arrives to ``feed`` until it returns True: one
        request and its response, in one coroutine (the hot path of a run). Raises
        ConnectionLost (``closed`` on end of file)."""
        if (sent := self._send_some(data)) != len(data):
            await self.send_all(memoryview(data)[sent:])
        sock, view = self.sock, self._view
        receive_some, wait_readable = self._receive_some, trio.lowlevel.wait_readable
        while True:
            await wait_readable(sock)
            if (count := receive_some()) >= 0 and feed(view[:count]):
                return

    def set_reset_on_close(self) -> None:
        """Make ``aclose`` send RST instead of FIN (``SO_LINGER`` with a zero timeout)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close_now(self) -> None:
        """Close without a checkpoint (usable while the run is being cancelled)."""
        if self.sock.fileno() >= 0:
            trio.lowlevel.notify_closing(self.sock)
            self.sock.close()

    async def aclose(self) -> None:
        self.close_now()
        await trio.lowlevel.checkpoint()


class StreamConnection:
    """A Trio stream (TLS): the same interface as PlainConnection, through ``SSLStream``."""

    __slots__ = ("alpn", "received", "stream", "tcp")

    def __init__(self, stream: trio.SSLStream[trio.SocketStream], tcp: trio.SocketStream) -> None:
        self.stream = stream
        self.tcp = tcp
        self.alpn: str | None = stream.selected_alpn_protocol()
        self.received = 0  # bytes (of the TLS records' payloads)

    async def send_all(self, data: bytes | memoryview) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost("reset") from exc

    async def receive(self) -> bytes | bytearray:
        try:
            data = await self.stream.receive_some(RECEIVE_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise ConnectionLost("reset") from exc
        if not data:
            raise ConnectionLost("closed")
        self.received += len(data)
        return data

    def set_reset_on_close(self) -> None:
        with contextlib.suppress(OSError):
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close_now(self) -> None:
        """Close the socket without a TLS goodbye and without a checkpoint."""
        if self.tcp.socket.fileno() >= 0:
            trio.lowlevel.notify_closing(self.tcp.socket)
            self.tcp.socket.close()

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


Connection = PlainConnection | StreamConnection


def client_ssl_context(options: BenchOptions) -> ssl.SSLContext:
    """The TLS context of ``https://`` runs: ALPN ``h2`` with ``--h2``, else ``http/1.1``."""
    context = ssl.create_default_context(cafile=options.ca_bundle)
    if options.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"] if options.h2 else ["http/1.1"])
    return context


async def connect(options: BenchOptions, context: ssl.SSLContext | None) -> Connection:
    """Open one connection to the target (TLS when ``context`` is given).

    Raises:
        OSError: the TCP connection failed (refused, unreachable).
        ConnectionLost: the TLS handshake failed (``tls``).

    Cancellation: closes what was opened and raises.
    """
    target = options.target
    tcp = await trio.open_tcp_stream(target.address, target.port)
    if context is None:
        return PlainConnection(socket.socket(fileno=tcp.socket.detach()))
    stream = trio.SSLStream(tcp, context, server_hostname=target.host, https_compatible=True)
    try:
        await stream.do_handshake()
    except (trio.BrokenResourceError, ssl.SSLError) as exc:
        await trio.aclose_forcefully(tcp)
        raise ConnectionLost("tls") from exc
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return StreamConnection(stream, tcp)
