"""The hostile-request corpus: what a client on the open internet may send, and the answer.

Every case runs on a real server on 127.0.0.1 port 0. The case's bytes go out followed by a
well-formed *follower* request (``GET /hello.txt`` with ``Connection: close``) on the same
connection, and the test reads until the server closes. Then:

* the statuses on the wire are exactly the expected ones: a case whose connection must close
  (the framing is in doubt, or the request was refused) shows only its own answer, and the
  follower is never served; a case that is accepted shows its answer and then the follower's
  200 on the same connection;
* the output is a sequence of well-formed responses (parsed by h11 as a client) and nothing
  comes after a response that says ``Connection: close``;
* a *new* connection is served afterwards.

The decisions, and nginx's answer next to ours, are in docs/protocol.md; keep the two in step.
Waits are bounded by ``trio.fail_after`` and the server's own timeouts are left long, so a
server that waits for bytes it should have refused fails the test instead of passing late.

At the end, a hypothesis test sends valid and hostile requests cut at random points through
``HttpServer.handle_stream`` over ``trio.testing.memory_stream_pair``: the server never
crashes and always answers well-formed responses or closes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h11
import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import trioiis
from tests.helpers import exchange_in_pieces, raw_request, register, running_server, statuses_in
from trioiis import HandlerMapping, HResultError, Notification
from trioiis._constants import ERROR_HANDLE_EOF
from trioiis.testing.strategies import hostile_requests, requests

CASE_TIMEOUT = 8
MAX_BODY = 1024 * 1024
# Long waits: a server that waits (for a body, a drain, a linger) where it should answer and
# close at once runs into CASE_TIMEOUT and fails the case.
LIMITS = trioiis.Limits(max_body_bytes=MAX_BODY, linger_timeout=60, body_timeout=60)
FOLLOWER = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
HOST = b"Host: x"
GET = b"GET /hello.txt HTTP/1.1"
POST = b"POST /echo HTTP/1.1"
CHUNKED = b"Transfer-Encoding: chunked"


def message(line: bytes, *fields: bytes, body: bytes = b"", eol: bytes = b"\r\n") -> bytes:
    """A request: its line, its header lines, the empty line, then ``body``."""
    return b"".join(part + eol for part in (line, *fields)) + eol + body


def post(*fields: bytes, body: bytes = b"") -> bytes:
    return message(POST, HOST, *fields, body=body)


def chunked(body: bytes) -> bytes:
    return post(CHUNKED, body=body)


def get(*fields: bytes, line: bytes = GET) -> bytes:
    return message(line, HOST, *fields)


def line(request_line: bytes, *fields: bytes) -> bytes:
    return message(request_line, HOST, *fields)


HIDDEN = b"GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n"  # served, it would answer "<h1>dir</h1>"


@dataclass(frozen=True)
class Case:
    """``statuses``: the answers to ``request``. ``keep``: the connection stays open, so the
    follower is answered too (200). ``shows``: bytes the output must contain."""

    id: str
    request: bytes
    statuses: tuple[int, ...]
    keep: bool = False
    shows: bytes = b""


def refused(id: str, request: bytes, status: int) -> Case:
    return Case(id, request, (status,))


def accepted(id: str, request: bytes, status: int = 200, shows: bytes = b"") -> Case:
    return Case(id, request, (status,), keep=True, shows=shows)


CASES = [
    # ------------------------------------------------------------ Content-Length
    refused("cl-and-te", post(b"Content-Length: 5", CHUNKED, body=b"0\r\n\r\n"), 400),
    refused("te-and-cl", post(CHUNKED, b"Content-Length: 5", body=b"0\r\n\r\n"), 400),
    accepted(
        "cl-duplicate-identical",
        post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
        shows=b"echo 3 ",
    ),
    refused("cl-duplicate-conflicting", post(b"Content-Length: 3", b"Content-Length: 4"), 400),
    accepted("cl-list-identical", post(b"Content-Length: 3, 3", body=b"abc"), shows=b"echo 3 "),
    refused("cl-list-conflicting", post(b"Content-Length: 3, 4", body=b"abcd"), 400),
    refused("cl-negative", post(b"Content-Length: -1"), 400),
    refused("cl-plus-sign", post(b"Content-Length: +3", body=b"abc"), 400),
    refused("cl-non-numeric", post(b"Content-Length: abc"), 400),
    refused("cl-hex", post(b"Content-Length: 0x3", body=b"abc"), 400),
    refused("cl-decimal-point", post(b"Content-Length: 3.0", body=b"abc"), 400),
    refused("cl-inner-space", post(b"Content-Length: 1 2"), 400),
    refused("cl-empty", post(b"Content-Length:"), 400),
    accepted("cl-leading-zeros", post(b"Content-Length: 003", body=b"abc"), shows=b"echo 3 "),
    refused("cl-over-limit", post(b"Content-Length: %d" % (MAX_BODY + 1)), 413),
    refused("cl-20-digits", post(b"Content-Length: " + b"9" * 20), 413),
    refused("cl-25-digits", post(b"Content-Length: " + b"9" * 25), 413),
    refused("cl-5000-digits", post(b"Content-Length: " + b"9" * 5000), 413),
    refused(
        "cl-over-limit-expect-100",
        post(b"Content-Length: %d" % (MAX_BODY + 1), b"Expect: 100-continue"),
        413,
    ),
    # ------------------------------------------------------------ Transfer-Encoding
    refused("te-chunked-twice-in-list", post(b"Transfer-Encoding: chunked, chunked"), 501),
    refused("te-gzip-chunked", post(b"Transfer-Encoding: gzip, chunked"), 501),
    refused("te-two-fields", post(CHUNKED, CHUNKED, body=b"0\r\n\r\n"), 501),
    refused("te-identity", post(b"Transfer-Encoding: identity"), 501),
    refused("te-xchunked", post(b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), 501),
    accepted(
        "te-upper-case",
        post(b"Transfer-Encoding: CHUNKED", body=b"3\r\nabc\r\n0\r\n\r\n"),
        shows=b"echo 3 ",
    ),
    refused(
        "te-in-http-1.0",
        message(b"POST /echo HTTP/1.0", CHUNKED, body=b"3\r\nabc\r\n0\r\n\r\n"),
        400,
    ),
    # ------------------------------------------------------------ chunked bodies
    refused("chunk-size-not-hex", chunked(b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    refused("chunk-size-negative", chunked(b"-3\r\nabc\r\n0\r\n\r\n"), 400),
    refused("chunk-size-0x-prefix", chunked(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    refused("chunk-size-leading-space", chunked(b" 3\r\nabc\r\n0\r\n\r\n"), 400),
    accepted("chunk-size-trailing-space", chunked(b"3 \r\nabc\r\n0\r\n\r\n"), shows=b"echo 3 "),
    refused("chunk-size-20-hex-digits", chunked(b"F" * 20 + b"\r\nabc"), 413),
    refused("chunk-size-21-hex-digits", chunked(b"F" * 21 + b"\r\nabc"), 400),
    refused("chunk-size-over-limit", chunked(b"%x\r\nabc" % (MAX_BODY + 1)), 413),
    refused(
        "chunks-adding-up-over-limit",
        chunked(
            b"%x\r\n%s\r\n%x\r\nabc" % (MAX_BODY // 2, b"a" * (MAX_BODY // 2), MAX_BODY // 2 + 1)
        ),
        413,
    ),
    accepted("chunk-extensions", chunked(b"3;name=value\r\nabc\r\n0;x\r\n\r\n"), shows=b"echo 3 "),
    refused("chunk-extension-after-space", chunked(b"3 ;name=value\r\nabc\r\n0\r\n\r\n"), 400),
    refused("chunk-data-without-crlf", chunked(b"3\r\nabcXY0\r\n\r\n"), 400),
    refused("chunk-bare-lf", chunked(b"3\nabc\n0\n\n"), 400),
    accepted(
        "chunked-trailers", chunked(b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"), shows=b"echo 3 "
    ),
    refused("chunked-malformed-trailer", chunked(b"3\r\nabc\r\n0\r\nbad trailer\r\n\r\n"), 400),
    # The follower's bytes are read as the next chunk size.
    refused("chunk-last-chunk-missing", chunked(b"3\r\nabc\r\n"), 400),
    # ------------------------------------------------------------ line endings, control bytes
    accepted("bare-lf-line-endings", message(GET, HOST, eol=b"\n")),
    refused("bare-cr-line-ending", b"GET /hello.txt HTTP/1.1\rHost: x\r\n\r\n", 400),
    refused("nul-in-target", line(b"GET /hel\x00lo.txt HTTP/1.1"), 400),
    refused("control-byte-in-target", line(b"GET /hel\x01lo.txt HTTP/1.1"), 400),
    refused("del-in-target", line(b"GET /hel\x7flo.txt HTTP/1.1"), 400),
    refused("utf8-in-target", line(b"GET /h\xc3\xa9llo.txt HTTP/1.1"), 400),
    refused("nul-in-method", line(b"G\x00T /hello.txt HTTP/1.1"), 400),
    refused("nul-in-field-name", get(b"X-\x00A: v"), 400),
    refused("nul-in-field-value", get(b"X-A: v\x00v"), 400),
    refused("control-byte-in-field-value", get(b"X-A: v\x01v"), 400),
    refused("escape-in-field-value", get(b"X-A: v\x1b[31mv"), 400),
    refused("del-in-field-value", get(b"X-A: v\x7fv"), 400),
    refused("vertical-tab-in-field-value", get(b"X-A: v\x0bv"), 400),
    accepted("tab-in-field-value", get(b"X-A: a\tb")),
    accepted("obs-text-in-field-value", get(b"X-A: caf\xc3\xa9")),
    # ------------------------------------------------------------ field syntax
    refused("obs-fold-space", get(b"X-A: a", b" b"), 400),
    refused("obs-fold-tab", get(b"X-A: a", b"\tb"), 400),
    refused("obs-fold-first-line", message(GET, b" X-A: a", HOST), 400),
    refused("obs-fold-transfer-encoding", post(b"Transfer-Encoding:", b" chunked"), 400),
    refused("space-before-colon", get(b"X-A : v"), 400),
    refused("tab-before-colon", get(b"X-A\t: v"), 400),
    refused("space-in-field-name", get(b"X A: v"), 400),
    refused("field-without-colon", get(b"X-A"), 400),
    refused("empty-field-name", get(b": v"), 400),
    # ------------------------------------------------------------ request targets
    accepted(
        "absolute-form",
        message(b"GET http://example.test/echo HTTP/1.1", b"Host: other"),
        shows=b"host=example.test url=/echo",
    ),
    accepted(
        "absolute-form-https-query",
        message(b"GET HTTPS://example.test:8443/echo?a=1 HTTP/1.1", HOST),
        shows=b"host=example.test:8443 url=/echo?a=1",
    ),
    accepted("absolute-form-no-path", line(b"GET http://x HTTP/1.1"), shows=b"<h1>home</h1>"),
    refused("absolute-form-ftp-scheme", line(b"GET ftp://x/hello.txt HTTP/1.1"), 400),
    refused("absolute-form-userinfo", line(b"GET http://u@x/hello.txt HTTP/1.1"), 400),
    refused("absolute-form-empty-authority", line(b"GET http:///hello.txt HTTP/1.1"), 400),
    refused("options-asterisk", line(b"OPTIONS * HTTP/1.1"), 501),
    refused("get-asterisk", line(b"GET * HTTP/1.1"), 400),
    refused(
        "connect", message(b"CONNECT example.test:443 HTTP/1.1", b"Host: example.test:443"), 501
    ),
    accepted("trace", line(b"TRACE /hello.txt HTTP/1.1"), 405),
    refused("target-without-slash", line(b"GET hello.txt HTTP/1.1"), 400),
    refused("target-query-only", line(b"GET ?a=1 HTTP/1.1"), 400),
    refused("target-backslash", line(b"GET \\hello.txt HTTP/1.1"), 400),
    refused("target-with-space", line(b"GET /hel lo.txt HTTP/1.1"), 400),
    # ------------------------------------------------------------ methods
    refused("method-lower-case", line(b"get /hello.txt HTTP/1.1"), 501),
    refused("method-mixed-case", line(b"Get /hello.txt HTTP/1.1"), 501),
    accepted("method-unknown", line(b"FOO /hello.txt HTTP/1.1"), 405),
    refused("method-invalid-character", line(b"G@T /hello.txt HTTP/1.1"), 400),
    refused("method-missing", line(b" /hello.txt HTTP/1.1"), 400),
    # ------------------------------------------------------------ versions, request line
    refused("http-2.0", line(b"GET /hello.txt HTTP/2.0"), 505),
    refused("http-3.0", line(b"GET /hello.txt HTTP/3.0"), 505),
    refused("http-0.9-version", line(b"GET /hello.txt HTTP/0.9"), 505),
    refused("http-0.9-simple-request", b"GET /hello.txt\r\n", 400),
    accepted("http-1.2", line(b"GET /hello.txt HTTP/1.2")),
    refused("http-1.2-without-host", message(b"GET /hello.txt HTTP/1.2"), 400),
    refused("http-1.10", line(b"GET /hello.txt HTTP/1.10"), 400),
    refused("http-lower-case", line(b"GET /hello.txt http/1.1"), 400),
    refused("version-garbage", line(b"GET /hello.txt FOO/1.1"), 400),
    refused("request-line-two-spaces", line(b"GET  /hello.txt HTTP/1.1"), 400),
    refused("request-line-tab", line(b"GET\t/hello.txt HTTP/1.1"), 400),
    refused("request-line-trailing-space", line(b"GET /hello.txt HTTP/1.1 "), 400),
    # ------------------------------------------------------------ Host
    refused("host-missing", message(GET), 400),
    refused("host-duplicate", get(b"Host: y"), 400),
    refused("host-duplicate-identical", get(HOST), 400),
    refused("host-empty", message(GET, b"Host:"), 400),
    refused("host-space", message(GET, b"Host: a b"), 400),
    refused("host-slash", message(GET, b"Host: a/b"), 400),
    refused("host-empty-label", message(GET, b"Host: a..b"), 400),
    refused("host-userinfo", message(GET, b"Host: u@x"), 400),
    accepted("host-with-port", message(GET, b"Host: x:8080")),
    accepted("host-ipv6-literal", message(GET, b"Host: [::1]:8080")),
    # ------------------------------------------------------------ head limits
    refused("header-count-over-limit", get(*[b"X-%d: v" % i for i in range(100)]), 431),
    refused("header-count-1000", get(*[b"X-%d: v" % i for i in range(1000)]), 431),
    refused("request-line-too-long", line(b"GET /" + b"a" * 8200 + b" HTTP/1.1"), 414),
    refused("header-line-too-long", get(b"X-A: " + b"v" * 8200), 431),
    refused("head-too-large", get(*[b"X-%d: " % i + b"v" * 8000 for i in range(9)]), 431),
    # ------------------------------------------------------------ keep-alive, pipelining
    accepted(
        "http-1.0-keep-alive",
        b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        shows=b"Connection: keep-alive\r\n",
    ),
    Case("http-1.0-without-host", b"GET /hello.txt HTTP/1.0\r\n\r\n", (200,)),
    accepted("leading-empty-lines", b"\r\n\n\r\n" + get()),
    Case("pipelining-after-400", get() + line(b"GET /a b HTTP/1.1") + get(), (200, 400)),
    Case(
        "pipelining-after-413",
        get() + post(b"Content-Length: %d" % (MAX_BODY + 1)) + get(),
        (200, 413),
    ),
    Case("pipelining-after-505", line(b"GET / HTTP/2.0") + get(), (505,)),
    Case("pipelining-after-404", get(line=b"GET /missing HTTP/1.1") + get(), (404, 200), True),
    refused("leading-garbage-line", b"xyz\r\n" + get(), 400),
    refused("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\0" * 40, 400),
    # ------------------------------------------------------------ request smuggling pairs
    refused(
        "smuggle-cl-te",
        post(b"Content-Length: %d" % (5 + len(HIDDEN)), CHUNKED, body=b"0\r\n\r\n" + HIDDEN),
        400,
    ),
    refused(
        "smuggle-te-cl",
        post(CHUNKED, b"Content-Length: 4", body=b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN)),
        400,
    ),
    refused("smuggle-te-te", post(CHUNKED, b"Transfer-Encoding: x", body=b"0\r\n\r\n"), 501),
    refused("smuggle-te-vertical-tab", post(b"Transfer-Encoding:\x0bchunked"), 400),
    refused("smuggle-te-space-before-colon", post(b"Transfer-Encoding : chunked"), 400),
    accepted(
        "smuggle-request-in-body",
        post(b"Content-Length: %d" % len(HIDDEN), body=HIDDEN),
        shows=b"echo %d " % len(HIDDEN),
    ),
    accepted(
        "smuggle-request-in-chunk",
        chunked(b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN)),
        shows=b"echo %d " % len(HIDDEN),
    ),
    accepted("smuggle-request-in-get-body", get(b"Content-Length: %d" % len(HIDDEN)) + HIDDEN),
    # Not a framing header: the chunk that follows is read as the next request line.
    Case("smuggle-te-underscore", get(b"Transfer_Encoding: chunked") + b"0\r\n\r\n", (200, 400)),
]


def echo_module() -> type[trioiis.HttpModule]:
    """/echo*: reads the whole body, answers ``echo <bytes> host=<Host> url=<url>``."""

    class Echo(trioiis.HttpModule):
        async def on_execute_request_handler(
            self, ctx: trioiis.HttpContext, provider: trioiis.EventProvider
        ) -> None:
            request = ctx.request
            total = 0
            while True:
                try:
                    total += len(await request.read_entity_body(65536))
                except HResultError as exc:
                    if exc.hresult == ERROR_HANDLE_EOF:
                        break
                    raise
            host = request.get_header("host")
            ctx.response.write(f"echo {total} host={host} url={request.url}\n")

    return Echo


def responses_in(raw: bytes) -> Iterator[tuple[int, dict[bytes, bytes], bytes]]:
    """(status, headers, body) of each final response in a connection's whole output (the
    server closed it after). Fails on a malformed or cut response, or bytes after one that
    said ``Connection: close``."""
    rest = raw
    while rest:
        client = h11.Connection(h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
        client.receive_data(rest)
        client.receive_data(b"")  # the server closed: nothing more is coming
        response: h11.Response | None = None
        body = b""
        while True:
            item = client.next_event()
            if isinstance(item, h11.Response):
                response = item
            elif isinstance(item, h11.Data):
                body += item.data
            elif isinstance(item, h11.EndOfMessage):
                break
            else:
                assert isinstance(item, h11.InformationalResponse), f"cut response: {raw!r}"
        assert response is not None
        headers = dict(response.headers)
        rest = client.trailing_data[0]
        if headers.get(b"connection") == b"close":
            assert not rest, f"bytes after a closing response: {rest!r}"
        yield response.status_code, headers, body


async def served_afterwards(port: int) -> None:
    assert statuses_in(await raw_request(port, FOLLOWER, timeout=CASE_TIMEOUT)) == [200]


@pytest.mark.parametrize("http", ["h11", "fast"])  # both head parsers answer alike
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_request(
    site: Path, case: Case, http: str, caplog: pytest.LogCaptureFixture
) -> None:
    echo = ("echo", register(echo_module(), Notification.EXECUTE_REQUEST_HANDLER))
    handlers = (HandlerMapping("/echo*", ("echo",)),)
    async with running_server(echo, root=site, handlers=handlers, limits=LIMITS, http=http) as srv:
        raw = await raw_request(srv.port, case.request + FOLLOWER, timeout=CASE_TIMEOUT)
        await served_afterwards(srv.port)
    expected = [*case.statuses, 200] if case.keep else list(case.statuses)
    assert statuses_in(raw) == expected, raw[:300]
    answers = list(responses_in(raw))
    assert [status for status, _, _ in answers] == expected
    # Closed where it must be: the last answer says so (the follower's, if it was served).
    assert answers[-1][1].get(b"connection") == b"close"
    assert b"<h1>dir</h1>" not in raw  # a hidden request is never served
    assert case.shows in raw
    assert "internal error" not in caplog.text


async def test_chunk_size_over_limit_refused_before_its_data(site: Path) -> None:
    """413 comes as soon as the chunk header is read: the client sends nothing more and
    keeps its side open, so a server that waited for the chunk's data would hang here."""
    echo = ("echo", register(echo_module(), Notification.EXECUTE_REQUEST_HANDLER))
    handlers = (HandlerMapping("/echo*", ("echo",)),)
    async with running_server(echo, root=site, handlers=handlers, limits=LIMITS) as srv:
        with trio.fail_after(CASE_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(chunked(b"%x\r\n" % (MAX_BODY + 1)))
                raw = b""
                while b"\r\n\r\n" not in raw:
                    raw += await stream.receive_some(65536)
        assert statuses_in(raw) == [413]
        await served_afterwards(srv.port)


@pytest.mark.parametrize("http", ["h11", "fast"])
@pytest.mark.parametrize(
    "junk",
    [
        b"G@T / HTTP/1.1\r\n",  # a byte no method has
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ClientHello, cleartext port
        b"GET /a\x00b HTTP/1.1",  # NUL in the target
        b"GET / HTTQ/1.1",  # not the HTTP version token
        b"GET /\r\n",  # a request line without a version (HTTP/0.9)
    ],
    ids=["bad-method", "tls-hello", "nul-target", "bad-version", "http-0.9"],
)
async def test_junk_where_a_request_line_should_be_is_refused_at_once(
    site: Path, junk: bytes, http: str
) -> None:
    """400 as soon as the bytes cannot start a request line, as nginx does: the client sends
    nothing more and keeps its side open, and head_timeout is long, so a server that waited
    for the rest of the head would hang here."""
    async with running_server(root=site, limits=LIMITS, http=http) as srv:
        with trio.fail_after(CASE_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(junk)
                raw = b""
                while chunk := await stream.receive_some(65536):
                    raw += chunk
        assert statuses_in(raw) == [400]
        await served_afterwards(srv.port)


def test_protocol_page_lists_every_case_with_its_answer() -> None:
    """docs/protocol.md has one row per case, and its trioiis column is this corpus's answer."""
    page = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
    rows = {}
    for row in page.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if row.startswith("| `") and len(cells) == 5:
            rows[cells[0].strip("`")] = cells[1]
    for case in CASES:
        answer = " then ".join(map(str, case.statuses)) + (", kept" if case.keep else ", close")
        assert rows.get(case.id) == answer, f"docs/protocol.md: {case.id}"
    assert set(rows) == {case.id for case in CASES}


# ---------------------------------------------------------------- fuzzing the parser path

KEEP_ALIVE_REQUESTS = requests(methods=("GET", "POST", "PUT", "DELETE", "OPTIONS")).map(
    lambda raw: raw.replace(b"Connection: close\r\n", b"", 1)
)
WIRE = st.lists(
    st.one_of(KEEP_ALIVE_REQUESTS, hostile_requests(), st.binary(max_size=64)),
    min_size=1,
    max_size=3,
).map(b"".join)


class _Errors(logging.Handler):
    """Collects ERROR records, except a module failing on a client's bad body (a
    ``RequestBodyError``: the client gets its 400/413, and the pipeline logs it)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, trioiis._context.request.RequestBodyError):
            self.records.append(record)


async def _exchange(root: Path, wire: bytes, cuts: list[int]) -> bytes:
    """Send ``wire`` in pieces, letting the server run until it waits after each one, then
    EOF; read until the server closes. Every request goes to the echo module (no worker
    threads, so "the server waits" is exact). Raises if the server does not close in time
    or ``handle_stream`` raises."""
    server = trioiis.HttpServer(
        trioiis.ServerConfig(root=root, handlers=(HandlerMapping("*", ("echo",)),))
    )
    server.register_module("echo", register(echo_module(), Notification.EXECUTE_REQUEST_HANDLER))
    return await exchange_in_pieces(server, wire, cuts, timeout=5)


# TRIOIIS_FUZZ_EXAMPLES raises the count for a long run (see benchmarks/README.md).
FUZZ_EXAMPLES = int(os.environ.get("TRIOIIS_FUZZ_EXAMPLES", "100"))


@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(wire=WIRE, data=st.data())
def test_fuzz_split_requests_never_crash_the_server(
    tmp_path_factory: pytest.TempPathFactory, wire: bytes, data: st.DataObject
) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=8), label="cuts")
    root = tmp_path_factory.getbasetemp() / "fuzz-site"
    root.mkdir(exist_ok=True)
    (root / "hello.txt").write_text("hello\n")
    errors = _Errors()
    logger = logging.getLogger("trioiis")
    logger.addHandler(errors)
    try:
        raw = trio.run(_exchange, root, wire, cuts)
    finally:
        logger.removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]
    statuses = [status for status, _, _ in responses_in(raw)]  # well-formed, in order
    assert 500 not in statuses
    event(f"{len(statuses)} response(s)")
    for status in statuses:
        event(f"status {status}")
