"""Slow or odd clients and careless modules never hang, crash or corrupt a connection."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioiis
import trioiis._observability.accesslog
from tests.helpers import raw_request, register, running_server, statuses_in, wait_idle
from trioiis import CloneFlags, HttpContext, HttpModule, Notification, Status

Handler = Callable[[HttpContext], Awaitable[Status | None]]


def on_begin(handler: Handler) -> tuple[str, Callable[..., None]]:
    class Module(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            return await handler(ctx)

    return "test", register(Module, Notification.BEGIN_REQUEST)


@pytest.mark.parametrize("target", ["/%ff", "/%c0%ae%c0%ae/", "/a%00b", "/%e2%82"])
async def test_url_with_undecodable_bytes_is_refused_not_crashed(
    site: Path, target: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running_server(root=site) as srv:
        raw = await raw_request(
            srv.port, f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
        )
        again = await raw_request(
            srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert statuses_in(raw) == [400]
    assert statuses_in(again) == [200]
    assert "internal error" not in caplog.text


async def test_send_timeout_closes_a_client_that_never_reads(site: Path) -> None:
    (site / "big.bin").write_bytes(bytes(20 * 1024 * 1024))
    limits = trioiis.Limits(send_timeout=0.3, linger_timeout=0.1)
    async with running_server(root=site, limits=limits) as srv:
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                await wait_idle(srv.server)  # the server gives up on its own
        assert srv.server.counters.requests_in_flight == 0


async def test_body_timeout_fails_a_read_from_a_client_that_stalls(site: Path) -> None:
    seen: list[str] = []

    async def handler(ctx: HttpContext) -> Status:
        try:
            await ctx.request.read_all()
        except trioiis.ConnectionInvalidError as exc:
            seen.append(str(exc))
        return Status.FINISH_REQUEST

    limits = trioiis.Limits(body_timeout=0.3, linger_timeout=0.1)
    async with running_server(on_begin(handler), root=site, limits=limits) as srv:
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
                response = b""
                while data := await stream.receive_some(65536):
                    response += data  # the answer, then the server closes
    assert len(seen) == 1
    assert statuses_in(response) == [408]  # the server gave up on the body


async def test_concurrent_flushes_from_two_tasks_keep_the_response_well_formed(
    site: Path,
) -> None:
    """A task's flush is stuck on a slow reader while the handler flushes again: both
    writes queue in order, nothing is corrupted or reset."""
    part = bytes(range(256)) * (4 * 1024 * 1024 // 256)
    start_reading = trio.Event()

    async def handler(ctx: HttpContext) -> Status:
        async def writer() -> None:
            ctx.response.write(part)
            await ctx.response.flush(more_data=True)

        ctx.response.write(b"head:")
        await ctx.response.flush(more_data=True)
        ctx.start_soon(writer)
        await trio.testing.wait_all_tasks_blocked()  # the writer is stuck on the socket
        ctx.response.write(b":tail")
        start_reading.set()
        await ctx.response.flush(more_data=True)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        with trio.fail_after(30):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                await start_reading.wait()
                raw = bytearray()
                while data := await stream.receive_some(1 << 20):
                    raw += data
    import h11

    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.receive_data(bytes(raw))
    conn.receive_data(b"")
    body = b""
    while not isinstance(event := conn.next_event(), h11.EndOfMessage):
        if isinstance(event, h11.Data):
            body += event.data
    assert body in (b"head:" + part + b":tail", b"head::tail" + part)


async def test_tasks_started_on_the_raw_request_nursery_end_with_the_request(site: Path) -> None:
    ended = trio.Event()

    async def handler(ctx: HttpContext) -> Status:
        async def forever() -> None:
            try:
                await trio.sleep_forever()
            finally:
                ended.set()

        ctx.nursery.start_soon(forever)
        ctx.response.write(b"ok")
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert statuses_in(raw) == [200, 200]  # the second request was served: nothing hung
    assert ended.is_set()


async def test_a_task_failing_on_the_raw_request_nursery_is_not_a_timeout(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A task started on ``ctx.nursery`` itself that raises makes Trio cancel the request
    nursery; that is the module's failure, not ``request_timeout`` (no 503, nothing counted
    as timed out) and not a client leaving."""

    async def handler(ctx: HttpContext) -> Status:
        async def boom() -> None:
            raise RuntimeError("boom in a raw task")

        ctx.nursery.start_soon(boom)
        await trio.sleep_forever()  # cancelled by the nursery when boom raises
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        raw = await raw_request(srv.port, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
        counters = srv.server.counters
        assert counters.requests_timed_out == 0
        assert counters.cancelled_by_client == 0
    assert 503 not in statuses_in(raw)
    assert "timed out" not in caplog.text
    assert "boom in a raw task" in caplog.text


async def test_release_right_after_execute_request_means_the_child_never_runs(
    site: Path,
) -> None:
    ran: list[int] = []
    completions: list[trioiis.CompletionInfo] = []

    class Parent(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            ran.append(ctx.depth)
            if ctx.depth:
                return Status.FINISH_REQUEST
            child = ctx.clone_context(CloneFlags.BASICS)
            ctx.execute_request(child)
            child.release_cloned_context()
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: Any
        ) -> Status:
            completions.append(info)
            return Status.FINISH_REQUEST

    parent = ("parent", register(Parent, Notification.BEGIN_REQUEST))
    async with running_server(parent, root=site) as srv, srv.client() as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert ran == [0]
    assert completions == [trioiis.CompletionInfo(0, trioiis._constants.ERROR_OPERATION_ABORTED)]


@pytest.mark.parametrize("status", [204, 304])
async def test_204_and_304_carry_no_content_length(site: Path, status: int) -> None:
    async def handler(ctx: HttpContext) -> Status:
        ctx.response.set_status(status)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses_in(raw) == [status]
    assert b"content-length" not in raw.lower()


async def test_reset_connection_is_seen_by_the_client_before_later_handlers_finish(
    site: Path,
) -> None:
    client_saw_reset = trio.Event()
    order: list[str] = []

    async def handler(ctx: HttpContext) -> Status:
        ctx.response.reset_connection()
        assert not ctx.connection.is_connected()
        return Status.CONTINUE  # later handlers still run (spec item 20)

    class Later(HttpModule):
        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            with trio.fail_after(10):
                await client_saw_reset.wait()
            order.append("end_request ran after the client saw the reset")

    modules = (on_begin(handler), ("later", register(Later, Notification.END_REQUEST)))
    async with running_server(*modules, root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                with pytest.raises(trio.BrokenResourceError):
                    await stream.receive_some(100)
                client_saw_reset.set()
            await wait_idle(srv.server)
    assert order == ["end_request ran after the client saw the reset"]


async def test_informational_status_from_a_module_is_refused(site: Path) -> None:
    errors: list[int] = []

    async def handler(ctx: HttpContext) -> Status:
        try:
            ctx.response.set_status(101)
        except trioiis.HResultError as exc:
            errors.append(exc.hresult)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv, srv.client() as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert errors == [trioiis._constants.ERROR_INVALID_DATA]


async def test_a_file_url_with_a_trailing_slash_is_404(site: Path) -> None:
    async with running_server(root=site) as srv, srv.client() as client:
        response = await client.get("/hello.txt/")
    assert response.status_code == 404


async def test_serve_that_cannot_open_its_access_log_frees_its_sockets(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    server = trioiis.HttpServer(
        trioiis.ServerConfig(
            root=site, bindings=("127.0.0.1:0",), access_log=str(site / "hello.txt" / "x.log")
        )
    )
    with pytest.raises(trioiis.ConfigError):
        await server.serve()
    with trio.fail_after(5):
        await server.shutdown()  # returns: serve() is over, not stuck


async def test_cancel_io_aborts_a_pending_map_path_call_not_the_module(site: Path) -> None:
    seen: dict[str, Any] = {}

    class Slow(HttpModule):
        async def on_map_path(self, ctx: HttpContext, provider: Any) -> Status:
            return Status.PENDING  # and never completes

    async def handler(ctx: HttpContext) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen["cancelled"] = ctx.cancel_io()

        ctx.start_soon(canceller)
        try:
            await ctx.map_path("/hello.txt")
        except trioiis.OperationAbortedError as exc:
            seen["status"] = exc.completion.completion_status
        ctx.response.write(b"gave up mapping")
        return Status.FINISH_REQUEST

    modules = (("slow", register(Slow, Notification.MAP_PATH)), on_begin(handler))
    async with running_server(*modules, root=site) as srv, srv.client() as client:
        response = await client.get("/")
        failures = dict(srv.server.counters.module_exceptions)
    assert response.status_code == 200
    assert response.text == "gave up mapping"
    assert seen == {"cancelled": 1, "status": trioiis._constants.ERROR_OPERATION_ABORTED}
    assert failures == {}


async def test_a_late_completion_goes_to_the_handler_that_started_it(site: Path) -> None:
    """Module A starts two children and resumes on the first; B later parks for its own
    post_completion. A's second child's completion must not resume B."""
    slow_child_may_end = trio.Event()
    slow_child_ended = trio.Event()
    got: list[tuple[str, int]] = []

    class Children(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.depth:
                if ctx.request.path == "/slow":
                    await slow_child_may_end.wait()
                    slow_child_ended.set()
                return Status.FINISH_REQUEST
            for url in ("/fast", "/slow"):
                child = ctx.clone_context(CloneFlags.BASICS)
                child.request.set_url(url)
                ctx.execute_request(child, trioiis.ExecuteFlags.BUFFER_RESPONSE)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: Any
        ) -> Status:
            got.append(("children", info.completion_bytes))
            return Status.CONTINUE  # resumes on the first child only

    class Later(HttpModule):
        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> Status:
            async def complete_later() -> None:
                slow_child_may_end.set()
                await slow_child_ended.wait()
                await trio.testing.wait_all_tasks_blocked()  # A's stale completion is queued
                ctx.post_completion(42)

            ctx.start_soon(complete_later)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: Any
        ) -> Status:
            got.append(("later", info.completion_bytes))
            return Status.FINISH_REQUEST

    modules = (
        ("children", register(Children, Notification.BEGIN_REQUEST)),
        ("later", register(Later, Notification.AUTHORIZE_REQUEST)),
    )
    async with running_server(*modules, root=site) as srv, srv.client() as client:
        with trio.fail_after(10):
            response = await client.get("/")
    assert response.status_code == 200
    assert got == [("children", 0), ("later", 42)]


async def test_min_body_rate_gives_up_on_a_trickling_upload(site: Path) -> None:
    seen: list[str] = []

    async def handler(ctx: HttpContext) -> Status:
        try:
            await ctx.request.read_all()
        except trioiis.ConnectionInvalidError as exc:
            seen.append(str(exc))
        return Status.FINISH_REQUEST

    limits = trioiis.Limits(min_body_rate=10_000, rate_grace=0.2, linger_timeout=0.1)
    async with running_server(on_begin(handler), root=site, limits=limits) as srv:
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                )
                with trio.move_on_after(10):
                    while not seen:  # a slow client: 100 bytes every 50 ms = 2 kB/s
                        await stream.send_all(b"x" * 100)
                        await trio.sleep(0.05)  # sleep-ok: simulates a slow client
    assert len(seen) == 1
    assert "slower than 10000 bytes/s" in seen[0]


async def test_min_send_rate_closes_a_client_that_reads_too_slowly(site: Path) -> None:
    (site / "big.bin").write_bytes(bytes(32 * 1024 * 1024))
    limits = trioiis.Limits(min_send_rate=1_000_000, rate_grace=0.3, linger_timeout=0.1)
    async with running_server(root=site, limits=limits) as srv:
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
                received = 0
                with trio.move_on_after(15):
                    while True:  # a slow reader: 16 KiB every 50 ms = 320 kB/s
                        try:
                            data = await stream.receive_some(16384)
                        except trio.BrokenResourceError:
                            break
                        if not data:
                            break
                        received += len(data)
                        await trio.sleep(0.05)  # sleep-ok: simulates a slow reader
            await wait_idle(srv.server)
    assert received < 32 * 1024 * 1024  # cut off, not served in full


async def test_server_counters_are_readable_from_a_module(site: Path) -> None:
    seen: list[int] = []

    async def handler(ctx: HttpContext) -> Status:
        seen.append(ctx.server_counters.requests_in_flight)
        return Status.FINISH_REQUEST

    async with running_server(on_begin(handler), root=site) as srv, srv.client() as client:
        await client.get("/")
        requests = srv.server.counters.requests
    assert seen == [1]
    assert requests == 1


async def test_send_response_disconnect_flag_closes_after_the_response(site: Path) -> None:
    class Closer(HttpModule):
        async def on_send_response(
            self, ctx: HttpContext, provider: trioiis.SendResponseProvider
        ) -> None:
            provider.set_flags(provider.get_flags() | trioiis.SendResponseFlags.DISCONNECT)

    async with running_server(("closer", register(Closer, N_SEND)), root=site) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        )
    assert statuses_in(raw) == [200]  # closed after the first: the second was not served
    assert b"connection: close" in raw.lower()


N_SEND = Notification.SEND_RESPONSE


@pytest.mark.parametrize("fmt", ["common", "combined", "w3c", "json"])
async def test_access_log_file_in_each_format_has_every_request(site: Path, fmt: str) -> None:
    log = site / "access.log"
    async with running_server(root=site, access_log=str(log), access_log_format=fmt) as srv:
        await raw_request(
            srv.port,
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: tester/1\r\n"
            b"Connection: close\r\n\r\n",
        )
        await raw_request(srv.port, b"GET / HTTP/2.0\r\nHost: x\r\n\r\n")  # refused: 505
    lines = [line for line in log.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    ok, refused = lines
    assert "/hello.txt" in ok
    assert "200" in ok
    assert "505" in refused
    assert "refused" in refused
    if fmt == "w3c":
        assert log.read_text().splitlines()[0] == "#Software: trioiis"
        assert len(ok.split(" ")) == len(trioiis._observability.accesslog.W3C_FIELDS.split(" "))
    if fmt == "combined":
        assert '"tester/1"' in ok
    if fmt == "json":
        import json

        assert json.loads(ok)["status"] == 200
