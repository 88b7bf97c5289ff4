"""``trioiis serve | check-config``: the command line.

Bad configuration, a missing root or a module that fails to load is one line on stderr and
exit status 2, never a traceback. SIGINT and SIGTERM shut down gracefully and exit 0; a second
signal cancels the requests still in flight instead of waiting for them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from .activation import inherited_sockets, systemd_sockets
from .bench import add_arguments as add_bench_arguments
from .config import ServerConfig, load_config, merge_cli
from .errors import ConfigError
from .server import HttpServer, open_listeners
from .workers import Supervisor, SupervisorLink


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trioiis", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a folder (and modules) over HTTP/1.1")
    serve.add_argument("root", nargs="?", help="folder to serve (default: the current one)")
    serve.add_argument("--bind", action="append", default=[], metavar="HOST:PORT")
    serve.add_argument("--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument(
        "--module", action="append", default=[], metavar="[NAME=]pkg.mod:register_module"
    )
    serve.add_argument("--handler", action="append", default=[], metavar="PATTERN=NAME")
    serve.add_argument(
        "--asgi",
        action="append",
        default=[],
        metavar="PATTERN=pkg.mod:app",
        help="host an ASGI app",
    )
    serve.add_argument(
        "--wsgi", action="append", default=[], metavar="PATTERN=pkg.mod:app", help="host a WSGI app"
    )
    serve.add_argument("--access-log", metavar="PATH|-")
    serve.add_argument("--tls-cert", metavar="PEM", help="certificate chain: serve HTTPS")
    serve.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    serve.add_argument(
        "--http",
        choices=["h11", "fast"],
        help="request-head parser: h11 (default) or fast (httptools; same behaviour)",
    )
    serve.add_argument(
        "--no-http2",
        dest="http2",
        action="store_false",
        default=None,
        help="serve HTTP/1.1 only (no h2c preface detection, no ALPN h2)",
    )
    serve.add_argument("--trace-dir", metavar="DIR", help="write failed-request traces here")
    serve.add_argument(
        "--trace-when",
        metavar="RULE",
        help='which requests to trace (default: "status>=500 or cancelled or time>1s")',
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    serve.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="a supervisor and N worker processes sharing the listening sockets",
    )
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
    bench = commands.add_parser("bench", help="load-benchmark a loopback server, with aborts")
    add_bench_arguments(bench)
    return parser


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The configuration that ``trioiis serve`` would run with.

    Raises:
        ConfigError: any problem, with a one-line message.
    """
    config = load_config(args.config) if args.config else ServerConfig()
    config = merge_cli(
        config,
        root=args.root,
        bindings=args.bind,
        modules=args.module,
        handlers=args.handler,
        asgi=args.asgi,
        wsgi=args.wsgi,
        access_log=args.access_log,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        http=args.http,
        trace_dir=args.trace_dir,
        trace_when=args.trace_when,
        http2=args.http2,
    )
    check_root(config)
    return config


def check_root(config: ServerConfig) -> None:
    """Raises ConfigError unless ``config.root`` is a folder."""
    root = Path(config.root)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "does not exist"
        raise ConfigError(f"root folder {root} {problem}")


async def _serve(server: HttpServer, link: SupervisorLink | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down gracefully; a second signal cancels
    the requests still in flight at once. A worker (``link``) tells its supervisor when it
    is ready instead of printing, and shuts down gracefully when the supervisor is gone."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def shutdown() -> None:
                await server.shutdown()
                nursery.cancel_scope.cancel()  # ends the wait for signals below

            bound = await nursery.start(server.serve)
            if link is None:
                _print_serving(server.config, bound)
            else:
                link.ready()
                nursery.start_soon(_orphaned, link, shutdown)
            stopping = False
            async for _ in signals:
                if stopping:
                    print("trioiis: stopping now", file=sys.stderr, flush=True)
                    nursery.cancel_scope.cancel()
                    break
                stopping = True
                print("trioiis: shutting down", file=sys.stderr, flush=True)
                nursery.start_soon(shutdown)


def _print_serving(config: ServerConfig, bound: Sequence[tuple[str, int]]) -> None:
    scheme = "https" if config.tls_cert else "http"
    for host, port in bound:
        shown = f"[{host}]" if ":" in host else host
        print(f"trioiis serving {config.root} on {scheme}://{shown}:{port}/", flush=True)


async def _orphaned(link: SupervisorLink, shutdown: Callable[[], Awaitable[None]]) -> None:
    await link.wait_gone()
    print("trioiis: the supervisor is gone; shutting down", file=sys.stderr, flush=True)
    await shutdown()


def _checked_config(args: argparse.Namespace) -> ServerConfig:
    """``build_config``, with its modules loaded once (as ``check-config`` does)."""
    config = build_config(args)
    HttpServer(config).pipeline  # noqa: B018 - loads modules and compiles mappings
    return config


def _supervise(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """``serve --workers N``: the supervisor runs the same command line N times (see
    ``trioiis.workers``), on systemd's sockets if it passed some, else on the bindings."""
    config = _checked_config(args)
    sockets = systemd_sockets() or open_listeners(config.bindings)
    bound = [_sockname(s) for s in sockets]
    supervisor = Supervisor(
        command=[sys.executable, "-m", "trioiis.cli", *argv],
        sockets=sockets,
        workers=args.workers,
        config=config,
        reload_config=lambda: _checked_config(args),
        on_ready=lambda: _print_serving(config, bound),
    )
    trio.run(supervisor.run)


def _sockname(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return (str(name[0]), int(name[1]))


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    if args.command == "bench":
        from .bench.main import run_cli  # rich and hdrhistogram: only when benchmarking

        return run_cli(args)
    try:
        if args.command == "check-config":
            config = load_config(args.file)
            check_root(config)
            HttpServer(config).pipeline  # noqa: B018 - loads modules and compiles mappings
            print(f"{args.file}: ok")
            return 0
        logging.basicConfig(
            level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("trioiis.access").propagate = False
        link = SupervisorLink.from_environ()
        if args.workers and link is None:
            _supervise(args, argv)
            return 0
        sockets = inherited_sockets() if link is not None else systemd_sockets()
        server = HttpServer(build_config(args), sockets=sockets)
        try:
            trio.run(_serve, server, link)
        except BaseExceptionGroup as group:
            error = _config_error_in(group)
            if error is group:
                raise
            raise error from group
    except ConfigError as exc:
        message = " ".join(line.strip() for line in str(exc).splitlines())
        print(f"trioiis: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before the server started: nothing to shut down
        print("trioiis: interrupted", file=sys.stderr)
        return 130
    return 0


def _config_error_in(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The ConfigError inside a nursery's exception group (else the group itself)."""
    matched = group.subgroup(ConfigError)
    while matched is not None:
        first = matched.exceptions[0]
        if not isinstance(first, BaseExceptionGroup):
            return first
        matched = first
    return group


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
