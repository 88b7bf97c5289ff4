"""Shared test helpers: a real server on 127.0.0.1:0 (or in memory), module builders, raw
clients."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import trio
import trio.testing

import trioiis
from tests.memory import LOCAL, MemoryHttpxTransport
from trioiis import HttpServer, ModuleRegistrationInfo, Notification, Priority, ServerConfig

TransportName = Literal["socket", "memory"]


@dataclass
class Running:
    """A server started by ``running_server``. In memory it has no port (``port`` is 0:
    nothing listens) and ``client()`` serves every request with ``serve_in_memory``."""

    server: HttpServer
    host: str
    port: int
    transport: TransportName = "socket"
    #: ``(host, port)`` of every listening socket, in the order of the bindings.
    bound: list[tuple[str, int]] = field(default_factory=list)

    @property
    def url(self) -> str:
        if self.transport == "memory":
            return f"http://{self.host}"
        return f"http://{self.host}:{self.port}"

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        if self.transport == "memory":
            kwargs.setdefault("transport", MemoryHttpxTransport(self.server))
        return httpx.AsyncClient(base_url=self.url, timeout=10, **kwargs)


@contextlib.asynccontextmanager
async def running_server(
    *modules: tuple[str, Callable[..., None]]
    | tuple[str, Callable[..., None], dict[str, Any] | None],
    root: Path | str | None = None,
    transport: TransportName = "socket",
    **config: Any,
) -> AsyncIterator[Running]:
    """Serve on 127.0.0.1 port 0 with ``modules`` loaded after the built-in ones: each is
    ``(name, register)`` or ``(name, register, options)``; options reach ``register_module``
    as ``info.options`` (like a ``[[modules]]`` table's).

    ``transport="memory"``: ``serve`` runs with no listening socket (``sockets=[]``), and
    ``Running.client()`` runs each request in memory (tests/memory.py); the server's life
    (application start, shutdown's drain and grace, terminate) is the same."""
    config.setdefault("bindings", ("127.0.0.1:0",))
    if root is not None:
        config["root"] = Path(root)
    memory = transport == "memory"
    server = HttpServer(ServerConfig(**config), sockets=[] if memory else None)
    for name, register, *options in modules:
        server.register_module(name, register, options[0] if options else None)
    async with trio.open_nursery() as nursery:
        bound = await nursery.start(server.serve)
        host, port = LOCAL[0], 0
        if not memory:
            host, port = bound[0]
        try:
            yield Running(server, host, port, transport, bound=list(bound))
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(10):
                    await server.shutdown(grace=2)
            nursery.cancel_scope.cancel()


def register(
    module_class: Callable[[], trioiis.HttpModule],
    notifications: int,
    post_notifications: int = 0,
    *,
    priority: Priority | None = None,
    post_priority: Priority | None = None,
    factory: Any = None,
) -> Callable[[int, ModuleRegistrationInfo, trioiis.GlobalServer], None]:
    """A ``register_module`` function for a module class."""

    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_request_notifications(
            factory or trioiis.SimpleFactory(module_class), notifications, post_notifications
        )
        if priority is not None:
            info.set_priority_for_request_notification(notifications, priority)
        if post_priority is not None:
            info.set_priority_for_post_request_notification(post_notifications, post_priority)

    return register_module


@dataclass
class Recorder:
    """Collects (module name, handler name) calls in order, across modules."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def names(self, module: str | None = None) -> list[str]:
        return [m for n, m in self.calls if module is None or n == module]


ALL_DETERMINISTIC = Notification(sum(int(n) for n in trioiis._constants.DETERMINISTIC_STAGES))


def recording_module(
    recorder: Recorder,
    name: str,
    *,
    statuses: dict[str, trioiis.Status] | None = None,
) -> type[trioiis.HttpModule]:
    """A module class whose every handler appends (name, handler) and returns a status."""
    statuses = statuses or {}

    def make(method: str) -> Callable[..., Any]:
        async def handler(self: Any, ctx: trioiis.HttpContext, provider: Any) -> Any:
            recorder.calls.append((name, method))
            return statuses.get(method, trioiis.Status.CONTINUE)

        handler.__name__ = method
        return handler

    methods: dict[str, Any] = {}
    for bit in Notification:
        event, post = trioiis._pipeline.registration.handler_names(bit)
        methods[event] = make(event)
        if post:
            methods[post] = make(post)
    return type(f"Recording_{name}", (trioiis.HttpModule,), methods)


async def raw_request(port: int, data: bytes, *, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with trio.fail_after(timeout):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            chunks = []
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            return b"".join(chunks)


def statuses_in(raw: bytes) -> list[int]:
    """Status codes of every status line in a raw byte stream (bodies must not mimic one)."""
    return [int(code) for code in re.findall(rb"HTTP/1\.[01] (\d{3}) ", raw)]


async def wait_idle(server: HttpServer) -> None:
    """Until no request is in flight and no connection is open (bounded by the caller).

    ``wait_all_tasks_blocked`` alone is not enough: a task waiting for a worker thread
    (``trio.to_thread``) counts as blocked while the thread still runs."""
    while server.counters.requests_in_flight or server.counters.connections_open:
        await trio.testing.wait_all_tasks_blocked()
        await trio.lowlevel.checkpoint()


def all_tasks() -> Iterable[str]:
    """Names of every task alive in this trio run (to check nothing leaked)."""
    root = trio.lowlevel.current_root_task()
    stack = [root]
    while stack:
        task = stack.pop()
        yield task.name
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)


def builtin(
    name: str, options: dict[str, Any] | None = None
) -> tuple[str, Callable[..., None], dict[str, Any] | None]:
    """A built-in module by name, for ``running_server`` (with
    ``builtin_modules=False``, so that a default module can be loaded with options)."""
    from trioiis.config import load_register_function
    from trioiis.modules import BUILTIN_MODULES

    return name, load_register_function(BUILTIN_MODULES[name]), options


@dataclass
class StatusProbe:
    """Records ``ctx.response.get_status()`` of every request at END_REQUEST."""

    seen: list[trioiis.StatusInfo] = field(default_factory=list)

    def module(self) -> tuple[str, Callable[..., None]]:
        probe = self

        class Probe(trioiis.HttpModule):
            async def on_end_request(self, ctx: trioiis.HttpContext, provider: Any) -> Any:
                probe.seen.append(ctx.response.get_status())
                return trioiis.Status.CONTINUE

        return "probe", register(Probe, Notification.END_REQUEST)


async def exchange_in_pieces(
    server: HttpServer,
    wire: bytes,
    cuts: Iterable[int],
    *,
    timeout: float,
    peer_may_break: bool = False,
) -> bytes:
    """Serve ``wire`` through ``server.handle_stream`` over a memory stream, sent in pieces
    cut at ``cuts``, the server let run until it waits after each one, then EOF; returns
    what the server sent until it closed. Raises if it does not close within ``timeout`` or
    ``handle_stream`` raises; a stream the server broke raises too, unless
    ``peer_may_break`` (a protocol whose server may reset mid-exchange)."""
    client, served = trio.testing.memory_stream_pair()
    received = bytearray()
    broken: tuple[type[BaseException], ...] = (
        (trio.BrokenResourceError, trio.ClosedResourceError) if peer_may_break else ()
    )

    async def read_all() -> None:
        try:
            while chunk := await client.receive_some(65536):
                received.extend(chunk)
        except broken:
            pass

    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle_stream, served)
            nursery.start_soon(read_all)
            previous = 0
            try:
                for cut in [*sorted({c for c in cuts if c < len(wire)}), len(wire)]:
                    await client.send_all(wire[previous:cut])
                    previous = cut
                    await trio.testing.wait_all_tasks_blocked()
                # EOF only once the server waits: an EOF during a request is a client gone.
                await client.send_eof()
            except (trio.BrokenResourceError, *broken):
                pass  # the server closed first: what it sent is the answer
    server.pipeline.terminate()
    return bytes(received)
