"""Serve raw requests without sockets, and describe a server a fixture started. Needs no
pytest: usable from any Trio code."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import trio
import trio.testing

from .._server.server import HttpServer
from ._client import complete_response, method_of


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server the ``trioiis_server`` fixture started on 127.0.0.1."""

    server: HttpServer
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MemoryResponse:
    """What ``MemoryServer.request`` got back: ``status`` None means no complete response."""

    status: int | None
    body: bytes
    raw: bytes


class MemoryServer:
    """A server that answers raw requests over ``trio.testing.memory_stream_pair``."""

    def __init__(self, server: HttpServer, nursery: trio.Nursery) -> None:
        self.server = server
        self._nursery = nursery

    async def request(
        self, raw: bytes | str, *, timeout: float = 10, half_close: bool = False
    ) -> MemoryResponse:
        """Send one raw request on a new in-memory connection; read one response.

        ``half_close=True`` sends EOF after the request, as a client with nothing more to
        say (a truncated request then ends at once instead of at the head timeout).

        Cancellation: a checkpoint; cancelling it closes the connection (the server then
            sees a client disconnect).
        """
        data = raw.encode("latin-1") if isinstance(raw, str) else raw
        method = method_of(data)
        client, served = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self.server.handle_stream, served)
        got = bytearray()
        try:
            with trio.move_on_after(timeout):
                await client.send_all(data)
                if half_close:
                    await client.send_eof()
                while complete_response(bytes(got), method) is None:
                    chunk = await client.receive_some(65536)
                    if not chunk:
                        break
                    got += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server closed or reset the connection: what arrived is the answer
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.aclose()
        parsed = complete_response(bytes(got), method)
        return MemoryResponse(
            parsed[0] if parsed else None, parsed[1] if parsed else b"", bytes(got)
        )
