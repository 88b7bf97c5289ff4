"""Raw-socket requests for the module tests: the exact target goes on the wire (httpx would
normalise ``..`` and percent-encodings away), and the exact bytes come back."""

from __future__ import annotations

from dataclasses import dataclass

from tests.helpers import raw_request


@dataclass(frozen=True)
class RawResponse:
    raw: bytes
    status: int
    headers: dict[str, str]
    body: bytes


def parse_response(raw: bytes) -> RawResponse:
    """One response (the connection was closed after it)."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    assert separator, f"no complete head in {raw[:200]!r}"
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return RawResponse(raw, int(status_line.split()[1]), headers, body)


async def fetch(
    port: int, target: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> RawResponse:
    """Send one request with ``target`` as is (Latin-1) and ``Connection: close``."""
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    lines += ["Connection: close", "", ""]
    return parse_response(await raw_request(port, "\r\n".join(lines).encode("latin-1")))


def parse_multipart(body: bytes, content_type: str) -> list[tuple[dict[str, str], bytes]]:
    """The parts of a ``multipart/byteranges`` body: (headers, data) each; strict framing."""
    kind, _, parameter = content_type.partition(";")
    assert kind.strip() == "multipart/byteranges"
    name, _, boundary = parameter.strip().partition("=")
    assert name == "boundary"
    assert boundary
    delimiter = b"--" + boundary.encode("latin-1")
    assert body.startswith(delimiter + b"\r\n"), body[:100]
    assert body.endswith(b"\r\n" + delimiter + b"--\r\n"), body[-100:]
    inner = body[len(delimiter) + 2 : -(len(delimiter) + 6)]
    parts = []
    for part in inner.split(b"\r\n" + delimiter + b"\r\n"):
        head, separator, data = part.partition(b"\r\n\r\n")
        assert separator
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        parts.append((headers, data))
    return parts
