"""Faults: modules that raise, hang or park forever, a failing disk, a client reset; and the
connection limits. The server stays up, the log names what happened, nothing is left."""

from __future__ import annotations

import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioiis
from tests.helpers import raw_request, register, running_server, statuses_in, wait_idle
from trioiis import HttpContext, HttpModule, Notification, Status
from trioiis._constants import DETERMINISTIC_STAGES

N = Notification
FAULT_POINTS = [(stage, False) for stage in DETERMINISTIC_STAGES] + [
    (stage, True) for stage in DETERMINISTIC_STAGES
]
FAULT_POINTS += [(N.SEND_RESPONSE, False), (N.MAP_PATH, False), (N.READ_ENTITY, False)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle(server: trioiis.HttpServer) -> None:
    with trio.fail_after(10):
        await wait_idle(server)


@pytest.mark.parametrize(
    ("notification", "post"),
    FAULT_POINTS,
    ids=[f"{'post_' if post else ''}{n.name}" for n, post in FAULT_POINTS],
)
async def test_a_module_raising_in_any_notification_is_contained(
    site: Path, notification: Notification, post: bool, caplog: pytest.LogCaptureFixture
) -> None:
    event, post_name = trioiis._pipeline.registration.handler_names(notification)
    method = post_name if post else event
    assert method is not None

    async def boom(self: Any, ctx: HttpContext, provider: Any) -> None:
        raise RuntimeError(f"boom in {method}")

    class Reader(HttpModule):  # makes READ_ENTITY happen
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            if ctx.request.remaining_entity_bytes:
                await ctx.request.read_all()

    broken = type("Broken", (HttpModule,), {method: boom})
    modules = (
        ("reader", register(Reader, N.BEGIN_REQUEST)),
        ("broken", register(broken, 0 if post else notification, notification if post else 0)),
    )
    handlers = ()
    if notification is N.EXECUTE_REQUEST_HANDLER and not post:
        handlers = (trioiis.HandlerMapping("*", ("broken", "static_file", "default_document")),)
    async with running_server(*modules, root=site, handlers=handlers) as srv:
        fds = open_fds()
        first = await raw_request(
            srv.port,
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n"
            b"\r\nhi",
        )
        second = await raw_request(
            srv.port, b"GET /dir/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await settle(srv.server)
        assert open_fds() == fds
        # Once per request; READ_ENTITY is raised by the first request's body read only,
        # which stops there (ModuleFailedError).
        expected = 1 if notification is N.READ_ENTITY else 2
        assert srv.server.counters.module_exceptions["broken"] == expected
    sent_before = notification in (N.LOG_REQUEST, N.END_REQUEST)
    if sent_before:
        assert statuses_in(first) == [200]  # the response had gone out already
    else:
        assert statuses_in(first) == [500]
        assert b"boom" not in first  # no traceback or message leaks to the client
    assert statuses_in(second) in ([200], [500])
    assert "module 'broken' failed" in caplog.text
    assert f"boom in {method}" in caplog.text


@pytest.mark.parametrize("how", ["never returns", "pending forever"])
async def test_request_timeout_cancels_a_stuck_module_and_logs_it(
    site: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    cancelled = trio.Event()

    class Stuck(HttpModule):
        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> Status:
            if how == "pending forever":
                return Status.PENDING  # nothing will ever complete it
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()
            return Status.CONTINUE

    limits = trioiis.Limits(request_timeout=0.2)
    stuck = ("stuck", register(Stuck, N.AUTHORIZE_REQUEST))
    async with running_server(stuck, root=site, limits=limits) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle(srv.server)
        assert srv.server.counters.requests_timed_out == 1
    assert statuses_in(raw) == [503]
    assert b"connection: close" in raw.lower()
    assert "timed out after 0.2 s in AUTHORIZE_REQUEST (module 'stuck')" in caplog.text
    if how == "never returns":
        assert cancelled.is_set()


async def test_request_timeout_stops_the_requests_tasks_and_children_before_the_tail(
    site: Path,
) -> None:
    """A timeout cancels the request's work as a whole: the stuck stage, a task it started
    and a child request it runs all stop before LOG_REQUEST, which still runs."""
    seen: dict[str, object] = {}

    async def background() -> None:
        try:
            await trio.sleep_forever()
        finally:
            seen["task stopped"] = True

    class Stuck(HttpModule):
        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.depth:  # the child request: stuck too
                try:
                    await trio.sleep_forever()
                finally:
                    seen["child stopped"] = True
            ctx.start_soon(background)
            child = ctx.clone_context()
            ctx.execute_request(child, async_=True)
            return Status.PENDING  # waits for the child, which never ends

        async def on_log_request(self, ctx: HttpContext, provider: Any) -> Status:
            if not ctx.depth:
                seen["at LOG_REQUEST"] = (seen.get("task stopped"), seen.get("child stopped"))
            return Status.CONTINUE

    limits = trioiis.Limits(request_timeout=0.2)
    stuck = ("stuck", register(Stuck, N.AUTHORIZE_REQUEST | N.LOG_REQUEST))
    async with running_server(stuck, root=site, limits=limits) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        await settle(srv.server)
        assert srv.server.counters.requests_timed_out == 1
    assert statuses_in(raw) == [503]
    assert seen["at LOG_REQUEST"] == (True, True)


async def test_a_disk_error_while_streaming_a_file_aborts_only_that_response(
    site: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (site / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: streamed in pieces
    real_sendfile = os.sendfile
    calls = 0

    def failing_sendfile(out_fd: int, in_fd: int, offset: int, count: int) -> int:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")  # what a bad disk block gives
        return real_sendfile(out_fd, in_fd, offset, min(count, 65536))

    monkeypatch.setattr(os, "sendfile", failing_sendfile)  # what static_file streams with
    async with running_server(root=site) as srv:
        raw = await raw_request(srv.port, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        after = await raw_request(
            srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        await settle(srv.server)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert statuses_in(head + b" ") == [200]  # the head had gone out ...
    assert 0 < len(body) < 1024 * 1024  # ... so the connection was cut, not finished
    assert statuses_in(after) == [200]
    assert "Input/output error" in caplog.text


async def test_a_client_reset_mid_response_leaves_nothing_behind(site: Path) -> None:
    (site / "big.bin").write_bytes(bytes(8 * 1024 * 1024))
    async with running_server(root=site) as srv:
        fds = open_fds()
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await stream.receive_some(1000)
            stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            await stream.aclose()  # RST
        await settle(srv.server)
        assert open_fds() == fds
        raw = await raw_request(
            srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert statuses_in(raw) == [200]


async def test_max_requests_per_connection_closes_after_the_last(site: Path) -> None:
    limits = trioiis.Limits(max_requests_per_connection=2)
    async with running_server(root=site, limits=limits) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" * 3)
    assert statuses_in(raw) == [200, 200]
    assert raw.lower().count(b"connection: close") == 1


async def test_when_full_refuse_answers_503_at_once(site: Path) -> None:
    async with running_server(root=site, max_connections=1, when_full="refuse") as srv:
        with trio.fail_after(10):
            holder = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with holder:
                await holder.send_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
                assert await holder.receive_some(65536)  # served, and kept alive: full
                refused = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert srv.server.counters.connections_refused == 1
    assert statuses_in(refused) == [503]


async def test_when_full_wait_serves_the_next_connection_once_a_slot_frees(site: Path) -> None:
    async with running_server(root=site, max_connections=1) as srv:
        with trio.fail_after(10):
            holder = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await holder.send_all(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            assert await holder.receive_some(65536)
            async with trio.open_nursery() as nursery:

                async def waiter() -> None:
                    raw = await raw_request(
                        srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    assert statuses_in(raw) == [200]

                nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                assert srv.server.counters.requests == 1  # the second waits in the backlog
                await holder.aclose()  # frees the slot
        assert srv.server.counters.requests == 2
        assert srv.server.counters.connections_refused == 0
    logging.getLogger(__name__).debug("done")


@pytest.mark.parametrize(
    "notification",
    [N.BEGIN_REQUEST, N.EXECUTE_REQUEST_HANDLER, N.MAP_PATH, N.READ_ENTITY, N.SEND_RESPONSE],
    ids=lambda n: n.name,
)
async def test_a_module_raising_in_any_stage_gets_the_same_answer(
    site: Path, notification: Notification
) -> None:
    """The client of a failed request gets the same 500 page whichever stage failed: never
    a 500 with the normal body, nor a 404 in its place."""
    method = trioiis._pipeline.registration.handler_names(notification)[0]
    assert method is not None

    async def boom(self: Any, ctx: HttpContext, provider: Any) -> None:
        raise RuntimeError("boom")

    class Reader(HttpModule):  # makes READ_ENTITY happen, then writes a normal body
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            if ctx.request.remaining_entity_bytes:
                ctx.response.write(await ctx.request.read_all())

    broken = type("Broken", (HttpModule,), {method: boom})
    modules = (
        ("reader", register(Reader, N.BEGIN_REQUEST)),
        ("broken", register(broken, notification)),
    )
    handlers = ()
    if notification is N.EXECUTE_REQUEST_HANDLER:
        handlers = (trioiis.HandlerMapping("*", ("broken", "static_file", "default_document")),)
    async with running_server(*modules, root=site, handlers=handlers) as srv:
        answers = [
            await raw_request(
                srv.port,
                b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                b"Connection: close\r\n\r\nhi",
            ),
            await raw_request(
                srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            ),
        ]
    if notification is N.READ_ENTITY:
        answers = answers[:1]  # (the second request has no body to read)
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert statuses_in(answer) == [500], answer
        assert b"content-type: text/html" in head.lower()
        assert b"<h1>500 Internal Server Error</h1>" in body
        assert b"hello" not in body
