"""``Forwarded`` (RFC 7239) and ``X-Forwarded-For``: the client's address behind trusted
HTTP proxies.

Anyone can send these headers, so they are believed only from a peer listed in
``trusted_proxies``; then the chain is walked from the right (the hop nearest to us) past
every trusted proxy, and the first address that is not one is the client. An entry that is
not an address (``unknown``, an obfuscated ``_name``, garbage) stops the walk: the last
trusted hop stands. ``Forwarded`` wins over ``X-Forwarded-For`` when a request has both.

The scheme and host the client used (``forwarded_origin``): the ``proto`` and ``host`` of
the ``Forwarded`` element the walk stopped at (the one the outermost trusted proxy wrote
about the client), else the last ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` value (the
one the nearest proxy set). Only ``http`` and ``https`` are schemes, only ``name[:port]``
is a host; anything else is ignored.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Origin",
    "TrustedProxies",
    "client_address",
    "forwarded_origin",
    "ip_address",
    "parse_forwarded",
    "parse_node",
    "parse_x_forwarded_for",
]

Address = tuple[str, int]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def ip_address(address: str) -> IPAddress | None:
    """A peer's address as sockets and headers write it, as an IP address: a zone
    (``fe80::1%eth0``) is dropped, and an IPv4-mapped address (``::ffff:10.0.0.1``, from a
    dual-stack socket) is the IPv4 address it carries. None for anything else."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


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
        ip = ip_address(address)
        return ip is not None and any(ip in network for network in self.networks)


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


@dataclass(frozen=True, slots=True)
class Origin:
    """What a trusted proxy says the client asked for: ``scheme`` (``"http"`` or
    ``"https"``) and ``host`` (``name[:port]``, lower case), each None when not said."""

    scheme: str | None = None
    host: str | None = None


_AUTHORITY = re.compile(r"(?:[a-z0-9._-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def _scheme(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if value in ("http", "https") else None


def _authority(value: str | None) -> str | None:
    value = (value or "").strip().lower()
    return value if _AUTHORITY.fullmatch(value) else None


def _elements(values: Sequence[str]) -> list[dict[str, str]]:
    """Each ``Forwarded`` element's parameters (names lower case, values unquoted)."""
    elements: list[dict[str, str]] = []
    for value in values:
        for element in _split(value, ","):
            if not element.strip():
                continue
            params: dict[str, str] = {}
            for pair in _split(element, ";"):
                name, eq, raw = pair.partition("=")
                unquoted = _unquote(raw.strip()) if eq else None
                if unquoted is not None:
                    params.setdefault(name.strip().lower(), unquoted)
            elements.append(params)
    return elements


def forwarded_origin(
    peer: str,
    trusted: TrustedProxies,
    forwarded: Sequence[str],
    x_forwarded_proto: Sequence[str],
    x_forwarded_host: Sequence[str],
) -> Origin:
    """The scheme and host the client used, as trusted proxies tell (see the module
    docstring); an empty ``Origin`` when the peer is not trusted or nothing usable is said.
    """
    if peer not in trusted:
        return Origin()
    if forwarded:
        elements = _elements(forwarded)
        chosen: dict[str, str] | None = None
        for params in reversed(elements):
            node = parse_node(params["for"]) if "for" in params else None
            if node is None:
                break
            chosen = params
            if node[0] not in trusted:
                break
        if chosen is None and elements:
            chosen = elements[-1]  # no usable for=: the nearest proxy's own element
        if chosen is not None:
            return Origin(_scheme(chosen.get("proto")), _authority(chosen.get("host")))
    proto = [v for line in x_forwarded_proto for v in line.split(",") if v.strip()]
    host = [v for line in x_forwarded_host for v in line.split(",") if v.strip()]
    return Origin(_scheme(proto[-1] if proto else None), _authority(host[-1] if host else None))


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
