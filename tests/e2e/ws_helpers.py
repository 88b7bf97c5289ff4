"""WebSocket test helpers: native modules, the ``websockets`` client (its sync API, run in a
worker thread: the server runs on Trio), raw frames, and a log collector."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio
from websockets.sync.client import ClientConnection, connect

import trioiis
from trioiis import HandlerMapping, Notification, Status
from trioiis._context.websocket import WebSocketLimits

from ..helpers import register


def ws_url(port: int, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{port}{path}"


def client(port: int, path: str = "/ws", **kwargs: Any) -> ClientConnection:
    """A blocking ``websockets`` client (call it inside ``trio.to_thread.run_sync``)."""
    kwargs.setdefault("open_timeout", 10)
    kwargs.setdefault("close_timeout", 10)
    return connect(ws_url(port, path), **kwargs)


async def in_thread(fn: Callable[[], Any]) -> Any:
    """Run blocking client code in a worker thread, bounded."""
    with trio.fail_after(30):
        return await trio.to_thread.run_sync(fn)


@dataclass
class Seen:
    """What native handlers saw, for the test to check."""

    fragments: list[trioiis.WebSocketFragment] = field(default_factory=list)
    close_status: list[trioiis.CloseStatus | None] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    accepted: trio.Event = field(default_factory=trio.Event)
    ended: trio.Event = field(default_factory=trio.Event)
    contexts: list[trioiis.WebSocketContext] = field(default_factory=list)
    http: list[trioiis.HttpContext] = field(default_factory=list)


def native_module(
    behaviour: Callable[[trioiis.HttpContext, trioiis.WebSocketContext, Seen], Any],
    seen: Seen,
    *,
    limits: WebSocketLimits | None = None,
    subprotocol: str | None = None,
) -> tuple[str, Callable[..., None]]:
    """A handler module that accepts the upgrade and runs ``behaviour``."""

    class Handler(trioiis.HttpModule):
        async def on_execute_request_handler(self, ctx: trioiis.HttpContext, provider: Any) -> Any:
            ctx.set_request_handled()
            try:
                async with trioiis.accept_websocket(
                    ctx, limits=limits, subprotocol=subprotocol
                ) as ws:
                    seen.contexts.append(ws)
                    seen.http.append(ctx)
                    seen.accepted.set()
                    await behaviour(ctx, ws, seen)
            except BaseException as exc:
                seen.errors.append(exc)
                raise
            finally:
                seen.ended.set()
            return Status.CONTINUE

    return "wsnative", register(Handler, Notification.EXECUTE_REQUEST_HANDLER)


async def echo(ctx: trioiis.HttpContext, ws: trioiis.WebSocketContext, seen: Seen) -> None:
    while True:
        fragment = await ws.read_fragment()
        seen.fragments.append(fragment)
        if fragment.close:
            seen.close_status.append(ws.get_close_status())
            return
        # The peer's close may come in between: the next read says so.
        with contextlib.suppress(trioiis.WebSocketClosedError):
            await ws.write_fragment(fragment.data, utf8=fragment.utf8, final=fragment.final)


NATIVE_HANDLERS = (HandlerMapping("/ws*", ("wsnative",)),)


class LogLines(logging.Handler):
    """Collects access-log lines; ``wait_for`` waits for one that contains a text."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self._event = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self._event.set()

    async def wait_for(self, text: str) -> str:
        with trio.fail_after(15):
            while True:
                for line in self.lines:
                    if text in line:
                        return line
                self._event = trio.Event()
                await self._event.wait()


@contextlib.contextmanager
def access_lines() -> Iterator[LogLines]:
    logger = logging.getLogger("trioiis.access")
    handler = LogLines()
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


# ---------------------------------------------------------------- raw frames


def handshake(port: int, path: str = "/ws", extra: bytes = b"") -> socket.socket:
    """A raw socket that did the opening handshake (blocking; use in a thread)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(
        b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + extra + b"\r\n"
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def frame(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame."""
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """One unmasked server frame: (opcode, payload)."""

    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    first, second = exact(2)
    n = second & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", exact(8))
    return first & 0x0F, exact(n)


def reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
