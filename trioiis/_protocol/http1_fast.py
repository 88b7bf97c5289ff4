"""The fast request-head path (``--http fast``): llhttp, through the ``httptools`` package,
parses bodiless request heads; every other head goes to the reference path (h11).

Why this is safe: the fast path only ever *accepts*. It takes a head when llhttp parses it
cleanly and the head has nothing whose meaning h11 and llhttp could read differently — no
``Content-Length``, ``Transfer-Encoding`` or ``Upgrade`` field, one ``Host`` (or none in
HTTP/1.0), an ASCII target, a request line of single spaces ending in CRLF — and then runs
the same server checks as the reference path (``check_request``; ``check_framing`` has
nothing to check in a head without framing fields). Anything
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
    BodilessRequest,
    Limits,
    RequestHead,
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
#: The fields the fast path looks at: those, Host (counted) and Connection (keep-alive).
_SEEN: Final = _REFERENCE_ONLY | {b"host", b"connection"}


def available() -> bool:
    """True when ``httptools`` is installed (``--http fast`` can run)."""
    return httptools is not None


class _NoCallbacks:
    """llhttp is asked only whether it accepts a head: no callback into Python."""

    __slots__ = ()


def _new_parser() -> Any:
    return httptools.HttpRequestParser(_NoCallbacks())


# One llhttp parser for the whole process. A head is fed to it whole, in one call that runs
# no Python code (no callbacks) and so cannot be interleaved with another thread's; after a
# head it accepted it waits for the next message, and after anything else (an error, an
# upgrade, a request that closes its connection) it is replaced.
_parser: Any = None


def parse_head_fast(
    data: bytes, end: int, limits: Limits
) -> tuple[h11.Connection | BodilessRequest, RequestHead]:
    """``http1.parse_head`` with llhttp for the heads it can take (see the module's doc).

    llhttp checks the head's syntax; the fields are then read from the same bytes in a few C
    scans (a head it accepts has CRLF line ends, a request line of single spaces and
    ``name: value`` fields).

    Raises:
        HeadError: exactly as ``parse_head``: refusals always come from the reference path.
    """
    global _parser
    check_head_bytes(data, 0, end)  # first, as on the reference path
    lines = data[: end - 4].split(b"\r\n")
    if data.count(b"\n", 0, end) != len(lines) + 1:  # a bare LF somewhere
        return parse_head(data, end, limits)
    line = lines[0].split(b" ")
    if len(line) != 3 or not line[2].startswith(b"HTTP/"):
        return parse_head(data, end, limits)
    method, target, protocol = line
    headers: list[tuple[bytes, bytes]] = []
    hosts = 0
    connection = False
    for field in lines[1:]:  # (a loop: no comprehension frame per request)
        raw_name, _, value = field.partition(b":")  # (no colon: llhttp refuses it)
        name = raw_name.lower()
        if name in _SEEN:
            if name in _REFERENCE_ONLY:
                return parse_head(data, end, limits)
            if name == b"host":
                hosts += 1
            else:
                connection = True
        headers.append((name, value.strip(b" \t")))
    version = protocol[5:]
    # h11's own refusals (a missing Host in HTTP/1.1, a repeated Host, a non-ASCII target)
    # are left to h11, which words them.
    if not target.isascii() or hosts > 1 or (hosts == 0 and version == b"1.1"):
        return parse_head(data, end, limits)
    if _parser is None:
        _parser = _new_parser()
    try:
        _parser.feed_data(data if end == len(data) else memoryview(data)[:end])
    except (httptools.HttpParserError, httptools.HttpParserUpgrade):
        _parser = None
        return parse_head(data, end, limits)
    target, headers = check_request(method, target, version, headers)
    http_version = version.decode("ascii")
    keep_alive = request_keep_alive(http_version, headers) if connection else version >= b"1.1"
    if not keep_alive:
        # llhttp refuses any message after one that closes its connection. (Where it and
        # this disagree, the next head is refused by it and parsed by h11: slower, not wrong.)
        _parser = None
    # h11 marks every HTTP/1.0 client MUST_CLOSE (the writer decides its keep-alive).
    done = keep_alive and version >= b"1.1"
    return BodilessRequest(data[end:], done), RequestHead(  # (positional: cheaper)
        method.decode("ascii"),
        target.decode("latin-1"),
        http_version,
        headers,
        None,
        False,
        keep_alive,
    )
