"""``trioiis._protocol.forwarded``: Forwarded / X-Forwarded-For parsing, trusted-proxy walk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioiis._protocol.forwarded import (
    TrustedProxies,
    client_address,
    ip_address,
    parse_forwarded,
    parse_node,
    parse_x_forwarded_for,
)

ports = st.integers(0, 65535)
addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)).map(str)
nodes = st.tuples(addresses, ports)
spaces = st.sampled_from(["", " ", "  ", "\t"])


def forwarded_node(address: str, port: int) -> str:
    """How RFC 7239 writes a node: IPv6 in brackets, quoted whenever it holds ':'."""
    host = f"[{address}]" if ":" in address else address
    text = f"{host}:{port}" if port else host
    return f'"{text}"' if ":" in text else text


@given(st.lists(st.one_of(nodes, st.none()), min_size=1, max_size=6), spaces, st.data())
def test_forwarded_round_trips(
    hops: list[tuple[str, int] | None], space: str, data: st.DataObject
) -> None:
    elements = []
    for hop in hops:
        pairs = [
            "for=unknown" if hop is None else f"for={forwarded_node(*hop)}",
            *data.draw(st.lists(st.sampled_from(["proto=https", 'by="[::1]:80"', 'host="a,b;c"']))),
        ]
        pairs = data.draw(st.permutations(pairs))
        elements.append(";".join(pairs))
    # The same elements on one line or spread over several header lines.
    cut = data.draw(st.integers(1, len(elements)))
    lines = [f",{space}".join(elements[:cut]), f",{space}".join(elements[cut:])]
    assert parse_forwarded([line for line in lines if line]) == hops


@given(st.lists(nodes, min_size=1, max_size=6), spaces)
def test_x_forwarded_for_round_trips(hops: list[tuple[str, int]], space: str) -> None:
    value = f",{space}".join(a if ":" in a else f"{a}:{p}" if p else a for a, p in hops)
    expected = [(a, 0 if ":" in a else p) for a, p in hops]
    assert parse_x_forwarded_for([value]) == expected


@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes(text: str) -> None:
    for parsed in (parse_forwarded([text]), parse_x_forwarded_for([text])):
        for node in parsed:
            assert node is None or (isinstance(node[0], str) and 0 <= node[1] <= 65535)


@pytest.mark.parametrize(
    ("text", "node"),
    [
        ("192.0.2.1", ("192.0.2.1", 0)),
        (" 192.0.2.1:8080 ", ("192.0.2.1", 8080)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
        ("2001:db8::1", ("2001:db8::1", 0)),
        ("unknown", None),
        ("_hidden", None),
        ("[192.0.2.1]", None),
        ("192.0.2.1:99999", None),
        ("[::1]x", None),
        ("[::1]:", None),
        ("example.com", None),
    ],
)
def test_parse_node(text: str, node: tuple[str, int] | None) -> None:
    assert parse_node(text) == node


TRUSTED = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "xff", "client"),
    [
        ("127.0.0.1", [], ["203.0.113.9"], ("203.0.113.9", 0)),
        ("203.0.113.50", [], ["203.0.113.9"], None),  # untrusted peer: ignored
        ("127.0.0.1", [], ["198.51.100.1, 203.0.113.9, 10.1.2.3"], ("203.0.113.9", 0)),
        ("127.0.0.1", [], ["10.0.0.2, 10.1.2.3"], ("10.0.0.2", 0)),  # all trusted: left-most
        ("127.0.0.1", [], ["203.0.113.9, garbage, 10.1.2.3"], ("10.1.2.3", 0)),
        ("127.0.0.1", [], ["garbage"], None),
        ("127.0.0.1", ['for="[2001:db8::7]:99";proto=https'], ["9.9.9.9"], ("2001:db8::7", 99)),
        ("::ffff:127.0.0.1", ["for=192.0.2.60, for=10.9.9.9"], [], ("192.0.2.60", 0)),
        ("::1", [], [], None),
    ],
)
def test_client_address(
    peer: str, forwarded: list[str], xff: list[str], client: tuple[str, int] | None
) -> None:
    assert client_address(peer, TRUSTED, forwarded, xff) == client


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 250)), max_size=8))
def test_the_client_is_the_right_most_untrusted_hop(chain: list[tuple[bool, int]]) -> None:
    # True: a trusted proxy (10.0.0.N); False: some client (192.0.2.N).
    hops = [f"10.0.0.{n}" if trusted else f"192.0.2.{n}" for trusted, n in chain]
    found = client_address("127.0.0.1", TRUSTED, [], [", ".join(hops)])
    untrusted = [h for h in hops if not h.startswith("10.")]
    if not hops:
        assert found is None
    elif untrusted:
        assert found == (untrusted[-1], 0)
    else:
        assert found == (hops[0], 0)


@pytest.mark.parametrize("entry", ["10.0.0.1/8", "localhost", "1.2.3.4/33", "", "::1/129"])
def test_trusted_proxies_are_strictly_checked(entry: str) -> None:
    with pytest.raises(ValueError, match="is not an address or network"):
        TrustedProxies([entry])


@pytest.mark.parametrize(
    ("written", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),  # a dual-stack socket's IPv4 client
        ("192.0.2.1", False),
        ("::ffff:192.0.2.1", False),
        ("fe80::1%eth0", False),
    ],
)
def test_ip_address_unwraps_what_sockets_write(written: str, loopback: bool) -> None:
    # The one parse behind trusted_proxies and trioiis.is_local_request (status, metrics).
    ip = ip_address(written)
    assert ip is not None
    assert ip.is_loopback is loopback
    assert ip.version == (4 if "." in written else 6)


@pytest.mark.parametrize("written", ["", "unknown", "_hidden", "localhost", "1.2.3"])
def test_ip_address_is_none_for_what_is_not_an_address(written: str) -> None:
    assert ip_address(written) is None
