"""The options of ``trioiis bench``: argparse arguments, validation and the loopback check."""

from __future__ import annotations

import argparse
import ipaddress
import random
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_DURATION = 10.0
DEFAULT_CONNECTIONS = 10
STATUS_PATH = "/_trioiis/status"


class OptionError(ValueError):
    """A bad option or target, with a one-line message (``trioiis bench`` exits 2)."""


@dataclass(frozen=True)
class AbortDelay:
    """When an abandoned request is abandoned, in seconds after its request was sent.

    ``kind`` is ``fixed`` (``a``), ``uniform`` (between ``a`` and ``b``) or ``exp``
    (exponential with mean ``a``).
    """

    kind: str
    a: float
    b: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "exp":
            return rng.expovariate(1 / self.a) if self.a > 0 else 0.0
        return self.a

    def describe(self) -> str:
        if self.kind == "uniform":
            return f"uniform {self.a * 1000:g}-{self.b * 1000:g} ms"
        if self.kind == "exp":
            return f"exponential, mean {self.a * 1000:g} ms"
        return f"{self.a * 1000:g} ms"


_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)"


def parse_abort_after(text: str) -> AbortDelay:
    """``MS`` (fixed), ``uniform:MIN:MAX`` or ``exp:MEAN`` (milliseconds) → an AbortDelay.

    Raises:
        OptionError: anything else.
    """
    text = text.strip()
    if m := re.fullmatch(_NUMBER, text):
        return AbortDelay("fixed", float(m[1]) / 1000)
    if m := re.fullmatch(rf"uniform:{_NUMBER}:{_NUMBER}", text):
        low, high = float(m[1]) / 1000, float(m[2]) / 1000
        if high < low:
            raise OptionError(f"--abort-after {text}: MAX is below MIN")
        return AbortDelay("uniform", low, high)
    if m := re.fullmatch(rf"exp:{_NUMBER}", text):
        return AbortDelay("exp", float(m[1]) / 1000)
    raise OptionError(f"--abort-after {text}: expected MS, uniform:MIN:MAX or exp:MEAN (in ms)")


@dataclass(frozen=True)
class Target:
    """A parsed ``http://`` URL, with the loopback address it will be reached at."""

    url: str
    host: str
    port: int
    target: str  # path and query, as sent in the request line
    address: str  # the resolved loopback address that connections go to
    host_header: str


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback addresses."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback


def parse_target(url: str, resolve: Resolver = _resolve) -> Target:
    """Parse ``url`` and check that its host resolves to loopback addresses only.

    Raises:
        OptionError: not ``http://``, no host, a bad port, a host that does not resolve, or one
            that resolves to any address outside 127.0.0.0/8 and ::1.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http":
        raise OptionError(f"{url}: only http:// URLs are supported")
    host = parts.hostname
    if not host:
        raise OptionError(f"{url}: no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise OptionError(f"{url}: bad port") from exc
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise OptionError(f"{url}: cannot resolve {host}") from exc
    if not addresses:
        raise OptionError(f"{url}: cannot resolve {host}")
    outside = [a for a in addresses if not is_loopback(a)]
    if outside:
        raise OptionError(
            f"refusing {url}: {host} resolves to {outside[0]}, not a loopback address "
            "(trioiis bench only loads 127.0.0.0/8 and ::1)"
        )
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if parts.port is None else f"{shown}:{port}"
    return Target(url, host, port, target, addresses[0], host_header)


@dataclass(frozen=True)
class BenchOptions:
    """A validated ``trioiis bench`` run."""

    target: Target
    connections: int = DEFAULT_CONNECTIONS
    duration: float | None = DEFAULT_DURATION
    requests: int | None = None
    rate: float | None = None
    method: str = "GET"
    body_size: int = 0
    abort_share: float = 0.0
    abort_after: AbortDelay = field(default_factory=lambda: AbortDelay("fixed", 0.01))
    abort_mode: str = "fin"
    keep_alive: bool = True
    timeout: float = 10.0
    max_seconds: float = 300.0
    seed: int | None = None
    status_path: str | None = STATUS_PATH
    json_file: str | None = None
    plot_file: str | None = None
    quiet: bool = False

    @property
    def open_loop(self) -> bool:
        return self.rate is not None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``trioiis bench``'s arguments to ``parser``."""
    parser.add_argument("url", help="http:// URL on a loopback address")
    parser.add_argument("-c", "--connections", type=int, default=DEFAULT_CONNECTIONS, metavar="N")
    bound = parser.add_mutually_exclusive_group()
    bound.add_argument(
        "-d", "--duration", type=float, metavar="S", help=f"seconds (default {DEFAULT_DURATION:g})"
    )
    bound.add_argument("-n", "--requests", type=int, metavar="N", help="requests to send")
    parser.add_argument(
        "--rate", type=float, metavar="R", help="open loop: R requests/s over all connections"
    )
    parser.add_argument("-m", "--method", default="GET", metavar="M")
    parser.add_argument("--body-size", type=int, default=0, metavar="B", help="request body bytes")
    parser.add_argument(
        "--abort-share", type=float, default=0.0, metavar="F", help="share of requests abandoned"
    )
    parser.add_argument(
        "--abort-after",
        default="10",
        metavar="MS|DIST",
        help="delay after sending: MS, uniform:MIN:MAX or exp:MEAN (ms; default 10)",
    )
    parser.add_argument("--abort-mode", choices=["fin", "rst", "mid-body"], default="fin")
    parser.add_argument(
        "--keep-alive",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="reuse connections",
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, metavar="S", help="per request (default 10)"
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="hard bound on a --requests run (default 300)",
    )
    parser.add_argument("--seed", type=int, help="seed of the abort choices and delays")
    parser.add_argument(
        "--status-path",
        default=STATUS_PATH,
        metavar="PATH",
        help=f"trioiis status endpoint (default {STATUS_PATH}; 'none' to skip)",
    )
    parser.add_argument("--json", dest="json_file", metavar="FILE", help="write every figure")
    parser.add_argument(
        "--plot",
        dest="plot_file",
        metavar="FILE",
        help="write an SVG plot: latency over time, aborts, time to cancel (needs matplotlib)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress line, no table")


def options_from_args(args: argparse.Namespace, resolve: Resolver = _resolve) -> BenchOptions:
    """Validate parsed arguments into BenchOptions.

    Raises:
        OptionError: a value out of range or a refused target.
    """
    if args.connections < 1:
        raise OptionError("--connections must be at least 1")
    if args.requests is not None and args.requests < 1:
        raise OptionError("--requests must be at least 1")
    if args.duration is not None and not 0 < args.duration <= 86_400:
        raise OptionError("--duration must be between 0 and 86400 seconds")
    if args.rate is not None and not args.rate > 0:
        raise OptionError("--rate must be positive")
    if args.body_size < 0:
        raise OptionError("--body-size must not be negative")
    if not 0.0 <= args.abort_share <= 1.0:
        raise OptionError("--abort-share must be between 0 and 1")
    if args.abort_mode == "mid-body" and args.body_size < 2:
        raise OptionError("--abort-mode mid-body needs --body-size of at least 2")
    if not args.timeout > 0 or not args.max_seconds > 0:
        raise OptionError("--timeout and --max-seconds must be positive")
    method = args.method.upper()
    if not re.fullmatch(r"[A-Z]+", method):
        raise OptionError(f"--method {args.method}: not a method")
    status_path = None if args.status_path.lower() == "none" else args.status_path
    if status_path is not None and not status_path.startswith("/"):
        raise OptionError("--status-path must start with / (or be 'none')")
    duration = args.duration
    if duration is None and args.requests is None:
        duration = DEFAULT_DURATION
    return BenchOptions(
        target=parse_target(args.url, resolve),
        connections=args.connections,
        duration=duration,
        requests=args.requests,
        rate=args.rate,
        method=method,
        body_size=args.body_size,
        abort_share=args.abort_share,
        abort_after=parse_abort_after(args.abort_after),
        abort_mode=args.abort_mode,
        keep_alive=args.keep_alive,
        timeout=args.timeout,
        max_seconds=args.max_seconds,
        seed=args.seed,
        status_path=status_path,
        json_file=args.json_file,
        plot_file=args.plot_file,
        quiet=args.quiet,
    )
