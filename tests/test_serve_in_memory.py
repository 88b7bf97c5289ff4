"""``HttpServer.serve_in_memory``: one request through the socket path's code (context, site,
forwarded headers, access log, counters, lifecycle) over a ``MemoryTransport``, with the
test playing the peer: back-pressure, cancel_io on a pending write, a client that leaves,
a server that gives up, and shutdown waiting for a request in flight."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import register
from trioiis import (
    HandlerMapping,
    HttpContext,
    HttpModule,
    HttpServer,
    OperationAbortedError,
    ServerConfig,
    SiteConfig,
    Status,
)
from trioiis import Notification as N
from trioiis._lifecycle import Outcome
from trioiis._protocol.memory_transport import MemoryTransport

TIMEOUT = 10
HOST = [(b"Host", b"memory.test")]


class Hello(HttpModule):
    """Answers every request: its path, remote address and site, as text."""

    async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
        ctx.response.set_header("Content-Type", "text/plain")
        site = ctx.site.name if ctx.site is not None else "-"
        ctx.response.write(f"{ctx.request.path} {ctx.request.remote_address[0]} {site}")
        return Status.CONTINUE


def server_with(*modules: tuple[str, Any], **config: Any) -> HttpServer:
    names = tuple(name for name, _ in modules)
    server = HttpServer(
        ServerConfig(
            builtin_modules=False,
            handlers=(HandlerMapping("*", names),),
            access_log_format="json",
            **config,
        )
    )
    for name, register_module in modules:
        server.register_module(name, register_module)
    return server


async def serve_get(
    server: HttpServer, transport: MemoryTransport, outcomes: list[Outcome]
) -> None:
    """Serve ``GET /`` over ``transport``; append its outcome to ``outcomes``."""
    outcomes.append(await server.serve_in_memory(transport, method="GET", target="/", headers=HOST))


def log_entries(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "trioiis.access"]


async def test_a_request_runs_the_pipeline_and_is_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    server = server_with(("hello", register(Hello, N.EXECUTE_REQUEST_HANDLER)))
    transport = MemoryTransport()
    outcome = await server.serve_in_memory(
        transport, method="GET", target="/a?b=1", headers=HOST, remote=("192.0.2.7", 5555)
    )
    response = transport.response
    assert outcome is Outcome.COMPLETED
    assert (response.status, bytes(response.body)) == (200, b"/a 192.0.2.7 default")
    assert response.header("content-length") == b"20"
    assert response.complete
    assert server.counters.requests == 1
    [entry] = log_entries(caplog)
    assert (entry["status"], entry["bytes"], entry["outcome"]) == (200, 20, "completed")
    assert entry["remote"] == "192.0.2.7"


async def test_the_site_is_chosen_by_host_and_forwarded_headers_from_a_trusted_proxy(
    tmp_path: Path,
) -> None:
    server = server_with(
        ("hello", register(Hello, N.EXECUTE_REQUEST_HANDLER)),
        sites=(SiteConfig(name="blog", root=tmp_path, hosts=("blog.test",)),),
        trusted_proxies=("10.0.0.0/8",),
    )
    transport = MemoryTransport()
    await server.serve_in_memory(
        transport,
        method="GET",
        target="/",
        headers=[(b"Host", b"Blog.Test:8080"), (b"X-Forwarded-For", b"198.51.100.9")],
        remote=("10.1.2.3", 4000),
    )
    assert transport.response.body == b"/ 198.51.100.9 blog"


async def test_a_body_given_whole_or_fed_reaches_the_module() -> None:
    class Echo(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            body = b""
            async for chunk in ctx.request.iter_entity_body(4):
                body += chunk
            ctx.response.write(body[::-1])
            return Status.CONTINUE

    server = server_with(("echo", register(Echo, N.EXECUTE_REQUEST_HANDLER)))
    given = MemoryTransport(method="POST", body=b"hello")
    await server.serve_in_memory(given, method="POST", target="/", headers=HOST)
    assert given.response.body == b"olleh"

    fed = MemoryTransport(method="POST", body=None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            lambda: server.serve_in_memory(fed, method="POST", target="/", headers=HOST)
        )
        await fed.wait_read_blocked()
        fed.feed(b"abc")
        await fed.wait_read_blocked()
        fed.feed(b"def")
        fed.end_body()
    assert fed.response.body == b"fedcba"
    assert fed.keep_alive


async def test_cancel_io_ends_a_write_waiting_for_the_peer_with_the_bytes_that_moved() -> None:
    contexts: list[HttpContext] = []
    aborted: list[int] = []

    class Writer(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            contexts.append(ctx)
            ctx.response.set_header("Content-Length", "100")
            ctx.response.write(b"x" * 100)
            try:
                await ctx.response.flush(more_data=True)
            except OperationAbortedError as exc:
                aborted.append(exc.completion.completion_bytes)
            return Status.CONTINUE

    server = server_with(("writer", register(Writer, N.EXECUTE_REQUEST_HANDLER)))
    transport = MemoryTransport(window=30)
    outcomes: list[Outcome] = []

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_get, server, transport, outcomes)
            await transport.wait_write_blocked()
            assert contexts[0].pending_io_count == 1
            assert contexts[0].cancel_io() == 1
            await trio.testing.wait_all_tasks_blocked()
            assert aborted == [30]
            # The unsent 70 bytes stayed queued: the final send waits for them.
            assert (transport.queued, transport.body_bytes_sent) == (70, 30)
            transport.open_window()
    assert outcomes == [Outcome.COMPLETED]
    assert transport.response.body == b"x" * 100
    assert server.counters.cancel_io_calls == 1


@pytest.mark.parametrize("how", ["disconnect", "give_up"])
async def test_a_peer_gone_or_given_up_mid_response_is_reported_with_the_exact_bytes(
    how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")

    class Big(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.set_header("Content-Length", "1000")
            for _ in range(10):
                ctx.response.write(b"y" * 100)
                await ctx.response.flush(more_data=True)
            return Status.CONTINUE

    server = server_with(("big", register(Big, N.EXECUTE_REQUEST_HANDLER)))
    transport = MemoryTransport(window=250)
    outcomes: list[Outcome] = []

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_get, server, transport, outcomes)
            await transport.wait_write_blocked()
            transport.disconnect() if how == "disconnect" else transport.give_up()
    expected = Outcome.CANCELLED_BY_CLIENT if how == "disconnect" else Outcome.ABORTED_BY_SERVER
    assert outcomes == [expected]
    [entry] = log_entries(caplog)
    assert (entry["status"], entry["bytes"], entry["outcome"]) == (200, 250, expected.value)


async def test_a_client_gone_after_its_last_byte_is_still_completed() -> None:
    class Done(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.set_header("Content-Length", "2")
            ctx.response.write(b"ok")
            await ctx.response.flush(more_data=True)
            transport.disconnect()  # the peer leaves as soon as it has every byte
            return Status.CONTINUE

    server = server_with(("done", register(Done, N.EXECUTE_REQUEST_HANDLER)))
    transport = MemoryTransport()
    outcome = await server.serve_in_memory(transport, method="GET", target="/", headers=HOST)
    assert outcome is Outcome.COMPLETED


async def test_while_serving_without_sockets_shutdown_waits_for_a_request_in_flight() -> None:
    log: list[str] = []
    entered, release = trio.Event(), trio.Event()

    class Slow(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            entered.set()
            await release.wait()
            return Status.CONTINUE

        def dispose(self) -> None:
            log.append("dispose")

    class Factory:
        def get_http_module(self, allocator: Any) -> HttpModule:
            return Slow()

        def terminate(self) -> None:
            log.append("terminate")

    server = HttpServer(ServerConfig(builtin_modules=False), sockets=[])
    server.register_module("slow", register(Slow, N.BEGIN_REQUEST, factory=Factory()))
    transport = MemoryTransport()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            assert await nursery.start(server.serve) == []  # no listener at all
            nursery.start_soon(
                lambda: server.serve_in_memory(transport, method="GET", target="/", headers=HOST)
            )
            await entered.wait()
            nursery.start_soon(server.shutdown, 5.0)
            await trio.testing.wait_all_tasks_blocked()
            assert log == []  # shutdown is draining the request in flight
            with pytest.raises(RuntimeError, match="shutting down"):
                await server.serve_in_memory(
                    MemoryTransport(), method="GET", target="/", headers=HOST
                )
            release.set()
    assert log == ["dispose", "terminate"]
    assert transport.response.status == 200
    assert transport.response.complete


async def test_a_request_in_flight_past_shutdowns_grace_is_cancelled_and_still_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    entered = trio.Event()
    ended: list[str] = []

    class Forever(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            entered.set()
            await trio.sleep_forever()
            return Status.CONTINUE

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
            ended.append("end")
            return Status.CONTINUE

    server = HttpServer(ServerConfig(builtin_modules=False, access_log_format="json"), sockets=[])
    server.register_module("forever", register(Forever, N.BEGIN_REQUEST | N.END_REQUEST))
    outcomes: list[Outcome] = []

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.serve)
            nursery.start_soon(serve_get, server, MemoryTransport(), outcomes)
            await entered.wait()
            await server.shutdown(grace=0)
    assert outcomes == [Outcome.ABORTED_BY_SERVER]
    assert ended == ["end"]  # the tail ran
    [entry] = log_entries(caplog)
    assert (entry["status"], entry["bytes"], entry["outcome"]) == (444, 0, "aborted_by_server")
