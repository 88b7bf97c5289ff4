"""``Forwarded`` (RFC 7239) and ``X-Forwarded-For``: the client's address behind trusted
HTTP proxies.

Anyone can send these headers, so they are believed only from a peer listed in
``trusted_proxies``; then the chain is walked from the right (the hop nearest to us) past
every trusted proxy, and the first address that is not one is the client. An entry that is
not an address (``unknown``, an obfuscated ``_name``, garbage) stops the walk: the last
trusted hop stands. ``Forwarded`` wins over ``X-Forwarded-For`` when a request has both.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

__all__ = [
    "TrustedProxies",
    "client_address",
    "parse_forwarded",
    "parse_node",
    "parse_x_forwarded_for",
]

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """Addresses and networks (``"10.0.0.0/8"``, ``"::1"``) whose forwarding headers are
    believed.

    Raises:
        ValueError: an entry is not an IP address or network (host bits set included).
    """

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[Network] = []
        for entry in entries:
            if not isinstance(entry, str):
                raise ValueError(f"{entry!r} is not an address or network")
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=True))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not an address or network ({exc})") from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str) or not self.networks:
            return False
        try:
            ip = ipaddress.ip_address(address.partition("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 from a dual-stack socket is 10.0.0.1
        return any(ip in network for network in self.networks)


def parse_node(text: str) -> Address | None:
    """A node as these headers write it → ``(address, port)`` (port 0 when absent); None
    for ``unknown``, an obfuscated identifier or anything that is not an IP address.

    ``192.0.2.1``, ``192.0.2.1:80``, ``[2001:db8::1]``, ``[2001:db8::1]:80``, and a bare
    ``2001:db8::1`` (seen in X-Forwarded-For).
    """
    text = text.strip()
    host, port = text, ""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
        if rest and not port:
            return None
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if text.startswith("[") and ip.version != 6:
        return None
    if port:
        if not (len(port) <= 5 and port.isascii() and port.isdigit()) or int(port) > 65535:
            return None
        return str(ip), int(port)
    return str(ip), 0


def parse_x_forwarded_for(values: Sequence[str]) -> list[Address | None]:
    """The nodes of ``X-Forwarded-For`` header lines, left (the client) to right."""
    return [parse_node(item) for value in values for item in value.split(",") if item.strip()]


def parse_forwarded(values: Sequence[str]) -> list[Address | None]:
    """The ``for=`` node of each element of ``Forwarded`` header lines, left to right; an
    element without ``for``, or a malformed one, counts as an unknown node (None)."""
    nodes: list[Address | None] = []
    for value in values:
        for element in _split(value, ","):
            if not element.strip():
                continue
            node: Address | None = None
            for pair in _split(element, ";"):
                name, eq, raw = pair.partition("=")
                if eq and name.strip().lower() == "for":
                    unquoted = _unquote(raw.strip())
                    node = None if unquoted is None else parse_node(unquoted)
                    break
            nodes.append(node)
    return nodes


def client_address(
    peer: str, trusted: TrustedProxies, forwarded: Sequence[str], x_forwarded_for: Sequence[str]
) -> Address | None:
    """The client's address for a request from ``peer`` with these header lines; None
    when the peer is not trusted or the headers name nobody (the peer's address stands)."""
    if peer not in trusted:
        return None
    hops = parse_forwarded(forwarded) if forwarded else parse_x_forwarded_for(x_forwarded_for)
    found: Address | None = None
    for hop in reversed(hops):
        if hop is None:
            break
        found = hop
        if hop[0] not in trusted:
            break
    return found


def _split(text: str, separator: str) -> list[str]:
    """Split on ``separator`` outside quoted strings (which may escape with ``\\``)."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _unquote(text: str) -> str | None:
    """A token, or a quoted-string's content; None for an unterminated quote."""
    if not text.startswith('"'):
        return text
    if len(text) < 2 or not text.endswith('"'):
        return None
    out: list[str] = []
    escaped = False
    for char in text[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return None
        else:
            out.append(char)
    return None if escaped else "".join(out)
