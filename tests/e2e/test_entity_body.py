"""Spec items 26-29: asynchronous entity reads, EOF, READ_ENTITY on every read, and the
client waiting for the end of the response while the request is parked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h11
import trio

import trioiis
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import CompletionInfo, HttpContext, HttpModule, Notification, Status
from trioiis._constants import ERROR_HANDLE_EOF, S_OK


async def test_item26_async_read_completion_bytes_and_remaining(site: Path) -> None:
    seen: list[tuple[int, int, bytes, int | None]] = []

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            assert ctx.request.read_entity_body_async(4) is True
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            remaining = ctx.request.remaining_entity_bytes
            seen.append((info.completion_bytes, info.completion_status, info.data, remaining))
            if info.ok:
                ctx.request.read_entity_body_async(4)
                return Status.PENDING
            ctx.response.write(b"|".join(d for _, _, d, _ in seen))
            return Status.FINISH_REQUEST

    reader = ("reader", register(Reader, Notification.BEGIN_REQUEST))
    async with running_server(reader, root=site) as srv, srv.client() as client:
        response = await client.post("/", content=b"0123456789")
    assert seen == [
        (4, S_OK, b"0123", 6),
        (4, S_OK, b"4567", 2),
        (2, S_OK, b"89", 0),
        (0, ERROR_HANDLE_EOF, b"", 0),
    ]
    assert response.text == "0123|4567|89|"


async def test_item27_reading_past_the_end_fails_with_handle_eof(site: Path) -> None:
    errors: list[int] = []

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            body = await ctx.request.read_all()
            try:
                await ctx.request.read_entity_body(10)
            except trioiis.HResultError as exc:
                errors.append(exc.hresult)
            ctx.response.write(body)
            return Status.FINISH_REQUEST

    reader = ("reader", register(Reader, Notification.BEGIN_REQUEST))
    async with running_server(reader, root=site) as srv, srv.client() as client:
        response = await client.post("/", content=b"abc")
        empty = await client.get("/")
    assert response.text == "abc"
    assert empty.text == ""
    assert errors == [ERROR_HANDLE_EOF, ERROR_HANDLE_EOF] == [0x80070026] * 2


async def test_item28_every_read_raises_read_entity_even_with_nothing_left(site: Path) -> None:
    entities: list[bytes] = []

    class Observer(HttpModule):
        async def on_read_entity(
            self, ctx: HttpContext, provider: trioiis.ReadEntityProvider
        ) -> None:
            entities.append(provider.get_entity())
            if not provider.get_entity() and ctx.request.path == "/supply":
                provider.set_entity(b"supplied")  # a handler may supply bytes at the end

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            parts = []
            for _ in range(3):
                try:
                    parts.append(await ctx.request.read_entity_body(3))
                except trioiis.HResultError:
                    parts.append(b"EOF")
            ctx.response.write(b",".join(parts))
            return Status.FINISH_REQUEST

    modules = (
        ("observer", register(Observer, Notification.READ_ENTITY)),
        ("reader", register(Reader, Notification.BEGIN_REQUEST)),
    )
    async with running_server(*modules, root=site) as srv, srv.client() as client:
        plain = await client.post("/", content=b"abcd")
        supplied = await client.post("/supply", content=b"")
    assert plain.text == "abc,d,EOF"
    assert supplied.text == "supplied,supplied,supplied"
    assert entities == [b"abc", b"d", b"", b"", b"", b""]


async def test_item29_client_waits_for_the_end_while_the_request_is_parked(site: Path) -> None:
    order: list[str] = []
    body_seen = trio.Event()

    class Parked(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.write(b"all of the body")
            await ctx.response.flush(more_data=True)

            async def resume_later() -> None:
                await body_seen.wait()
                await trio.testing.wait_all_tasks_blocked()  # the client is waiting on the socket
                order.append("resume")
                ctx.indicate_completion(Status.FINISH_REQUEST)

            ctx.start_soon(resume_later)
            return Status.PENDING

    parked = ("parked", register(Parked, Notification.BEGIN_REQUEST))
    async with running_server(parked, root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                conn = h11.Connection(h11.CLIENT)
                conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
                body = b""
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Data):
                        body += event.data
                        if body == b"all of the body":
                            order.append("client has the whole body")
                            body_seen.set()
                    elif isinstance(event, h11.EndOfMessage):
                        order.append("client sees the end")
                        break
    assert order == ["client has the whole body", "resume", "client sees the end"]


async def test_read_entity_body_async_after_cancel_io_completes_aborted(site: Path) -> None:
    seen: list[CompletionInfo] = []

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.request.read_entity_body_async(100)

            async def cancel() -> None:
                await trio.testing.wait_all_tasks_blocked()
                ctx.cancel_io()

            ctx.start_soon(cancel)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            seen.append(info)
            ctx.response.write(b"gave up")
            return Status.FINISH_REQUEST

    reader = ("reader", register(Reader, Notification.BEGIN_REQUEST))
    async with running_server(reader, root=site, limits=trioiis.Limits(linger_timeout=0.2)) as srv:
        raw = await raw_request(
            srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n"
        )
    assert statuses_in(raw) == [200]
    assert raw.endswith(b"gave up")
    assert seen == [CompletionInfo(0, trioiis._constants.ERROR_OPERATION_ABORTED)]
