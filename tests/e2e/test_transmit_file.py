"""``HttpResponse.transmit_file``: a file range as body bytes, zero-copy on plain sockets.

Real servers on 127.0.0.1; the bytes are checked against the file, with Content-Length and
chunked framing, over TLS (worker-thread reads), from a BUFFER_RESPONSE child, and under
``cancel_io()`` while the client does not read.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trustme

import trioiis
from tests.e2e.conftest import client_context
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import ExecuteFlags, HttpContext, HttpModule, Notification, Status

DATA = bytes(range(256)) * 8192  # 2 MiB: more than a socket buffer takes at once
Handler = Callable[[HttpContext, int], Awaitable[Status]]


def transmitting(path: Path, handler: Handler) -> tuple[str, Callable[..., None]]:
    """A BEGIN_REQUEST module that opens ``path`` and runs ``handler(ctx, fd)``."""

    class Module(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.path.startswith("/skip"):
                return Status.CONTINUE  # children fetch static files
            fd = os.open(path, os.O_RDONLY)
            try:
                return await handler(ctx, fd)
            finally:
                os.close(fd)

    return "transmit", register(Module, Notification.BEGIN_REQUEST)


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    return path


async def test_range_with_content_length_and_bytes_around_it(site: Path, big: Path) -> None:
    async def handler(ctx: HttpContext, fd: int) -> Status:
        ctx.response.set_header("Content-Length", str(3 + 1000 + 3))
        ctx.response.write(b"<<<")
        sent = await ctx.response.transmit_file(fd, 5, 1000)
        ctx.response.write(b">>>")
        assert sent == 1000
        return Status.FINISH_REQUEST

    async with (
        running_server(transmitting(big, handler), root=site) as srv,
        srv.client() as client,
    ):
        first = await client.get("/")
        again = await client.get("/")  # the same connection goes on
    assert first.content == b"<<<" + DATA[5:1005] + b">>>"
    assert again.content == first.content


async def test_without_a_length_the_file_goes_out_chunked(site: Path, big: Path) -> None:
    async def handler(ctx: HttpContext, fd: int) -> Status:
        await ctx.response.transmit_file(fd, 0, len(DATA))
        await ctx.response.transmit_file(fd, 0, 10)
        return Status.FINISH_REQUEST

    async with running_server(transmitting(big, handler), root=site) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, _ = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower()
    async with (
        running_server(transmitting(big, handler), root=site) as srv,
        srv.client() as client,
    ):
        response = await client.get("/")
    assert response.content == DATA + DATA[:10]


async def test_longer_than_the_content_length_fails_before_sending(site: Path, big: Path) -> None:
    seen: list[int] = []

    async def handler(ctx: HttpContext, fd: int) -> Status:
        ctx.response.set_header("Content-Length", "10")
        try:
            await ctx.response.transmit_file(fd, 0, 11)
        except trioiis.HResultError as exc:
            seen.append(exc.hresult)
        return Status.FINISH_REQUEST

    async with running_server(transmitting(big, handler), root=site) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert seen == [trioiis._constants.E_FAIL]
    assert statuses_in(raw) == [200]  # the head had gone out; then the connection was cut
    assert len(raw.partition(b"\r\n\r\n")[2]) == 0


async def test_over_tls_the_file_is_read_in_pieces(
    site: Path, big: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async def handler(ctx: HttpContext, fd: int) -> Status:
        ctx.response.set_header("Content-Length", str(len(DATA)))
        await ctx.response.transmit_file(fd, 0, len(DATA))
        return Status.FINISH_REQUEST

    context: ssl.SSLContext = client_context(ca)
    async with running_server(transmitting(big, handler), root=site, **tls_files) as srv:
        url = f"https://127.0.0.1:{srv.port}/"
        async with httpx.AsyncClient(verify=context, timeout=10) as client:
            response = await client.get(url)
    assert response.content == DATA


async def test_a_buffered_child_gives_its_parent_the_file_bytes(site: Path, big: Path) -> None:
    parts: list[bytes] = []

    async def handler(ctx: HttpContext, fd: int) -> Status:
        if ctx.get_parent_context() is not None:
            await ctx.response.transmit_file(fd, 100, 50)
            return Status.FINISH_REQUEST
        child = ctx.clone_context()
        await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
        parts.append(ctx.response.buffered)
        ctx.response.clear_body()
        ctx.response.write(b"parent saw %d bytes" % len(parts[0]))
        return Status.FINISH_REQUEST

    async with (
        running_server(transmitting(big, handler), root=site) as srv,
        srv.client() as client,
    ):
        response = await client.get("/")
    assert parts == [DATA[100:150]]
    assert response.text == "parent saw 50 bytes"


async def test_cancel_io_aborts_a_transmit_the_client_does_not_read(
    site: Path, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.bin"
    huge.write_bytes(bytes(32 * 1024 * 1024))  # far more than the socket buffers hold
    seen: dict[str, Any] = {}
    aborted = trio.Event()

    async def handler(ctx: HttpContext, fd: int) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen["cancelled"] = ctx.cancel_io()

        ctx.response.set_header("Content-Length", str(32 * 1024 * 1024))
        ctx.start_soon(canceller)
        try:
            await ctx.response.transmit_file(fd, 0, 32 * 1024 * 1024)
        except trioiis.OperationAbortedError as exc:
            seen["completion"] = exc.completion
            ctx.response.reset_connection()
            aborted.set()
        return Status.FINISH_REQUEST

    async with running_server(transmitting(huge, handler), root=site) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                await aborted.wait()  # the client reads nothing meanwhile
        assert srv.server.counters.io_cancelled == 1
    assert seen["cancelled"] == 1
    moved = seen["completion"].completion_bytes
    assert 0 < moved < 32 * 1024 * 1024  # the kernel took some, then the socket was full
