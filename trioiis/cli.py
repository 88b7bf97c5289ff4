"""``trioiis serve | check-config``: the command line.

Bad configuration, a missing root or a module that fails to load is one line on stderr and
exit status 2, never a traceback. SIGINT and SIGTERM shut down gracefully and exit 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from .config import ServerConfig, load_config, merge_cli
from .errors import ConfigError
from .server import HttpServer


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
    serve.add_argument("--access-log", metavar="PATH|-")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING"])
    check = commands.add_parser("check-config", help="validate a configuration file")
    check.add_argument("file")
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
        access_log=args.access_log,
    )
    if not Path(config.root).is_dir():
        raise ConfigError(f"root folder {config.root} does not exist")
    return config


async def _serve(server: HttpServer) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(server.serve)
            for host, port in bound:
                shown = f"[{host}]" if ":" in host else host
                print(f"trioiis serving {server.config.root} on http://{shown}:{port}/", flush=True)
            async for _ in signals:
                print("trioiis: shutting down", file=sys.stderr, flush=True)
                await server.shutdown()
                break


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "check-config":
            config = load_config(args.file)
            HttpServer(config).pipeline  # noqa: B018 - loads modules and compiles mappings
            print(f"{args.file}: ok")
            return 0
        logging.basicConfig(
            level=getattr(logging, args.log_level), format="%(levelname)s %(name)s: %(message)s"
        )
        logging.getLogger("trioiis.access").propagate = False
        server = HttpServer(build_config(args))
        try:
            trio.run(_serve, server)
        except BaseExceptionGroup as group:
            raise _config_error_in(group) from group
    except ConfigError as exc:
        print(f"trioiis: {exc}", file=sys.stderr)
        return 2
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
