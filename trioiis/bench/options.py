"""The options of ``trioiis bench``: argparse arguments, validation and the target URL."""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

DEFAULT_DURATION = 10.0
DEFAULT_CONNECTIONS = 10
DEFAULT_STREAMS = 10
DEFAULT_BASELINE_SHARE = 0.2
DEFAULT_SETTLE = 5.0
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
    """A parsed ``http://`` or ``https://`` URL and the address its connections go to."""

    url: str
    host: str  # as written in the URL, without brackets (the TLS server name)
    port: int
    target: str  # path and query, as sent in the request line (``:path`` in HTTP/2)
    address: str  # the first address the host resolved to: every connection goes there
    host_header: str  # ``Host`` (``:authority`` in HTTP/2)
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


Resolver = Callable[[str, int], list[str]]


def _resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def parse_target(url: str, resolve: Resolver = _resolve) -> Target:
    """Parse ``url`` and resolve its host once (IPv4, IPv6 or a name).

    Raises:
        OptionError: not ``http://`` or ``https://``, no host, a bad port, or a host that does
            not resolve.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise OptionError(f"{url}: only http:// and https:// URLs are supported")
    host = parts.hostname
    if not host:
        raise OptionError(f"{url}: no host")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError as exc:
        raise OptionError(f"{url}: bad port") from exc
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise OptionError(f"{url}: cannot resolve {host}") from exc
    if not addresses:
        raise OptionError(f"{url}: cannot resolve {host}")
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if parts.port is None else f"{shown}:{port}"
    return Target(url, host, port, target, addresses[0], host_header, tls)


ABORT_MODES = ("fin", "rst", "mid-body", "rst-stream")


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
    h2: bool = False
    streams: int = DEFAULT_STREAMS
    ca_bundle: str | None = None
    insecure: bool = False
    processes: int = 1
    server_pid: int | None = None
    baseline_share: float = DEFAULT_BASELINE_SHARE
    settle: float = DEFAULT_SETTLE
    max_error_share: float | None = None

    @property
    def open_loop(self) -> bool:
        return self.rate is not None

    @property
    def concurrency(self) -> int:
        """Requests in flight at most: connections, times streams per connection in HTTP/2."""
        return self.connections * (self.streams if self.h2 else 1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``trioiis bench``'s arguments to ``parser``."""
    parser.add_argument(
        "url", help="http:// or https:// URL (or 'compare' A.json B.json ...: compare runs)"
    )
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
    parser.add_argument(
        "--abort-mode",
        choices=ABORT_MODES,
        default=None,
        help="fin, rst, mid-body (HTTP/1.1; default fin) or rst-stream (--h2, its default)",
    )
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
        "--h2",
        action="store_true",
        help="HTTP/2: prior knowledge on http://, ALPN on https://",
    )
    parser.add_argument(
        "--streams",
        type=int,
        default=DEFAULT_STREAMS,
        metavar="M",
        help=f"--h2: concurrent streams per connection (default {DEFAULT_STREAMS})",
    )
    parser.add_argument(
        "--ca-bundle", metavar="PEM", help="https://: trust these CA certificates only"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="https://: do not verify the certificate"
    )
    parser.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="load from N processes (connections, requests and rate are split among them)",
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        metavar="PID",
        help="sample this process tree's CPU time, memory and fds (Linux /proc): wasted work",
    )
    parser.add_argument(
        "--baseline-share",
        type=float,
        default=DEFAULT_BASELINE_SHARE,
        metavar="F",
        help="--server-pid with aborts: share of the run without aborts, measuring the "
        f"server's CPU per completed request (default {DEFAULT_BASELINE_SHARE:g})",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=DEFAULT_SETTLE,
        metavar="S",
        help="--server-pid: wait at most S seconds after the run for the server's CPU use "
        f"to stop (default {DEFAULT_SETTLE:g})",
    )
    parser.add_argument(
        "--max-error-share",
        type=float,
        metavar="F",
        help="exit status 1 when more than this share of the requests sent failed "
        "(always when every request failed)",
    )
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
        OptionError: a value out of range or a target that cannot be used.
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
    abort_mode = args.abort_mode or ("rst-stream" if args.h2 else "fin")
    if args.h2 and abort_mode != "rst-stream":
        raise OptionError(f"--abort-mode {abort_mode} is for HTTP/1.1; with --h2 use rst-stream")
    if not args.h2 and abort_mode == "rst-stream":
        raise OptionError("--abort-mode rst-stream needs --h2")
    if abort_mode == "mid-body" and args.body_size < 2:
        raise OptionError("--abort-mode mid-body needs --body-size of at least 2")
    if args.streams < 1:
        raise OptionError("--streams must be at least 1")
    if not args.timeout > 0 or not args.max_seconds > 0:
        raise OptionError("--timeout and --max-seconds must be positive")
    if args.processes < 1:
        raise OptionError("--processes must be at least 1")
    if args.processes > args.connections:
        raise OptionError("--processes must not exceed --connections (each needs one)")
    if args.requests is not None and args.processes > args.requests:
        raise OptionError("--processes must not exceed --requests")
    if not 0.0 <= args.baseline_share < 1.0:
        raise OptionError("--baseline-share must be at least 0 and below 1")
    if not args.settle >= 0:
        raise OptionError("--settle must not be negative")
    if args.max_error_share is not None and not 0.0 <= args.max_error_share <= 1.0:
        raise OptionError("--max-error-share must be between 0 and 1")
    if args.server_pid is not None and not os.path.isdir(f"/proc/{args.server_pid}"):
        raise OptionError(f"--server-pid {args.server_pid}: no such process in /proc")
    if args.ca_bundle is not None and not os.path.isfile(args.ca_bundle):
        raise OptionError(f"--ca-bundle {args.ca_bundle}: no such file")
    method = args.method.upper()
    if not re.fullmatch(r"[A-Z]+", method):
        raise OptionError(f"--method {args.method}: not a method")
    status_path = None if args.status_path.lower() == "none" else args.status_path
    if status_path is not None and not status_path.startswith("/"):
        raise OptionError("--status-path must start with / (or be 'none')")
    duration = args.duration
    if duration is None and args.requests is None:
        duration = DEFAULT_DURATION
    target = parse_target(args.url, resolve)
    if (args.ca_bundle or args.insecure) and not target.tls:
        raise OptionError("--ca-bundle and --insecure are for https:// URLs")
    return BenchOptions(
        target=target,
        connections=args.connections,
        duration=duration,
        requests=args.requests,
        rate=args.rate,
        method=method,
        body_size=args.body_size,
        abort_share=args.abort_share,
        abort_after=parse_abort_after(args.abort_after),
        abort_mode=abort_mode,
        keep_alive=args.keep_alive,
        timeout=args.timeout,
        max_seconds=args.max_seconds,
        seed=args.seed,
        status_path=status_path,
        json_file=args.json_file,
        plot_file=args.plot_file,
        quiet=args.quiet,
        h2=args.h2,
        streams=args.streams,
        ca_bundle=args.ca_bundle,
        insecure=args.insecure,
        processes=args.processes,
        server_pid=args.server_pid,
        baseline_share=args.baseline_share,
        settle=args.settle,
        max_error_share=args.max_error_share,
    )
