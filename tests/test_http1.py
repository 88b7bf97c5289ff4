"""Sans-IO tests of the protocol layer's pure parts: HeadScanner, check_framing,
error_response_bytes. Bytes in, outcomes out; no sockets, no trio.

HeadScanner is fed the way ``Http1Connection.next_request`` feeds it: the whole (growing)
buffer each time, until it returns an end offset or raises. The central property is that the
outcome never depends on how the bytes were split on the wire.
"""

from __future__ import annotations

import email.utils

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis._protocol.http1 import (
    HeadError,
    HeadScanner,
    Limits,
    check_framing,
    check_head_bytes,
    check_request,
    chunk_bytes_declared,
    error_response_bytes,
    oversized_length,
    parse_head,
    valid_host,
)

Outcome = tuple[str, int]  # ("head", end) | ("error", status) | ("incomplete", 0)

SMALL = Limits(max_request_line=64, max_header_field=32, max_header_count=4, max_head_bytes=256)

VALID_HEAD = (
    b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-Folded: a\r\n\r\n"
)


def scan(data: bytes, cuts: list[int] | tuple[int, ...], limits: Limits) -> Outcome:
    """Feed ``data`` cut at ``cuts`` (offsets) into a fresh scanner, as the connection does."""
    scanner = HeadScanner(limits)
    buf = bytearray()
    previous = 0
    for cut in sorted({*cuts, len(data)}):
        buf += data[previous:cut]
        previous = cut
        try:
            end = scanner.feed(buf)
        except HeadError as exc:
            return ("error", exc.status)
        if end is not None:
            return ("head", end)
    return ("incomplete", 0)


def bytewise(data: bytes, limits: Limits) -> Outcome:
    return scan(data, range(len(data)), limits)


def head_with(
    *,
    target_len: int = 1,
    fields: list[int] | None = None,
    leading: bytes = b"",
    eol: bytes = b"\r\n",
) -> bytes:
    """A GET head whose request line and header lines have the given lengths (EOL excluded)."""
    target = b"/" + b"a" * (target_len - 1)
    lines = [b"GET " + target + b" HTTP/1.1"]
    for i, length in enumerate(fields if fields is not None else [10]):
        name = b"x%d: " % i
        lines.append(name + b"v" * max(0, length - len(name)))
    return leading + b"".join(line + eol for line in lines) + eol


# ---------------------------------------------------------------- strategies

eols = st.sampled_from([b"\r\n", b"\n"])
leading_blank_lines = st.lists(eols, max_size=3).map(b"".join)
pipelined_tails = st.sampled_from([b"", b"hello", b"GET /next HTTP/1.1\r\n", b"\r\n" * 3])


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[int]:
    return draw(st.lists(st.integers(0, len(data)), max_size=12))


@st.composite
def valid_heads(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(leading empty lines, head) within SMALL's limits."""
    leading = draw(leading_blank_lines)
    eol = draw(eols)
    target_len = draw(st.integers(1, SMALL.max_request_line - len(b"GET  HTTP/1.1")))
    fields = draw(st.lists(st.integers(4, SMALL.max_header_field), max_size=4))
    head = head_with(target_len=target_len, fields=fields, eol=eol)
    return leading, head


# ---------------------------------------------------------------- HeadScanner


def test_head_scanner_valid_head_same_outcome_at_every_split_point() -> None:
    data = VALID_HEAD + b"hello"
    expected = ("head", len(VALID_HEAD))
    assert scan(data, [], Limits()) == expected
    for point in range(len(data) + 1):
        assert scan(data, [point], Limits()) == expected, point
    assert bytewise(data, Limits()) == expected


@settings(max_examples=200, deadline=None)
@given(valid_heads(), pipelined_tails, st.data())
def test_head_scanner_valid_head_found_under_random_splits(
    head: tuple[bytes, bytes], tail: bytes, data: st.DataObject
) -> None:
    leading, body = head
    wire = leading + body + tail
    cuts = data.draw(splits(wire))
    assert scan(wire, cuts, SMALL) == ("head", len(leading) + len(body))


def test_head_scanner_incomplete_head_returns_none() -> None:
    scanner = HeadScanner(Limits())
    assert scanner.feed(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    assert scanner.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r") is None
    assert scanner.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == 27


def test_head_scanner_leading_empty_lines_skipped_and_start_reported() -> None:
    """RFC 9112 §2.2: empty lines before a request line are ignored, in any CRLF/LF mix;
    ``start`` is where h11 must begin (it refuses them itself)."""
    leading = b"\r\n\n\r\n\n"
    data = leading + VALID_HEAD
    for cuts in ([], list(range(len(data)))):
        scanner = HeadScanner(Limits())
        buf = bytearray()
        end = None
        previous = 0
        for cut in [*cuts, len(data)]:
            buf += data[previous:cut]
            previous = cut
            end = scanner.feed(buf)
            if end is not None:
                break
        assert end == len(data)
        assert scanner.start == len(leading)


def test_head_scanner_limits_are_inclusive() -> None:
    limits = Limits(max_request_line=20, max_header_field=12, max_header_count=2, max_head_bytes=60)
    head = head_with(target_len=20 - len(b"GET  HTTP/1.1"), fields=[12, 12])
    assert len(head) <= 60
    assert scan(head, [], limits) == ("head", len(head))
    assert bytewise(head, limits) == ("head", len(head))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40), leading_blank_lines, eols, st.data())
def test_head_scanner_long_request_line_414_under_any_split(
    extra: int, leading: bytes, eol: bytes, data: st.DataObject
) -> None:
    target_len = SMALL.max_request_line - len(b"GET  HTTP/1.1") + extra
    wire = head_with(target_len=target_len, leading=leading, eol=eol)
    if eol == b"\n" and extra == 1:
        # A bare-LF line may use the byte a CR would have taken: still within the limit.
        assert scan(wire, data.draw(splits(wire)), SMALL)[0] == "head"
        return
    assert scan(wire, data.draw(splits(wire)), SMALL) == ("error", 414)


@settings(max_examples=150, deadline=None)
@given(st.integers(2, 40), st.integers(0, 3), eols, st.data())
def test_head_scanner_long_header_field_431_under_any_split(
    extra: int, position: int, eol: bytes, data: st.DataObject
) -> None:
    fields = [10, 10, 10, 10]
    fields[position] = SMALL.max_header_field + extra
    wire = head_with(fields=fields, eol=eol)
    assert scan(wire, data.draw(splits(wire)), SMALL) == ("error", 431)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), eols, st.data())
def test_head_scanner_too_many_fields_431_under_any_split(
    extra: int, eol: bytes, data: st.DataObject
) -> None:
    wire = head_with(fields=[8] * (SMALL.max_header_count + extra), eol=eol)
    assert scan(wire, data.draw(splits(wire)), SMALL) == ("error", 431)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 40), st.data())
def test_head_scanner_head_too_large_431_under_any_split(extra: int, data: st.DataObject) -> None:
    limits = Limits(
        max_request_line=64, max_header_field=64, max_header_count=100, max_head_bytes=200
    )
    wire = head_with(fields=[60, 60, 60, 20 + extra])
    assert len(wire) > 200
    assert scan(wire, data.draw(splits(wire)), limits) == ("error", 431)


def test_head_scanner_endless_empty_lines_431() -> None:
    """A flood of CRLFs before any request line is still bounded by ``max_head_bytes``."""
    limits = Limits(max_head_bytes=100)
    assert scan(b"\r\n" * 200, [], limits) == ("error", 431)
    assert bytewise(b"\r\n" * 200, limits) == ("error", 431)


def test_head_scanner_request_line_limit_above_head_limit_same_answer() -> None:
    """When the request line limit exceeds the head limit, the limit broken first answers,
    however the bytes arrive (here the head limit, at byte 51)."""
    limits = Limits(max_request_line=100, max_head_bytes=50)
    wire = b"GET /" + b"a" * 200 + b" HTTP/1.1\r\n\r\n"
    assert scan(wire, [], limits) == ("error", 431)
    assert scan(wire, [40], limits) == ("error", 431)
    assert bytewise(wire, limits) == ("error", 431)


# Pieces that make heads and near-heads: every CR/LF combination, long runs, field syntax.
_PIECES = st.sampled_from(
    [b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"a", b"a" * 7, b"a" * 33, b": ", b"GET / HTTP/1.1"]
)
_LIMITS = st.builds(
    Limits,
    max_request_line=st.integers(1, 80),
    max_header_field=st.integers(1, 60),
    max_header_count=st.integers(0, 6),
    max_head_bytes=st.integers(1, 200),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=30).map(b"".join), _LIMITS, st.data())
def test_head_scanner_outcome_independent_of_splits(
    wire: bytes, limits: Limits, data: st.DataObject
) -> None:
    whole = scan(wire, [], limits)
    assert scan(wire, data.draw(splits(wire)), limits) == whole
    assert bytewise(wire, limits) == whole


# ---------------------------------------------------------------- check_framing


def test_check_framing_no_length_returns_none() -> None:
    assert check_framing([(b"host", b"x")], Limits()) is None


def test_check_framing_content_length_returned() -> None:
    assert check_framing([(b"content-length", b"42")], Limits()) == 42


def test_check_framing_chunked_returns_none() -> None:
    assert check_framing([(b"transfer-encoding", b"chunked")], Limits()) is None


def test_check_framing_identical_lengths_accepted() -> None:
    headers = [(b"content-length", b"7"), (b"content-length", b" 7 ")]
    assert check_framing(headers, Limits()) == 7


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
        [(b"transfer-encoding", b"chunked"), (b"content-length", b"0")],
        [(b"content-length", b"5"), (b"content-length", b"6")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"1e3")],
        [(b"content-length", b"")],
    ],
)
def test_check_framing_bad_framing_400(headers: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(HeadError) as info:
        check_framing(headers, Limits())
    assert info.value.status == 400


def test_check_framing_length_above_limit_413() -> None:
    limits = Limits(max_body_bytes=1000)
    assert check_framing([(b"content-length", b"1000")], limits) == 1000
    with pytest.raises(HeadError) as info:
        check_framing([(b"content-length", b"1001")], limits)
    assert info.value.status == 413


@given(st.integers(0, 10**19), st.integers(0, 10**12))
def test_check_framing_length_limit_decides_413(length: int, limit: int) -> None:
    headers = [(b"content-length", str(length).encode())]
    if length > limit:
        with pytest.raises(HeadError) as info:
            check_framing(headers, Limits(max_body_bytes=limit))
        assert info.value.status == 413
    else:
        assert check_framing(headers, Limits(max_body_bytes=limit)) == length


# ---------------------------------------------------------------- error_response_bytes


def parse_response(raw: bytes) -> tuple[h11.Response, bytes, bool]:
    """Parse ``raw`` as the answer to a GET, with h11 as the client; the flag is True when it
    is exactly one complete response that closes the connection."""
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    client.receive_data(raw)
    response = client.next_event()
    assert isinstance(response, h11.Response)
    body = b""
    while True:
        event = client.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage)
            break
    complete = client.their_state is h11.MUST_CLOSE and client.trailing_data == (b"", False)
    return response, body, complete


@pytest.mark.parametrize("status", [400, 408, 413, 414, 431, 500, 503])
def test_error_response_bytes_is_a_complete_closing_response(status: int) -> None:
    raw = error_response_bytes(status)
    response, body, complete = parse_response(raw)
    assert complete
    assert response.status_code == status
    assert response.http_version == b"1.1"
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close"
    assert headers[b"server"] == b"trioiis"
    assert email.utils.parsedate_to_datetime(headers[b"date"].decode()) is not None
    assert int(headers[b"content-length"]) == len(body)
    assert body.startswith(str(status).encode())


def test_error_response_bytes_reason_phrases() -> None:
    assert error_response_bytes(414).startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert error_response_bytes(431).startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert error_response_bytes(408).startswith(b"HTTP/1.1 408 Request Timeout\r\n")


@given(st.integers(400, 599))
def test_error_response_bytes_any_error_status_parses(status: int) -> None:
    response, body, _ = parse_response(error_response_bytes(status))
    assert response.status_code == status
    assert int(dict(response.headers)[b"content-length"]) == len(body)


# ---------------------------------------------------------------- checks h11 leaves to us
# (docs/protocol.md gives each decision; tests/e2e/test_hostile.py runs them on sockets)


@pytest.mark.parametrize(
    ("head", "message"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x1bb\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x7fb\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n", "control character"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", "obsolete line folding"),
        (b"GET / HTTP/1.1\nHost: x\nX: a\n\tb\n\n", "obsolete line folding"),
    ],
)
def test_check_head_bytes_refuses_control_bytes_and_obs_fold(head: bytes, message: str) -> None:
    with pytest.raises(HeadError, match=message) as info:
        check_head_bytes(head)
    assert info.value.status == 400


def test_check_head_bytes_accepts_tab_obs_text_and_looks_only_inside_the_head() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\nX: a\tb \xc3\xa9\r\n\r\n"
    check_head_bytes(head)
    # Body bytes after ``end`` and empty lines before ``start`` are not the head's.
    check_head_bytes(b"\x01\r\n" + head + b"\x01\n body", 3, 3 + len(head))


@pytest.mark.parametrize(
    "host", [b"x", b"example.test", b"example.test.", b"x:8080", b"x:", b"[::1]", b"[::1]:80",
             b"127.0.0.1", b"a-b_c~d", b"xn--bcher-kva.example", b"%41"]
)  # fmt: skip
def test_valid_host_accepts_uri_host_and_port(host: bytes) -> None:
    assert valid_host(host)


@pytest.mark.parametrize(
    "host", [b"", b"a b", b"a/b", b"a\\b", b"u@x", b"a..b", b"x:80a", b"[::1", b"x\tz", b":80"]
)
def test_valid_host_refuses_everything_else(host: bytes) -> None:
    assert not valid_host(host)


HOST_X = [(b"host", b"x")]


@pytest.mark.parametrize(
    ("method", "target", "version", "headers", "status"),
    [
        (b"GET", b"/", b"2.0", HOST_X, 505),
        (b"GET", b"/", b"0.9", HOST_X, 505),
        (b"get", b"/", b"1.1", HOST_X, 501),
        (b"Get", b"/", b"1.1", HOST_X, 501),
        (b"CONNECT", b"x:443", b"1.1", HOST_X, 501),
        (b"OPTIONS", b"*", b"1.1", HOST_X, 501),
        (b"GET", b"*", b"1.1", HOST_X, 400),
        (b"GET", b"x", b"1.1", HOST_X, 400),
        (b"GET", b"?a", b"1.1", HOST_X, 400),
        (b"GET", b"ftp://x/", b"1.1", HOST_X, 400),
        (b"GET", b"http://u@x/", b"1.1", HOST_X, 400),
        (b"GET", b"http:///a", b"1.1", HOST_X, 400),
        (b"GET", b"/", b"1.2", [], 400),
        (b"GET", b"/", b"1.1", [(b"host", b"a b")], 400),
        (b"GET", b"/", b"1.0", [(b"host", b"")], 400),
        (b"POST", b"/", b"1.0", [(b"transfer-encoding", b"chunked")], 400),
    ],
)
def test_check_request_refusals(
    method: bytes, target: bytes, version: bytes, headers: list[tuple[bytes, bytes]], status: int
) -> None:
    with pytest.raises(HeadError) as info:
        check_request(method, target, version, headers)
    assert info.value.status == status


@pytest.mark.parametrize(
    ("target", "origin", "host"),
    [
        (b"http://example.test/a?b", b"/a?b", b"example.test"),
        (b"HTTPS://example.test:8443", b"/", b"example.test:8443"),
        (b"http://[::1]:80?q", b"/?q", b"[::1]:80"),
    ],
)
def test_check_request_absolute_form_becomes_origin_form_and_its_host_wins(
    target: bytes, origin: bytes, host: bytes
) -> None:
    """RFC 9112 §3.2.2: the target's authority replaces the Host field."""
    headers = [(b"host", b"other"), (b"accept", b"*/*")]
    assert check_request(b"GET", target, b"1.1", headers) == (
        origin,
        [(b"host", host), (b"accept", b"*/*")],
    )


@pytest.mark.parametrize(
    ("method", "version", "headers"),
    [
        (b"GET", b"1.1", HOST_X),
        (b"GET", b"1.2", HOST_X),  # a higher minor version is read as 1.1
        (b"GET", b"1.0", []),  # Host is optional in HTTP/1.0
        (b"FOO", b"1.1", HOST_X),  # unknown methods are for the modules to answer
        (b"TRACE", b"1.1", HOST_X),
        (b"M-SEARCH", b"1.1", HOST_X),
    ],
)
def test_check_request_accepts(
    method: bytes, version: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    assert check_request(method, b"/a", version, headers) == (b"/a", headers)


def test_oversized_length_any_number_of_digits() -> None:
    limits = Limits(max_body_bytes=1000)
    for value, over in [(b"1000", False), (b"1001", True), (b"0" * 30 + b"7", False),
                        (b"9" * 25, True), (b"9" * 5000, True)]:  # fmt: skip
        head = b"POST / HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n"
        assert oversized_length(head, 0, len(head), limits) is over, value[:30]
    head = b"POST / HTTP/1.1\r\nX-Content-Length: 9999\r\ncontent-length:3x\r\n\r\n"
    assert not oversized_length(head, 0, len(head), limits)


def test_check_framing_thousands_of_digits_413_not_a_crash() -> None:
    with pytest.raises(HeadError) as info:
        check_framing([(b"content-length", b"9" * 5000)], Limits())
    assert info.value.status == 413


def test_chunk_bytes_declared_reads_h11_private_state() -> None:
    """Pins ``ChunkedReader._bytes_in_chunk``: if h11 renames it, this fails (and the
    413-at-once check for huge chunk sizes would otherwise silently stop working)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert isinstance(conn.next_event(), h11.Request)
    assert chunk_bytes_declared(conn) == 0
    conn.receive_data(b"FFFFFFFFFFFFFFFFFFFF\r\nabc")
    event = conn.next_event()
    assert isinstance(event, h11.Data)
    assert event.data == b"abc"
    assert chunk_bytes_declared(conn) == 0xFFFFFFFFFFFFFFFFFFFF - 3
    assert chunk_bytes_declared(h11.Connection(h11.SERVER)) == 0


# ---------------------------------------------------------------- cross-check with h11


def ours(wire: bytes, limits: Limits) -> tuple[int | str, bytes]:
    """(outcome, head): "accept" or the status, as the connection decides it."""
    scanner = HeadScanner(limits)
    try:
        end = scanner.feed(wire)
        assert end is not None, "incomplete head"
        head = wire[scanner.start : end]
        parse_head(wire[scanner.start :], end - scanner.start, limits)
    except HeadError as exc:
        return exc.status, wire
    return "accept", head


def h11_alone(head: bytes) -> int | str:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(head)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return exc.error_status_hint
    assert isinstance(event, h11.Request)
    return "accept"


def test_hostile_corpus_cross_checked_with_h11() -> None:
    """trioiis is h11 plus the documented checks: it never accepts a head h11 refuses, and
    the heads it refuses that h11 accepts are exactly the ones docs/protocol.md lists as
    stricter than h11."""
    from tests.e2e.test_hostile import CASES, FOLLOWER, LIMITS

    stricter = set()
    for case in CASES:
        outcome, head = ours(case.request + FOLLOWER, LIMITS)
        if outcome == "accept":
            assert h11_alone(head) == "accept", case.id
        elif h11_alone(head) == "accept":
            stricter.add(case.id)
    assert stricter == STRICTER_THAN_H11


#: Heads h11 accepts and trioiis refuses (docs/protocol.md, "h11 alone" column).
STRICTER_THAN_H11 = {
    "cl-and-te", "te-and-cl", "cl-over-limit", "cl-20-digits", "cl-over-limit-expect-100",
    "te-in-http-1.0", "control-byte-in-field-value", "escape-in-field-value",
    "del-in-field-value", "obs-fold-space", "obs-fold-tab", "obs-fold-transfer-encoding",
    "absolute-form-ftp-scheme",
    "absolute-form-userinfo", "absolute-form-empty-authority", "options-asterisk",
    "get-asterisk", "connect", "target-without-slash", "target-query-only", "target-backslash",
    "method-lower-case", "method-mixed-case", "http-2.0", "http-3.0", "http-0.9-version",
    "http-1.2-without-host", "host-empty", "host-space", "host-slash", "host-empty-label",
    "host-userinfo", "header-count-over-limit", "header-count-1000", "request-line-too-long",
    "header-line-too-long", "head-too-large", "pipelining-after-505", "smuggle-cl-te",
    "smuggle-te-cl",
}  # fmt: skip

_REQUEST_LINES = st.sampled_from(
    [b"GET / HTTP/1.1", b"get / HTTP/1.1", b"GET * HTTP/1.1", b"OPTIONS * HTTP/1.1",
     b"CONNECT x:1 HTTP/1.1", b"GET http://x/a HTTP/1.1", b"GET ftp://x/ HTTP/1.1",
     b"GET x HTTP/1.1", b"GET / HTTP/1.0", b"GET / HTTP/2.0", b"GET / HTTP/1.2",
     b"POST /a?b HTTP/1.1", b"GET  / HTTP/1.1", b"GET /\x01 HTTP/1.1"]
)  # fmt: skip
_FIELDS = st.sampled_from(
    [b"Host: x", b"Host: a b", b"Host:", b"Host: [::1]:8", b"Host: u@x", b"Content-Length: 3",
     b"Content-Length: 3, 3", b"Content-Length: 3, 4", b"Content-Length: " + b"9" * 30,
     b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
     b"X: a\x01", b" folded", b"\tfolded", b"X : y", b"X:\x7f", b"X: \xff", b"X: a\tb", b"X"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_REQUEST_LINES, st.lists(_FIELDS, max_size=5), eols)
def test_random_heads_never_accepted_when_h11_refuses(
    request_line: bytes, fields: list[bytes], eol: bytes
) -> None:
    wire = b"".join(line + eol for line in [request_line, *fields]) + eol
    outcome, head = ours(wire, Limits(max_body_bytes=1000))
    alone = h11_alone(head)
    if alone != "accept":
        assert outcome != "accept"
    if outcome == "accept":
        assert alone == "accept"


@pytest.mark.parametrize(
    ("status", "reason"),
    [(200, b"OK"), (418, b"I'm a Teapot"), (299, b"Success"), (599, b"Server Error")],
)
def test_reason_phrase_is_never_empty(status: int, reason: bytes) -> None:
    from trioiis._protocol.http1 import reason_phrase

    assert reason_phrase(status) == reason


def test_unacknowledged_is_what_the_peer_has_not_acknowledged() -> None:
    """The minimum send rate's measure: on a loopback pair whose reader reads nothing, the
    kernel takes far more than the peer acknowledged (its small window), and
    ``_unacknowledged`` says how much of what was sent is still waiting in our queue."""
    import socket as stdlib_socket

    from trioiis._protocol.http1 import _unacknowledged

    listener = stdlib_socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    reader = stdlib_socket.socket()
    reader.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVBUF, 4096)
    reader.connect(listener.getsockname())
    writer, _ = listener.accept()
    with listener, reader, writer:
        writer.setblocking(False)
        sent = 0
        for _ in range(1000):  # bounded: until the kernel takes no more
            try:
                sent += writer.send(b"x" * 65536)
            except BlockingIOError:
                break
        unacknowledged = _unacknowledged(writer)
        assert 0 < unacknowledged <= sent
        assert sent - unacknowledged <= 256 * 1024  # what the reader's small window took
        reader.recv(1 << 20)
