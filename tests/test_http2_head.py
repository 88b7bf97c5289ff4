"""A response head over HTTP/2 (``Http2Transport.send_head``): what h2 would check and
normalize, done once by the transport, the same whether a field name is seen for the first
time or remembered."""

from __future__ import annotations

from typing import Any

import pytest
from hpack import NeverIndexedHeaderTuple

from trioiis._protocol.http1_writer import FramingError
from trioiis._protocol.http2_transport import Http2Transport


def _head(headers: list[tuple[bytes, bytes]], status: int = 200) -> list[Any]:
    transport = Http2Transport(None, 1, head_only=False, request_length=None)  # type: ignore[arg-type]
    transport.send_head(status, b"OK", headers, close=False)
    assert transport._head is not None
    return transport._head


@pytest.mark.parametrize("seen", [1, 2])  # (a name's second time comes from the memo)
def test_fields_go_out_lower_case_trimmed_and_without_connection_fields(seen: int) -> None:
    headers = [
        (b"Content-Type", b"  text/plain\t"),
        (b"Connection", b"close"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Made-Up-Name-Once", b"a\x01b"),
        (b"Authorization", b"Basic x"),
        (b"Content-Length", b"3"),
    ]
    fields = _head(headers, status=404)
    if seen == 2:
        assert _head(headers, status=404) == fields
    assert fields == [
        (b":status", b"404"),
        (b"content-type", b"text/plain"),
        (b"x-made-up-name-once", b"a\x01b"),
        (b"authorization", b"Basic x"),
        (b"content-length", b"3"),
    ]
    assert type(fields[3]) is NeverIndexedHeaderTuple  # credentials stay out of HPACK's table
    assert all(type(f) is tuple for f in fields[:3] + fields[4:])


@pytest.mark.parametrize(
    "field",
    [
        (b"x-a", b"a\r\nx-b: c"),
        (b"x-a", b"a\nb"),
        (b"x-a", b"a\x00b"),
        (b"x a", b"v"),
        (b"", b"v"),
        (b":status", b"200"),
        (b"x-\xff", b"v"),
        (b"content-length", b"x"),
    ],
)
@pytest.mark.parametrize("seen", [1, 2])
def test_a_field_that_cannot_go_out_is_refused(field: tuple[bytes, bytes], seen: int) -> None:
    for _ in range(seen):
        with pytest.raises(FramingError):
            _head([field])


def test_two_content_lengths_must_agree() -> None:
    assert _head([(b"content-length", b"3"), (b"Content-Length", b"3")])[1:] == [
        (b"content-length", b"3"),
        (b"content-length", b"3"),
    ]
    with pytest.raises(FramingError):
        _head([(b"content-length", b"3"), (b"content-length", b"4")])
