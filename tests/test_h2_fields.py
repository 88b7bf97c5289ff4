"""An HTTP/2 request's field block (``trioiis/_protocol/h2_fields.py``): the server's own
one-pass check refuses exactly what ``h2``'s inbound validation refuses, and reads the
same fields, on generated blocks at the edges of each rule."""

from __future__ import annotations

import h2.utilities
import pytest
from h2.exceptions import ProtocolError
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis._protocol.h2_fields import check_trailers, request_head

Block = list[tuple[bytes, bytes]]

_REQUEST = h2.utilities.HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)
_TRAILER = _REQUEST._replace(is_trailer=True)


def _h2_verdict(block: Block, flags: h2.utilities.HeaderValidationFlags) -> Block | None:
    """What h2's stock inbound chain (normalize, then validate) makes of ``block``; None
    when it refuses it."""
    try:
        normalized = h2.utilities.normalize_inbound_headers(block, flags)
        return list(h2.utilities.validate_headers(normalized, flags))
    except ProtocolError:
        return None


_pseudo = st.sampled_from(
    [
        (b":method", b"GET"),
        (b":method", b"CONNECT"),
        (b":method", b"HEAD"),
        (b":path", b"/a"),
        (b":path", b""),
        (b":path", b"*"),
        (b":path", b"http://h/a"),
        (b":scheme", b"https"),
        (b":authority", b"h"),
        (b":authority", b"other"),
        (b":protocol", b"websocket"),
        (b":status", b"200"),
        (b":bogus", b"x"),
        (b":", b"x"),
        (b"::path", b"/"),
    ]
)
_names = st.sampled_from(
    [
        b"accept", b"host", b"cookie", b"te", b"connection", b"keep-alive", b"upgrade",
        b"transfer-encoding", b"proxy-connection", b"content-length", b"x-a", b"X-Upper",
        b"a:b", b"", b"sp ace", b"x\x7f", b"x\x80", b"x\x1f", b"!#$%&'*+-.^_`|~09",
    ]
)  # fmt: skip
_values = st.sampled_from(
    [
        b"", b"v", b"h", b" v", b"v ", b"\tv", b"v\t", b"a b", b"a\tb", b"a\x00b", b"a\rb",
        b"a\nb", b"trailers", b"TRAILERS", b"gzip", b"12", b"\x01x", b"\xff", b" ", b"\t",
    ]
)  # fmt: skip
_regular = st.tuples(_names, _values)
#: Fields that pass alone (the refusals then come from their combination).
_good = st.tuples(
    st.sampled_from([b"accept", b"x-a", b"cookie", b"host", b"content-length", b"te"]),
    st.sampled_from([b"v", b"h", b"12", b"trailers", b"a b", b"", b"\x01x"]),
)
_fields = st.lists(st.one_of(_good, _good, _good, _regular), max_size=5)
#: A usual request's pseudo-headers with fields that pass alone after them, or with any
#: drawn pseudo-headers and fields after them, or drawn pseudo-headers and fields in a drawn
#: order.
_USUAL = [(b":method", b"GET"), (b":path", b"/"), (b":scheme", b"http"), (b":authority", b"h")]
_blocks = st.one_of(
    st.lists(_good, max_size=4).map(lambda fields: [*_USUAL, *fields]),
    st.tuples(st.lists(_pseudo, max_size=2), _fields).map(
        lambda parts: [*_USUAL, *parts[0], *parts[1]]
    ),
    st.tuples(st.lists(_pseudo, max_size=6), _fields).flatmap(
        lambda parts: st.permutations(parts[0] + parts[1])
    ),
)


@settings(max_examples=800, deadline=None)
@given(block=_blocks, ended=st.booleans())
def test_a_request_block_is_refused_exactly_when_h2_refuses_it(block: Block, ended: bool) -> None:
    stock = _h2_verdict(block, _REQUEST)
    try:
        head, protocol = request_head(block, ended=ended)
    except ProtocolError:
        assert stock is None, block
        return
    assert stock is not None, block
    pseudo = dict(f for f in stock if f[0].startswith(b":"))
    assert protocol == pseudo.get(b":protocol")
    path = pseudo.get(b":path")
    if head is None:
        # accepted by h2's validation, not served: not origin-form, a plain CONNECT, or a
        # Content-Length that is not digits (h2's stream refuses that one first)
        bad_length = any(n == b"content-length" and not v.isdigit() for n, v in stock)
        assert path is None or not path.startswith(b"/") or bad_length
        return
    assert (head.method, head.target) == (pseudo[b":method"].decode(), path.decode())  # type: ignore[union-attr]
    # h2's regular fields, cookies joined last; Host from :authority when there is none
    regular = [(n, v) for n, v in stock if not n.startswith(b":")]
    if b":authority" in pseudo and not any(n == b"host" for n, _ in regular):
        regular.insert(0, (b"host", pseudo[b":authority"]))
    assert head.headers == [(bytes(n), bytes(v)) for n, v in regular]


@settings(max_examples=400, deadline=None)
@given(block=st.lists(st.one_of(_regular, _pseudo), max_size=5))
def test_trailers_are_refused_exactly_when_h2_refuses_them(block: Block) -> None:
    stock = _h2_verdict(block, _TRAILER)
    if stock is None:
        with pytest.raises(ProtocolError):
            check_trailers(block)
    else:
        check_trailers(block)


def test_the_head_of_a_usual_request() -> None:
    block = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.org"),
        (b":path", b"/form?a=1"),
        (b"cookie", b"a=1"),
        (b"content-length", b"3"),
        (b"cookie", b"b=2"),
    ]
    head, protocol = request_head(block, ended=False)
    assert protocol is None
    assert head is not None
    assert (head.method, head.target, head.http_version) == ("POST", "/form?a=1", "2.0")
    assert head.headers == [
        (b"host", b"example.org"),
        (b"content-length", b"3"),
        (b"cookie", b"a=1; b=2"),
    ]
    assert (head.content_length, head.chunked) == (3, False)
    head, _ = request_head([*block[:4]], ended=False)  # no length, not ended: until its end
    assert head is not None
    assert (head.content_length, head.chunked) == (None, True)
    head, _ = request_head([*block[:4]], ended=True)
    assert head is not None
    assert (head.content_length, head.chunked) == (0, False)
