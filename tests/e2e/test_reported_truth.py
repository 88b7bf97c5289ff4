"""What every report says about a request is what happened to it: the cases an audit found
reported wrong, each over real loopback sockets (the scenarios and helpers are
``test_outcomes.py``'s)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.e2e.test_outcomes import (
    asking,
    ended,
    logged,
)
from tests.e2e.ws_helpers import (
    NATIVE_HANDLERS,
    Seen,
    access_lines,
    echo,
    frame,
    handshake,
    in_thread,
    native_module,
)
from tests.h2_client import H2Client
from tests.helpers import Running, builtin, register, running_server
from trioiis import CloneFlags, HttpContext, HttpModule, Notification, Status


class ShortBody(HttpModule):
    """Declares 100 body bytes and writes 50: the head is queued, then the framing is
    refused, and the response is dropped before any byte of it went out."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        ctx.response.set_header("Content-Length", "100")
        ctx.response.write(b"a" * 50)
        return Status.FINISH_REQUEST


@contextlib.asynccontextmanager
async def logged_server(tmp_path: Path, *modules: Any) -> AsyncIterator[tuple[Running, Path]]:
    log = tmp_path / "access.log"
    async with running_server(*modules, root=tmp_path, access_log=str(log)) as srv:
        yield srv, log


@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
async def test_a_head_queued_but_never_sent_is_not_the_status_reported(
    tmp_path: Path, protocol: str
) -> None:
    """The client got no status line (HTTP/1.1: the connection closed with nothing; HTTP/2:
    RST_STREAM without HEADERS), so no report may say 200: the access log and the counters
    say 444, as for any response the server dropped unsent."""
    async with logged_server(
        tmp_path, ("short", register(ShortBody, Notification.BEGIN_REQUEST))
    ) as (
        srv,
        log,
    ):
        with trio.fail_after(10):
            if protocol == "h2":
                async with await H2Client.connect(srv.port) as client:
                    result = await client.get("/short")
                assert result.headers == {}
                assert result.reset is not None
            else:
                received = await asking(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")(srv.port)
                assert received == b""
            await ended(srv.server, 1)
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert logged(lines[0]) == (444, 0)
    assert lines[0].endswith(" aborted_by_server default")
    assert dict(srv.server.counters.responses_by_status) == {444: 1}


class StatusAfterHead(HttpModule):
    """``/child``: a child request for a missing file writes the response (its 404 is the
    status line); ``/late``: the status changes after the head went out."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        if ctx.get_parent_context() is not None:
            return Status.CONTINUE  # the child: static_file answers it
        if ctx.request.path == "/child":
            child = ctx.clone_context(CloneFlags.BASICS | CloneFlags.HEADERS)
            child.request.set_url("/missing.txt")
            await ctx.run_child(child)
        else:
            ctx.response.write(b"x" * 10)
            await ctx.response.flush(more_data=True)
            ctx.response.set_status(500)  # too late: the client has its 200
            ctx.response.write(b"y" * 10)
        return Status.FINISH_REQUEST


@pytest.mark.parametrize(("url", "wire_status"), [("/child", 404), ("/late", 200)])
async def test_the_status_reported_is_the_status_line_that_went_out(
    tmp_path: Path, url: str, wire_status: int
) -> None:
    module = ("probe", register(StatusAfterHead, Notification.BEGIN_REQUEST))
    async with logged_server(tmp_path, module) as (srv, log):
        with trio.fail_after(10):
            request = f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            received = await asking(request.encode())(srv.port)
            await ended(srv.server, 1)
    assert received.startswith(f"HTTP/1.1 {wire_status} ".encode())
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert logged(lines[0])[0] == wire_status
    assert lines[0].endswith(" completed default")
    assert dict(srv.server.counters.responses_by_status) == {wire_status: 1}


async def test_a_refused_head_is_counted_as_the_access_log_says(tmp_path: Path) -> None:
    """A head refused before the pipeline (here 431) has its access-log line; the status
    module and the metrics must count it too, not leave it out of every figure."""
    log = tmp_path / "access.log"
    async with running_server(
        builtin("status"), builtin("metrics"), root=tmp_path, access_log=str(log)
    ) as srv:
        with trio.fail_after(10):
            big = b"x-big: " + b"a" * 70_000 + b"\r\n"
            received = await asking(b"GET / HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")(srv.port)
            async with srv.client() as client:
                status = (await client.get("/_trioiis/status")).json()
                scrape = (await client.get("/_trioiis/metrics")).text
    assert received.startswith(b"HTTP/1.1 431 ")
    refused = [line for line in log.read_text().splitlines() if line.endswith(" refused -")]
    assert len(refused) == 1, refused
    assert logged(refused[0]) == (431, 0)
    assert status["heads_refused"] == {"431": 1}
    assert 'trioiis_heads_refused_total{status="431"} 1.0' in scrape


class FileToHead(HttpModule):
    """Answers with a file through ``transmit_file`` and records what it says it sent."""

    returned: list[int] = []  # noqa: RUF012 (one test at a time)

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        path = Path(ctx.get_server_variable("APPL_PHYSICAL_PATH")) / "data.bin"
        fd = os.open(path, os.O_RDONLY)
        try:
            ctx.response.set_header("Content-Length", "300000")
            FileToHead.returned.append(await ctx.response.transmit_file(fd, 0, 300_000))
        finally:
            os.close(fd)
        return Status.FINISH_REQUEST


@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
async def test_transmit_file_to_a_head_request_says_no_byte_was_sent(
    tmp_path: Path, protocol: str
) -> None:
    """A HEAD response has no body: ``transmit_file`` sends nothing and must say so (its
    count is the module's completion figure), over every protocol alike."""
    (tmp_path / "data.bin").write_bytes(b"d" * 300_000)
    FileToHead.returned = []
    module = ("file", register(FileToHead, Notification.BEGIN_REQUEST))
    async with logged_server(tmp_path, module) as (srv, log):
        with trio.fail_after(10):
            if protocol == "h2":
                async with await H2Client.connect(srv.port) as client:
                    result = await client.get("/f", method="HEAD")
                assert (result.status, bytes(result.body)) == (200, b"")
            else:
                head = b"HEAD /f HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                assert (await asking(head)(srv.port)).startswith(b"HTTP/1.1 200 ")
            await ended(srv.server, 1)
    assert FileToHead.returned == [0]
    assert logged(log.read_text().splitlines()[0]) == (200, 0)


async def test_the_byte_count_of_a_compressed_response_is_the_compressed_body(
    tmp_path: Path,
) -> None:
    """docs/operations.md: the bytes on the wire (after compression), framing left out."""
    (tmp_path / "page.txt").write_bytes(b"hello world " * 1000)
    async with logged_server(tmp_path) as (srv, log):
        with trio.fail_after(10):
            request = b"GET /page.txt HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n"
            received = await asking(request + b"Connection: close\r\n\r\n")(srv.port)
            await ended(srv.server, 1)
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"content-encoding: gzip" in head.lower()
    assert b"content-length" in head.lower()  # (so the body is exactly the gzip bytes)
    assert logged(log.read_text().splitlines()[0]) == (200, len(body))
    assert len(body) < 12_000


async def test_a_plain_http_request_on_the_tls_port_is_logged_and_counted(
    tmp_path: Path, tls_files: dict[str, Path]
) -> None:
    """The server answers it 400 in clear text: like any head it refuses, it gets an
    access-log line and is counted, not answered off the books."""
    log = tmp_path / "access.log"
    async with running_server(root=tmp_path, access_log=str(log), **tls_files) as srv:
        with trio.fail_after(10):
            request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            assert (await asking(request)(srv.port)).startswith(b"HTTP/1.1 400 ")
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    assert logged(lines[0]) == (400, 0)
    assert lines[0].endswith(" refused -")
    assert dict(srv.server.counters.heads_refused) == {400: 1}


async def test_websocket_bytes_each_way_are_exactly_what_crossed_the_wire() -> None:
    """A raw client sends two frames and a close, reads until the server closes: the line's
    byte count is every byte it got after the 101, ``ws_in`` every byte it sent after its
    handshake, and ``ws_close`` its close code."""
    sent = frame(0x1, b"hello") + frame(0x2, b"b" * 300)
    close = frame(0x8, (4001).to_bytes(2, "big") + b"bye")

    with access_lines() as log:
        async with running_server(native_module(echo, Seen()), handlers=NATIVE_HANDLERS) as srv:

            def talk() -> bytes:
                sock = handshake(srv.port)
                sock.sendall(sent)
                got = b""
                while len(got) < 2 + 5 + 4 + 300:  # the two echoes
                    got += sock.recv(65536)
                sock.sendall(close)
                while chunk := sock.recv(65536):
                    got += chunk
                sock.close()
                return got

            received = await in_thread(talk)
            line = await log.wait_for("/ws")
    status, sent_bytes = logged(line)
    assert status == 101
    assert sent_bytes == len(received)
    assert int(line.split("ws_in=")[1].split()[0]) == len(sent) + len(close)
    assert "ws_close=4001" in line
    assert "completed" in line


async def test_a_malformed_http2_request_is_logged_and_counted_as_refused(
    tmp_path: Path,
) -> None:
    """HTTP/2's refusal of a malformed request (RST_STREAM PROTOCOL_ERROR, here a ``:path``
    not in origin form) is HTTP/1.1's 400 for a malformed head: it gets its access-log line
    and its count, as nginx logs it (400)."""
    async with logged_server(tmp_path) as (srv, log):
        with trio.fail_after(10):
            async with await H2Client.connect(srv.port) as client:
                refused = await client.get("http://127.0.0.1/x")
                assert refused.reset is not None
                assert (await client.get("/missing")).status == 404  # (the next one goes on)
            await ended(srv.server, 1)
    lines = log.read_text().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(" refused -")
    assert logged(lines[0]) == (400, 0)
    assert dict(srv.server.counters.heads_refused) == {400: 1}
