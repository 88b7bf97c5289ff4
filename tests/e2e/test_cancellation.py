"""cancel_io, client disconnects and connection control, over real loopback sockets."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioiis
from examples.modules import cancel_io_sample
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import HttpContext, HttpModule, Notification, OperationAbortedError, Status
from trioiis._constants import ERROR_OPERATION_ABORTED

Handler = Callable[[HttpContext], Awaitable[Status | None]]
FAST = trioiis.Limits(linger_timeout=0.5)


def on_begin(handler: Handler, *, extra: int = 0) -> tuple[str, Callable[..., None]]:
    """A module that runs ``handler`` at BEGIN_REQUEST (so no handler mapping is involved)."""

    class Module(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            return await handler(ctx)

    return "test", register(Module, Notification.BEGIN_REQUEST | extra)


class Tail(HttpModule):
    """Records LOG_REQUEST and END_REQUEST and whether the client was still connected."""

    log: list[str]
    ended: trio.Event

    async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
        Tail.log.append(f"log connected={ctx.connection.is_connected()}")

    async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
        Tail.log.append("end")
        Tail.ended.set()


def tail_module() -> tuple[str, Callable[..., None]]:
    Tail.log = []
    Tail.ended = trio.Event()
    return "tail", register(Tail, Notification.LOG_REQUEST | Notification.END_REQUEST)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_cancel_io_aborts_a_pending_body_read_from_another_task(site: Path) -> None:
    seen: dict[str, Any] = {}

    async def handler(ctx: HttpContext) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen["pending_before"] = ctx.pending_io_count
            seen["cancelled"] = ctx.cancel_io()

        first = await ctx.request.read_entity_body(100)
        ctx.start_soon(canceller)
        try:
            await ctx.request.read_entity_body(100)
        except OperationAbortedError as exc:
            seen["completion"] = exc.completion
        seen["pending_after"] = ctx.pending_io_count
        ctx.response.write(b"aborted after " + first)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site, limits=FAST) as srv:
        raw = await raw_request(
            srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"
        )
        assert srv.server.counters.io_cancelled == 1
    assert statuses_in(raw) == [200]
    assert raw.endswith(b"aborted after abc")
    assert seen["pending_before"] == 1
    assert seen["cancelled"] == 1
    assert seen["completion"].completion_status == ERROR_OPERATION_ABORTED == 0x800703E3
    assert seen["completion"].completion_bytes == 0
    assert not seen["completion"].ok
    assert seen["pending_after"] == 0


async def test_cancel_io_with_nothing_pending_returns_zero(site: Path) -> None:
    seen: list[int] = []

    async def handler(ctx: HttpContext) -> Status:
        seen.append(ctx.cancel_io())
        ctx.response.write("still fine")
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv, srv.client() as client:
        response = await client.get("/")
    assert seen == [0]
    assert response.text == "still fine"


async def test_cancel_io_after_the_request_ended_raises_invalid_handle(site: Path) -> None:
    kept: list[HttpContext] = []

    async def handler(ctx: HttpContext) -> Status:
        kept.append(ctx)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv, srv.client() as client:
        assert (await client.get("/")).status_code == 200
        await trio.testing.wait_all_tasks_blocked()  # the server finished the request's tail
        with pytest.raises(trioiis.InvalidHandleError) as info:
            kept[0].cancel_io()
    assert info.value.hresult == 0x80070006


async def test_cancel_io_iis_sample_runs_unchanged(site: Path) -> None:
    sample = ("cancel_io_sample", cancel_io_sample.register_module)
    async with running_server(sample, root=site) as srv, srv.client() as client:
        response = await client.get("/hello.txt")
        calls = srv.server.counters.cancel_io_calls
    assert response.status_code == 200
    assert response.text == "hello\n"
    assert calls == 1


async def test_cancel_io_aborts_a_blocked_flush_and_the_wire_stays_well_formed(
    site: Path,
) -> None:
    """A flush stuck on a client that does not read is aborted; the unsent rest stays queued
    in order, so the client later reads one complete, correct response."""
    body = bytes(range(256)) * (32 * 1024 * 1024 // 256)
    aborted = trio.Event()
    seen: dict[str, Any] = {}

    async def handler(ctx: HttpContext) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen["cancelled"] = ctx.cancel_io()

        ctx.response.set_header("Content-Length", str(len(body)))
        ctx.response.write(body)
        ctx.start_soon(canceller)
        try:
            await ctx.response.flush()
        except OperationAbortedError as exc:
            seen["moved"] = exc.completion.completion_bytes
        aborted.set()
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        with trio.fail_after(30):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await aborted.wait()
                received = bytearray()
                while chunk := await stream.receive_some(1 << 20):
                    received += chunk
    assert seen["cancelled"] == 1
    assert 0 < seen["moved"] < len(body)
    head, _, got = bytes(received).partition(b"\r\n\r\n")
    assert statuses_in(head + b" ") == [200]
    assert got == body


async def test_client_disconnect_cancels_a_busy_handler_and_still_logs(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    started, cancelled = trio.Event(), trio.Event()
    notified: list[str] = []
    kept: list[HttpContext] = []

    class Stored:
        def cleanup_stored_context(self) -> None:
            notified.append("cleanup")

        def notify_disconnect(self) -> None:
            notified.append("disconnect")

    async def handler(ctx: HttpContext) -> Status:
        kept.append(ctx)
        ctx.connection.module_context.set_module_context(Stored(), 1)
        started.set()
        try:
            await trio.sleep_forever()  # busy: not reading, not writing
        finally:
            cancelled.set()

    async with running_server(on_begin(handler), tail_module(), root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(b"GET /busy HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            await stream.aclose()
            await cancelled.wait()
            await Tail.ended.wait()
        counters = srv.server.counters
        assert counters.cancelled_by_client == 1
        assert len(counters.time_to_cancel) == 1
    assert Tail.log == ["log connected=False", "end"]
    assert notified == ["disconnect", "cleanup"]  # each exactly once
    assert kept[0].lifecycle.outcome is trioiis.Outcome.CANCELLED_BY_CLIENT
    assert not kept[0].connection.is_connected()
    assert any(
        "GET /busy" in r.getMessage() and "cancelled_by_client" in r.getMessage()
        for r in caplog.records
    )


async def test_client_half_close_during_a_request_cancels_it(site: Path) -> None:
    """Decision: a FIN from the client while its request runs means the client is gone (as
    nginx and Go's net/http treat it), so the request is cancelled like a disconnect."""
    started, cancelled = trio.Event(), trio.Event()

    async def handler(ctx: HttpContext) -> Status:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    async with running_server(on_begin(handler), root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await started.wait()
                await stream.send_eof()
                await cancelled.wait()
                assert await stream.receive_some(100) == b""
        assert srv.server.counters.cancelled_by_client == 1


async def test_reset_connection_aborts_without_sending_the_buffer(site: Path) -> None:
    async def handler(ctx: HttpContext) -> Status:
        ctx.response.write(b"secret")
        ctx.response.reset_connection()
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

                async def read_to_end() -> None:
                    while await stream.receive_some(100):
                        pass

                # SO_LINGER 0: the client sees a reset (ECONNRESET), not a response.
                with pytest.raises(trio.BrokenResourceError):
                    await read_to_end()


@pytest.mark.parametrize("finish", [False, True])
async def test_item20_reset_connection_then_continue_or_finish(site: Path, finish: bool) -> None:
    later: list[str] = []

    class Later(HttpModule):
        async def on_authenticate_request(self, ctx: HttpContext, provider: Any) -> None:
            later.append("authenticate")

    async def handler(ctx: HttpContext) -> Status:
        ctx.response.reset_connection()
        return Status.FINISH_REQUEST if finish else Status.CONTINUE

    modules = (on_begin(handler), ("later", register(Later, Notification.AUTHENTICATE_REQUEST)))
    async with running_server(*modules, root=site) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw == b""
    assert later == ([] if finish else ["authenticate"])


async def test_item32_set_need_disconnect_sends_all_then_closes(site: Path) -> None:
    async def handler(ctx: HttpContext) -> Status:
        ctx.response.write(b"whole response")
        ctx.response.set_need_disconnect()
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
        )
        requests = srv.server.counters.requests
    assert statuses_in(raw) == [200]
    assert raw.endswith(b"whole response")
    assert b"connection: close" in raw.lower()
    assert requests == 1


async def test_two_hundred_vanishing_clients_are_all_cancelled_and_logged(site: Path) -> None:
    n = 200
    started = trio.Event()
    done = trio.Event()
    state = {"started": 0, "cancelled": 0, "logged": 0}

    async def handler(ctx: HttpContext) -> Status:
        state["started"] += 1
        if state["started"] == n:
            started.set()
        try:
            await trio.sleep_forever()
        finally:
            state["cancelled"] += 1

    class Log(HttpModule):
        async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
            state["logged"] += 1
            if state["logged"] == n:
                done.set()

    modules = (on_begin(handler), ("log", register(Log, Notification.LOG_REQUEST)))
    async with running_server(*modules, root=site) as srv:
        fds_before = open_fds()

        async def client() -> None:
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
                await started.wait()

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for _ in range(n):
                    nursery.start_soon(client)
            await done.wait()
            while srv.server.counters.connections_open:  # bounded by fail_after
                await trio.testing.wait_all_tasks_blocked()
                await trio.lowlevel.checkpoint()
        counters = srv.server.counters
        assert open_fds() == fds_before
        assert counters.cancelled_by_client == n
        assert counters.requests_in_flight == 0
    assert state == {"started": n, "cancelled": n, "logged": n}
