"""The PROXY protocol (HAProxy's, versions 1 and 2): who the client really is, behind an L4
load balancer.

A balancer that speaks it (HAProxy's ``send-proxy`` / ``send-proxy-v2``, nginx's
``proxy_protocol on``, AWS NLB, …) opens each connection with one header naming the client's
address and port, then relays the client's bytes unchanged. A binding with
``proxy_protocol = true`` requires that header on every connection: a connection without it,
with a malformed one, or that sends nothing within ``head_timeout`` is closed without a
response (answering would let anyone who reaches the port past the balancer forge addresses).

``parse`` is a pure function over the bytes received so far; ``receive`` reads exactly the
header off a socket (peeking, so that no byte of what follows, TLS or HTTP, is consumed).

Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

import trio

__all__ = [
    "MAX_V1_LENGTH",
    "MAX_V2_LENGTH",
    "V2_SIGNATURE",
    "ProxyHeader",
    "ProxyProtocolError",
    "parse",
]

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
#: The spec's bound for a version 1 line, ``\r\n`` included.
MAX_V1_LENGTH = 107
#: Our bound for a whole version 2 header (16 fixed bytes, addresses and TLVs); the format
#: allows 65,551 bytes, balancers send a few hundred at most.
MAX_V2_LENGTH = 4096

_V2_FIXED = 16
#: family/protocol byte → (address length, IP version); 0 = no IP addresses (UNSPEC, UNIX).
_V2_FAMILIES = {
    0x00: (0, 0),  # UNSPEC
    0x11: (12, 4),  # TCP over IPv4
    0x12: (12, 4),  # UDP over IPv4
    0x21: (36, 6),  # TCP over IPv6
    0x22: (36, 6),  # UDP over IPv6
    0x31: (216, 0),  # UNIX stream
    0x32: (216, 0),  # UNIX datagram
}


class ProxyProtocolError(ValueError):
    """The bytes are not a PROXY protocol header (or exceed our limits): close the
    connection."""


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    """A parsed header.

    Attributes:
        version: 1 (text) or 2 (binary).
        length: bytes the header took; the client's own bytes start after them.
        source: the client's ``(address, port)``; None for a ``LOCAL`` (v2) or ``UNKNOWN``
            (v1) header, a UNIX-socket or unspecified family: the connection's own peer
            address then stands (a balancer's health check, typically).
        destination: the address and port the client connected to on the balancer (None
            with ``source``).
    """

    version: int
    length: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None


def parse(data: bytes, *, max_v2_length: int = MAX_V2_LENGTH) -> ProxyHeader | None:
    """The header at the start of ``data``; None when ``data`` is a valid beginning of one
    and more bytes are needed. Bytes after the header are not looked at.

    Raises:
        ProxyProtocolError: ``data`` cannot be the beginning of a header.
    """
    if data[: len(V1_SIGNATURE)] == V1_SIGNATURE[: len(data)]:
        return _parse_v1(data)
    if data[: len(V2_SIGNATURE)] == V2_SIGNATURE[: len(data)]:
        return _parse_v2(data, max_v2_length)
    raise ProxyProtocolError("no PROXY protocol signature")


def _parse_v1(data: bytes) -> ProxyHeader | None:
    end = data.find(b"\r\n", 0, MAX_V1_LENGTH)
    if end < 0:
        if len(data) >= MAX_V1_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 line longer than {MAX_V1_LENGTH} bytes")
        if b"\n" in data or b"\r" in data[:-1]:
            raise ProxyProtocolError("PROXY v1 line with a bare CR or LF")
        if not all(0x20 <= b < 0x7F for b in data.rstrip(b"\r")):
            raise ProxyProtocolError("PROXY v1 line with a non-printable byte")
        return None
    line = data[:end]
    if not all(0x20 <= b < 0x7F for b in line):
        raise ProxyProtocolError("PROXY v1 line with a non-printable byte")
    fields = line.decode("ascii").split(" ")
    if len(fields) >= 2 and fields[1] == "UNKNOWN":
        return ProxyHeader(1, end + 2)  # the rest of the line is ignored (spec 2.1)
    if len(fields) != 6 or fields[1] not in ("TCP4", "TCP6"):
        raise ProxyProtocolError("PROXY v1 line is not 'PROXY TCP4|TCP6 SRC DST SPORT DPORT'")
    kind = ipaddress.IPv4Address if fields[1] == "TCP4" else ipaddress.IPv6Address
    try:
        source, destination = kind(fields[2]), kind(fields[3])
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 addresses are not {fields[1]} addresses") from None
    ports = [_v1_port(text) for text in fields[4:]]
    return ProxyHeader(1, end + 2, (str(source), ports[0]), (str(destination), ports[1]))


def _v1_port(text: str) -> int:
    if not (1 <= len(text) <= 5 and text.isascii() and text.isdigit()) or int(text) > 65535:
        raise ProxyProtocolError(f"PROXY v1 port {text!r} is not 0 to 65535")
    return int(text)


def _parse_v2(data: bytes, max_length: int) -> ProxyHeader | None:
    if len(data) > 12:
        if data[12] >> 4 != 2:
            raise ProxyProtocolError(f"PROXY v2 header of version {data[12] >> 4}")
        if data[12] & 0x0F not in (0, 1):
            raise ProxyProtocolError(
                f"PROXY v2 command {data[12] & 0x0F} is neither LOCAL nor PROXY"
            )
    if len(data) > 13 and data[13] not in _V2_FAMILIES:
        raise ProxyProtocolError(f"PROXY v2 address family 0x{data[13]:02x} is unknown")
    if len(data) < _V2_FIXED:
        return None
    local = data[12] & 0x0F == 0
    address_length, ip_version = _V2_FAMILIES[data[13]]
    (length,) = struct.unpack_from("!H", data, 14)
    total = _V2_FIXED + length
    if total > max_length:
        raise ProxyProtocolError(f"PROXY v2 header of {total} bytes (limit {max_length})")
    if not local and length < address_length:
        raise ProxyProtocolError(f"PROXY v2 addresses need {address_length} bytes, not {length}")
    if len(data) < total:
        return None
    if local or ip_version == 0:
        return ProxyHeader(2, total)  # TLVs (after the addresses) are skipped
    body = data[_V2_FIXED : _V2_FIXED + address_length]
    size = 4 if ip_version == 4 else 16
    kind = ipaddress.IPv4Address if ip_version == 4 else ipaddress.IPv6Address
    source = str(kind(body[:size]))
    destination = str(kind(body[size : 2 * size]))
    source_port, destination_port = struct.unpack_from("!HH", body, 2 * size)
    return ProxyHeader(2, total, (source, source_port), (destination, destination_port))


async def receive(sock: socket.socket, *, max_v2_length: int = MAX_V2_LENGTH) -> ProxyHeader:
    """Read the header off a non-blocking socket, consuming exactly its bytes.

    It peeks at what has arrived; while the header is incomplete every byte seen belongs to
    it and is consumed, so nothing is read twice and nothing after the header is touched.

    Raises:
        ProxyProtocolError: not a header (or the client closed before it ended).

    Cancellation: the caller bounds the wait (``trio.fail_after(head_timeout)``); a cancel
        leaves the socket with part of a header consumed, so it must be closed.
    """
    seen = b""
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            peeked = sock.recv(max(MAX_V1_LENGTH, max_v2_length) - len(seen), socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:
            raise ProxyProtocolError(f"connection failed before the PROXY header: {exc}") from exc
        if not peeked:
            raise ProxyProtocolError("connection closed before the PROXY header ended")
        header = parse(seen + peeked, max_v2_length=max_v2_length)
        take = len(peeked) if header is None else header.length - len(seen)
        seen += sock.recv(take)  # already buffered: returns all of them at once
        if header is not None:
            return header
