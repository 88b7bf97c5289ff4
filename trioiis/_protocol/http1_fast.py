"""The fast request-head path (``--http fast``): llhttp, through the ``httptools`` package,
parses bodiless request heads; every other head goes to the reference path (h11).

Why this is safe: the fast path only ever *accepts*. It takes a head when llhttp parses it
cleanly and the head has nothing whose meaning h11 and llhttp could read differently — no
``Content-Length``, ``Transfer-Encoding`` or ``Upgrade`` field, one ``Host`` (or none in
HTTP/1.0), an ASCII target, a request line of single spaces ending in CRLF — and then runs
the same server checks (``check_request``, ``check_framing``) as the reference path. Anything
else, every malformed head included, is parsed again by h11, so both paths refuse the same
heads with the same answer, and frame the same bodies (h11 reads every body).
tests/test_http1_fast.py checks the two paths against each other with hypothesis and on the
hostile-request corpus.

The fast path needs ``httptools`` (``pip install 'trioiis[fast]'``).
"""

from __future__ import annotations

from typing import Any, Final

import h11

from .http1 import (
    Limits,
    RequestHead,
    check_framing,
    check_head_bytes,
    check_request,
    parse_head,
)
from .http1_writer import request_keep_alive

try:
    import httptools
except ImportError:  # pragma: no cover - the test extra installs it
    httptools = None  # type: ignore[assignment]

#: Header fields that send a head to the reference path (framing or protocol switches).
_REFERENCE_ONLY: Final = frozenset((b"content-length", b"transfer-encoding", b"upgrade"))


def available() -> bool:
    """True when ``httptools`` is installed (``--http fast`` can run)."""
    return httptools is not None


class BodilessRequest:
    """The request side of a head the fast path took: it has no body, so the exchange is
    already done on the client's side. Stands in for the ``h11.Connection`` the driver reads
    bodies from (the same attributes, the same answers h11 gives after ``EndOfMessage``)."""

    __slots__ = ("their_state", "trailing_data")

    client_is_waiting_for_100_continue: Final = False

    def __init__(self, trailing: bytes, *, keep_alive: bool) -> None:
        #: Pipelined bytes after the head, as ``h11.Connection.trailing_data``.
        self.trailing_data = (trailing, False)
        #: As h11's after the end of the request: MUST_CLOSE when the client will not
        #: send another request on this connection.
        self.their_state: type = h11.DONE if keep_alive else h11.MUST_CLOSE

    def next_event(self) -> type[h11.PAUSED]:
        return h11.PAUSED

    def receive_data(self, data: bytes) -> None:  # pragma: no cover - never asked: no body
        raise AssertionError("a bodiless request reads no body")


class _Head:
    """httptools' callbacks, collected."""

    __slots__ = ("headers", "reference_only", "target")

    def __init__(self) -> None:
        self.target = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.reference_only = False

    def on_url(self, url: bytes) -> None:
        self.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name in _REFERENCE_ONLY:
            self.reference_only = True
        self.headers.append((name, value.strip(b" \t")))


def parse_head_fast(
    data: bytes, end: int, limits: Limits
) -> tuple[h11.Connection | BodilessRequest, RequestHead]:
    """``http1.parse_head`` with llhttp for the heads it can take (see the module's doc).

    Raises:
        HeadError: exactly as ``parse_head``: refusals always come from the reference path.
    """
    check_head_bytes(data, 0, end)  # first, as on the reference path
    collected = _Head()
    parser: Any = httptools.HttpRequestParser(collected)
    try:
        parser.feed_data(memoryview(data)[:end])
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        return parse_head(data, end, limits)
    target = collected.target
    headers = collected.headers
    method: bytes = parser.get_method()
    version: str = parser.get_http_version()
    hosts = sum(1 for name, _ in headers if name == b"host")
    # h11's own refusals (a missing Host in HTTP/1.1, a repeated Host, a non-ASCII target)
    # are left to h11, which words them.
    if collected.reference_only or not target.isascii() or hosts > 1:
        return parse_head(data, end, limits)
    if hosts == 0 and version == "1.1":
        return parse_head(data, end, limits)
    # llhttp tolerates extra spaces in the request line; h11 (RFC 9112 §3) does not.
    line = b"%s %s HTTP/%s\r\n" % (method, target, version.encode("ascii"))
    if not data.startswith(line):
        return parse_head(data, end, limits)
    target, headers = check_request(method, target, version.encode("ascii"), headers)
    check_framing(headers, limits)
    keep_alive = request_keep_alive(version, headers)
    # h11 marks every HTTP/1.0 client MUST_CLOSE (the writer decides its keep-alive).
    done = keep_alive and version >= "1.1"
    return BodilessRequest(data[end:], keep_alive=done), RequestHead(
        method=method.decode("ascii"),
        target=target.decode("latin-1"),
        http_version=version,
        headers=headers,
        content_length=None,
        chunked=False,
        keep_alive=keep_alive,
    )
