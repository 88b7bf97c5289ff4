"""The pytest plugin: fixtures for a real server, an httpx client, and an in-memory server.

Configure them with the ``trioiis`` marker::

    @pytest.mark.trioiis(modules=[("hello", register_module)], root="site")
    async def test_hello(trioiis_client):
        assert (await trioiis_client.get("/hello")).text == "Hello, world!\\n"

Any other keyword of the marker is a ``ServerConfig`` field. Without ``root`` the site is an
empty temporary folder.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing

from ..config import ServerConfig
from ..registration import RegisterModule
from ..server import HttpServer
from ._harness import _complete, _method_of

if TYPE_CHECKING:
    import httpx


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "trioiis(modules=[(name, register_module)], root=PATH, **ServerConfig fields): "
        "configure the trioiis_server, trioiis_client and trioiis_memory fixtures",
    )


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
        method = _method_of(data)
        client, served = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self.server.handle_stream, served)
        got = bytearray()
        try:
            with trio.move_on_after(timeout):
                await client.send_all(data)
                if half_close:
                    await client.send_eof()
                while _complete(bytes(got), method) is None:
                    chunk = await client.receive_some(65536)
                    if not chunk:
                        break
                    got += chunk
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the server closed or reset the connection: what arrived is the answer
        finally:
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.aclose()
        parsed = _complete(bytes(got), method)
        return MemoryResponse(
            parsed[0] if parsed else None, parsed[1] if parsed else b"", bytes(got)
        )


def _server_from_marker(request: pytest.FixtureRequest, tmp_path: Path) -> HttpServer:
    marker = request.node.get_closest_marker("trioiis")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    modules: Sequence[tuple[str, RegisterModule]] = kwargs.pop("modules", ())
    root = Path(kwargs.pop("root", tmp_path))
    server = HttpServer(ServerConfig(root=root, bindings=("127.0.0.1:0",), **kwargs))
    for name, register in modules:
        server.register_module(name, register)
    return server


@pytest.fixture
async def trioiis_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[RunningServer]:
    """A real server on 127.0.0.1 (a free port), configured by the ``trioiis`` marker.

    Cancellation: at teardown the server shuts down (grace 2 s, shielded, at most 10 s),
    then whatever is left is cancelled."""
    server = _server_from_marker(request, tmp_path)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        host, port = bound[0]
        yield RunningServer(server, host, port)
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await server.shutdown(grace=2)
        nursery.cancel_scope.cancel()


@pytest.fixture
async def trioiis_client(trioiis_server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    """An ``httpx.AsyncClient`` whose base URL is the ``trioiis_server``.

    Cancellation: closed at teardown, before the server shuts down."""
    import httpx

    async with httpx.AsyncClient(base_url=trioiis_server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def trioiis_memory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[MemoryServer]:
    """The same server without sockets: ``await trioiis_memory.request(raw_bytes)``.

    Cancellation: at teardown every in-memory connection is cancelled (as a shutdown whose
    grace ran out: requests still running get their LOG/END tail, shielded)."""
    server = _server_from_marker(request, tmp_path)
    async with trio.open_nursery() as nursery:
        yield MemoryServer(server, nursery)
        nursery.cancel_scope.cancel()
    server.pipeline.terminate()
