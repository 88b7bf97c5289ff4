"""The HTTP/1.1 connection driver: h11 reads requests over any ``trio.abc.Stream``, our own
writer frames responses, plus our own policy.

Theory of operation
-------------------
1. **One reader.** ``Http1Connection.pump`` is the only code that calls ``receive_some`` on the
   stream. It runs for the connection's whole life in the connection's nursery, appending to
   ``_inbuf`` and waking whoever waits. Because it keeps reading while a request runs, it sees
   the client's EOF or RST at once (the disconnect watcher of DESIGN.md) without stealing
   pipelined bytes: they stay in ``_inbuf`` for the next request.
2. **Backpressure.** The pump stops reading when ``_inbuf`` holds ``receive_buffer`` bytes and
   nobody is waiting for data; a body reader that needs more always gets it.
3. **Our own head limits.** The request head is collected in ``_inbuf`` and checked by
   ``HeadScanner`` line by line (request line → 414, field size / count / whole head → 431),
   so the answer is the same however the bytes were split (when one scan sees two limits
   broken, the one broken at the earlier byte answers). Empty lines before the request line
   are skipped. Only a complete, checked head is given to h11, after ``check_head_bytes``
   (control bytes, obsolete line folding → 400). Then ``check_request`` (version other than
   1.x → 505; lower-case method, CONNECT, ``OPTIONS *`` → 501; a target that is not origin-
   or http(s) absolute-form, a bad or missing Host → 400) and ``check_framing`` (Content-Length
   with Transfer-Encoding → 400; Content-Length above ``max_body_bytes`` → 413 at once, as is
   a chunk size that would pass it). docs/protocol.md gives every decision and its reason.
4. **A fresh ``h11.Connection`` per request.** Leftover (pipelined) bytes are taken back from
   ``trailing_data`` when the exchange ends, so every head goes through step 3. A head without
   body framing, upgrade or ``Expect: 100-continue`` has nothing more for h11 to read: once
   h11 parsed and checked it, a ``BodilessRequest`` (h11's state after ``EndOfMessage``,
   decided from the same head) stands in for the connection.
5. **Writes never lose bytes.** ``ResponseWriter`` (http1_writer.py: h11's framing decisions
   without h11's second validation of every header) turns the response into bytes that go to
   ``_outbuf``; ``_write_out`` sends from it. A cancelled write leaves the unsent rest in
   ``_outbuf`` for the next write, so the wire stays well-formed and ``bytes_sent`` is exact on
   sockets.

   b. **Counted as they go.** ``_queued`` counts every byte ever queued (file bytes sent
      with ``os.sendfile`` included), so each queued byte has a stream offset, and the
      current response's body is a short list of offset ranges. ``body_bytes_sent`` is
      their overlap with ``counters.bytes_sent``: body bytes handed to the kernel, exact
      also for a response cut short, never framing.
   c. **Complete when delivered.** ``_complete_at`` is the offset at which the response's
      bytes make a whole message (its end framed, or a Content-Length body's last byte
      queued); ``response_complete`` is True once ``bytes_sent`` reached it.
6. **Deadlines.** Waiting for the first byte of a head uses ``keep_alive_timeout`` (on a new
   connection, ``head_timeout``), then the connection closes without a response; from the
   first byte the whole head must arrive within ``head_timeout`` (slowloris), else 408 and
   close.
7. **Expect: 100-continue.** ``100 Continue`` goes out only when the request's body is first
   read. A final response sent while the client still waits for it ends the connection: the
   client may never send that body, so it cannot be drained.
8. **Say close when the body cannot be drained.** The head of a response says
   ``Connection: close`` when the request body is not yet read and could not be drained
   after the response (``drain_body_bytes``; a chunked body not yet finished; a client
   still waiting for ``100 Continue``), so a keep-alive client never sends its next request
   on a connection the server is about to close.
9. **The connection is the request's transport.** It serves one request at a time, so it
   implements the transport seam (``transport.py``) itself for the request it serves: the
   seam's queueing members are its own methods, and ``write``, ``transmit_file`` and
   ``receive_body`` translate its errors into the seam's. ``watch_peer`` holds the running
   request's callback, which the reader calls on EOF or RST (through the server).
10. **Upgrade** (``upgrade``). A ``101 Switching Protocols`` head is queued as it is given
   (no framing headers); from then on the connection carries another protocol and is never
   kept for a next request. The request's leftover bytes go back in front of ``_inbuf`` and
   ``UpgradedStream`` hands the bytes both ways to the new protocol's driver: reads come
   from ``_inbuf``, announced by ``pump`` as they arrive (``pump`` stays the one reader, so
   EOF and RST are still seen at once and still reach ``on_disconnect``), writes go
   through the same queue (a cancelled write leaves exactly the unsent bytes queued, in
   order).
"""

from __future__ import annotations

import contextlib
import email.utils
import errno
import fcntl
import math
import os
import re
import socket
import struct
import termios
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, Final, Protocol

import h11
import trio

from .._errors import BodyTooLargeError, MalformedBodyError
from .http1_writer import FramingError, ResponseWriter, request_keep_alive
from .transport import PeerGoneError, PeerTooSlowError

SERVER_HEADER: Final = b"trioiis"
_RECEIVE_SIZE: Final = 65536
#: Reads the pump makes without waiting before it lets other tasks run.
_READS_PER_CHECKPOINT: Final = 16
#: ``os.sendfile`` errors that mean the client is gone (others come from the file).
_PEER_GONE: Final = frozenset(
    (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN, errno.ECONNABORTED)
)
#: How much of a file one worker-thread read takes where ``os.sendfile`` cannot be used.
FILE_PIECE: Final = 256 * 1024
_REASONS: Final[dict[int, bytes]] = {
    100: b"Continue",
    200: b"OK",
    204: b"No Content",
    206: b"Partial Content",
    301: b"Moved Permanently",
    302: b"Found",
    304: b"Not Modified",
    400: b"Bad Request",
    403: b"Forbidden",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    412: b"Precondition Failed",
    413: b"Content Too Large",
    414: b"URI Too Long",
    416: b"Range Not Satisfiable",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}


_CLASS_REASONS: Final = {
    1: b"Informational",
    2: b"Success",
    3: b"Redirection",
    4: b"Client Error",
    5: b"Server Error",
}


def reason_phrase(status: int) -> bytes:
    """The standard reason phrase for ``status``; never empty (some load tools count a
    status line without one as a failure), so an unregistered code gets its class name."""
    phrase = _REASONS.get(status)
    if phrase is None:
        try:
            phrase = HTTPStatus(status).phrase.encode()
        except ValueError:
            phrase = _CLASS_REASONS.get(status // 100, b"Unknown")
    return phrase


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Hard limits and timeouts of one connection (defaults near nginx's).

    Attributes:
        max_request_line: bytes in the request line; more → 414.
        max_header_field: bytes in one header line; more → 431.
        max_header_count: header lines; more → 431.
        max_head_bytes: bytes in the whole head; more → 431.
        max_body_bytes: request body bytes; more → 413 (at once for a Content-Length).
        head_timeout: seconds from a head's first byte to its end; then 408 and close.
        keep_alive_timeout: seconds an idle connection waits for the next request.
        receive_buffer: bytes read ahead of the request's consumer (backpressure).
        send_timeout: seconds a response write may wait for the client to read anything;
            then the connection is closed (nginx ``send_timeout``).
        body_timeout: seconds a request-body read may wait for the client to send anything;
            then the client is treated as gone (nginx ``client_body_timeout``).
        min_body_rate: bytes/s a request body must average once ``rate_grace`` has passed,
            else the client is treated as gone; 0 disables.
        min_send_rate: bytes/s a client must read a response at, averaged the same way, else
            the connection is closed (IIS ``minBytesPerSecond``: 240); 0 disables. Counted
            in bytes the client acknowledged where the platform tells (Linux), not bytes the
            kernel took into its send buffer.
        rate_grace: seconds a body or response may take before the minimum rates apply.
        request_timeout: seconds a request's stages and final send may take before its work
            is cancelled (503 if nothing was sent, else the connection is aborted), the
            timeout logged; None (the default) means no limit. Guards against a module that
            never returns or parks on PENDING forever.
        max_requests_per_connection: the last request on a keep-alive connection gets
            ``Connection: close`` (nginx ``keepalive_requests``); 0 means no limit.
        drain_body_bytes: unread request body up to this is read and dropped after the
            response so that the connection can be kept alive; more → the connection closes.
        linger_timeout: seconds a closing connection keeps reading so the client gets the
            response before the close (lingering close, as nginx does).
        h2_max_concurrent_streams: HTTP/2 streams served at once on a connection (advertised
            in SETTINGS); more are refused with RST_STREAM REFUSED_STREAM.
        h2_max_header_list_size: bytes of one HTTP/2 header list, decoded (advertised; an
            HPACK bomb or a CONTINUATION flood past it gets GOAWAY ENHANCE_YOUR_CALM).
        h2_flood_window: seconds over which the ``h2_max_*`` frame counts below are taken.
        h2_max_resets: RST_STREAM frames a client may send per window (rapid reset,
            CVE-2023-44487); more: GOAWAY ENHANCE_YOUR_CALM. 0 disables.
        h2_max_pings: PING frames per window (CVE-2019-9512); more: GOAWAY. 0 disables.
        h2_max_settings: SETTINGS frames per window (CVE-2019-9515); more: GOAWAY.
        h2_max_window_updates: WINDOW_UPDATE frames per window (CVE-2019-9511); more: GOAWAY.

    HTTP/2 also reuses ``keep_alive_timeout`` (a connection without streams),
    ``send_timeout`` (a stream window left closed: that stream is reset; a connection not
    read: closed), ``body_timeout``, ``min_body_rate`` and ``min_send_rate`` (per stream,
    over the time its reads or writes waited for the client), ``receive_buffer`` (each
    stream's receive window) and ``max_requests_per_connection`` (streams per connection,
    then GOAWAY).
    """

    max_request_line: int = 8192
    max_header_field: int = 8192
    max_header_count: int = 100
    max_head_bytes: int = 65536
    max_body_bytes: int = 100 * 1024 * 1024
    head_timeout: float = 20.0
    keep_alive_timeout: float = 75.0
    receive_buffer: int = 131072
    send_timeout: float = 60.0
    body_timeout: float = 60.0
    min_body_rate: float = 240.0
    min_send_rate: float = 240.0
    rate_grace: float = 10.0
    request_timeout: float | None = None
    max_requests_per_connection: int = 1000
    drain_body_bytes: int = 65536
    linger_timeout: float = 2.0
    h2_max_concurrent_streams: int = 100
    h2_max_header_list_size: int = 65536
    h2_flood_window: float = 10.0
    h2_max_resets: int = 200
    h2_max_pings: int = 100
    h2_max_settings: int = 100
    h2_max_window_updates: int = 10000


def slow_deadline(
    limits: Limits, idle: float, min_rate: float, started: float, moved: int
) -> tuple[float, str]:
    """When to give up on a peer: after ``idle`` seconds without progress, or once it falls
    below ``min_rate`` bytes/s averaged since ``started`` (after ``rate_grace``), ``moved``
    bytes having moved since. Returns the deadline and, for the message, which rule it is
    (the HTTP/1.1 connection's and each HTTP/2 stream's rule)."""
    deadline, why = trio.current_time() + idle, f"with nothing moving for {idle} s"
    by_rate = rate_deadline(limits, min_rate, started, moved)
    if by_rate < deadline:
        deadline, why = by_rate, f"slower than {min_rate:g} bytes/s"
    return deadline, why


def rate_deadline(limits: Limits, min_rate: float, started: float, moved: int) -> float:
    """When ``moved`` bytes since ``started`` fall below ``min_rate`` bytes/s, counting
    from ``rate_grace`` after the start; never (infinity) when ``min_rate`` is 0."""
    if min_rate <= 0:
        return math.inf
    return started + limits.rate_grace + moved / min_rate


class _SlowPeer(trio.BrokenResourceError):
    """The server gave up on the peer: nothing moved for ``send_timeout`` or
    ``body_timeout``, or it fell below a minimum rate. Not the peer going away: the
    server cut it (a ``BrokenResourceError`` still, for code that only needs "broken";
    the seam's methods raise ``transport.PeerTooSlowError`` for it)."""


class HeadError(Exception):
    """The peer sent a head we refuse; ``status`` is the answer (400, 408, 413, 414, 431;
    501 for a transfer coding other than chunked, a lower-case method, CONNECT or
    ``OPTIONS *``; 505 for an HTTP version other than 1.x)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class HeadScanner:
    """Finds the end of a request head and enforces the head limits, incrementally.

    Pure and synchronous: ``feed`` is given the whole buffer each time (it only scans what is
    new) and returns the head's end offset once complete, ``None`` while incomplete, or raises
    ``HeadError``. The outcome does not depend on how the bytes were split. Empty lines before
    the request line are skipped; ``start`` is where the request line begins.
    """

    limits: Limits
    _pos: int = 0  # start of the first line not yet checked
    _lines: int = 0  # complete lines checked so far (request line included)
    _start: int = 0  # where the request line starts (after tolerated empty lines)

    @property
    def start(self) -> int:
        """Offset of the request line: the empty lines before it are not part of the head."""
        return self._start

    def feed(self, buf: bytes | bytearray) -> int | None:
        limits = self.limits
        if self._pos == 0 and (end := self._whole_head(buf)) is not None:
            return end
        while True:
            if self._lines == 0:
                # Tolerate empty lines before the request line (RFC 9112 §2.2), in any mix of
                # CRLF and bare LF; h11 refuses them, so ``start`` tells where the head begins.
                while True:
                    if buf.startswith(b"\r\n", self._pos):
                        self._pos += 2
                    elif buf.startswith(b"\n", self._pos):
                        self._pos += 1
                    else:
                        break
                self._start = self._pos
            nl = buf.find(b"\n", self._pos)
            line_limit = limits.max_request_line if self._lines == 0 else limits.max_header_field
            if self._lines == 0 and not (  # (the usual case, a whole valid line, inline)
                nl > self._pos
                and _REQUEST_LINE.fullmatch(buf, self._pos, nl - (buf[nl - 1] == 0x0D))
            ):
                self._check_request_line(buf, nl, line_limit, limits.max_head_bytes)
            # The line so far (up to its LF, CR included) and the head so far (through that LF).
            line_length = (nl if nl >= 0 else len(buf)) - self._pos
            head_length = nl + 1 if nl >= 0 else len(buf)
            too_long = line_length > line_limit + 1  # +1: the CR before LF
            too_large = head_length > limits.max_head_bytes
            # Each limit is broken at a fixed offset of the byte stream (the line at
            # _pos + line_limit + 2, the head at max_head_bytes + 1). When one scan sees both,
            # the one broken first wins, so the answer never depends on how bytes were split.
            if too_long and (
                not too_large or self._pos + line_limit + 2 <= limits.max_head_bytes + 1
            ):
                self._too_long()
            if too_large:
                raise HeadError(431, "request head too large")
            if nl < 0:
                return None
            empty = line_length == 0 or (line_length == 1 and buf[self._pos] == 0x0D)
            self._pos = nl + 1
            if empty and self._lines > 0:
                return self._pos
            self._lines += 1
            if self._lines - 1 > limits.max_header_count:
                raise HeadError(431, "too many header fields")

    def _whole_head(self, buf: bytes | bytearray) -> int | None:
        """The usual first feed, in a few scans of C instead of a loop per line: a whole
        head with CRLF line ends only, no empty line before it, shorter than every line limit
        (so no line can break one), within ``max_head_bytes`` and ``max_header_count``, and a
        valid request line. Returns its end, as the loop would; None for anything else (the
        loop then decides, from the start)."""
        limits = self.limits
        end = buf.find(b"\r\n\r\n") + 4
        if end < 4 or buf[0] in _CR_LF:
            return None
        shortest = min(limits.max_request_line, limits.max_header_field, limits.max_head_bytes)
        lines = buf.count(b"\n", 0, end)  # (the request line, the fields, the empty line)
        if (
            end > shortest
            or lines - 2 > limits.max_header_count
            or buf.count(b"\r\n", 0, end) != lines  # a bare LF: the loop's business
            or not _REQUEST_LINE.fullmatch(buf, 0, buf.find(b"\r\n"))
        ):
            return None
        self._pos, self._lines = end, lines - 1
        return end

    def _check_request_line(
        self, buf: bytes | bytearray, nl: int, line_limit: int, head_limit: int
    ) -> None:
        """Refuse at once bytes that cannot start a request line (a TLS handshake on a
        cleartext port, ``G@T / HTTP/1.1``): h11's request-line grammar, checked on what has
        arrived of the line. Only bytes before those where the line or the head would be too
        long are judged: a limit broken at an earlier byte answers, however the bytes were
        split."""
        stop = min(self._pos + line_limit + 1, head_limit)
        end = nl if nl >= 0 else len(buf)
        line = bytes(buf[self._pos : min(end, stop)])
        if 0 <= nl < stop:
            if line.endswith(b"\r"):
                line = line[:-1]
            if _REQUEST_LINE.fullmatch(line) is None:
                raise HeadError(400, "malformed request line")
        elif line != b"\r" and _REQUEST_LINE_START.fullmatch(line) is None:
            # (a lone CR may be the start of an empty line's CRLF: not judged yet)
            raise HeadError(400, "not an HTTP request")

    def _too_long(self) -> None:
        if self._lines == 0:
            raise HeadError(414, "request line too long")
        raise HeadError(431, "header field too large")


# h11's request-line grammar (h11/_abnf.py): method SP request-target SP HTTP-version, and
# every prefix of it (what may still become one when more bytes arrive).
_TCHAR: Final = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]"
_CR_LF: Final = b"\r\n"
_VCHAR: Final = rb"[\x21-\x7e]"
_REQUEST_LINE: Final = re.compile(rb"%s+ %s+ HTTP/[0-9]\.[0-9]" % (_TCHAR, _VCHAR))
_REQUEST_LINE_START: Final = re.compile(
    rb"%s*|%s+ %s*|%s+ %s+ (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.(?:[0-9]\r?)?)?)?)?)?)?)?)?"
    % (_TCHAR, _TCHAR, _VCHAR, _TCHAR, _VCHAR)
)
# Control bytes h11 lets through in field values (it refuses NUL, CR, LF and other
# whitespace out of place), deleted by bytes.translate (faster than a regex search).
_CONTROLS: Final = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# RFC 9110 §7.2 Host = uri-host [ ":" port ] (RFC 3986: IP-literal or reg-name; no userinfo).
_HOST: Final = re.compile(rb"(?:\[[0-9A-Za-z:.%~_-]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]+)(?::[0-9]*)?")
# absolute-form (RFC 9112 §3.2.2): the authority, then the path and query.
_ABSOLUTE: Final = re.compile(rb"https?://([^/?#]*)(.*)", re.IGNORECASE | re.DOTALL)
# A Content-Length field made of digits, in a raw head (for lengths h11 refuses to parse).
_LENGTH_FIELD: Final = re.compile(
    rb"\ncontent-length[ \t]*:[ \t]*([0-9]+)[ \t]*(?=\r?\n)", re.IGNORECASE
)


#: A header name or value we write: no control byte but HTAB.
_FIELD_SAFE: Final = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")


def check_head_bytes(head: bytes | bytearray, start: int = 0, end: int | None = None) -> None:
    """Byte-level checks of a complete head (``head[start:end]``) that h11 does not make.

    Raises:
        HeadError: 400 for a control byte other than HTAB (RFC 9110 §5.5: h11 passes
            ``\\x01``-``\\x08``, ``\\x0e``-``\\x1f`` and DEL in values) or obsolete line
            folding (RFC 9112 §5.2: h11 unfolds it; nginx refuses it).
    """
    stop = len(head) if end is None else end
    whole = head if start == 0 and stop == len(head) else head[start:stop]
    if len(whole.translate(None, _CONTROLS)) != stop - start:
        raise HeadError(400, "control character in request head")
    # (two C scans: a regex search costs several times more per head)
    if head.find(b"\n ", start, stop) >= 0 or head.find(b"\n\t", start, stop) >= 0:
        raise HeadError(400, "obsolete line folding")


def _length_above(text: bytes, limit: int) -> bool:
    """True when the decimal ``text`` is above ``limit`` (no int() of thousands of digits)."""
    digits = text.lstrip(b"0")
    return len(digits) > len(str(limit)) or int(digits or b"0") > limit


def oversized_length(head: bytes | bytearray, start: int, end: int, limits: Limits) -> bool:
    """True when a Content-Length field of ``head[start:end]`` is made of digits only and is
    above ``max_body_bytes`` (h11 refuses lengths over 20 characters as malformed: 413 is
    the answer however many digits a length has)."""
    return any(
        _length_above(m.group(1), limits.max_body_bytes)
        for m in _LENGTH_FIELD.finditer(head, start, end)
    )


def valid_host(value: bytes) -> bool:
    """RFC 9110 §7.2 ``uri-host [":" port]``, and no empty label (``..``, as nginx)."""
    if value in _VALID_HOSTS:
        return True
    valid = _HOST.fullmatch(value) is not None and b".." not in value
    if valid and len(_VALID_HOSTS) < _VALID_HOSTS_KEPT and len(value) <= _LONGEST_KEPT_HOST:
        _VALID_HOSTS.add(value)
    return valid


#: Host values found valid (a server hears the same few on every request): bounded in count
#: and length, so that hosts made up per request cannot grow it without end.
_VALID_HOSTS: set[bytes] = set()
_VALID_HOSTS_KEPT = 1024
_LONGEST_KEPT_HOST = 255


def check_request(
    method: bytes, target: bytes, http_version: bytes, headers: list[tuple[bytes, bytes]]
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Checks of the request line and Host that h11 leaves to the server (h11 has already
    checked the syntax, a missing or repeated Host in HTTP/1.1, and Transfer-Encoding).

    Returns:
        The target in origin form and the headers; for an absolute-form target, Host is its
        authority (RFC 9112 §3.2.2: the target's host wins over the Host field).

    Raises:
        HeadError: 505 for an HTTP version other than 1.x; 501 for a method with lower-case
            letters (methods are case-sensitive; none is registered in lower case), CONNECT
            (not a proxy) and ``OPTIONS *``; 400 for any other target that is not origin-form
            or http(s) absolute-form, a missing (HTTP/1.1 and later) or invalid Host, and
            Transfer-Encoding in HTTP/1.0 (RFC 9112 §6.1: its framing is faulty).
    """
    if not http_version.startswith(b"1."):
        # h11 takes any digit.digit; only HTTP/1.x is spoken here (RFC 9110 §15.6.6).
        raise HeadError(505, "HTTP version not supported")
    if method != method.upper():
        raise HeadError(501, "unrecognized method (methods are case-sensitive)")
    if method == b"CONNECT":
        raise HeadError(501, "CONNECT not supported")
    if target == b"*":
        if method == b"OPTIONS":
            raise HeadError(501, "server-wide OPTIONS not supported")
        raise HeadError(400, "asterisk-form target without OPTIONS")
    hosts = []
    for name, value in headers:  # (a loop: no comprehension frame per request)
        if name == b"host":
            hosts.append(value)
    if not target.startswith(b"/"):
        absolute = _ABSOLUTE.fullmatch(target)
        if absolute is None:
            raise HeadError(400, "request target is neither origin-form nor absolute-form")
        authority, rest = absolute.groups()
        if not valid_host(authority):
            raise HeadError(400, "invalid authority in request target")
        target = rest if rest.startswith(b"/") else b"/" + rest
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.insert(0, (b"host", authority))
        hosts = [authority]
    if not hosts and http_version != b"1.0":
        raise HeadError(400, "missing Host")  # h11 checks HTTP/1.1 only; 1.2 is read as 1.1
    if hosts and not valid_host(hosts[0]):
        raise HeadError(400, "invalid Host")
    if http_version == b"1.0" and any(n == b"transfer-encoding" for n, _ in headers):
        raise HeadError(400, "Transfer-Encoding in an HTTP/1.0 request")
    return target, headers


def request_fields(headers: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``list(headers)`` of an h11 event: (lower-case name, value) pairs.

    h11's ``Headers`` iterate in Python (``Sequence.__iter__``, one ``__getitem__`` per
    field); its ``_full_items`` (raw name, name, value) are read directly when present.
    tests/test_http1.py pins that they are, and give the same list.
    """
    full = getattr(headers, "_full_items", None)
    if full is None:
        return list(headers)
    return [(name, value) for _, name, value in full]


def chunk_bytes_declared(conn: RequestSide) -> int:
    """Bytes the chunk being read still declares (0 outside a chunked body).

    h11 keeps this in private state (``ChunkedReader._bytes_in_chunk``); tests/test_http1.py
    pins it, so an h11 that renames it fails a test instead of quietly waiting for a chunk
    that should have been refused at once.
    """
    return int(getattr(getattr(conn, "_reader", None), "_bytes_in_chunk", 0))


def check_framing(headers: Iterable[tuple[bytes, bytes]], limits: Limits) -> int | None:
    """Framing checks h11 leaves to the server. Returns the Content-Length, if any.

    Raises:
        HeadError: 400 for Content-Length with Transfer-Encoding (request smuggling,
            RFC 9112 §6.1) or a malformed length; 413 for a length above ``max_body_bytes``.
    """
    length: int | None = None
    chunked = False
    for name, value in headers:
        if name == b"transfer-encoding":
            chunked = True
        elif name == b"content-length":
            text = value.strip()
            if not text.isdigit():
                raise HeadError(400, "malformed Content-Length")
            # Any length above the limit stands for "too large" (no int() of 5000 digits).
            above = _length_above(text, limits.max_body_bytes)
            size = limits.max_body_bytes + 1 if above else int(text)
            if length is not None and size != length:
                raise HeadError(400, "conflicting Content-Length")
            length = size
    if chunked and length is not None:
        raise HeadError(400, "Content-Length with Transfer-Encoding")
    if length is not None and length > limits.max_body_bytes:
        raise HeadError(413, "request body too large")
    return length


class BodilessRequest:
    """The request side of a head without a body (rule 4): the exchange is already done on
    the client's side. Stands in for the ``h11.Connection`` the driver reads bodies from
    (the same attributes, the same answers h11 gives after ``EndOfMessage``); the fast path
    (http1_fast.py) makes one for every head it takes."""

    __slots__ = ("their_state", "trailing_data")

    client_is_waiting_for_100_continue: Final = False

    # (positional or keyword: one is made per request, positionally)
    def __init__(self, trailing: bytes, keep_alive: bool) -> None:
        #: Pipelined bytes after the head, as ``h11.Connection.trailing_data``.
        self.trailing_data = (trailing, False)
        #: As h11's after the end of the request: MUST_CLOSE when the client will not
        #: send another request on this connection.
        self.their_state: type = h11.DONE if keep_alive else h11.MUST_CLOSE

    def next_event(self) -> type[h11.PAUSED]:
        return h11.PAUSED

    def receive_data(self, data: bytes) -> None:  # pragma: no cover - never asked: no body
        raise AssertionError("a bodiless request reads no body")


class RequestSide(Protocol):
    """What the driver reads a request's body and leftovers from: an ``h11.Connection``
    (a request with a body, or an upgrade) or a ``BodilessRequest``."""

    @property
    def their_state(self) -> type: ...  # h11.DONE, h11.MUST_CLOSE, ...: its states are classes

    @property
    def trailing_data(self) -> tuple[bytes, bool]: ...

    @property
    def client_is_waiting_for_100_continue(self) -> bool: ...

    def next_event(self) -> Any: ...

    def receive_data(self, data: bytes) -> None: ...


#: How a complete head becomes a request (``parse_head``, or ``http1_fast.parse_head_fast``).
HeadParser = Callable[[bytes, int, "Limits"], tuple[RequestSide, "RequestHead"]]


def parse_head(data: bytes, end: int, limits: Limits) -> tuple[h11.Connection, RequestHead]:
    """Parse and check the complete head ``data[:end]`` (``HeadScanner`` found its end and
    enforced the size limits); the bytes after it stay in the returned h11 connection, which
    then reads the body. The checks run in this order: ``check_head_bytes``, h11,
    ``check_request``, ``check_framing``.

    Raises:
        HeadError: the first check the head fails (a length h11 finds malformed only for its
            number of digits is 413, like any other length above ``max_body_bytes``).
    """
    check_head_bytes(data, 0, end)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes + 1)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        if oversized_length(data, 0, end, limits):
            raise HeadError(413, "request body too large") from exc
        raise HeadError(exc.error_status_hint, str(exc)) from exc
    if not isinstance(event, h11.Request):  # pragma: no cover - the head is complete
        raise HeadError(400, "malformed request head")
    target, headers = check_request(
        event.method, event.target, event.http_version, request_fields(event.headers)
    )
    length = check_framing(headers, limits)
    http_version = event.http_version.decode("ascii")
    chunked = False
    for name, _ in headers:  # (a loop: no generator per request)
        if name == b"transfer-encoding":
            chunked = True
            break
    return conn, RequestHead(
        event.method.decode("ascii"),
        target.decode("latin-1"),
        http_version,
        headers,
        length,
        chunked,
        request_keep_alive(http_version, headers),
    )


class _DateCache:
    """The ``Date`` header, formatted once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def get(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = email.utils.formatdate(now, usegmt=True).encode()
        return self._value


_DATE = _DateCache()


def error_response_bytes(status: int) -> bytes:
    """A complete ``Connection: close`` response for errors found before h11 is involved
    (the body names only the status: peer bytes never go back into an error page)."""
    reason = reason_phrase(status)
    body = f"{status} {reason.decode()}\n".encode()
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
        b"Connection: close\r\nDate: %s\r\nServer: %s\r\n\r\n"
        % (status, reason, len(body), _DATE.get(), SERVER_HEADER)
    )
    return head + body


@dataclass(slots=True)
class Counters:
    """Byte counts of one connection."""

    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass(slots=True)
class RequestHead:
    """What the connection hands the server for one request.

    (Fields positional or keyword: the HTTP/1.1 parsers make one per request positionally,
    which costs less than keyword arguments.)"""

    method: str
    target: str
    http_version: str
    headers: list[tuple[bytes, bytes]]
    content_length: int | None
    chunked: bool
    keep_alive: bool = True  # the client allows another request after this one


class Http1Connection:
    """One HTTP/1.1 connection: read request heads and bodies, write responses.

    Not a public API: the server and the context objects drive it. All methods must be called
    from one request at a time (the server serialises requests on a connection).
    """

    # Slots: thousands of idle keep-alive connections each hold one.
    __slots__ = (
        "_arrived", "_body_base", "_body_done", "_body_left", "_body_pos", "_body_queued",
        "_body_ranges", "_body_received", "_body_refused", "_body_started", "_complete_at",
        "_content_length", "_continue_refused", "_expect_continue", "_h11", "_head_end", "_inbuf",
        "_no_body",
        "_on_peer_gone", "_outbuf", "_parse", "_queued", "_raw", "_response_base",
        "_response_started", "_socket", "_space", "_stopped", "_upgraded", "_wanted", "_was_reset",
        "_writer", "_writers", "_writing", "broken", "closing", "counters", "eof", "limits",
        "on_data", "on_disconnect", "stream",
    )  # fmt: skip

    def __init__(
        self,
        stream: trio.abc.Stream,
        limits: Limits,
        *,
        on_disconnect: Callable[[], None] | None = None,
        raw_socket: socket.socket | None = None,
        head_parser: HeadParser | None = None,
    ) -> None:
        self.stream = stream
        self._parse = head_parser or parse_head
        self.limits = limits
        self.counters = Counters()
        self.on_disconnect = on_disconnect
        #: Called by ``pump`` after each read (the server starts its request loop from it).
        self.on_data: Callable[[], None] | None = None
        #: True once the peer closed its side (FIN) or the connection broke (RST).
        self.eof = False
        #: True once a write failed or was cut short on a stream that cannot tell how far it got.
        self.broken = False
        self._inbuf = bytearray()
        # Made when a task first waits (most connections never do: a small request arrives
        # whole), so that an idle connection does not hold them.
        self._arrived: trio.lowlevel.ParkingLot | None = None  # readers wait for bytes
        self._space: trio.lowlevel.ParkingLot | None = None  # the pump waits for room
        self._wanted = 0
        self._outbuf = bytearray()
        #: Rule 5b: every byte ever queued, so ``_queued`` is the stream offset where the
        #: next queued byte will go out (``counters.bytes_sent`` counts the ones that did).
        self._queued = 0
        # The current response's body as [start, end) stream offsets not yet wholly sent,
        # and the body bytes of the ranges already sent and dropped from the list.
        self._body_ranges: list[list[int]] = []
        self._body_done = 0
        self._body_queued = 0  # the current response's body bytes queued so far
        # The stream offset at which the response's bytes make a complete message, once
        # they do (the end framed, or a Content-Length body's last byte queued).
        self._complete_at: int | None = None
        # The stream offset just past the current response's head, once it is queued.
        self._head_end: int | None = None
        # One writer at a time; a flag and a parking lot cost no checkpoint when free.
        self._writing = False
        self._writers: trio.lowlevel.ParkingLot | None = None  # made when a writer must wait
        #: Set by the server while it drains: responses say ``Connection: close``.
        self.closing = False
        self._was_reset = False
        self._stopped = False  # stop_reading was called
        self._upgraded = False  # a 101 went out: the connection is no longer HTTP (rule 9)
        # Start time and byte count at the start of the current body / response (min rates).
        self._body_started = self._response_started = 0.0
        self._body_base = self._response_base = 0
        self._h11: RequestSide | None = None  # the request side of the exchange
        self._writer: ResponseWriter | None = None  # the response side
        self._expect_continue = False  # the client waits for 100 Continue before its body
        self._body_left = b""
        self._body_pos = 0  # next unread byte of _body_left (one copy, not one per read)
        self._body_received = 0
        self._content_length: int | None = None  # the current request's, if it has one
        self._body_refused = False  # a 413 was raised for this body: raise it again
        self._no_body = False
        #: The final response went out while the client still waited for ``100 Continue``.
        self._continue_refused = False
        self._socket: trio.socket.SocketType | None = (
            stream.socket if isinstance(stream, trio.SocketStream) else None
        )
        # The stdlib socket behind ``_socket`` (when the server has it): sends are tried on
        # it directly and only wait (a checkpoint) when the kernel buffer is full.
        self._raw = raw_socket
        # The seam's peer watcher: the request being served, while it runs (rule 9).
        self._on_peer_gone: Callable[[], None] | None = None

    # ---------------------------------------------------------------- reading

    async def pump(self) -> None:
        """Read the stream until EOF or ``stop_reading``; the connection's only reader
        (rule 1), run by the connection task itself. After each read it calls ``on_data``
        (the server starts its request loop from there); at EOF or RST, ``on_disconnect``.

        Cancellation: ``handle_stream`` cancels it to end the connection (idle deadline,
        drain, close); a cancelled read loses no byte (Trio guarantees it for sockets, and
        a raw-socket read is never interrupted halfway). The server's own sockets are
        stopped by ``stop_reading`` instead, which needs no cancel scope. ``cancel_io``
        does not reach it: it belongs to the connection, not to a request."""
        stream, raw = self.stream, self._raw
        reads = 0
        while not self._stopped:
            if len(self._inbuf) >= self.limits.receive_buffer and not self._wanted:
                if self._space is None:
                    self._space = trio.lowlevel.ParkingLot()
                await self._space.park()  # until a reader wants more (or stop_reading)
                continue
            try:
                if raw is None:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                else:
                    # The socket itself, not SocketStream.receive_some: three coroutine
                    # frames less on every idle connection.
                    if reads == _READS_PER_CHECKPOINT:  # a peer that never lets it wait
                        reads = 0
                        await trio.lowlevel.checkpoint()  # (before the read: loses nothing)
                    try:
                        data = raw.recv(_RECEIVE_SIZE)
                    except BlockingIOError:
                        data = None  # wait outside the handler: it would hold the exception
                    if data is None:
                        reads = 0
                        await trio.lowlevel.wait_readable(raw)
                        continue
                    reads += 1
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                break
            self.counters.bytes_received += len(data)
            self._inbuf += data
            data = b""  # not held by an idle connection's frame (recv's buffer is large)
            self._wake_readers()
            if self.on_data is not None:
                self.on_data()
        if self._stopped:
            return  # stop_reading: the server closes the connection, the peer did not
        # EOF (FIN) or RST: wake readers and tell the server, which cancels a running request
        # (not when we reset the connection ourselves: then the request goes on).
        self.eof = True
        self._wake_readers()
        if self.on_disconnect is not None and not self._was_reset:
            self.on_disconnect()

    async def _wait_for_data(self) -> None:
        self._wanted += 1
        self._wake_pump()
        if self._arrived is None:
            self._arrived = trio.lowlevel.ParkingLot()
        try:
            await self._arrived.park()
        finally:
            self._wanted -= 1

    def _wake_readers(self) -> None:
        if self._arrived is not None:
            self._arrived.unpark_all()

    def _wake_pump(self) -> None:
        if self._space is not None:
            self._space.unpark_all()

    @property
    def idle(self) -> bool:
        """True when no byte of a next request has arrived and the peer is still there: the
        connection waits in ``pump`` (one task), not in ``next_request``."""
        return not self._inbuf and not self.eof

    async def next_request(self, *, first: bool) -> RequestHead | None:
        """Read the request head whose first bytes have arrived (see ``idle``).

        Returns ``None`` when the connection should just close: EOF before a head, or
        nothing but blank lines until ``head_timeout`` (or while the server drains).

        Raises:
            HeadError: the head breaks a limit, is malformed, or is too slow (408).

        Cancellation: safe at any point: bytes already read stay in the input buffer.
        """
        limits = self.limits
        scanner = HeadScanner(limits)
        deadline: float | None = None  # set at the first wait (most heads need none)
        while True:
            if self._inbuf:
                end = scanner.feed(self._inbuf)
                if end is not None:
                    return self._parse_head(scanner.start, end)
            if self.eof:
                if self._inbuf.strip():
                    raise HeadError(400, "connection closed inside a request head")
                return None
            if deadline is None:
                deadline = trio.current_time() + limits.head_timeout
            if self.closing and not self._inbuf.strip():
                if not first:
                    return None  # the server drains: an idle connection just closes
                # A connection accepted just before the drain: its first request may be
                # on its way (a worker replaced by a reload); wait for it a little.
                deadline = min(deadline, trio.current_time() + limits.linger_timeout)
            with trio.move_on_at(deadline):
                await self._wait_for_data()
                continue
            if not self._inbuf.strip():
                return None
            raise HeadError(408, "request head not received in time")

    def _parse_head(self, start: int, end: int) -> RequestHead:
        # h11 refuses empty lines before the request line, which RFC 9112 §2.2 asks us to
        # ignore (clients send a stray CRLF after a body): they are dropped here.
        data = bytes(self._inbuf[start:])
        self._inbuf.clear()
        self._wake_pump()
        conn, head = self._parse(data, end - start, self.limits)
        self._h11 = conn
        self._writer = ResponseWriter(head.method, head.http_version, head.keep_alive)
        self._expect_continue = conn.client_is_waiting_for_100_continue
        self._body_left = b""
        self._body_pos = 0  # next unread byte of _body_left (one copy, not one per read)
        self._body_received = 0
        self._content_length = head.content_length
        self._body_refused = False
        self._body_ranges = []
        self._body_done = self._body_queued = 0
        self._complete_at = self._head_end = None
        self._no_body = head.method == "HEAD"
        self._continue_refused = False
        # (a bodiless request reads nothing: no clock for its body rate)
        self._body_started = trio.current_time() if head.content_length or head.chunked else 0.0
        self._body_base = self.counters.bytes_received - len(data) + (end - start)
        if type(conn) is h11.Connection and head.content_length is None and not head.chunked:
            # No body framing: the request ends with its head, and needs no drain after its
            # response (rule 4). h11 would only confirm it (its EndOfMessage), except for an
            # upgrade (its switch proposal) and a client waiting for 100 Continue.
            for name, _ in head.headers:
                if name == b"upgrade":
                    break
            else:
                name = b""
            if self._expect_continue or name == b"upgrade":
                event = conn.next_event()
                assert isinstance(event, h11.EndOfMessage), event
            else:
                # (h11 marks every HTTP/1.0 client MUST_CLOSE: the writer decides)
                done = head.keep_alive and head.http_version >= "1.1"
                self._h11 = BodilessRequest(data[end - start :], done)
        return head

    @property
    def body_complete(self) -> bool:
        """True when the whole request body (possibly empty) has been received."""
        conn = self._h11
        return conn is None or (conn.their_state is not h11.SEND_BODY and not self._body_left)

    @property
    def body_remaining(self) -> int | None:
        """Request body bytes not yet handed out; None while unknown (chunked)."""
        if self._content_length is not None:
            return self._content_length - self._body_received
        return 0 if self.body_complete else None

    @property
    def body_received(self) -> int:
        """Request body bytes handed out so far for the current request."""
        return self._body_received

    async def read_body(self, max_bytes: int) -> bytes:
        """Up to ``max_bytes`` of the request body; ``b""`` once it is all read (the
        driver's errors: the seam's ``receive_body`` translates them).

        Cancellation: safe at any point; no byte is lost (it stays buffered for the next call).

        Raises:
            HeadError: 413 as soon as a chunk size would take the body past
                ``max_body_bytes`` (before its data arrives); 400 for
                malformed chunked framing.
            trio.BrokenResourceError: the client closed or broke the connection mid-body.
        """
        conn = self._h11
        if conn is None:
            return b""
        if self._body_refused:  # the same answer to every later read (and to drain_body)
            raise HeadError(413, "request body too large")
        if self._body_left:
            start = self._body_pos
            data = self._body_left[start : start + max_bytes]
            self._body_pos = start + len(data)
            if self._body_pos >= len(self._body_left):
                self._body_left, self._body_pos = b"", 0
            self._body_received += len(data)
            return data
        while True:
            if conn.their_state is h11.SEND_BODY and self._expect_continue:
                self._expect_continue = False
                self._queue(b"HTTP/1.1 100 Continue\r\n\r\n")
                await self.write_queued()
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                if self.eof:  # the client left before the end of its body
                    raise trio.BrokenResourceError("request body broken off") from exc
                raise HeadError(400, f"malformed request body: {exc}") from exc
            if event is h11.NEED_DATA:
                if self._body_received + chunk_bytes_declared(conn) > self.limits.max_body_bytes:
                    self._body_refused = True  # at once, not when the chunk has arrived
                    raise HeadError(413, "request body too large")
                if self._inbuf:
                    conn.receive_data(bytes(self._inbuf))
                    self._inbuf.clear()
                    self._wake_pump()
                elif self.eof:
                    conn.receive_data(b"")
                else:
                    deadline, why = self._slow_deadline(
                        self.limits.body_timeout,
                        self.limits.min_body_rate,
                        self._body_started,
                        self.counters.bytes_received - self._body_base,
                    )
                    with trio.move_on_at(deadline) as waited:
                        await self._wait_for_data()
                    if waited.cancelled_caught:
                        self.broken = True  # a client this slow is not kept
                        raise _SlowPeer(f"client sent its body {why}")
                continue
            if isinstance(event, h11.Data):
                data = bytes(event.data)
                declared = len(data) + chunk_bytes_declared(conn)
                if self._body_received + declared > self.limits.max_body_bytes:
                    self._body_refused = True
                    raise HeadError(413, "request body too large")
                if len(data) > max_bytes:
                    data, self._body_left, self._body_pos = data[:max_bytes], data, max_bytes
                self._body_received += len(data)
                return data
            # EndOfMessage (trailers are dropped) or PAUSED after the end.
            return b""

    # ---------------------------------------------------------------- writing

    def _slow_deadline(
        self, idle: float, min_rate: float, started: float, moved: int
    ) -> tuple[float, str]:
        return slow_deadline(self.limits, idle, min_rate, started, moved)

    def _queue(self, data: bytes | bytearray) -> None:
        """Append to the output queue (rule 5b: every queued byte is counted)."""
        self._outbuf += data
        self._queued += len(data)

    def _queue_body_range(self, size: int, start: int | None = None) -> None:
        """``size`` bytes from stream offset ``start`` (default: the next queued byte) are
        response body (rule 5b)."""
        if start is None:
            start = self._queued
        self._body_queued += size
        ranges = self._body_ranges
        if ranges and ranges[-1][1] == start:
            ranges[-1][1] = start + size  # contiguous (Content-Length): one range
        else:
            ranges.append([start, start + size])

    def _note_complete(self) -> None:
        """Rule 5c: once the framed bytes make a whole message, remember where it ends."""
        writer = self._writer
        if self._complete_at is None and writer is not None and writer.complete:
            self._complete_at = self._queued

    @property
    def body_bytes_sent(self) -> int:
        """Rule 5b: body bytes of the current response handed to the kernel (or TLS)."""
        sent = self.counters.bytes_sent
        ranges = self._body_ranges
        while ranges and ranges[0][1] <= sent:
            start, end = ranges.pop(0)
            self._body_done += end - start
        partial = max(0, sent - ranges[0][0]) if ranges else 0
        return self._body_done + partial

    @property
    def body_bytes_queued(self) -> int:
        """Body bytes of the current response queued so far (sent or not)."""
        return self._body_queued

    @property
    def response_complete(self) -> bool:
        """Rule 5c: every byte of a complete response was handed to the kernel (or TLS)."""
        end = self._complete_at
        return end is not None and self.counters.bytes_sent >= end and not self._was_reset

    @property
    def head_written(self) -> bool:
        """Rule 5c for the head: its last byte was handed to the kernel (or TLS)."""
        end = self._head_end
        return end is not None and self.counters.bytes_sent >= end

    def _can_drain(self) -> bool:
        """True when the request's unread body, if any, can be read and dropped after the
        response (``drain_body_bytes``), so that the connection may be kept."""
        conn = self._h11
        if conn is None or conn.their_state is not h11.SEND_BODY:
            return True
        if self._expect_continue or self._continue_refused or self._body_refused:
            return False  # the client may never send it, or it is refused already
        length = self._content_length
        if length is None:
            return False  # chunked, not finished: its size is unknown
        return length - self._body_received <= self.limits.drain_body_bytes

    def queue_head(
        self,
        status: int,
        reason: bytes,
        headers: list[tuple[bytes, bytes]],
        *,
        close: bool = False,
    ) -> None:
        """Queue the status line and headers (``Date`` and ``Server`` are added if missing);
        ``write_queued`` sends them. The head says ``Connection: close`` when ``close``,
        while the server drains, and when the request's unread body could not be drained
        after the response (rule 8).

        Raises:
            FramingError: as ``ResponseWriter.head``; nothing is queued.
        """
        writer = self._writer
        assert writer is not None
        # (_body_started is set only for a request with a body: one to drain, maybe)
        if close or self.closing or (self._body_started and not self._can_drain()):
            writer.keep_alive = False
        self._response_started = trio.current_time()
        self._response_base = self.counters.bytes_sent
        self._no_body = self._no_body or status in (204, 304) or status < 200
        defaults: tuple[tuple[bytes, bytes], ...] = (
            (b"date", _DATE.get()),
            (b"server", SERVER_HEADER),
        )
        data = writer.head(status, headers, reason or reason_phrase(status), defaults)
        self._outbuf += data
        self._queued += len(data)
        self._head_end = self._queued
        if writer.complete:  # a bodiless answer, or Content-Length: 0 (rule 5c)
            self._complete_at = self._queued
        if self._expect_continue:
            # The final answer came first: the client may never send the body (drain_body).
            self._expect_continue = False
            self._continue_refused = True

    def queue_body(self, data: bytes) -> int:
        """Queue body bytes (dropped for HEAD, 204 and 304, where framing allows none).

        Returns:
            The body bytes queued: ``len(data)``, or 0 when they were dropped.

        Raises:
            FramingError: more bytes than the Content-Length.
        """
        writer = self._writer
        assert writer is not None
        if not data or self._no_body:
            return 0
        encoded = writer.body(data)
        # Chunked framing puts b"<size>\r\n" before the data and b"\r\n" after it.
        framing = len(encoded) - len(data)
        self._queue_body_range(len(data), self._queued + (framing - 2 if framing else 0))
        self._outbuf += encoded
        self._queued += len(encoded)
        if writer.complete and self._complete_at is None:  # the last declared byte (5c)
            self._complete_at = self._queued
        return len(data)

    def queue_end(self) -> None:
        """Queue the end of the response (the final chunk for chunked framing)."""
        writer = self._writer
        assert writer is not None
        data = writer.end()
        self._outbuf += data
        self._queued += len(data)
        if self._complete_at is None:  # (rule 5c)
            self._complete_at = self._queued

    def queue_raw(self, data: bytes) -> int:
        """Queue bytes a module framed itself (no head was written): all of them count as
        body, the response is complete once its end (``queue_end``) is out, and the
        connection closes after it."""
        if self._writer is not None:
            self._writer.keep_alive = False
        self._queue_body_range(len(data))
        self._queue(data)
        return len(data)

    async def send_file(self, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as body bytes, after
        whatever is queued: zero-copy (``os.sendfile``) on a plain socket the server owns,
        else read in ``FILE_PIECE`` parts in a worker thread. Returns the file bytes sent.

        Raises:
            FramingError: more bytes than the response's Content-Length.
            OSError: reading the file failed (a disk error).
            EOFError: the file ended before ``count`` bytes (it shrank): the body cannot be
                completed.
            trio.BrokenResourceError: the client is gone (or too slow, as ``write_queued``).

        Cancellation: stops between sends; the bytes sent so far are counted in
        ``counters.bytes_sent`` and the response cannot be completed (the caller resets).
        """
        writer = self._writer
        assert writer is not None
        if self._no_body or count <= 0:
            return 0
        before, after = writer.around(count)
        if self._writing:
            await self._wait_for_writer()
        self._writing = True  # one writer: nothing may slip in between the framing and file
        raw = self._raw
        sent = 0
        try:
            self._queue(before)
            await self._write_out()
            if raw is not None:  # the file's bytes bypass the queue: counted here (rule 5b)
                self._queue_body_range(count)
                self._queued += count
                self._note_complete()
            while sent < count:
                if raw is None:
                    size = min(FILE_PIECE, count - sent)
                    data = await trio.to_thread.run_sync(os.pread, fd, size, offset + sent)
                    if not data:
                        raise EOFError("the file ended early")
                    self._queue_body_range(len(data))
                    self._queue(data)
                    if sent + len(data) == count:
                        self._note_complete()
                    await self._write_out()
                    sent += len(data)
                    continue
                try:
                    n = os.sendfile(raw.fileno(), fd, offset + sent, count - sent)
                except BlockingIOError:
                    await self._wait_writable(raw)
                    continue
                except OSError as exc:
                    if exc.errno in _PEER_GONE:
                        raise trio.BrokenResourceError(str(exc)) from exc
                    raise  # the file's side (a disk error): the pipeline logs it
                if n == 0:
                    raise EOFError("the file ended early")
                sent += n
                self.counters.bytes_sent += n
            self._queue(after)
            self._note_complete()
            await self._write_out()
        except BaseException:
            self.broken = True  # the body is cut short: this connection cannot go on
            raise
        finally:
            self._done_writing()
        return sent

    async def _wait_writable(self, raw: socket.socket) -> None:
        """Wait until ``raw`` takes more bytes, within the send deadlines (a checkpoint).

        The minimum send rate counts the bytes the peer acknowledged, not the ones the
        kernel took: a socket buffer of megabytes filled at once is no progress of a peer
        that reads nothing."""
        acknowledged = self.counters.bytes_sent - _unacknowledged(raw)
        deadline, why = self._slow_deadline(
            self.limits.send_timeout,
            self.limits.min_send_rate,
            self._response_started,
            max(0, acknowledged - self._response_base),
        )
        with trio.move_on_at(deadline) as waited:
            await trio.lowlevel.wait_writable(raw)
        if waited.cancelled_caught:
            self.broken = True
            raise _SlowPeer(f"client read the response {why}") from None

    async def write_raw(self, data: bytes) -> int:
        """Send bytes that are not part of an h11 exchange (early error responses).

        Cancellation: as ``write_queued``: unsent bytes stay queued."""
        self._queue(data)
        return await self.write_queued()

    def reset_now(self) -> None:
        """Abort the connection at once (an RST on sockets); nothing more is sent.

        Other streams cannot send an RST: they are closed when the request ends.
        """
        self.broken = True
        self._was_reset = True
        self._outbuf = bytearray()
        if self._socket is not None:
            _set_linger_zero(self._socket)
            self._socket.close()  # wakes the pump and any writer with ClosedResourceError

    @property
    def reading_stopped(self) -> bool:
        """``stop_reading`` was called."""
        return self._stopped

    def stop_reading(self) -> None:
        """Make ``pump`` return now, without taking it for the peer's EOF (the server closes
        an idle connection). Only for the server's own sockets (``raw_socket``); the
        connection must be closed next."""
        assert self._raw is not None, "stop_reading needs the raw socket"
        self._stopped = True
        trio.lowlevel.notify_closing(self._raw)  # wakes wait_readable: ClosedResourceError
        self._wake_pump()

    def wake_idle(self) -> None:
        """Wake ``next_request`` so that it sees ``closing`` (server shutdown)."""
        self.closing = True
        self._wake_readers()

    def try_write(self) -> bool:
        """Send what is queued without waiting; True if nothing is left (no checkpoint).

        Only for sockets the server owns (``raw_socket``); other streams return False.
        """
        raw = self._raw
        if raw is None or self._writing or self._was_reset:
            return not self._outbuf
        buf = self._outbuf
        sent = 0
        try:
            while sent < len(buf):
                sent += raw.send(memoryview(buf)[sent:])
        except BlockingIOError:
            pass
        except OSError:
            self.broken = True
            return False  # write_queued will raise on the same error
        finally:
            if sent:
                self.counters.bytes_sent += sent
                self._outbuf = bytearray() if sent == len(buf) else buf[sent:]
        return not self._outbuf

    async def write_queued(self) -> int:
        """Send everything queued; returns the bytes this call put on the wire.

        Cancellation: exactly the unsent bytes stay queued (rule 5), see ``_write_out``.
        """
        if self._writing:
            await self._wait_for_writer()
        self._writing = True
        try:
            return await self._write_out()
        finally:
            self._done_writing()

    async def _wait_for_writer(self) -> None:
        """Park until no task is writing (``_writing``: one writer at a time, so the bytes of
        two sends never interleave). Callers test ``_writing`` first and set it after, so an
        uncontended write costs no call and no checkpoint.

        Cancellation: leaves the queue as it was; the caller never became the writer.
        """
        while self._writing:
            if self._writers is None:
                self._writers = trio.lowlevel.ParkingLot()
            await self._writers.park()

    def _done_writing(self) -> None:
        self._writing = False
        if self._writers is not None:
            self._writers.unpark()

    async def _write_out(self) -> int:
        """Send ``_outbuf``; returns the bytes sent by this call (rule 5).

        Cancellation: on a socket, exactly the unsent bytes stay queued. On other streams
        (TLS, memory) a cancel inside ``send_all`` leaves its piece's fate unknown, so the
        connection is marked broken and will be closed after this response.
        """
        sent = 0
        # Take the queue: other tasks may queue more while this one waits (rule 5), and a
        # bytearray with a live memoryview cannot grow.
        buf, self._outbuf = self._outbuf, bytearray()
        sock = self._socket
        raw = self._raw
        view = memoryview(buf)
        try:
            while sent < len(view):
                if raw is not None:
                    try:
                        n = raw.send(view[sent : sent + 1048576])
                    except BlockingIOError:
                        await self._wait_writable(raw)
                        continue
                elif sock is not None:
                    n = await sock.send(view[sent : sent + 262144])
                else:
                    piece = bytes(view[sent : sent + 65536])
                    self.broken = True  # until send_all returns
                    await self.stream.send_all(piece)
                    self.broken = False
                    n = len(piece)
                sent += n
                self.counters.bytes_sent += n
        except (OSError, trio.ClosedResourceError) as exc:
            self.broken = True
            raise trio.BrokenResourceError(str(exc)) from exc
        finally:
            # Put the unsent rest back in front of whatever was queued meanwhile (a new
            # buffer: slices of ``view`` may still be referenced by a traceback).
            if sent < len(buf):
                self._outbuf = buf[sent:] + self._outbuf
        return sent

    # ---------------------------------------------------------------- upgrade (rule 9)

    def upgrade(self, headers: list[tuple[bytes, bytes]]) -> UpgradedStream:
        """Queue ``101 Switching Protocols`` with ``headers`` (``Date`` and ``Server``
        added) and hand the connection over to another protocol: the returned stream reads
        the bytes after the request head (including any the client sent early) and writes
        after the 101. Nothing is sent yet (``UpgradedStream.flush`` sends it).

        Raises:
            FramingError: a control character in a header; nothing is queued.
        """
        conn = self._h11
        assert conn is not None
        assert self._writer is not None
        lines = [b"HTTP/1.1 101 Switching Protocols\r\n"]
        names = {name.lower() for name, _ in headers}
        extra = ((b"date", _DATE.get()), (b"server", SERVER_HEADER))
        for name, value in [*headers, *(i for i in extra if i[0] not in names)]:
            if not (_FIELD_SAFE.fullmatch(name) and _FIELD_SAFE.fullmatch(value)):
                raise FramingError("control character in the 101 head")
            lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"\r\n")
        head = b"".join(lines)
        trailing, _ = conn.trailing_data
        if trailing:
            self._inbuf[:0] = trailing
        self._h11 = None  # HTTP is over on this connection (an open socket holds less)
        self._upgraded = True
        self._writer.keep_alive = False
        self._queue(head)
        self._head_end = self._queued
        self._wake_pump()
        return UpgradedStream(self, self._queued)

    # ---------------------------------------------------------------- ending

    @property
    def can_keep_alive(self) -> bool:
        """True when both sides finished the exchange cleanly and nobody asked to close."""
        conn, writer = self._h11, self._writer
        return (
            conn is not None
            and writer is not None
            and writer.done
            and writer.keep_alive
            and not self.eof
            and not self.broken
            and not self._upgraded
            and not self._outbuf
            # (h11 marks an HTTP/1.0 client MUST_CLOSE: its keep-alive is the writer's call)
            and (conn.their_state is h11.DONE or conn.their_state is h11.MUST_CLOSE)
        )

    async def drain_body(self, limit: int) -> bool:
        """Read and drop up to ``limit`` unread body bytes; True if the body then ended.

        Cancellation: as ``read_body``; the server bounds it with ``linger_timeout``."""
        conn = self._h11
        if conn is None or conn.their_state is not h11.SEND_BODY:
            return True
        if self._continue_refused or self._expect_continue:
            # The client was never told to send its body, and may never send it: a final
            # response without 100 Continue leaves the connection's framing unknown.
            return False
        total = 0
        try:
            while total <= limit:
                data = await self.read_body(limit + 1)
                if not data:
                    return True
                total += len(data)
        except (trio.BrokenResourceError, HeadError):
            return False
        return False

    def next_cycle(self) -> None:
        """Start the next request: pipelined bytes go back in front of the input buffer."""
        conn = self._h11
        assert conn is not None
        trailing, _ = conn.trailing_data
        if trailing:
            self._inbuf[:0] = trailing
        self._h11 = self._writer = None

    async def linger(self) -> None:
        """Lingering close: send FIN, then drop what the client still sends until its EOF or
        ``linger_timeout``, so that an RST (which unread data at close would cause) cannot
        destroy the response in flight. Needs ``pump`` running.

        Cancellation: shielded and bounded by ``linger_timeout``.
        """
        if self.eof or self._socket is None:
            return
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + self.limits.linger_timeout
            try:
                self._socket.shutdown(trio.socket.SHUT_WR)
            except OSError:
                return
            while not self.eof:
                self._inbuf.clear()
                await self._wait_for_data()

    async def aclose(self, *, abort: bool = False) -> None:
        """Close the stream now; ``abort=True`` makes it an RST (SO_LINGER 0).

        Cancellation: never blocks; always closes.
        """
        if abort and self._socket is not None:
            _set_linger_zero(self._socket)
        await trio.aclose_forcefully(self.stream)

    # ---------------------------------------------------------------- the transport seam

    # Rule 9: the connection is the ``Transport`` (transport.py) of the request it serves.
    send_head = queue_head
    send_body = queue_body
    send_end = queue_end
    send_raw = queue_raw
    reset = reset_now

    async def write(self) -> None:
        """The seam's ``write``: ``write_queued``, its errors translated.

        Raises:
            PeerGoneError: the client closed or reset the connection.
            PeerTooSlowError: ``send_timeout`` or ``min_send_rate``.

        Cancellation: as ``write_queued``.
        """
        with _seam_errors():
            await self.write_queued()

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """The seam's ``transmit_file``: ``send_file``, its errors translated.

        Raises:
            PeerGoneError, PeerTooSlowError: as ``write``.
            EOFError, FramingError, OSError: as ``send_file``.

        Cancellation: as ``send_file``.
        """
        with _seam_errors():
            return await self.send_file(fd, offset, count)

    async def receive_body(self, max_bytes: int) -> bytes:
        """The seam's ``receive_body``: ``read_body``, its errors translated.

        Raises:
            BodyTooLargeError: past ``max_body_bytes`` (413).
            MalformedBodyError: broken chunked framing (400).
            PeerGoneError: the client left mid-body.
            PeerTooSlowError: ``body_timeout`` or ``min_body_rate``.

        Cancellation: as ``read_body``: loses no byte.
        """
        try:
            with _seam_errors():
                return await self.read_body(max_bytes)
        except HeadError as exc:
            if exc.status == 413:
                raise BodyTooLargeError(str(exc)) from exc
            raise MalformedBodyError(str(exc)) from exc

    @property
    def keep_alive(self) -> bool:
        """The seam's name for ``can_keep_alive``."""
        return self.can_keep_alive

    def watch_peer(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` once if the peer goes away while this request runs (at once if
        it already has); ``None`` stops watching (the request ended)."""
        self._on_peer_gone = callback
        if callback is not None and self.eof:
            self.peer_gone()

    def peer_gone(self) -> bool:
        """The reader saw EOF or RST: tell the watching request (once). False when no
        request was watching."""
        callback, self._on_peer_gone = self._on_peer_gone, None
        if callback is None:
            return False
        callback()
        return True


@contextlib.contextmanager
def _seam_errors() -> Iterator[None]:
    """The driver's broken-stream errors as the seam's: the server gave up on a slow peer,
    or the peer went away."""
    try:
        yield
    except _SlowPeer as exc:
        raise PeerTooSlowError(str(exc)) from exc
    except trio.BrokenResourceError as exc:
        raise PeerGoneError(str(exc) or "the client is gone") from exc


def _unacknowledged(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that its peer has not acknowledged yet (Linux ``SIOCOUTQ``);
    0 where the platform does not tell."""
    try:
        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
    except (OSError, AttributeError):
        return 0
    return max(0, int(struct.unpack("i", queued)[0]))


class UpgradedStream:
    """The bytes of an upgraded connection, both ways (rule 9): what a WebSocket driver
    sits on. ``receive_some`` and ``flush`` may run in different tasks at once."""

    __slots__ = ("_http", "_start", "bytes_received")

    def __init__(self, http: Http1Connection, start: int) -> None:
        self._http = http
        self._start = start  # the stream offset of the first byte after the 101 head
        #: Bytes handed to the caller by ``receive_nowait``.
        self.bytes_received = 0

    @property
    def connection(self) -> Http1Connection:
        """The connection the stream is (server shutdown closes its WebSocket)."""
        return self._http

    @property
    def bytes_sent(self) -> int:
        """Bytes after the 101 head handed to the kernel (or TLS)."""
        return max(0, self._http.counters.bytes_sent - self._start)

    @property
    def bytes_queued(self) -> int:
        """Bytes after the 101 head queued so far (sent or not)."""
        return self._http._queued - self._start

    def listen(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` now and each time ``pump`` read bytes (in the pump's task, no
        checkpoint): the connection carries the new protocol, so it takes the place of the
        server's ``on_data``. EOF and RST still reach ``on_disconnect``."""
        self._http.on_data = callback
        callback()

    def receive_nowait(self, max_bytes: int | None = None) -> bytes:
        """What has arrived and was not read yet, at most ``max_bytes``, without waiting
        (no checkpoint); the rest stays buffered (``pump`` stops reading when it is full)."""
        http = self._http
        inbuf = http._inbuf
        if max_bytes is None or max_bytes >= len(inbuf):
            data = bytes(inbuf)
            inbuf.clear()
        else:
            data = bytes(inbuf[:max_bytes])
            del inbuf[:max_bytes]
        http._wake_pump()
        self.bytes_received += len(data)
        return data

    def queue(self, data: bytes | bytearray) -> None:
        """Queue bytes to send after everything queued before (no I/O)."""
        self._http._queue(data)

    def try_flush(self) -> bool:
        """Send what is queued without waiting; True when nothing is left."""
        return self._http.try_write()

    async def flush(self) -> None:
        """Send everything queued.

        Raises:
            transport.PeerTooSlowError: nothing moved for ``send_timeout`` (a peer that
                stopped reading).
            transport.PeerGoneError: the peer is gone.

        Cancellation: exactly the unsent bytes stay queued, sent by the next flush."""
        http = self._http
        # Each flush is measured on its own: an upgraded connection is long-lived, and a rate
        # averaged since the 101 would count its idle hours against it.
        http._response_started = trio.current_time()
        http._response_base = http.counters.bytes_sent
        with _seam_errors():
            await http.write_queued()

    def finish(self) -> None:
        """Our side ends: nothing to do here (the connection closes when the request ends,
        with a FIN after what is queued)."""

    def reset(self) -> None:
        """Abort the connection now (an RST on sockets)."""
        self._http.reset_now()


def _set_linger_zero(sock: trio.socket.SocketType) -> None:
    with contextlib.suppress(OSError):
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, struct.pack("ii", 1, 0))
