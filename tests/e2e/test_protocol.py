"""HTTP/1.1 protocol behaviour of a real server on 127.0.0.1 port 0.

Rules (after trio-websocket's tests/test_connection.py):

* Every test is bounded by ``trio.fail_after`` (the ``bounded`` decorator), so none can hang.
* No real sleeps: readiness comes from ``running_server`` (``nursery.start``), from events set
  by the test module, or from ``trio.testing.wait_all_tasks_blocked`` (client and server share
  one trio run, and loopback delivers a send before it returns).
* Timeouts under test (head, keep-alive) are made tiny; tests assert outcomes, never timings.
* Raw sockets where the bytes matter (pipelining, limits, 100-continue), httpx elsewhere.
"""

from __future__ import annotations

import contextlib
import email.utils
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

import trioiis
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import HandlerMapping, HResultError, Notification
from trioiis._constants import ERROR_HANDLE_EOF

TEST_TIMEOUT = 10


def bounded(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """Fail the test instead of hanging when it runs past TEST_TIMEOUT."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        with trio.fail_after(TEST_TIMEOUT):
            await fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------- a test module


@dataclass
class EchoState:
    """What the echo module saw, and the events a test uses to step it."""

    remote_ports: list[int] = field(default_factory=list)
    reads: list[int] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    started: trio.Event = field(default_factory=trio.Event)
    go: trio.Event = field(default_factory=trio.Event)


def echo_module(state: EchoState) -> type[trioiis.HttpModule]:
    """A handler that answers with the length of the request body it read.

    ``/echo`` reads with ``read_entity_body(1024)``; ``/echo-iter`` with
    ``iter_entity_body(4096)``; ``/wait-echo`` first waits for ``state.go``; ``/ignore``
    answers without reading the body.
    """

    class Echo(trioiis.HttpModule):
        async def on_execute_request_handler(
            self, ctx: trioiis.HttpContext, provider: trioiis.EventProvider
        ) -> None:
            request, response = ctx.request, ctx.response
            state.remote_ports.append(request.remote_address[1])
            path = request.path
            total = 0
            if path == "/ignore":
                response.write("ignored")
                return
            if path == "/wait-echo":
                state.started.set()
                await state.go.wait()
                state.steps.append("read")
            if path == "/echo-iter":
                async for chunk in request.iter_entity_body(4096):
                    state.reads.append(len(chunk))
                    total += len(chunk)
            else:
                while True:
                    try:
                        chunk = await request.read_entity_body(1024)
                    except HResultError as exc:
                        if exc.hresult == ERROR_HANDLE_EOF:
                            break
                        raise
                    state.reads.append(len(chunk))
                    total += len(chunk)
            response.set_header(
                "X-Transfer-Encoding", request.get_header("transfer-encoding") or ""
            )
            response.write(str(total))

    return Echo


@contextlib.asynccontextmanager
async def echo_server(
    site: Path, state: EchoState | None = None, **config: Any
) -> AsyncIterator[Any]:
    """``running_server`` with the echo module handling /echo*, /wait-echo and /ignore."""
    module = echo_module(state or EchoState())
    handlers = (
        HandlerMapping("/echo*", ("echo",)),
        HandlerMapping("/wait-echo", ("echo",)),
        HandlerMapping("/ignore", ("echo",)),
    )
    async with running_server(
        ("echo", register(module, Notification.EXECUTE_REQUEST_HANDLER)),
        root=site,
        handlers=handlers,
        **config,
    ) as srv:
        yield srv


# ---------------------------------------------------------------- a raw client


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes


class RawClient:
    """One TCP connection; parses Content-Length-framed (or close-delimited) responses."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.eof = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if data:
            self.buffer += data
        else:
            self.eof = True

    async def read_response(self, *, head: bool = False) -> RawResponse:
        """The next response (a 1xx too); ``head=True`` for the answer to a HEAD."""
        while b"\r\n\r\n" not in self.buffer:
            assert not self.eof, f"connection closed inside a response: {bytes(self.buffer)!r}"
            await self._fill()
        end = self.buffer.index(b"\r\n\r\n") + 4
        lines = self.buffer[:end].decode("latin-1").split("\r\n")
        del self.buffer[:end]
        assert lines[0].startswith("HTTP/1.1 "), lines[0]
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        assert "transfer-encoding" not in headers  # not needed by these tests
        if head or status < 200 or status in (204, 304):
            return RawResponse(status, headers, b"")
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buffer) < length:
                assert not self.eof, "connection closed inside a response body"
                await self._fill()
            body = bytes(self.buffer[:length])
            del self.buffer[:length]
        else:
            body = await self.read_to_eof()
        return RawResponse(status, headers, body)

    async def read_to_eof(self) -> bytes:
        """Everything not yet parsed, up to the server closing the connection."""
        while not self.eof:
            await self._fill()
        rest = bytes(self.buffer)
        self.buffer.clear()
        return rest


@contextlib.asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield RawClient(stream)


def get(path: str = "/hello.txt", *extra: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: x", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---------------------------------------------------------------- keep-alive and pipelining


@bounded
async def test_keep_alive_two_requests_on_one_connection(site: Path) -> None:
    state = EchoState()
    async with echo_server(site, state) as srv, raw_client(srv.port) as client:
        await client.send(post("/echo", b"abc"))
        first = await client.read_response()
        await client.send(post("/echo", b"hello"))
        second = await client.read_response()
    assert (first.status, first.body) == (200, b"3")
    assert (second.status, second.body) == (200, b"5")
    assert "connection" not in first.headers
    assert len(state.remote_ports) == 2
    assert state.remote_ports[0] == state.remote_ports[1]  # the same socket


@bounded
async def test_keep_alive_httpx_client_reuses_connection(site: Path) -> None:
    state = EchoState()
    async with echo_server(site, state) as srv, srv.client() as client:
        for body in (b"a", b"bb", b"ccc"):
            response = await client.post("/echo", content=body)
            assert response.text == str(len(body))
    assert len(set(state.remote_ports)) == 1


@bounded
async def test_pipelining_responses_in_request_order(site: Path) -> None:
    async with echo_server(site) as srv:
        raw = await raw_request(
            srv.port,
            post("/echo", b"abc")
            + get("/hello.txt")
            + b"POST /echo-iter HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
            + get("/missing")
            + post("/echo", b"z" * 2000, "Connection: close"),
        )
    assert statuses_in(raw) == [200, 200, 200, 404, 200]
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert bodies[0] == b"3"
    assert bodies[1] == b"hello\n"
    assert bodies[2] == b"7"
    assert bodies[4] == b"2000"


@bounded
async def test_pipelining_many_requests_through_small_receive_buffer(site: Path) -> None:
    """Backpressure: the reader stops at ``receive_buffer`` and still serves every request."""
    limits = trioiis.Limits(receive_buffer=256)
    requests = [post("/echo", b"p" * (i * 7)) for i in range(60)]
    async with echo_server(site, limits=limits) as srv:
        raw = await raw_request(
            srv.port, b"".join(requests) + get("/hello.txt", "Connection: close")
        )
    assert statuses_in(raw) == [200] * 61
    bodies = [part.rpartition(b"\r\n\r\n")[2] for part in raw.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [str(i * 7).encode() for i in range(60)] + [b"hello\n"]


@bounded
async def test_pipelining_stray_empty_lines_between_requests_ignored(site: Path) -> None:
    """RFC 9112 §2.2: a server ignores empty lines before a request line (some clients send
    a CRLF after a POST body)."""
    async with echo_server(site) as srv:
        raw = await raw_request(
            srv.port,
            b"\r\n" + post("/echo", b"abc") + b"\r\n\n" + get("/hello.txt", "Connection: close"),
        )
    assert statuses_in(raw) == [200, 200]
    assert raw.endswith(b"hello\n")


# ---------------------------------------------------------------- request bodies


@bounded
async def test_request_body_content_length_streamed_in_pieces(site: Path) -> None:
    state = EchoState()
    body = bytes(range(256)) * 1200  # 300 KiB
    async with echo_server(site, state) as srv, srv.client() as client:
        response = await client.post("/echo", content=body)
    assert response.status_code == 200
    assert response.text == str(len(body))
    assert response.headers["x-transfer-encoding"] == ""
    assert sum(state.reads) == len(body)
    assert max(state.reads) <= 1024
    assert len(state.reads) >= len(body) // 1024


@bounded
async def test_request_body_chunked_streamed_in_pieces(site: Path) -> None:
    state = EchoState()
    pieces = [b"x" * n for n in (1, 5000, 70000, 3, 20000)]

    async def chunks() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async with echo_server(site, state) as srv, srv.client() as client:
        response = await client.post("/echo-iter", content=chunks())
    assert response.status_code == 200
    assert response.headers["x-transfer-encoding"] == "chunked"
    assert response.text == str(sum(map(len, pieces)))
    assert max(state.reads) <= 4096
    assert sum(state.reads) == sum(map(len, pieces))


@bounded
async def test_request_body_chunked_over_limit_413_and_closed(site: Path) -> None:
    limits = trioiis.Limits(max_body_bytes=1000)
    chunked = b"".join(b"%x\r\n%s\r\n" % (400, b"y" * 400) for _ in range(5)) + b"0\r\n\r\n"
    async with echo_server(site, limits=limits) as srv:
        raw = await raw_request(
            srv.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked
            + get("/hello.txt"),
        )
    assert statuses_in(raw) == [413]
    assert b"connection: close" in raw.lower()


# ---------------------------------------------------------------- Expect: 100-continue


@bounded
async def test_expect_continue_sent_only_when_handler_reads(site: Path) -> None:
    state = EchoState()
    async with echo_server(site, state) as srv, raw_client(srv.port) as client:
        await client.send(
            b"POST /wait-echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        await state.started.wait()
        await trio.testing.wait_all_tasks_blocked()
        # The handler runs but has not read: nothing may have been sent yet.
        assert not client.stream.socket.is_readable()
        state.go.set()
        interim = await client.read_response()
        assert interim.status == 100
        assert state.steps == ["read"]
        await client.send(b"hello")
        final = await client.read_response()
        assert (final.status, final.body) == (200, b"5")
        # The connection is still usable.
        await client.send(get("/hello.txt"))
        assert (await client.read_response()).body == b"hello\n"


@bounded
async def test_expect_continue_unread_body_connection_closed(site: Path) -> None:
    """A final response to an ``Expect: 100-continue`` request whose body was never asked
    for: the client may never send it, so the server closes instead of waiting for it."""
    # A long linger makes a server that waits for the body hit TEST_TIMEOUT.
    limits = trioiis.Limits(linger_timeout=60)
    async with echo_server(site, limits=limits) as srv, raw_client(srv.port) as client:
        await client.send(
            b"POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        response = await client.read_response()
        assert (response.status, response.body) == (200, b"ignored")
        assert await client.read_to_eof() == b""


# ---------------------------------------------------------------- methods, versions, headers


@bounded
async def test_head_method_content_length_without_body(site: Path) -> None:
    async with echo_server(site) as srv, raw_client(srv.port) as client:
        await client.send(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n" + get("/hello.txt"))
        head = await client.read_response(head=True)
        # The next bytes must be the next status line: no body came with the HEAD answer.
        following = await client.read_response()
    assert head.status == 200
    assert head.headers["content-length"] == "6"
    assert following.status == 200
    assert following.body == b"hello\n"


@bounded
async def test_connection_close_honoured(site: Path) -> None:
    async with echo_server(site) as srv, raw_client(srv.port) as client:
        await client.send(get("/hello.txt", "Connection: close") + get("/hello.txt"))
        response = await client.read_response()
        rest = await client.read_to_eof()
    assert response.status == 200
    assert response.headers["connection"] == "close"
    assert rest == b""  # the second request was not answered


@bounded
async def test_http10_request_answered_then_closed(site: Path) -> None:
    async with echo_server(site) as srv, raw_client(srv.port) as client:
        await client.send(b"GET /hello.txt HTTP/1.0\r\n\r\n")
        response = await client.read_response()
        rest = await client.read_to_eof()
    assert response.status == 200
    assert response.body == b"hello\n"
    assert rest == b""


@bounded
async def test_response_headers_date_and_server_present(site: Path) -> None:
    async with echo_server(site) as srv, srv.client() as client:
        responses = [await client.get("/hello.txt"), await client.get("/missing")]
    for response in responses:
        assert response.headers["server"] == "trioiis"
        assert email.utils.parsedate_to_datetime(response.headers["date"]).tzinfo is not None
    assert [r.status_code for r in responses] == [200, 404]


# ---------------------------------------------------------------- limits


def _refused_once(raw: bytes, status: int) -> None:
    """``raw`` holds exactly one response, ``status``, that closes the connection."""
    assert statuses_in(raw) == [status]
    head = raw.partition(b"\r\n\r\n")[0].lower()
    assert b"connection: close" in head
    assert b"date: " in head
    assert b"server: trioiis" in head


SMALL_LIMITS = trioiis.Limits(
    max_request_line=100,
    max_header_field=100,
    max_header_count=5,
    max_head_bytes=400,
    max_body_bytes=1000,
)


@bounded
async def test_limits_long_request_line_414_and_closed(site: Path) -> None:
    async with echo_server(site, limits=SMALL_LIMITS) as srv:
        raw = await raw_request(srv.port, get("/" + "a" * 200) + get("/hello.txt"))
    _refused_once(raw, 414)


@bounded
async def test_limits_long_header_field_431_and_closed(site: Path) -> None:
    async with echo_server(site, limits=SMALL_LIMITS) as srv:
        raw = await raw_request(srv.port, get("/hello.txt", "X-Big: " + "b" * 200) + get())
    _refused_once(raw, 431)


@bounded
async def test_limits_too_many_header_fields_431_and_closed(site: Path) -> None:
    fields = [f"X-{i}: v" for i in range(10)]
    async with echo_server(site, limits=SMALL_LIMITS) as srv:
        raw = await raw_request(srv.port, get("/hello.txt", *fields) + get())
    _refused_once(raw, 431)


@bounded
async def test_limits_head_too_large_431_and_closed(site: Path) -> None:
    fields = [f"X-{i}: " + "v" * 90 for i in range(5)]
    async with echo_server(site, limits=SMALL_LIMITS) as srv:
        raw = await raw_request(srv.port, get("/hello.txt", *fields) + get())
    _refused_once(raw, 431)


@bounded
async def test_limits_huge_content_length_413_at_once(site: Path) -> None:
    """413 comes before any body byte is sent (the client never sends one)."""
    async with echo_server(site, limits=SMALL_LIMITS) as srv, raw_client(srv.port) as client:
        await client.send(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000000\r\n\r\n"
        )
        raw = await client.read_to_eof()
    _refused_once(raw, 413)


@bounded
async def test_limits_truncated_head_400_and_closed(site: Path) -> None:
    """The client half-closes inside a head: 400, then the server closes."""
    async with echo_server(site) as srv, raw_client(srv.port) as client:
        await client.send(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n")
        await client.stream.send_eof()
        raw = await client.read_to_eof()
    _refused_once(raw, 400)


@bounded
async def test_request_line_malformed_400_from_h11_hint(site: Path) -> None:
    async with echo_server(site) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt\r\nHost: x\r\n\r\n" + get())
    _refused_once(raw, 400)


@bounded
async def test_header_field_malformed_400(site: Path) -> None:
    async with echo_server(site) as srv:
        raw = await raw_request(srv.port, get("/hello.txt", "Bad Name: v") + get())
    _refused_once(raw, 400)


@bounded
async def test_framing_content_length_with_transfer_encoding_400_no_smuggling(
    site: Path,
) -> None:
    smuggled = get("/hello.txt")
    body = b"0\r\n\r\n" + smuggled
    async with echo_server(site) as srv:
        raw = await raw_request(
            srv.port,
            f"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n".encode()
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + body,
        )
    _refused_once(raw, 400)
    assert b"hello" not in raw


@bounded
async def test_request_line_http_version_2_answered_505(site: Path) -> None:
    """h11 parses any ``HTTP/d.d``; a version other than 1.x must not be served as 1.1."""
    async with echo_server(site) as srv:
        raw = await raw_request(srv.port, b"GET /hello.txt HTTP/2.0\r\nHost: x\r\n\r\n")
    _refused_once(raw, 505)


@bounded
async def test_framing_unsupported_transfer_coding_501(site: Path) -> None:
    async with echo_server(site) as srv:
        raw = await raw_request(
            srv.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n" + get(),
        )
    _refused_once(raw, 501)


@bounded
async def test_request_body_malformed_chunk_400_and_closed(site: Path) -> None:
    async with echo_server(site) as srv:
        raw = await raw_request(
            srv.port,
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nabc\r\n0\r\n\r\n" + get(),
        )
    assert statuses_in(raw) == [400]


# ---------------------------------------------------------------- timeouts


@bounded
async def test_head_timeout_slowloris_408_then_closed(site: Path) -> None:
    limits = trioiis.Limits(head_timeout=0.2)
    async with echo_server(site, limits=limits) as srv, raw_client(srv.port) as client:
        await client.send(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nX-Slow")
        raw = await client.read_to_eof()
    _refused_once(raw, 408)


@bounded
async def test_head_timeout_silent_connection_closed_without_response(site: Path) -> None:
    limits = trioiis.Limits(head_timeout=0.2)
    async with echo_server(site, limits=limits) as srv, raw_client(srv.port) as client:
        assert await client.read_to_eof() == b""


@bounded
async def test_idle_timeout_closes_keep_alive_connection(site: Path) -> None:
    limits = trioiis.Limits(keep_alive_timeout=0.2)
    async with echo_server(site, limits=limits) as srv, raw_client(srv.port) as client:
        await client.send(get("/hello.txt"))
        response = await client.read_response()
        assert response.status == 200
        assert "connection" not in response.headers  # kept alive at first
        assert await client.read_to_eof() == b""


# ---------------------------------------------------------------- unread request bodies


@bounded
async def test_unread_body_small_drained_and_kept_alive(site: Path) -> None:
    state = EchoState()
    async with echo_server(site, state) as srv, raw_client(srv.port) as client:
        await client.send(post("/ignore", b"q" * 500))
        first = await client.read_response()
        await client.send(get("/hello.txt"))
        second = await client.read_response()
    assert (first.status, first.body) == (200, b"ignored")
    assert "connection" not in first.headers
    assert (second.status, second.body) == (200, b"hello\n")
    assert state.remote_ports == state.remote_ports[:1]  # only /ignore reached the module


@bounded
async def test_unread_body_large_connection_closed_after_full_response(site: Path) -> None:
    limits = trioiis.Limits(drain_body_bytes=1024)
    body = b"L" * 300_000
    async with echo_server(site, limits=limits) as srv, raw_client(srv.port) as client:
        received: list[RawResponse | bytes] = []

        async def send_body() -> None:
            with contextlib.suppress(trio.BrokenResourceError):
                await client.send(post("/ignore", body))

        async def read_answer() -> None:
            received.append(await client.read_response())
            received.append(await client.read_to_eof())

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_body)
            nursery.start_soon(read_answer)
    response, rest = received
    assert isinstance(response, RawResponse)
    assert (response.status, response.body) == (200, b"ignored")
    assert rest == b""  # closed: the unread body was not taken for a next request
