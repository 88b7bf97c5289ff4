"""The fast head path (httptools) against the reference path (h11): same verdicts, same heads.

Both paths get the same bytes (after ``HeadScanner``, as on a connection); they must refuse
the same heads with the same status, and accept the same heads with the same method, target,
version, header list, framing, keep-alive and leftover (pipelined) bytes.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from trioiis._protocol.http1 import HeadError, HeadScanner, Limits, parse_head
from trioiis._protocol.http1_fast import BodilessRequest, parse_head_fast

LIMITS = Limits(max_body_bytes=1000)
FOLLOWER = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"


def outcome(parse: object, wire: bytes) -> tuple[object, ...]:
    """("refused", status) or ("accepted", head fields..., leftover, body framing)."""
    scanner = HeadScanner(LIMITS)
    try:
        end = scanner.feed(wire)
        assert end is not None, "incomplete head"
        data = wire[scanner.start :]
        conn, head = parse(data, end - scanner.start, LIMITS)  # type: ignore[operator]
    except HeadError as exc:
        return ("refused", exc.status)
    bodiless = head.content_length is None and not head.chunked
    if isinstance(conn, h11.Connection) and bodiless:
        assert isinstance(conn.next_event(), h11.EndOfMessage)
    leftover = conn.trailing_data[0] if conn.their_state in (h11.DONE, h11.MUST_CLOSE) else None
    return (
        "accepted",
        head.method,
        head.target,
        head.http_version,
        tuple(head.headers),
        head.content_length,
        head.chunked,
        head.keep_alive,
        conn.their_state,
        leftover,
    )


def assert_same(wire: bytes) -> tuple[object, ...]:
    reference = outcome(parse_head, wire)
    fast = outcome(parse_head_fast, wire)
    assert fast == reference, wire
    return reference


_METHODS = [b"GET", b"HEAD", b"POST", b"DELETE", b"OPTIONS", b"PURGE", b"FOO", b"get", b"CONNECT"]
_TARGETS = [b"/", b"/a/b?c=d&e", b"/%41%zz", b"/caf\xc3\xa9", b"/a#frag", b"*", b"x",
            b"http://h:8/p?q", b"https://h", b"ftp://h/", b"/a\\b", b"//a", b"/~user/"]  # fmt: skip
_VERSIONS = [b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.10",
             b"http/1.1", b"HTTP/1"]  # fmt: skip
_FIELDS = [b"Host: x", b"Host: x:80", b"Host: [::1]", b"Host:", b"Host: a b", b"Host: h..x",
           b"User-Agent: wrk", b"Accept: */*", b"X-A:  spaced  ", b"X-B:\ttabbed\t",
           b"X-C: caf\xc3\xa9", b"X-D:", b"X-E: a , b", b"Connection: close",
           b"Connection: keep-alive", b"Connection: Upgrade", b"Upgrade: websocket",
           b"Content-Length: 0", b"Content-Length: 3", b"Content-Length: 3, 3",
           b"Transfer-Encoding: chunked", b"Expect: 100-continue", b"X : y", b"X",
           b"Bad\x01: y", b"X: a\x01", b" folded", b"\xff: x", b"x-lower: 1",
           b"Cookie: a=b; c=d"]  # fmt: skip


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(_METHODS))
    target = draw(st.sampled_from(_TARGETS))
    version = draw(st.sampled_from(_VERSIONS))
    separator = draw(st.sampled_from([b" ", b" ", b" ", b"  ", b"\t"]))
    request_line = separator.join([method, target, version])
    fields = draw(st.lists(st.sampled_from(_FIELDS), max_size=6))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
    body = draw(st.sampled_from([b"", b"abc", FOLLOWER]))
    return b"".join(line + eol for line in [request_line, *fields]) + eol + body


_BENIGN = [b"User-Agent: wrk", b"Accept: */*", b"X-A:  spaced  ", b"X-B:\ttabbed\t",
           b"X-C: caf\xc3\xa9", b"X-D:", b"Connection: close", b"Connection: keep-alive",
           b"Cookie: a=b; c=d", b"If-None-Match: \"x\"", b"Range: bytes=0-1"]  # fmt: skip


@st.composite
def plain_heads(draw: st.DrawFn) -> bytes:
    """Heads a browser or a load tool sends: most take the fast path."""
    method = draw(st.sampled_from([b"GET", b"HEAD", b"DELETE", b"OPTIONS"]))
    target = draw(st.sampled_from([b"/", b"/a/b?c=d&e", b"/%41", b"http://h:8/p?q", b"/~u/"]))
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    fields = [b"Host: " + draw(st.sampled_from([b"x", b"x:80", b"[::1]"]))]
    fields += draw(st.lists(st.sampled_from(_BENIGN), max_size=4))
    fields = draw(st.permutations(fields))
    body = draw(st.sampled_from([b"", FOLLOWER]))
    lines = [method + b" " + target + b" " + version, *fields]
    return b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body


@settings(max_examples=1500, deadline=None)
@given(st.one_of(plain_heads(), heads()))
def test_fast_path_matches_reference(wire: bytes) -> None:
    result = assert_same(wire)
    event(str(result[0]))


def test_hostile_corpus_same_on_both_paths() -> None:
    from tests.e2e.test_hostile import CASES
    from tests.e2e.test_hostile import FOLLOWER as HOSTILE_FOLLOWER

    for case in CASES:
        wire = case.request + HOSTILE_FOLLOWER
        scanner = HeadScanner(LIMITS)
        try:
            if scanner.feed(wire) is None:
                continue  # an incomplete head: no parser is ever asked
        except HeadError:
            continue  # refused by the scanner before either parser
        assert_same(wire)


def test_plain_get_takes_the_fast_path() -> None:
    wire = b"GET /a?b HTTP/1.1\r\nHost: x\r\nX-A:  v  \r\n\r\n" + FOLLOWER
    scanner = HeadScanner(LIMITS)
    end = scanner.feed(wire)
    assert end is not None
    conn, head = parse_head_fast(wire, end, LIMITS)
    assert isinstance(conn, BodilessRequest)  # not a second parse by h11
    assert head.headers == [(b"host", b"x"), (b"x-a", b"v")]
    assert conn.trailing_data == (FOLLOWER, False)


@pytest.mark.parametrize(
    "wire",
    [
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",  # llhttp knows no FOO; h11 takes any token
    ],
)
def test_bodies_upgrades_and_unknown_methods_go_to_h11(wire: bytes) -> None:
    scanner = HeadScanner(LIMITS)
    end = scanner.feed(wire)
    assert end is not None
    conn, _ = parse_head_fast(wire, end, LIMITS)
    assert isinstance(conn, h11.Connection)
    assert_same(wire)


def test_one_parser_serves_head_after_head_whatever_came_before() -> None:
    """The process's one llhttp parser takes a plain head after any other head: one it
    refused, one that closes its connection, an HTTP/1.0 one, an upgrade, a body."""
    plain = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    before = [
        b"GET / HTTP/1.1\r\nHost: x\r\nBad\x01: y\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"FOO / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
    ]
    for wire in before:
        assert_same(wire)
        scanner = HeadScanner(LIMITS)
        end = scanner.feed(plain)
        assert end is not None
        conn, head = parse_head_fast(plain, end, LIMITS)
        assert isinstance(conn, BodilessRequest), wire
        assert head.target == "/a"
