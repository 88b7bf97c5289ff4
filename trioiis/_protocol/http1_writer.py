"""Writing an HTTP/1.1 response: the status line, the headers and the body framing.

Every header value was validated once, when a module set it on the response, so this writer
does not validate it again (as ``h11.Connection.send`` would, on every response). It makes the
same decisions h11 makes, in one pass over the headers, and is checked byte for byte against
h11 by a hypothesis differential test (tests/test_http1_writer.py):

* **Framing.** 204, 304 and any answer to HEAD have no body; otherwise
  ``Transfer-Encoding: chunked`` wins over ``Content-Length``; with neither, the body is
  chunked for an HTTP/1.1 client and delimited by closing the connection for HTTP/1.0 (which
  then gets ``Connection: close``). A HEAD answer carries the framing headers a GET would get.
* **Keep-alive.** The connection stays open only if the request asked for it (HTTP/1.1 without
  ``Connection: close``) and the response does not say ``Connection: close``; when it cannot,
  the response says ``Connection: close``. Unlike h11, an HTTP/1.0 request with
  ``Connection: keep-alive`` is kept too when its answer has a length, and the answer says
  ``Connection: keep-alive`` (the one difference from h11's bytes).
* **Refusals** (``FramingError``, h11's ``LocalProtocolError``): conflicting or malformed
  Content-Length values, a transfer coding other than chunked, and a body longer or shorter
  than its Content-Length. Stricter than h11 on purpose: a control character other than HTAB
  in a header value or the reason is refused (RFC 9110 §5.5; h11 sends ``\x01``-``\x08`` and
  the like as they are).
"""

from __future__ import annotations

import re
from typing import Final

_CHUNKED: Final = 1
_LENGTH: Final = 2
_CLOSE_DELIMITED: Final = 3

# Bytes no header or reason may hold on the wire (HTAB is allowed); h11 refuses them too.
_CONTROLS: Final = bytes([*range(0x09), *range(0x0A, 0x20), 0x7F])
_DIGITS: Final = re.compile(rb"[0-9]+")
_MAX_LENGTH_DIGITS: Final = 20  # as h11: a longer Content-Length is refused
#: Fields the plain path (``ResponseWriter._plain_head``) leaves to the general one, but for
#: a single plain Content-Length.
_NOT_PLAIN: Final = frozenset((b"content-length", b"transfer-encoding", b"connection", b"host"))


class FramingError(Exception):
    """The response cannot be written as given (its headers contradict its framing, or its
    body does not match its Content-Length). Nothing of it was queued."""


def request_keep_alive(http_version: str, headers: list[tuple[bytes, bytes]]) -> bool:
    """True when the client allows another request on the connection after this one:
    HTTP/1.1 or later without ``Connection: close``, or HTTP/1.0 with
    ``Connection: keep-alive`` (RFC 9112 §9.3; ``ab -k`` relies on it; h11 does not offer
    it). ``headers`` have lower-case names (as parsed)."""
    options: list[bytes] = []
    for name, value in headers:  # (a loop: no comprehension frame per request)
        if name == b"connection":
            options += _comma_values(value)
    if b"close" in options:
        return False
    return http_version >= "1.1" or b"keep-alive" in options


def _comma_values(value: bytes) -> list[bytes]:
    return [v for v in (part.strip() for part in value.lower().split(b",")) if v]


class ResponseWriter:
    """Frames one response for one request. ``head`` first, then ``body`` any number of
    times, then ``end``; each returns the bytes to send."""

    __slots__ = ("_bodiless", "_framing", "_http10", "_left", "complete", "done", "keep_alive")

    # (positional or keyword: one is made per request, positionally)
    def __init__(self, method: str, http_version: str, keep_alive: bool) -> None:
        #: The request allowed keep-alive; after ``head``, whether the connection may stay.
        self.keep_alive = keep_alive
        #: True once ``end`` has framed the end of the body.
        self.done = False
        #: True once the bytes framed so far make a whole message: the end was framed, or
        #: the head of a bodiless answer, or every byte of a Content-Length body.
        self.complete = False
        self._bodiless = method == "HEAD"
        self._framing = _LENGTH
        self._left = 0
        self._http10 = http_version < "1.1"

    def head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: bytes,
        defaults: tuple[tuple[bytes, bytes], ...] = (),
    ) -> bytes:
        """The status line and headers (given names keep their case); each of ``defaults``
        (lower-case names) is added after them unless ``headers`` has a field of its name,
        found in the same pass over the headers.

        Raises:
            FramingError: a malformed or conflicting Content-Length, a Transfer-Encoding other
                than chunked, or a control character in a header or the reason.
        """
        data = self._plain_head(status, headers, reason, defaults)
        if data is None:
            data = self._any_head(status, headers, reason, defaults)
        return data

    def _plain_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: bytes,
        defaults: tuple[tuple[bytes, bytes], ...],
    ) -> bytes | None:
        """``head`` for the usual response, in one pass that writes each line as it goes:
        an HTTP/1.1 request that keeps the connection, no ``Transfer-Encoding``,
        ``Connection`` or ``Host`` field (given or default) and at most one plain
        ``Content-Length``. None for anything else (``_any_head`` decides it, with the same
        bytes and the same refusals: tests/test_http1_writer.py compares the two)."""
        if not self.keep_alive or self._http10:
            return None
        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        names = []
        length: bytes | None = None
        for raw_name, value in headers:
            name = raw_name.lower()
            if name in _NOT_PLAIN:
                if name != b"content-length" or length is not None:
                    return None
                if not _DIGITS.fullmatch(value) or len(value) > _MAX_LENGTH_DIGITS:
                    return None
                length = value
            names.append(name)
            lines.append(b"%s: %s\r\n" % (raw_name, value))
        for name, value in defaults:
            if name not in names:
                if name in _NOT_PLAIN:
                    return None
                lines.append(b"%s: %s\r\n" % (name, value))
        # The framing a GET would get (a HEAD answer's headers must match it); then what is
        # actually sent: nothing after the head for HEAD, 204 and 304.
        if length is None and status != 204 and status != 304:
            # A body of unknown length: chunked, Transfer-Encoding last (as h11 writes it).
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if self._bodiless or status == 204 or status == 304:
            framing, self._left = _LENGTH, 0
        elif length is not None:
            framing, self._left = _LENGTH, int(length)
        else:
            framing = _CHUNKED
        lines.append(b"\r\n")
        data = b"".join(lines)
        if len(data.translate(None, _CONTROLS)) != len(data) - 2 * len(lines):
            raise FramingError("control character in the response head")
        self._framing = framing
        self.complete = framing == _LENGTH and not self._left
        return data

    def _any_head(
        self,
        status: int,
        headers: list[tuple[bytes, bytes]],
        reason: bytes,
        defaults: tuple[tuple[bytes, bytes], ...],
    ) -> bytes:
        """``head`` for every response (see ``_plain_head`` for the usual one)."""
        items: list[tuple[bytes, bytes, bytes]] = []  # (name as given, lower name, value)
        length: bytes | None = None
        chunked = False
        connection: list[bytes] = []
        seen: set[bytes] = set()
        for raw_name, value in headers:
            name = raw_name.lower()
            seen.add(name)
            if name == b"content-length":
                lengths = {v.strip() for v in value.split(b",")}
                if len(lengths) != 1:
                    raise FramingError("conflicting Content-Length headers")
                value = lengths.pop()
                if not _DIGITS.fullmatch(value) or len(value) > _MAX_LENGTH_DIGITS:
                    raise FramingError("bad Content-Length")
                if length is not None:
                    if value != length:
                        raise FramingError("conflicting Content-Length headers")
                    continue  # a repeated equal length is written once
                length = value
            elif name == b"transfer-encoding":
                if chunked:
                    raise FramingError("multiple Transfer-Encoding headers")
                value = value.lower()
                if value != b"chunked":
                    raise FramingError("only Transfer-Encoding: chunked is supported")
                chunked = True
            elif name == b"connection":
                connection += _comma_values(value)
            items.append((raw_name, name, value))
        for name, value in defaults:
            if name not in seen:
                items.append((name, name, value))
                if name == b"connection":
                    connection += _comma_values(value)

        # The framing a GET would get (a HEAD answer's headers must match it, RFC 9110 §9.3.2).
        need_close = False
        if status in (204, 304):
            framing = _LENGTH
        elif chunked:
            framing = _CHUNKED
        elif length is not None:
            framing = _LENGTH
        else:
            framing = _CLOSE_DELIMITED
        if framing != _LENGTH:
            # A body of unknown length: chunked for HTTP/1.1, close-delimited for HTTP/1.0.
            items = [item for item in items if item[1] != b"content-length"]
            if self._http10:
                items = [item for item in items if item[1] != b"transfer-encoding"]
                framing = _CLOSE_DELIMITED
                need_close = not self._bodiless
            else:  # one Transfer-Encoding field, last (as h11 writes it)
                items = [item for item in items if item[1] != b"transfer-encoding"]
                items.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
                framing = _CHUNKED
        if not self.keep_alive or need_close:
            values = set(connection)
            values.discard(b"keep-alive")
            values.add(b"close")
            items = [item for item in items if item[1] != b"connection"]
            items.extend((b"Connection", b"connection", v) for v in sorted(values))
            self.keep_alive = False
        elif b"close" in connection:
            self.keep_alive = False
        elif self._http10:
            # An HTTP/1.0 client closes unless told otherwise (RFC 9112 §9.3).
            items = [item for item in items if item[1] != b"connection"]
            items.append((b"Connection", b"connection", b"keep-alive"))

        # What is actually sent: nothing after the head for HEAD, 204 and 304.
        if self._bodiless or status in (204, 304):
            framing, self._left = _LENGTH, 0
        elif framing == _LENGTH:
            assert length is not None
            self._left = int(length)
        self._framing = framing

        lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
        # Host first, as h11 writes it (a response has none unless a module adds one).
        if b"host" in seen:
            lines += [b"%s: %s\r\n" % (raw, value) for raw, name, value in items if name == b"host"]
            items = [item for item in items if item[1] != b"host"]
        for raw, _, value in items:
            lines.append(b"%s: %s\r\n" % (raw, value))
        lines.append(b"\r\n")
        data = b"".join(lines)
        if len(data.translate(None, _CONTROLS)) != len(data) - 2 * len(lines):
            raise FramingError("control character in the response head")
        self.complete = framing == _LENGTH and not self._left
        return data

    def body(self, data: bytes) -> bytes:
        """``data`` framed (a chunk, or as is).

        Raises:
            FramingError: more bytes than the Content-Length declared.
        """
        framing = self._framing
        if framing == _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data) if data else b""
        if framing == _LENGTH:
            self._left -= len(data)
            if self._left < 0:
                raise FramingError("too much data for the declared Content-Length")
            self.complete = not self._left
        return data

    def around(self, size: int) -> tuple[bytes, bytes]:
        """The framing before and after ``size`` body bytes that are sent by other means
        (``os.sendfile``), counted as ``body`` counts them.

        Raises:
            FramingError: more bytes than the Content-Length declared.
        """
        if self._framing == _CHUNKED:
            return (b"%x\r\n" % size, b"\r\n") if size else (b"", b"")
        if self._framing == _LENGTH:
            if size > self._left:
                raise FramingError("too much data for the declared Content-Length")
            self._left -= size
            self.complete = not self._left
        return b"", b""

    def end(self) -> bytes:
        """The end of the body (the last chunk when chunked).

        Raises:
            FramingError: fewer bytes than the Content-Length declared.
        """
        framing = self._framing
        if framing == _LENGTH and self._left:
            raise FramingError("too little data for the declared Content-Length")
        self.done = self.complete = True
        return b"0\r\n\r\n" if framing == _CHUNKED else b""
