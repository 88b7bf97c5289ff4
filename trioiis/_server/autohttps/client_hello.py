"""Read a TLS ClientHello's server name and ALPN list from bytes peeked off a socket, so
that a TLS-ALPN-01 validation (ALPN ``acme-tls/1``, RFC 8737) can be told from a browser
before the handshake starts: only the validator ever sees a challenge certificate.

Only a ClientHello that arrived whole in the first TLS record is read; anything else
(fragmented, SSLv2, garbage) gives None and the connection takes the normal path.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ClientHello", "parse_client_hello"]

_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_SERVER_NAME = 0x0000
_ALPN = 0x0010


@dataclass(frozen=True, slots=True)
class ClientHello:
    server_name: str | None
    alpn: tuple[bytes, ...]


class _Short(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise _Short
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk

    def number(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def vector(self, length_bytes: int) -> _Reader:
        return _Reader(self.take(self.number(length_bytes)))

    @property
    def left(self) -> int:
        return len(self.data) - self.at


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The server name (lower case) and ALPN protocols of the ClientHello at the start of
    ``data``, or None when ``data`` does not start with a whole one."""
    try:
        record = _Reader(data)
        if record.number(1) != _HANDSHAKE:
            return None
        record.take(2)  # record version
        body = record.vector(2)
        if body.number(1) != _CLIENT_HELLO:
            return None
        hello = body.vector(3)
        hello.take(2 + 32)  # client version, random
        hello.vector(1)  # session id
        hello.vector(2)  # cipher suites
        hello.vector(1)  # compression methods
        name: str | None = None
        alpn: list[bytes] = []
        if hello.left == 0:
            return ClientHello(None, ())
        extensions = hello.vector(2)
        while extensions.left:
            kind = extensions.number(2)
            value = extensions.vector(2)
            if kind == _SERVER_NAME:
                names = value.vector(2)
                while names.left:
                    name_type = names.number(1)
                    entry = names.vector(2)
                    if name_type == 0:  # host_name
                        name = entry.data.decode("ascii", "replace").lower().rstrip(".")
                        break
            elif kind == _ALPN:
                protocols = value.vector(2)
                while protocols.left:
                    alpn.append(protocols.vector(1).data)
        return ClientHello(name, tuple(alpn))
    except _Short:
        return None
