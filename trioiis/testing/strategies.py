"""hypothesis strategies for HTTP/1.1 requests and cancellation schedules.

``requests()`` makes valid requests (method, path, query, headers and a body framed by
Content-Length or chunked), ``hostile_requests()`` makes what a server must refuse or survive,
and ``cancel_schedules()`` makes lists of ``Injection`` (mode, checkpoint) for
``check_cancellation_safety(..., schedule=...)``. Requests are raw bytes, ready for
``MemoryServer.request`` or ``check_cancellation_safety``.
"""

from __future__ import annotations

from hypothesis import strategies as st

from ._harness import MODES, Injection, Mode

_TCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"
_PCHAR = "abcdefghijklmnopqrstuvwxyz0123456789-._~"
_VALUE = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(
    str.strip
)


def _chunked(body: bytes, sizes: list[int]) -> bytes:
    out, pos = b"", 0
    for size in sizes:
        if pos >= len(body):
            break
        piece = body[pos : pos + size]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
        pos += len(piece)
    if pos < len(body):
        out += b"%x\r\n%s\r\n" % (len(body) - pos, body[pos:])
    return out + b"0\r\n\r\n"


@st.composite
def requests(
    draw: st.DrawFn,
    *,
    methods: tuple[str, ...] = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"),
    paths: st.SearchStrategy[str] | None = None,
    max_body: int = 4096,
) -> bytes:
    """A valid HTTP/1.1 request as raw bytes (``Host`` included, ``Connection: close``)."""
    method = draw(st.sampled_from(methods))
    if paths is None:
        segments = draw(st.lists(st.text(alphabet=_PCHAR, min_size=1, max_size=12), max_size=4))
        path = "/" + "/".join(segments)
    else:
        path = draw(paths)
    if draw(st.booleans()):
        path += "?" + draw(st.text(alphabet=_PCHAR + "=&", max_size=30))
    names = draw(
        st.lists(st.text(alphabet=_TCHAR, min_size=1, max_size=16), max_size=6, unique_by=str.lower)
    )
    reserved = {"host", "content-length", "transfer-encoding", "connection", "expect", "te"}
    headers = [(n, draw(_VALUE)) for n in names if n.lower() not in reserved]
    head = f"{method} {path} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n"
    head += "".join(f"{n}: {v}\r\n" for n, v in headers)
    body = b""
    framed = b""
    if method in ("POST", "PUT"):
        body = draw(st.binary(max_size=max_body))
        if draw(st.booleans()):
            sizes = draw(st.lists(st.integers(1, 1024), max_size=8))
            head += "Transfer-Encoding: chunked\r\n"
            framed = _chunked(body, sizes)
        else:
            head += f"Content-Length: {len(body)}\r\n"
            framed = body
    return head.encode("latin-1") + b"\r\n" + framed


_HOSTILE = [
    # request smuggling: both framings
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n0\r\n\r\n",
    # lengths that never arrive or overflow
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    # broken heads
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n folded\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello on a plain port
    b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * 500 + b"\r\n",
    # traversal
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /..%2f..%2fetc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: x\r\n\r\n",
]


@st.composite
def hostile_requests(draw: st.DrawFn) -> bytes:
    """Raw bytes a server must refuse (4xx/5xx and close) or at least survive: smuggling,
    overflowing lengths, broken framing and heads, oversize parts, traversal, or a valid
    request cut at a random byte."""
    kind = draw(st.sampled_from(["known", "truncated", "garbage"]))
    if kind == "known":
        return draw(st.sampled_from(_HOSTILE))
    if kind == "truncated":
        raw = draw(requests())
        return raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    return draw(st.binary(min_size=1, max_size=512))


def cancel_schedules(
    max_checkpoint: int = 50, modes: tuple[Mode, ...] = MODES, max_injections: int = 3
) -> st.SearchStrategy[list[Injection]]:
    """Schedules of cancellations for one request, for ``@given``: 1 to ``max_injections``
    ``Injection`` objects, each a mode out of ``modes`` (client disconnect, ``cancel_io()``, server
    shutdown) and a checkpoint in 1..``max_checkpoint`` (past the request's last one it wraps
    around). Pass one to ``check_cancellation_safety(..., schedule=...)``."""
    return st.lists(
        st.builds(Injection, st.sampled_from(modes), st.integers(1, max_checkpoint)),
        min_size=1,
        max_size=max_injections,
    )
