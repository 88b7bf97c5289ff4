"""The pytest plugin (registered by the ``pytest11`` entry point): fixtures for a real
server, an httpx client, and an in-memory server.

Configure them with the ``trioiis`` marker::

    @pytest.mark.trioiis(modules=[("hello", register_module)], root="site")
    async def test_hello(trioiis_client):
        assert (await trioiis_client.get("/hello")).text == "Hello, world!\\n"

Any other keyword of the marker is a ``ServerConfig`` field. Without ``root`` the site is an
empty temporary folder.

The fixtures are Trio fixtures: they run under pytest-trio. A project needs no
configuration for them: an ``async def`` test that uses one of them (or carries the marker)
is marked ``@pytest.mark.trio`` at collection, unless it is already. Without pytest-trio
installed, collection stops with one line naming the package to install.
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest
import trio

from .._pipeline.registration import RegisterModule
from .._server.server import HttpServer
from ..config import ServerConfig
from ._memory import MemoryServer, RunningServer

if TYPE_CHECKING:
    import httpx


FIXTURES: Final = frozenset({"trioiis_server", "trioiis_client", "trioiis_memory"})
INSTALL_HINT: Final = "pip install 'trioiis[testing]'"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "trioiis(modules=[(name, register_module)], root=PATH, **ServerConfig fields): "
        "configure the trioiis_server, trioiis_client and trioiis_memory fixtures",
    )


def _is_async_test(item: pytest.Item) -> bool:
    function = getattr(item, "obj", None)
    inner = getattr(getattr(function, "hypothesis", None), "inner_test", function)
    return inspect.iscoroutinefunction(inner)


@pytest.hookimpl(trylast=True)  # after pytest-trio's own trio_mode marking
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark async tests that use the kit's fixtures as Trio tests (see the module doc)."""
    ours = [
        item
        for item in items
        if _is_async_test(item)
        and (
            FIXTURES & set(getattr(item, "fixturenames", ()))
            or item.get_closest_marker("trioiis") is not None
        )
    ]
    if not ours:
        return
    if not config.pluginmanager.hasplugin("trio"):
        raise pytest.UsageError(
            f"{ours[0].nodeid} uses trioiis fixtures, which need pytest-trio: {INSTALL_HINT}"
        )
    uses_client = [item for item in ours if "trioiis_client" in getattr(item, "fixturenames", ())]
    if uses_client and importlib.util.find_spec("httpx") is None:
        raise pytest.UsageError(
            f"{uses_client[0].nodeid} uses trioiis_client, which needs httpx: {INSTALL_HINT}"
        )
    for item in ours:
        if item.get_closest_marker("trio") is None:
            item.add_marker(pytest.mark.trio)


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
