"""Configuration: one TOML file (or the command line) → frozen, typed settings.

```toml
root = "site"                     # the folder to serve
bindings = ["127.0.0.1:8080"]     # HOST:PORT, [IPv6]:PORT
access_log = "-"                  # "-" for stderr, a path, or leave out

[limits]                          # any field of trioiis.Limits
max_body_bytes = 10_000_000

[[modules]]                       # loaded in this order, after the built-in ones
name = "hello"
target = "examples/modules/hello.py:register_module"   # or "package.module:function"

[[handlers]]                      # EXECUTE_REQUEST_HANDLER mappings, first match wins;
path = "*.txt"                    # each module named must be registered for that stage
modules = ["static_file"]
verbs = ["GET", "HEAD"]           # optional
```
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from .errors import ConfigError
from .http1 import Limits
from .mapping import HandlerMapping
from .registration import RegisterModule


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    """A module to load: ``target`` is ``pkg.mod:function`` or ``path/file.py:function``."""

    name: str
    target: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything a server needs; build it in code or with ``load_config``.

    Attributes:
        root: the site's folder.
        bindings: ``HOST:PORT`` strings (port 0 picks a free port).
        limits: protocol limits and timeouts.
        modules: modules loaded after the built-in ones, in this order.
        handlers: handler mappings for EXECUTE_REQUEST_HANDLER, tried in order before the
            default ``*`` mapping (static_file, default_document, directory_listing).
        builtin_modules: load the built-in modules (static_file, default_document).
        default_documents: file names default_document tries, in order.
        access_log: None (off), ``"-"`` (stderr) or a file path.
        max_connections: connections served at once; more wait in the kernel's backlog.
        shutdown_grace: seconds ``shutdown`` (and SIGTERM) waits for requests in flight.
    """

    root: Path = Path(".")
    bindings: tuple[str, ...] = ("127.0.0.1:8080",)
    limits: Limits = field(default_factory=Limits)
    modules: tuple[ModuleSpec, ...] = ()
    handlers: tuple[HandlerMapping, ...] = ()
    builtin_modules: bool = True
    default_documents: tuple[str, ...] = ("index.html", "index.htm", "default.htm")
    access_log: str | None = None
    max_connections: int = 10_000
    shutdown_grace: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "bindings", tuple(self.bindings))
        for binding in self.bindings:
            parse_binding(binding)
        if self.max_connections < 1:
            raise ConfigError("max_connections must be at least 1")


def parse_binding(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ``("127.0.0.1", 8080)``; ``"[::1]:80"`` → ``("::1", 80)``.

    Raises:
        ConfigError: not ``HOST:PORT`` with a port from 0 to 65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"binding {text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def load_config(path: str | Path, **overrides: object) -> ServerConfig:
    """Read a TOML file; relative paths in it are relative to the file's folder.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown keys or wrong types, one line each.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config_from_mapping(data, base=path.parent, **overrides)


def config_from_mapping(
    data: Mapping[str, object], *, base: Path = Path("."), **overrides: object
) -> ServerConfig:
    """Build a ``ServerConfig`` from parsed TOML (see the module docstring)."""
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    kwargs: dict[str, object] = {}
    if "root" in data:
        kwargs["root"] = base / cast("str", _expect(data, "root", str))
    if "bindings" in data:
        kwargs["bindings"] = tuple(_expect_list(data, "bindings", str))
    if "limits" in data:
        kwargs["limits"] = _limits(_expect(data, "limits", dict))
    if "modules" in data:
        kwargs["modules"] = tuple(
            _module_spec(m, base) for m in _expect_list(data, "modules", dict)
        )
    if "handlers" in data:
        kwargs["handlers"] = tuple(_handler(h) for h in _expect_list(data, "handlers", dict))
    if "default_documents" in data:
        kwargs["default_documents"] = tuple(_expect_list(data, "default_documents", str))
    for name, kind in (
        ("builtin_modules", bool),
        ("access_log", str),
        ("max_connections", int),
        ("shutdown_grace", (int, float)),
    ):
        if name in data:
            kwargs[name] = _expect(data, name, kind)
    kwargs.update(overrides)
    try:
        return ServerConfig(**kwargs)  # type: ignore[arg-type]  # values were checked above
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


def _expect(data: Mapping[str, object], key: str, kind: type | tuple[type, ...]) -> object:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ConfigError(f"config key {key!r} must be {names}, not {type(value).__name__}")
    return value


def _expect_list(data: Mapping[str, object], key: str, kind: type) -> list[object]:
    value = _expect(data, key, list)
    items = cast("list[object]", value)
    for item in items:
        if not isinstance(item, kind):
            raise ConfigError(f"config key {key!r} must be a list of {kind.__name__}")
    return items


def _limits(data: object) -> Limits:
    table = cast("dict[str, object]", data)
    fields = {f.name: f for f in dataclasses.fields(Limits)}
    for key, value in table.items():
        if key not in fields:
            raise ConfigError(f"unknown limit {key!r}")
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"limit {key!r} must be a non-negative number")
    return Limits(**table)  # type: ignore[arg-type]  # numbers checked above


def _module_spec(data: object, base: Path) -> ModuleSpec:
    table = cast("dict[str, object]", data)
    name, target = table.get("name"), table.get("target")
    if not isinstance(name, str) or not isinstance(target, str):
        raise ConfigError("each [[modules]] needs name and target strings")
    module_path, sep, func = target.rpartition(":")
    if sep and module_path.endswith(".py") and not Path(module_path).is_absolute():
        target = f"{base / module_path}:{func}"
    return ModuleSpec(name=name, target=target)


def _handler(data: object) -> HandlerMapping:
    table = cast("dict[str, object]", data)
    path, modules = table.get("path"), table.get("modules")
    verbs = table.get("verbs", [])
    if not isinstance(path, str) or not isinstance(modules, list) or not modules:
        raise ConfigError("each [[handlers]] needs a path and a non-empty modules list")
    if not isinstance(verbs, list):
        raise ConfigError("[[handlers]] verbs must be a list")
    return HandlerMapping(
        path,
        tuple(str(m) for m in modules),
        frozenset(str(v).upper() for v in verbs),
        str(table.get("name", "")),
    )


def parse_module_option(text: str) -> ModuleSpec:
    """``[NAME=]target`` from the command line; NAME defaults to the target's file/module."""
    name, sep, target = text.partition("=")
    if not sep:
        target = text
        module_path = text.rpartition(":")[0] or text
        name = Path(module_path).stem if module_path.endswith(".py") else module_path.split(".")[-1]
    if ":" not in target:
        raise ConfigError(f"module {text!r} must be [NAME=]package.module:function")
    return ModuleSpec(name=name, target=target)


def parse_handler_option(text: str) -> HandlerMapping:
    """``PATTERN=NAME[,NAME…]`` from the command line."""
    pattern, sep, names = text.partition("=")
    if not sep or not pattern or not names:
        raise ConfigError(f"handler {text!r} must be PATTERN=MODULE[,MODULE...]")
    return HandlerMapping(pattern, tuple(n.strip() for n in names.split(",") if n.strip()))


def load_register_function(target: str) -> RegisterModule:
    """Import ``pkg.mod:function`` or ``path/to/file.py:function``.

    Raises:
        ConfigError: the module cannot be imported or has no such callable.
    """
    module_path, sep, func_name = target.rpartition(":")
    if not sep or not module_path or not func_name:
        raise ConfigError(f"module target {target!r} must be package.module:function")
    try:
        if module_path.endswith(".py"):
            file = Path(module_path)
            if not file.is_file():
                raise ConfigError(f"module file {file} does not exist")
            name = f"trioiis_loaded_{file.stem}_{abs(hash(str(file.resolve())))}"
            spec = importlib.util.spec_from_file_location(name, file)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_path)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"cannot import {module_path}: {type(exc).__name__}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"{module_path} has no function {func_name!r}")
    return cast("RegisterModule", func)


def merge_cli(
    config: ServerConfig,
    *,
    root: str | None,
    bindings: Sequence[str],
    modules: Sequence[str],
    handlers: Sequence[str],
    access_log: str | None,
) -> ServerConfig:
    """Command-line options on top of a config (the command line wins)."""
    changes: dict[str, object] = {}
    if root is not None:
        changes["root"] = Path(root)
    if bindings:
        changes["bindings"] = tuple(bindings)
    if modules:
        changes["modules"] = config.modules + tuple(parse_module_option(m) for m in modules)
    if handlers:
        changes["handlers"] = tuple(parse_handler_option(h) for h in handlers) + config.handlers
    if access_log is not None:
        changes["access_log"] = access_log
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
