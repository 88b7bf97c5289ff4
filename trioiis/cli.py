"""The ``trioiis`` command line: ``serve``, ``check-config`` and ``bench``.

Bad configuration, a missing root or a module that fails to load is one line on stderr and
exit status 2, never a traceback. SIGINT and SIGTERM shut down gracefully and exit 0; a second
signal cancels the requests still in flight instead of waiting for them.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import trio

from ._errors import ConfigError
from ._observability.logfiles import LogFile, ReopeningHandler
from ._server.activation import inherited_redirect_sockets, inherited_sockets, systemd_sockets
from ._server.banner import banner_lines
from ._server.preflight import preflight
from ._server.server import HttpServer, open_listeners
from ._server.sockets import sockname
from ._server.workers import Supervisor, SupervisorLink
from .bench import add_arguments as add_bench_arguments
from .bench import missing_bench_extra
from .config import (
    DEFAULT_ACME_STATE_DIR,
    ServerConfig,
    load_config,
    merge_cli,
    parse_bind_option,
)

log = logging.getLogger("trioiis")


_DESCRIPTION = "trioiis: an HTTP/1.1 server on Trio with the IIS integrated request pipeline."
_EPILOG = """\
examples:
  trioiis serve site --bind 127.0.0.1:8080
  trioiis serve --config trioiis.toml
  trioiis check-config trioiis.toml
  trioiis bench http://127.0.0.1:8080/ --duration 5

'trioiis COMMAND --help' describes a command's options."""


def _version() -> str:
    try:
        return importlib.metadata.version("trioiis")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
        return "unknown"


def _workers(text: str) -> int:
    """``--workers N``: N at least 1 (leave the option out for no supervisor)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{value} workers: give at least 1 (leave --workers out to serve in this process)"
        )
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trioiis",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"trioiis {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="serve a folder, modules and Python apps over HTTP/1.1 (and HTTPS)",
        description="Serve a folder, modules and Python apps. Command-line options win over"
        " the --config file; repeatable options add to its lists.",
    )
    serve.add_argument(
        "root", nargs="?", help="folder to serve (default: the config's root, else the current one)"
    )
    serve.add_argument(
        "-b",
        "--bind",
        action="append",
        default=[],
        metavar="HOST:PORT[,http2=off]",
        help="address to listen on, repeatable: 127.0.0.1:8080, [::1]:8080, :8080 for every"
        " interface; ',http2=off' (or on) for this binding alone (default: 127.0.0.1:8080)",
    )
    serve.add_argument("-c", "--config", metavar="FILE", help="TOML configuration file")
    serve.add_argument(
        "-m",
        "--module",
        action="append",
        default=[],
        metavar="[NAME=]pkg.mod:register_module",
        help="load a module after the built-in ones, repeatable: a built-in name"
        " (directory_listing), pkg.mod:function or path/file.py:function (default: none)",
    )
    serve.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="PATTERN=NAME[,NAME...]",
        help="handler mapping tried before the default '*' one, repeatable:"
        " '*.txt=static_file' (default: none)",
    )
    serve.add_argument(
        "--asgi",
        action="append",
        default=[],
        metavar="PATTERN=pkg.mod:app",
        help="host an ASGI app at PATTERN, e.g. '/api/*=myapp:app' (default: none)",
    )
    serve.add_argument(
        "--wsgi",
        action="append",
        default=[],
        metavar="PATTERN=pkg.mod:app",
        help="host a WSGI app at PATTERN (default: none)",
    )
    serve.add_argument(
        "--access-log",
        metavar="PATH|-",
        help="write one line per request to PATH, or '-' for stderr (default: off)",
    )
    serve.add_argument(
        "--tls-cert", metavar="PEM", help="certificate chain: every binding serves HTTPS"
    )
    serve.add_argument("--tls-key", metavar="PEM", help="private key for --tls-cert")
    serve.add_argument(
        "--tls-bind",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a binding that serves HTTPS while --bind ones stay cleartext, repeatable"
        " (needs --tls-cert or ACME; default: none)",
    )
    serve.add_argument(
        "--acme-domain",
        action="append",
        default=[],
        metavar="NAME",
        help="get a certificate for NAME from an ACME CA, repeatable (default: none)",
    )
    serve.add_argument("--acme-email", metavar="ADDRESS", help="the ACME account's contact")
    serve.add_argument(
        "--acme-directory",
        metavar="URL",
        help="the ACME CA's directory (default: Let's Encrypt's production)",
    )
    serve.add_argument(
        "--acme-ca-bundle", metavar="PEM", help="CAs to trust for the ACME directory's HTTPS"
    )
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
        help="serve HTTP/1.1 only (no h2c preface detection, no ALPN h2) on every binding"
        " without its own http2=on (default: both)",
    )
    serve.add_argument(
        "--trace-dir", metavar="DIR", help="write failed-request traces here (default: off)"
    )
    serve.add_argument(
        "--trace-when",
        metavar="RULE",
        help='which requests to trace (default: "status>=500 or cancelled or time>1s")',
    )
    serve.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=_LOG_LEVELS,
        help="server log level, any case: debug, info, warning or error (default: info)",
    )
    serve.add_argument(
        "-w",
        "--workers",
        type=_workers,
        default=None,
        metavar="N",
        help="a supervisor and N worker processes sharing the listening sockets"
        " (default: serve in this one process)",
    )
    check = commands.add_parser(
        "check-config",
        help="run every check serve runs, short of binding, on a configuration file",
        description="Load FILE, its modules and apps' code, certificates and log paths as"
        " serve would, without binding or serving; exit 0 and print 'FILE: ok', or exit 2"
        " with the first problem.",
    )
    check.add_argument("file", help="TOML configuration file")
    bench = commands.add_parser(
        "bench",
        help="load-benchmark any HTTP server (HTTP/1.1, HTTP/2, TLS), with aborted requests",
        description="Load-benchmark any HTTP server (HTTP/1.1, HTTP/2, TLS), with aborted"
        " requests.",
    )
    add_bench_arguments(bench)
    return parser


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def build_config(args: argparse.Namespace) -> ServerConfig:
    """The configuration that ``trioiis serve`` would run with.

    Raises:
        ConfigError: any problem, with a one-line message.
    """
    config = load_config(args.config) if args.config else ServerConfig()
    config = merge_cli(
        config,
        root=args.root,
        bindings=[parse_bind_option(b) for b in args.bind],
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
        tls_bindings=args.tls_bind,
        acme_domains=args.acme_domain,
        acme_email=args.acme_email,
        acme_directory=args.acme_directory,
        acme_ca_bundle=args.acme_ca_bundle,
    )
    if config.acme_enabled and config.acme_state_dir is None and args.config:
        state = Path(args.config).parent / DEFAULT_ACME_STATE_DIR  # beside the file
        config = dataclasses.replace(config, acme_state_dir=state)
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
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGUSR1) as signals:
        async with trio.open_nursery() as nursery:

            async def shutdown() -> None:
                await server.shutdown()
                nursery.cancel_scope.cancel()  # ends the wait for signals below

            bound = await nursery.start(server.serve)
            if link is None:
                _print_serving(
                    server.config,
                    bound,
                    server.module_names,
                    server.redirect_bound,
                    server.tls_bound,
                )
            else:
                link.ready()
                nursery.start_soon(_orphaned, link, shutdown)
            stopping = False
            async for signum in signals:
                if signum == signal.SIGUSR1:
                    _reopen_logs(server)
                    continue
                if stopping:
                    print("trioiis: stopping now", file=sys.stderr, flush=True)
                    nursery.cancel_scope.cancel()
                    break
                stopping = True
                print("trioiis: shutting down", file=sys.stderr, flush=True)
                nursery.start_soon(shutdown)


def _print_serving(
    config: ServerConfig,
    bound: Sequence[tuple[str, int]],
    modules: Sequence[str],
    redirect_bound: Sequence[tuple[str, int]] = (),
    tls_bound: Sequence[tuple[str, int]] | None = None,
) -> None:
    """The start-up banner, on stdout (see ``trioiis._server.banner``)."""
    lines = banner_lines(config, bound, modules, redirect_bound, tls_bound)
    print("\n".join(lines), flush=True)


def _reopen_logs(server: HttpServer) -> None:
    """SIGUSR1: reopen the access log and the error log (after a log rotation)."""
    try:
        server.reopen_access_log()
        for handler in logging.getLogger("trioiis").handlers:
            if isinstance(handler, ReopeningHandler):
                handler.reopen()
    except ConfigError as exc:
        log.error("cannot reopen the logs, still writing to the old files: %s", exc)
        return
    log.info("logs reopened (SIGUSR1)")


#: Server log lines: time (local, with its UTC offset), level, logger, message.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def _setup_logging(level: str, config: ServerConfig) -> None:
    """Timestamped server log lines on stderr, and in ``error_log`` when configured."""
    logging.basicConfig(level=getattr(logging, level), format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT)
    logging.getLogger("trioiis.access").propagate = False
    if config.error_log is not None:
        handler = ReopeningHandler(LogFile(config.error_log, "error log"))
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        logging.getLogger("trioiis").addHandler(handler)


async def _orphaned(link: SupervisorLink, shutdown: Callable[[], Awaitable[None]]) -> None:
    await link.wait_gone()
    print("trioiis: the supervisor is gone; shutting down", file=sys.stderr, flush=True)
    await shutdown()


def _checked_config(args: argparse.Namespace) -> ServerConfig:
    """``build_config``, with every check ``check-config`` runs."""
    config = build_config(args)
    check_config(config)
    return config


def check_config(config: ServerConfig) -> HttpServer:
    """Every check ``serve`` runs short of binding: the root, modules and apps' code
    (loaded, mappings compiled), certificates, log files (``trioiis._server.preflight``).

    Raises:
        ConfigError: the first problem.
    """
    check_root(config)
    server = HttpServer(config)
    server.pipeline  # noqa: B018 - loads modules and compiles mappings
    preflight(config)
    return server


def _supervise(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """``serve --workers N``: the supervisor runs the same command line N times (see
    ``trioiis._server.workers``), on systemd's sockets if it passed some, else on the bindings."""
    config = _checked_config(args)
    sockets = systemd_sockets() or open_listeners((*config.addresses, *config.tls_bindings))
    bound = [sockname(s) for s in sockets]
    try:
        redirect_sockets = open_listeners(config.https_redirect)
    except ConfigError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"https_redirect: {exc}") from exc
    supervisor = Supervisor(
        command=[sys.executable, "-m", "trioiis.cli", *argv],
        sockets=sockets,
        redirect_sockets=redirect_sockets,
        workers=args.workers,
        config=config,
        reload_config=lambda: _checked_config(args),
        on_ready=lambda: _print_serving(
            config,
            bound,
            check_config(config).module_names,
            [sockname(s) for s in redirect_sockets],
        ),
    )
    trio.run(supervisor.run)


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["bench", "compare"]:
        from .bench import compare

        return compare.main(argv[2:])
    args = _parser().parse_args(argv)
    if args.command == "bench":
        missing = missing_bench_extra(h2=args.h2)
        if missing:
            print(f"trioiis bench: {missing}", file=sys.stderr)
            return 2
        from .bench.main import run_cli  # rich and hdrhistogram: only when benchmarking

        return run_cli(args)
    try:
        if args.command == "check-config":
            check_config(load_config(args.file))
            print(f"{args.file}: ok")
            return 0
        config = build_config(args)
        _setup_logging(args.log_level, config)
        link = SupervisorLink.from_environ()
        if args.workers and link is None:
            _supervise(args, argv)
            return 0
        if link is not None:
            sockets = inherited_sockets()
            redirect = inherited_redirect_sockets()
        else:
            sockets, redirect = systemd_sockets(), None
        server = HttpServer(config, sockets=sockets, redirect_sockets=redirect)
        if link is not None and args.workers:
            server.counters.processes = args.workers  # (the status module says so)
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
