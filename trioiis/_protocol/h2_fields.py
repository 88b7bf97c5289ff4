"""An HTTP/2 request's field block: checked and read into a ``RequestHead`` in one pass.

The connection's ``h2`` does not validate or normalize inbound fields (``SERVER_CONFIG``):
``h2`` runs each field through a chain of seven generators, the largest single cost of a
request in ``h2``. ``request_head`` refuses exactly what that chain refuses for a request
(RFC 9113 §8.2 and §8.3), while it reads the fields it needs anyway; ``check_trailers``
does the same for trailers. A refusal is ``h2.exceptions.ProtocolError``, which the
connection answers as it answers ``h2``'s own: GOAWAY PROTOCOL_ERROR.
tests/test_h2_fields.py compares both with ``h2``'s chain on generated field blocks.

Refused (``ProtocolError``), in a request's block or in trailers:

* a name that is empty, holds a byte outside 0x21-0x7e, an upper-case letter, or a colon
  past its first byte; a value holding NUL, CR or LF, or starting or ending with a space
  or a tab;
* a connection-specific field (``connection``, ``keep-alive``, ``proxy-connection``,
  ``transfer-encoding``, ``upgrade``), and ``te`` other than ``trailers``;
* in trailers, any pseudo-header; in a request, an unknown or repeated pseudo-header, one
  after a regular field, ``:status``, a missing ``:method``, ``:scheme`` or ``:path``
  (CONNECT without ``:protocol`` must have neither), ``:protocol`` without CONNECT, an
  empty ``:path``, neither ``:authority`` nor ``Host``, both with different values, or two
  ``Host`` fields.

Cookie fields are joined first and checked as one field (as ``h2`` normalizes, then
validates): a crumb is refused only for what makes the joined value malformed, and may come
anywhere in the block.

Not a public API.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from h2.exceptions import ProtocolError

from .http1 import RequestHead

#: A regular field's name: 0x21-0x7e, less ``:`` and ``A``-``Z`` (RFC 9113 §8.2.1).
_NAME: Final = re.compile(rb"[!-9;-@\[-~]+")
#: A field's value, when not empty: no NUL, CR or LF; no space or tab at either end.
_VALUE: Final = re.compile(rb"[^\0\n\r \t](?:[^\0\n\r]*[^\0\n\r \t])?")
_CONNECTION_SPECIFIC: Final = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_PSEUDO: Final = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))

Fields = Iterable[tuple[bytes, bytes]]


def _check_regular(name: bytes, value: bytes) -> None:
    if not _NAME.fullmatch(name):
        raise ProtocolError(f"malformed field name {name!r}")
    if name in _CONNECTION_SPECIFIC:
        raise ProtocolError(f"connection-specific field {name!r}")
    if name == b"te" and value.lower() != b"trailers":
        raise ProtocolError(f"TE other than trailers: {value!r}")


def request_head(headers: Fields, *, ended: bool) -> tuple[RequestHead | None, bytes | None]:
    """The request a HEADERS block asks for, and its ``:protocol`` (an extended CONNECT,
    RFC 8441; else None). The head is None for a block ``h2`` accepts but the server does
    not serve (not origin-form, an ordinary CONNECT, a Content-Length that is not digits):
    that stream alone is refused. ``ended``: the HEADERS carried END_STREAM (no body). A
    body of unknown length is marked ``chunked``: HTTP/1.1's word for "delimited by its
    end". Cookie fields are joined into one, last (RFC 9113 §8.2.3).

    Raises:
        ProtocolError: a malformed block (this module's docstring).
    """
    method: bytes | None = None
    path = authority = scheme = protocol = host = repeated = method
    fields: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    content_length: int | None = None
    well_formed = True  # every Content-Length all digits
    for name, value in headers:
        if name == b"cookie":
            cookies.append(value)  # (checked once joined, as h2 does)
            continue
        if value and not _VALUE.fullmatch(value):
            raise ProtocolError(f"malformed value in field {name!r}")
        if name.startswith(b":"):
            if fields or name not in _PSEUDO:
                raise ProtocolError(f"pseudo-header {name!r} unknown or out of sequence")
            if name == b":method":
                repeated, method = method, value
            elif name == b":path":
                repeated, path = path, value
            elif name == b":authority":
                repeated, authority = authority, value
            elif name == b":scheme":
                repeated, scheme = scheme, value
            else:
                repeated, protocol = protocol, value
            if repeated is not None:
                raise ProtocolError(f"repeated pseudo-header {name!r}")
            continue
        _check_regular(name, value)
        if name == b"host":
            if host is not None:
                raise ProtocolError("two Host fields")
            host = value
        elif name == b"content-length":
            if value.isdigit():
                content_length = int(value)
            else:
                well_formed = False
        fields.append((name, value))
    cookie = _joined_cookie(cookies)
    if method is None:
        raise ProtocolError("no :method")
    if method == b"CONNECT" and protocol is None:
        if scheme is not None or path is not None:
            raise ProtocolError("CONNECT with :scheme or :path")
    elif scheme is None or path is None:
        raise ProtocolError("no :scheme or :path")
    elif protocol is not None and method != b"CONNECT":
        raise ProtocolError(":protocol without CONNECT")
    if path is not None and not path:
        raise ProtocolError("empty :path")
    if authority is None:
        if host is None:
            raise ProtocolError("neither :authority nor Host")
    elif host is None:
        fields.insert(0, (b"host", authority))
    elif host != authority:
        raise ProtocolError(":authority and Host differ")
    if path is None or not path.startswith(b"/") or not well_formed:
        return None, protocol  # (RFC 9113 §8.3.1: origin-form; CONNECT, ``*`` not served)
    if cookies:
        fields.append((b"cookie", cookie))
    if ended and content_length is None:
        content_length = 0
    head = RequestHead(
        method=method.decode("latin-1"),
        target=path.decode("latin-1"),
        http_version="2.0",
        headers=fields,
        content_length=content_length,
        chunked=content_length is None,
    )
    return head, protocol


def _joined_cookie(cookies: list[bytes]) -> bytes:
    """Cookie fields joined into one (RFC 9113 §8.2.3), its value checked as one field's:
    ``h2`` joins them before it checks, so a crumb is refused only for what makes the
    joined value malformed (a NUL, CR or LF; an empty crumb first or last)."""
    if not cookies:
        return b""
    cookie = b"; ".join(cookies)
    if cookie and not _VALUE.fullmatch(cookie):
        raise ProtocolError("malformed value in the Cookie fields joined")
    return cookie


def check_trailers(headers: Fields) -> None:
    """Trailers: regular fields only, each as in a request's block.

    Raises:
        ProtocolError: a malformed field or a pseudo-header (this module's docstring).
    """
    cookies = []
    for name, value in headers:
        if name == b"cookie":
            cookies.append(value)
            continue
        if value and not _VALUE.fullmatch(value):
            raise ProtocolError(f"malformed value in field {name!r}")
        _check_regular(name, value)
    _joined_cookie(cookies)
