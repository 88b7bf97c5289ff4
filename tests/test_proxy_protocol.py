"""``trioiis._protocol.proxy_protocol.parse``: PROXY v1 and v2 headers, written here by an
independent encoder (struct, the spec's layout), round-trip; any split works;
garbage is a clear error."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioiis._protocol.proxy_protocol import (
    MAX_V1_LENGTH,
    MAX_V2_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocolError,
    parse,
)

ports = st.integers(0, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)


def v1(family: str, src: str, dst: str, sport: int, dport: int) -> bytes:
    return f"PROXY {family} {src} {dst} {sport} {dport}\r\n".encode()


def v2(
    src: str | None,
    dst: str | None,
    sport: int = 0,
    dport: int = 0,
    *,
    local: bool = False,
    tlvs: bytes = b"",
) -> bytes:
    if src is None or dst is None:
        family, addresses = 0x00, b""
    else:
        a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
        family = 0x11 if a.version == 4 else 0x21
        addresses = a.packed + b.packed + struct.pack("!HH", sport, dport)
    payload = addresses + tlvs
    command = 0x20 if local else 0x21
    return V2_SIGNATURE + struct.pack("!BBH", command, family, len(payload)) + payload


def tlv(kind: int, value: bytes) -> bytes:
    return struct.pack("!BH", kind, len(value)) + value


tlvs = st.lists(st.builds(tlv, st.integers(0, 255), st.binary(max_size=40)), max_size=5).map(
    b"".join
)


@given(
    st.one_of(
        st.tuples(st.just("TCP4"), ipv4, ipv4, ports, ports),
        st.tuples(st.just("TCP6"), ipv6, ipv6, ports, ports),
    ),
    st.binary(max_size=30),
)
def test_v1_round_trips(fields: tuple[str, str, str, int, int], after: bytes) -> None:
    family, src, dst, sport, dport = fields
    header = v1(family, src, dst, sport, dport)
    parsed = parse(header + after)
    assert parsed == ProxyHeader(1, len(header), (src, sport), (dst, dport))


@given(
    st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)),
    ports,
    ports,
    tlvs,
    st.binary(max_size=30),
)
def test_v2_round_trips(
    addresses: tuple[str, str], sport: int, dport: int, extra: bytes, after: bytes
) -> None:
    src, dst = addresses
    header = v2(src, dst, sport, dport, tlvs=extra)
    assert parse(header + after) == ProxyHeader(2, len(header), (src, sport), (dst, dport))


@given(st.one_of(st.tuples(ipv4, ipv4), st.tuples(ipv6, ipv6)), tlvs)
def test_v2_local_and_unspec_keep_the_peer_address(
    addresses: tuple[str, str], extra: bytes
) -> None:
    local = v2(*addresses, 1, 2, local=True, tlvs=extra)
    assert parse(local) == ProxyHeader(2, len(local))
    unspec = v2(None, None, tlvs=extra)
    assert parse(unspec) == ProxyHeader(2, len(unspec))


def test_v1_unknown_keeps_the_peer_address() -> None:
    assert parse(b"PROXY UNKNOWN\r\nGET") == ProxyHeader(1, 15)
    assert parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n") == ProxyHeader(1, 35)


@given(
    st.one_of(
        st.builds(v1, st.just("TCP4"), ipv4, ipv4, ports, ports),
        st.builds(v1, st.just("TCP6"), ipv6, ipv6, ports, ports),
        st.builds(v2, ipv4, ipv4, ports, ports, tlvs=tlvs),
        st.builds(v2, ipv6, ipv6, ports, ports, tlvs=tlvs),
    ),
    st.data(),
)
def test_every_split_needs_more_until_the_header_is_whole(
    header: bytes, data: st.DataObject
) -> None:
    for cut in range(len(header)):
        assert parse(header[:cut]) is None, cut
    whole = parse(header + data.draw(st.binary(max_size=10)))
    assert whole is not None
    assert whole.length == len(header)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_parse_or_fail_clearly(data: bytes) -> None:
    try:
        parsed = parse(data)
    except ProxyProtocolError as exc:
        message = str(exc)
        assert message.startswith(("PROXY", "no PROXY")), message
        return
    assert parsed is None or 0 < parsed.length <= len(data)


@given(st.sampled_from([V2_SIGNATURE, b"PROXY "]), st.binary(max_size=200))
def test_bytes_after_a_signature_parse_or_fail_clearly(start: bytes, rest: bytes) -> None:
    try:
        parsed = parse(start + rest)
    except ProxyProtocolError:
        return
    assert parsed is None or parsed.length <= len(start + rest)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "no PROXY protocol signature"),
        (b"\x16\x03\x01", "no PROXY protocol signature"),  # a TLS ClientHello
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "is not 'PROXY"),
        (b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "is not 'PROXY"),
        (b"PROXY TCP4 ::1 ::1 1 2\r\n", "are not TCP4"),
        (b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n", "are not TCP6"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", "port '65536'"),
        (b"PROXY TCP4 1.2.3.4 5.6.7.8 1 -2\r\n", "port '-2'"),
        (b"PROXY TCP4 1.2.3.4\n", "bare CR or LF"),
        (b"PROXY TCP4 \x00", "non-printable"),
        (b"PROXY " + b"A" * MAX_V1_LENGTH, "longer than 107"),
        (V2_SIGNATURE + b"\x11", "version 1"),
        (V2_SIGNATURE + b"\x22", "command 2"),
        (V2_SIGNATURE + b"\x21\x41", "family 0x41"),
        (V2_SIGNATURE + b"\x21\x11\x00\x04", "need 12 bytes, not 4"),
        (V2_SIGNATURE + b"\x21\x11\xff\xff", f"limit {MAX_V2_LENGTH}"),
    ],
)
def test_garbage_is_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(ProxyProtocolError, match=message):
        parse(data)


def test_the_v2_limit_is_configurable() -> None:
    header = v2("1.2.3.4", "5.6.7.8", 1, 2, tlvs=tlv(1, b"x" * 100))
    assert parse(header, max_v2_length=len(header)) is not None
    with pytest.raises(ProxyProtocolError, match="limit"):
        parse(header, max_v2_length=len(header) - 1)
