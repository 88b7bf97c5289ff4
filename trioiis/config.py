"""Configuration: one TOML file (or the command line) → frozen, typed settings.

```toml
root = "site"                     # the folder to serve
bindings = ["127.0.0.1:8080"]     # HOST:PORT, [IPv6]:PORT, or a table:
                                  # { address = "127.0.0.1:8081", http2 = false }
access_log = "-"                  # "-" for stderr, a path, or leave out
tls_cert = "cert.pem"             # both or neither: every binding serves HTTPS
tls_key = "key.pem"
proxy_protocol = true             # behind HAProxy send-proxy(-v2), nginx proxy_protocol, …
trusted_proxies = ["10.0.0.0/8"]  # whose X-Forwarded-For / Forwarded are believed
trace_dir = "traces"              # failed-request traces: where, and which requests
trace_when = "status>=500 or cancelled or time>1s"

[limits]                          # any field of trioiis.Limits
max_body_bytes = 10_000_000

[[modules]]                       # loaded in this order, after the built-in ones
name = "hello"
target = "examples/modules/hello.py:register_module"   # or "package.module:function"

[[handlers]]                      # EXECUTE_REQUEST_HANDLER mappings, first match wins;
path = "*.txt"                    # each module named must be registered for that stage
modules = ["static_file"]
verbs = ["GET", "HEAD"]           # optional

[[handlers]]                      # host a Python app: `asgi` or `wsgi` instead of modules
path = "/app/*"                   # mounted at /app (its root_path / SCRIPT_NAME)
asgi = "myapp:app"                # or "path/to/app.py:app", relative to this file

[[sites]]                         # virtual hosts, chosen by the request's Host
name = "blog"
root = "blog"
hosts = ["blog.example.test"]
default = true                    # optional: unknown hosts get this site, not `root`
acme = true                       # optional: certificates for its hosts from an ACME CA
```
Automatic HTTPS (``trioiis._server.autohttps``, docs/automatic-https.md): ``acme = true``
(top level: every site's hosts and ``acme_domains``; on a ``[[sites]]`` entry: its hosts),
``acme_email``, ``acme_directory``, ``acme_ca_bundle``, ``acme_state_dir``,
``acme_challenge`` and ``tls_bindings`` (the HTTPS bindings; ``bindings`` stay cleartext).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import ipaddress
import math
import os
import re
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Final, Literal, cast

from ._constants import SERVER_VERSION
from ._context.mapping import HandlerMapping
from ._errors import ConfigError, describe_exception
from ._observability.accesslog import FORMATS
from ._observability.trace_rules import parse_rule
from ._observability.tracing import DEFAULT_RULE
from ._pipeline.registration import DEFAULT_DENIED_SEGMENTS, GlobalServer, RegisterModule
from ._protocol.forwarded import TrustedProxies
from ._protocol.http1 import Limits

#: Every built-in module's ``register_module``, by the name a config gives it.
BUILTIN_MODULES: Final[dict[str, str]] = {
    "static_file": "trioiis.modules.static_file:register_module",
    "default_document": "trioiis.modules.default_document:register_module",
    "directory_listing": "trioiis.modules.directory_listing:register_module",
    "status": "trioiis.modules.status:register_module",
    "metrics": "trioiis.modules.metrics:register_module",
    "custom_errors": "trioiis.modules.custom_errors:register_module",
    "redirect": "trioiis.modules.redirect:register_module",
    "request_filtering": "trioiis.modules.request_filtering:register_module",
    "compression": "trioiis.modules.compression:register_module",
    "asgi": "trioiis.modules.asgi:register_module",
    "wsgi": "trioiis.modules.wsgi:register_module",
}

DEFAULT_MODULES: Final[tuple[str, ...]] = (
    "request_filtering",
    "static_file",
    "default_document",
    "custom_errors",
    "compression",
)


def root_path_for(pattern: str) -> str:
    """The mount point a handler pattern implies: ``/app/*`` → ``/app``; ``*`` → ``""``.

    Only a pattern that is a plain prefix followed by ``/*`` mounts an app; any other
    pattern (``*.py``, ``/a*/b``) mounts it at the root."""
    if pattern.endswith("/*"):
        prefix = pattern[:-2]
        if prefix.startswith("/") and not any(c in prefix for c in "*?["):
            return prefix
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    """A module to load: ``target`` is ``pkg.mod:function`` or ``path/file.py:function``
    (a built-in module needs none); ``options`` go to its ``register_module`` as
    ``info.options``."""

    name: str
    target: str
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    """One address to listen on with options of its own: ``http2`` turns HTTP/2 on or off
    on this binding alone (None: ``ServerConfig.http2`` decides). A plain ``"HOST:PORT"``
    string in ``ServerConfig.bindings`` is a binding with every option at its default."""

    address: str
    http2: bool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.address, str):
            raise ConfigError(f"binding {self.address!r} is not HOST:PORT")
        if self.http2 is not None and not isinstance(self.http2, bool):
            raise ConfigError(f"binding {self.address!r}: http2 must be true or false")


def binding_address(binding: str | Binding) -> str:
    """The ``HOST:PORT`` of an entry of ``ServerConfig.bindings``."""
    return binding.address if isinstance(binding, Binding) else binding


_HOST = re.compile(r"[a-z0-9._-]+|\[[0-9a-f:.]+\]")


#: Let's Encrypt's production directory: ``acme_directory``'s default.
LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
#: ``acme_state_dir``'s name when it is not given: beside the config file, else here.
DEFAULT_ACME_STATE_DIR = "acme-state"
#: The challenges trioiis answers itself.
ACME_CHALLENGES = ("http-01", "tls-alpn-01")


def _check_challenge(value: object, where: str) -> None:
    if value is not None and value not in ACME_CHALLENGES:
        raise ConfigError(f'{where}acme_challenge must be "http-01" or "tls-alpn-01"')


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteConfig:
    """One virtual host: requests whose ``Host`` (without its port, any case) is one of
    ``hosts`` are served from ``root``; ``default`` makes it the site for unknown hosts.
    ``tls_cert`` / ``tls_key``: the certificate a TLS client naming one of ``hosts`` (SNI)
    gets, instead of the server's own."""

    name: str
    root: Path
    hosts: tuple[str, ...] = ()
    default: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    acme: bool = False
    acme_challenge: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a site needs a non-empty name")
        object.__setattr__(self, "root", Path(self.root))
        for name in ("tls_cert", "tls_key"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value))
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(f"site {self.name!r}: tls_cert and tls_key go together")
        hosts: object = self.hosts
        if isinstance(hosts, str):
            hosts = (hosts,)
        if not all(isinstance(h, str) for h in cast("Sequence[object]", hosts)):
            raise ConfigError(f"site {self.name!r}: hosts must be strings")
        normal = tuple(h.lower().rstrip(".") for h in cast("Sequence[str]", hosts))
        for host, given in zip(normal, cast("Sequence[str]", hosts), strict=True):
            if not _HOST.fullmatch(host):
                raise ConfigError(
                    f"site {self.name!r}: host {given!r} is not a host name (no port, no scheme)"
                )
        object.__setattr__(self, "hosts", normal)
        if not isinstance(self.default, bool):
            raise ConfigError(f"site {self.name!r}: default must be true or false")
        if not normal and not self.default:
            raise ConfigError(f"site {self.name!r} needs hosts or default = true")
        if self.tls_cert is not None and not normal:
            raise ConfigError(f"site {self.name!r}: a certificate needs hosts to be chosen by")
        if not isinstance(self.acme, bool):
            raise ConfigError(f"site {self.name!r}: acme must be true or false")
        if self.acme and not normal:
            raise ConfigError(f"site {self.name!r}: acme = true needs hosts to certify")
        if self.acme and self.tls_cert is not None:
            raise ConfigError(f"site {self.name!r}: acme = true and tls_cert exclude each other")
        _check_challenge(self.acme_challenge, f"site {self.name!r}: ")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything a server needs; build it in code or with ``load_config``.

    Attributes:
        root: the site's folder.
        bindings: ``HOST:PORT`` strings (port 0 picks a free port), or ``Binding`` objects for
            a binding with options of its own (``Binding("127.0.0.1:8081", http2=False)``).
        limits: protocol limits and timeouts.
        modules: modules loaded after the built-in ones, in this order.
        handlers: handler mappings for EXECUTE_REQUEST_HANDLER, tried in order before the
            default ``*`` mapping (static_file, default_document, directory_listing).
        builtin_modules: load the built-in modules (static_file, default_document).
        default_documents: file names default_document tries, in order.
        access_log: None (off), ``"-"`` (stderr) or a file path.
        access_log_format: ``"common"`` (Common Log Format plus time taken and outcome),
            ``"combined"`` (plus referer and user agent), ``"w3c"`` (IIS's W3C extended format)
            or ``"json"`` (one object a line).
        max_connections: connections served at once.
        when_full: what a connection beyond ``max_connections`` gets: ``"wait"`` (it waits
            in the kernel's backlog until a slot frees) or ``"refuse"`` (an immediate 503 and
            a close).
        shutdown_grace: seconds ``shutdown`` (and SIGTERM) waits for requests in flight.
        sites: virtual hosts, chosen by the request's ``Host``; requests for no site's host
            go to the first site marked ``default``, else to ``root``.
        tls_cert: PEM certificate chain file; with ``tls_key``, every binding serves HTTPS.
        tls_key: PEM private key file (both or neither).
        proxy_protocol: every binding expects a PROXY protocol header (v1 or v2) first on
            each connection (see ``trioiis._protocol.proxy_protocol``): the client's address from it
            becomes the connection's remote address. Only behind a balancer that sends it.
        trusted_proxies: IP addresses and networks (``"10.0.0.0/8"``) whose
            ``X-Forwarded-For`` / ``Forwarded`` headers are believed (see
            ``trioiis._protocol.forwarded``); from any other peer they are ignored.
        http: the request-head parser: ``"h11"`` (the reference, default) or ``"fast"``
            (llhttp through ``httptools`` for bodiless heads, h11 for the rest; needs
            ``pip install 'trioiis[fast]'``). Both accept, refuse and frame the same requests.
        http2: serve HTTP/2 as well: prior-knowledge h2c on plain bindings (the connection
            preface is detected, anything else is HTTP/1.1) and ALPN ``h2`` on TLS ones;
            False serves HTTP/1.1 only. The default of every binding: a ``Binding``'s own
            ``http2`` wins for that binding.
        trace_dir: folder for failed-request traces (JSON files); None: tracing is off.
        trace_when: the rule a finished request must match to be written
            (``_observability.trace_rules``), e.g. ``"status>=500 or cancelled or time>1s"``.
        trace_max_files: trace files kept in ``trace_dir``; the oldest are deleted.
        trace_max_events: events recorded per request (with its children); more are
            only counted, so a trace's memory is bounded.
        https_redirect: ``HOST:PORT`` bindings that answer every request with a 301 to the
            same URL on ``https://`` (the first TLS binding's port); needs ``tls_cert``.
        error_log: a file for the server's own log (warnings, errors, start-up), besides
            stderr; None: stderr only. Reopened on SIGUSR1 like ``access_log``.
        watchdog_threshold: seconds the event loop may stay blocked (a module calling
            ``time.sleep``, say) before a warning names the module and stage; 0 turns the
            watchdog off.
        denied_segments: URL path segments the built-in file modules (static_file,
            default_document, directory_listing, compression) never serve, compared
            case-insensitively (404), like IIS request filtering's ``hiddenSegments``.
            Segments starting with "." are refused anyway (except ``.well-known``).
        allow_symlinks_outside_root: serve files that symlinks inside a site's root point
            to outside it (off: they are 404, and left out of directory listings).
    """

    root: Path = Path(".")
    bindings: tuple[str | Binding, ...] = ("127.0.0.1:8080",)
    limits: Limits = field(default_factory=Limits)
    modules: tuple[ModuleSpec, ...] = ()
    handlers: tuple[HandlerMapping, ...] = ()
    builtin_modules: bool = True
    default_documents: tuple[str, ...] = ("index.html", "index.htm", "default.htm")
    access_log: str | None = None
    access_log_format: Literal["common", "combined", "w3c", "json"] = "common"
    max_connections: int = 10_000
    when_full: Literal["wait", "refuse"] = "wait"
    shutdown_grace: float = 10.0
    sites: tuple[SiteConfig, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    proxy_protocol: bool = False
    trusted_proxies: tuple[str, ...] = ()
    http: Literal["h11", "fast"] = "h11"
    http2: bool = True
    trace_dir: Path | None = None
    trace_when: str = DEFAULT_RULE
    trace_max_files: int = 1000
    trace_max_events: int = 2000
    https_redirect: tuple[str, ...] = ()
    error_log: Path | None = None
    watchdog_threshold: float = 0.5
    denied_segments: tuple[str, ...] = DEFAULT_DENIED_SEGMENTS
    allow_symlinks_outside_root: bool = False
    tls_bindings: tuple[str, ...] = ()
    acme: bool = False
    acme_email: str | None = None
    acme_directory: str = LETS_ENCRYPT_DIRECTORY
    acme_ca_bundle: Path | None = None
    acme_state_dir: Path | None = None
    acme_domains: tuple[str, ...] = ()
    acme_challenge: str | None = None

    @property
    def acme_enabled(self) -> bool:
        """Some host gets its certificate from an ACME CA."""
        return self.acme or bool(self.acme_domains) or any(s.acme for s in self.sites)

    def __post_init__(self) -> None:
        # Each field on its own (the table below), then what fields say about each other.
        for name, coerce in _FIELDS.items():
            object.__setattr__(self, name, coerce(name, getattr(self, name)))
        if not self.bindings:
            raise ConfigError("bindings must not be empty")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("tls_cert and tls_key go together: give both or neither")
        if self.https_redirect and self.tls_cert is None:
            raise ConfigError(
                "https_redirect needs tls_cert and tls_key (something to redirect to)"
            )
        check_bindings((*self.addresses, *self.tls_bindings, *self.https_redirect))
        _check_sites_apart(self.sites)
        self._check_acme()

    def _check_acme(self) -> None:
        """``tls_bindings`` and the ``acme_*`` settings."""
        for name in ("tls_bindings", "acme_domains"):
            value: object = getattr(self, name)
            value = (value,) if isinstance(value, str) else tuple(cast("Sequence[str]", value))
            object.__setattr__(self, name, value)
        domains = tuple(d.lower().rstrip(".") for d in self.acme_domains)
        for given, domain in zip(self.acme_domains, domains, strict=True):
            if not _HOST.fullmatch(domain) or domain.startswith("["):
                raise ConfigError(f"acme domain {given!r} is not a host name")
        object.__setattr__(self, "acme_domains", domains)
        if not isinstance(self.acme, bool):
            raise ConfigError("acme must be true or false")
        for name in ("acme_ca_bundle", "acme_state_dir"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (str, Path)) or not str(value):
                    raise ConfigError(f"{name} must be a path")
                object.__setattr__(self, name, Path(value))
        directory: object = self.acme_directory
        if not isinstance(directory, str) or not directory.startswith(("https://", "http://")):
            raise ConfigError("acme_directory must be an http(s):// URL")
        email: object = self.acme_email
        if email is not None and (not isinstance(email, str) or "@" not in email):
            raise ConfigError("acme_email must be an e-mail address")
        _check_challenge(self.acme_challenge, "")
        if self.acme_enabled and not self.tls_bindings:
            raise ConfigError("acme needs tls_bindings: the HOST:PORT bindings that serve HTTPS")
        if self.tls_bindings and not self.acme_enabled and self.tls_cert is None:
            raise ConfigError("tls_bindings need tls_cert and tls_key, or acme")

    @property
    def addresses(self) -> tuple[str, ...]:
        """The ``HOST:PORT`` of every binding, in order."""
        return tuple(binding_address(b) for b in self.bindings)

    def binding_http2(self, binding: str | Binding) -> bool:
        """Whether ``binding`` (an entry of ``bindings``) serves HTTP/2."""
        if isinstance(binding, Binding) and binding.http2 is not None:
            return binding.http2
        return self.http2

    def global_server(self) -> GlobalServer:
        """What each module's ``register_module`` gets as its server: these sites' roots and
        the settings of the built-in modules, so that each server's modules have its own."""
        return GlobalServer(
            server_version=SERVER_VERSION,
            site_roots=(str(self.root), *(str(site.root) for site in self.sites)),
            default_documents=self.default_documents,
            denied_segments=self.denied_segments,
            allow_symlinks_outside_root=self.allow_symlinks_outside_root,
        )


# What ServerConfig makes of each field it checks or converts: a function of the field's
# name and the value given (from TOML, the command line or code), returning the value kept
# or raising a one-line ConfigError that names the field.
_Coerce = Callable[[str, Any], object]


def _strings(name: str, value: object) -> tuple[str, ...]:
    """A sequence of strings as a tuple; one plain string is one item, not its characters."""
    return (value,) if isinstance(value, str) else tuple(cast("Sequence[str]", value))


def _path(kind: str) -> _Coerce:
    def coerce(name: str, value: object) -> Path | None:
        if value is None:
            return None
        if not isinstance(value, (str, Path)) or not str(value):
            raise ConfigError(f"{name} must be a {kind} path")
        return Path(value)

    return coerce


def _at_least_one(name: str, value: object) -> object:
    if not _is_int(value) or cast("int", value) < 1:
        raise ConfigError(f"{name} must be at least 1")
    return value


def _seconds(name: str, value: object) -> object:
    if not _is_number(value) or math.isnan(cast("float", value)) or cast("float", value) < 0:
        raise ConfigError(f"{name} must be a non-negative number of seconds")
    return value


def _boolean(name: str, value: object) -> object:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false")
    return value


def _one_of(*choices: str) -> _Coerce:
    said = (
        f'"{choices[0]}" or "{choices[1]}"' if len(choices) == 2 else f"one of {', '.join(choices)}"
    )

    def coerce(name: str, value: object) -> object:
        if value not in choices:
            raise ConfigError(f"{name} must be {said}, not {value!r}")
        return value

    return coerce


def _segments(name: str, value: object) -> tuple[str, ...]:
    segments = _strings(name, value)
    if not all(
        isinstance(s, str) and s and "/" not in s for s in cast("Sequence[object]", segments)
    ):
        raise ConfigError(f"{name} must be path segments: non-empty strings without '/'")
    return segments


def _trusted_proxies(name: str, value: object) -> tuple[str, ...]:
    proxies = _strings(name, value)
    try:
        TrustedProxies(proxies)
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return proxies


def _trace_rule(name: str, value: object) -> object:
    parse_rule(cast("str", value))  # a bad rule is a ConfigError now, not at the first request
    return value


def _bindings(name: str, value: object) -> tuple[str | Binding, ...]:
    """``HOST:PORT`` strings and ``Binding`` objects; one alone is one binding."""
    if isinstance(value, (str, Binding)):
        return (value,)
    return tuple(cast("Sequence[str | Binding]", value))


def _sites(name: str, value: object) -> tuple[SiteConfig, ...]:
    sites = tuple(cast("Sequence[object]", value))
    for site in sites:
        if not isinstance(site, SiteConfig):
            raise ConfigError(f"sites must be SiteConfig objects, not {type(site).__name__}")
    return cast("tuple[SiteConfig, ...]", sites)


def _check_sites_apart(sites: Sequence[SiteConfig]) -> None:
    """No two sites share a name or a host."""
    names: set[str] = set()
    hosts: dict[str, str] = {}
    for site in sites:
        if site.name in names:
            raise ConfigError(f"two sites are named {site.name!r}")
        names.add(site.name)
        for host in site.hosts:
            if host in hosts:
                raise ConfigError(
                    f"host {host!r} is in both site {hosts[host]!r} and site {site.name!r}"
                )
            hosts[host] = site.name


_FIELDS: Final[dict[str, _Coerce]] = {
    "proxy_protocol": _boolean,
    "trusted_proxies": _trusted_proxies,
    "https_redirect": _strings,
    "error_log": _path("file"),
    "watchdog_threshold": _seconds,
    "root": lambda name, value: Path(value),
    "trace_dir": _path("folder"),
    "trace_when": _trace_rule,
    "trace_max_files": _at_least_one,
    "trace_max_events": _at_least_one,
    "tls_cert": _path("file"),
    "tls_key": _path("file"),
    "sites": _sites,
    "bindings": _bindings,
    "max_connections": _at_least_one,
    "access_log_format": _one_of(*FORMATS),
    "http": _one_of("h11", "fast"),
    "when_full": _one_of("wait", "refuse"),
    "shutdown_grace": _seconds,
    "denied_segments": _segments,
    "allow_symlinks_outside_root": _boolean,
}


_HOSTNAME = re.compile(r"[A-Za-z0-9._-]+")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_binding(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` → ``("127.0.0.1", 8080)``; ``"[::1]:80"`` → ``("::1", 80)``;
    ``":8080"`` → ``("", 8080)``: every interface, IPv4 and IPv6.

    HOST is a host name or IPv4 address (ASCII letters, digits, ``.``, ``-``, ``_``), an
    IPv6 address in brackets, or nothing; PORT is 0 to 65535 in ASCII digits.

    Raises:
        ConfigError: anything else.
        tls_bindings: ``HOST:PORT`` bindings that serve HTTPS while ``bindings`` stay
            cleartext (needs ``tls_cert`` or ACME). Without it, ``tls_cert`` makes every
            binding HTTPS.
        acme: certificates from an ACME CA for every site's hosts and ``acme_domains``
            (``trioiis._server.autohttps``); a ``[[sites]]`` entry can say ``acme`` for itself.
        acme_email: the ACME account's contact address (optional).
        acme_directory: the CA's directory URL (Let's Encrypt's production by default).
        acme_ca_bundle: a PEM file of CAs to trust for the directory's own HTTPS.
        acme_state_dir: account key, certificates, locks and pending challenges;
            ``load_config`` puts it beside the file (``acme-state``), else ``./acme-state``.
        acme_domains: host names of the top-level site to certify (``--acme-domain``).
        acme_challenge: ``"http-01"`` or ``"tls-alpn-01"``; by default HTTP-01 when there
            is a cleartext binding, else TLS-ALPN-01.
        error_log: a file for the server's own log (warnings, errors, start-up), besides
            stderr; None: stderr only. Reopened on SIGUSR1 like ``access_log``.
        watchdog_threshold: seconds the event loop may stay blocked (a module calling
            ``time.sleep``, say) before a warning names the module and stage; 0 turns the
            watchdog off.
    """
    if not isinstance(text, str):
        raise ConfigError(f"binding {text!r} is not HOST:PORT")
    host, sep, port = text.rpartition(":")
    # str.isdigit() is also true for "²" (which int() refuses) and for non-ASCII digits.
    valid_port = bool(sep) and 1 <= len(port) <= 5 and port.isascii() and port.isdigit()
    if not valid_port or int(port) > 65535:
        raise ConfigError(f"binding {text!r} is not HOST:PORT (port 0 to 65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError(
                f"binding {text!r} is not HOST:PORT ([{host}] is not an IPv6 address)"
            ) from None
    elif host and not _HOSTNAME.fullmatch(host):
        hint = " (write IPv6 as [ADDRESS]:PORT)" if ":" in host else ""
        raise ConfigError(f"binding {text!r} is not HOST:PORT{hint}")
    return host, int(port)


def check_bindings(bindings: Sequence[str]) -> None:
    """Each binding parses, and no two would listen on the same address (port 0 aside):
    the same HOST:PORT twice, or every interface (``:PORT``) and one address on that port.

    Raises:
        ConfigError: the first bad or colliding binding.
    """
    seen: dict[tuple[str, int], str] = {}
    for binding in bindings:
        host, port = parse_binding(binding)
        if port == 0:
            continue
        key = (host.lower().rstrip("."), port)
        clash = seen.get(key)
        if clash is None:
            clash = next((b for (h, p), b in seen.items() if p == port and "" in (h, key[0])), None)
        if clash is not None:
            same = "is listed twice" if clash == binding else f"collides with {clash!r}"
            raise ConfigError(f"binding {binding!r} {same}: each address can be bound once")
        seen[key] = binding


def load_config(path: str | Path, **overrides: object) -> ServerConfig:
    """Read a TOML file; every path in it (``root``, ``.py`` module targets, ``tls_cert``,
    ``access_log``, ``error_log``, …) is relative to the file's folder.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown keys or wrong types, one line each.
    """
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return config_from_mapping(data, base=path.parent, **overrides)


def config_from_mapping(
    data: Mapping[str, object], *, base: Path = Path("."), **overrides: object
) -> ServerConfig:
    """Build a ``ServerConfig`` from parsed TOML (see the module docstring).

    Raises:
        ConfigError: unknown keys, wrong types, bad bindings or limits, one line each.
    """
    known = {f.name for f in dataclasses.fields(ServerConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    kwargs: dict[str, object] = {}
    if "root" in data:
        kwargs["root"] = base / cast("str", _expect(data, "root", str))
    if "bindings" in data:
        items = cast("list[object]", _expect(data, "bindings", list))
        kwargs["bindings"] = tuple(_binding(item) for item in items)
    if "limits" in data:
        kwargs["limits"] = _limits(_expect(data, "limits", dict))
    if "modules" in data:
        tables = _expect_list(data, "modules", dict)
        kwargs["modules"] = tuple(_module_spec(t, i, base) for i, t in enumerate(tables, 1))
    if "handlers" in data:
        tables = _expect_list(data, "handlers", dict)
        mappings = [_handler(t, i, base) for i, t in enumerate(tables, 1)]
        kwargs["handlers"] = with_mount_points(mappings)
        apps = tuple(spec for _, spec in mappings if spec is not None)
        if apps:
            kwargs["modules"] = cast("tuple[ModuleSpec, ...]", kwargs.get("modules", ())) + apps
    if "default_documents" in data:
        kwargs["default_documents"] = tuple(_expect_list(data, "default_documents", str))
    if "trusted_proxies" in data:
        kwargs["trusted_proxies"] = tuple(_expect_list(data, "trusted_proxies", str))
    if "denied_segments" in data:
        kwargs["denied_segments"] = tuple(_expect_list(data, "denied_segments", str))
    if "sites" in data:
        tables = _expect_list(data, "sites", dict)
        kwargs["sites"] = tuple(_site(t, i, base) for i, t in enumerate(tables, 1))
    for name in ("tls_cert", "tls_key", "trace_dir", "error_log"):
        if name in data:
            kwargs[name] = base / cast("str", _expect(data, name, str))
    if "access_log" in data:
        access = cast("str", _expect(data, "access_log", str))
        kwargs["access_log"] = access if access == "-" else str(base / access)
    if "https_redirect" in data:
        kwargs["https_redirect"] = tuple(_expect_list(data, "https_redirect", str))
    for name in ("tls_bindings", "acme_domains"):
        if name in data:
            kwargs[name] = tuple(_expect_list(data, name, str))
    for name in ("acme_ca_bundle", "acme_state_dir"):
        if name in data:
            kwargs[name] = base / cast("str", _expect(data, name, str))
    for name, kind in (
        ("builtin_modules", bool),
        ("proxy_protocol", bool),
        ("allow_symlinks_outside_root", bool),
        ("watchdog_threshold", (int, float)),
        ("http2", bool),
        ("max_connections", int),
        ("when_full", str),
        ("http", str),
        ("access_log_format", str),
        ("shutdown_grace", (int, float)),
        ("trace_when", str),
        ("trace_max_files", int),
        ("trace_max_events", int),
        ("acme", bool),
        ("acme_email", str),
        ("acme_directory", str),
        ("acme_challenge", str),
    ):
        if name in data:
            kwargs[name] = _expect(data, name, kind)
    wants_acme = any(key.startswith("acme") for key in data) or any(
        isinstance(site, dict) and site.get("acme")
        for site in cast("list[object]", data.get("sites", []))
    )
    if wants_acme and "acme_state_dir" not in kwargs:  # beside the file, not the cwd
        kwargs["acme_state_dir"] = base / DEFAULT_ACME_STATE_DIR
    kwargs.update(overrides)
    try:
        return ServerConfig(**kwargs)  # type: ignore[arg-type]  # values were checked above
    except TypeError as exc:
        raise ConfigError(str(exc)) from exc


#: TOML's words for the Python types a parsed file holds.
_TOML_TYPES: dict[type, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a float",
    list: "an array",
    dict: "a table",
}


def _toml_type(kind: type) -> str:
    return _TOML_TYPES.get(kind, kind.__name__)


def _expect(data: Mapping[str, object], key: str, kind: type | tuple[type, ...]) -> object:
    value = data[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        if kind == (int, float):
            wanted = "a number"
        elif isinstance(kind, tuple):
            wanted = " or ".join(_toml_type(k) for k in kind)
        else:
            wanted = _toml_type(kind)
        raise ConfigError(f"config key {key!r} must be {wanted}, not {_toml_type(type(value))}")
    return value


def _expect_list(data: Mapping[str, object], key: str, kind: type) -> list[object]:
    items = cast("list[object]", _expect(data, key, list))
    if not all(isinstance(item, kind) for item in items):
        plurals: dict[type, str] = {str: "strings", dict: "tables"}
        plural = plurals.get(kind, kind.__name__)
        raise ConfigError(f"config key {key!r} must be an array of {plural}")
    return items


def _binding(item: object) -> str | Binding:
    """An entry of ``bindings``: ``"HOST:PORT"`` or ``{ address = "HOST:PORT", http2 = … }``."""
    if isinstance(item, str):
        return item
    if not isinstance(item, dict):
        raise ConfigError(
            "config key 'bindings' must be an array of strings or tables:"
            ' "HOST:PORT" or { address = "HOST:PORT", http2 = false }'
        )
    table = cast("dict[str, object]", item)
    unknown = sorted(set(table) - {"address", "http2"})
    if unknown:
        raise ConfigError(f"unknown key(s) in a binding table: {', '.join(unknown)}")
    address = table.get("address")
    if not isinstance(address, str):
        raise ConfigError('a binding table needs address = "HOST:PORT"')
    http2 = table.get("http2")
    if http2 is not None and not isinstance(http2, bool):
        raise ConfigError(f"binding {address!r}: http2 must be true or false")
    return Binding(address, http2=http2)


def parse_bind_option(text: str) -> str | Binding:
    """``--bind``: ``HOST:PORT``, or ``HOST:PORT,http2=off`` (``on``) for a binding with
    HTTP/2 of its own.

    Raises:
        ConfigError: an unknown option or value.
    """
    address, *options = text.split(",")
    if not options:
        return address
    http2: bool | None = None
    for option in options:
        key, _, value = option.partition("=")
        if key.strip() != "http2" or value.strip() not in ("on", "off"):
            raise ConfigError(f"--bind {text!r}: options are http2=on or http2=off")
        http2 = value.strip() == "on"
    return Binding(address, http2=http2)


def _limits(data: object) -> Limits:
    table = cast("dict[str, object]", data)
    defaults = {f.name: f.default for f in dataclasses.fields(Limits)}
    for key, value in table.items():
        if key not in defaults:
            raise ConfigError(f"unknown limit {key!r}")
        if isinstance(defaults[key], int):
            if not _is_int(value):
                raise ConfigError(f"limit {key!r} must be an integer, not {value!r}")
        elif not _is_number(value) or math.isnan(cast("float", value)):
            raise ConfigError(f"limit {key!r} must be a number, not {value!r}")
        if cast("float", value) < 0:
            raise ConfigError(f"limit {key!r} must not be negative, not {value!r}")
    return Limits(**table)  # type: ignore[arg-type]  # numbers checked above


def _table(data: object, section: str, index: int, allowed: set[str]) -> dict[str, object]:
    table = cast("dict[str, object]", data)
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) in [[{section}]] #{index}: {', '.join(unknown)}")
    return table


def _label(section: str, index: int, value: object) -> str:
    """``[[modules]] #2 (hello)``: which table a message is about."""
    return f"[[{section}]] #{index}" + (f" ({value})" if isinstance(value, str) else "")


def _module_spec(data: object, index: int, base: Path) -> ModuleSpec:
    table = _table(data, "modules", index, {"name", "target", "options"})
    name, target = table.get("name"), table.get("target")
    options = table.get("options", {})
    where = _label("modules", index, name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a name string")
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: options must be a table")
    if target is None and name in BUILTIN_MODULES:
        return ModuleSpec(name=name, target=BUILTIN_MODULES[name], options=options)
    if target is None:
        raise ConfigError(f"{where}: {unknown_module(name)}, or give a target string")
    if not isinstance(target, str):
        raise ConfigError(f"{where} needs a target string (package.module:function)")
    if split_target(target) is None:
        raise ConfigError(f"{where}: module target {target!r} must be package.module:function")
    return ModuleSpec(name=name, target=_relative_to(base, target), options=options)


def _site(data: object, index: int, base: Path) -> SiteConfig:
    table = _table(
        data,
        "sites",
        index,
        {"name", "root", "hosts", "default", "tls_cert", "tls_key", "acme", "acme_challenge"},
    )
    name, root = table.get("name"), table.get("root")
    hosts, default = table.get("hosts", []), table.get("default", False)
    where = _label("sites", index, name)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where} needs a name string")
    if not isinstance(root, str) or not root:
        raise ConfigError(f"{where} needs a root string")
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ConfigError(f"{where} hosts must be an array of strings")
    if not isinstance(default, bool):
        raise ConfigError(f"{where} default must be a boolean")
    files: dict[str, Path] = {}
    for key in ("tls_cert", "tls_key"):
        value = table.get(key)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise ConfigError(f"{where} {key} must be a file path string")
            files[key] = base / value
    # SiteConfig checks the host names; its messages name the site.
    return SiteConfig(
        name=name,
        root=base / root,
        hosts=tuple(cast("list[str]", hosts)),
        default=default,
        acme=cast("bool", table.get("acme", False)),
        acme_challenge=cast("str | None", table.get("acme_challenge")),
        **files,
    )


def _handler(data: object, index: int, base: Path) -> tuple[HandlerMapping, ModuleSpec | None]:
    """A mapping, and the app module it mounts when it has ``asgi`` or ``wsgi``."""
    table = _table(
        data, "handlers", index, {"path", "modules", "verbs", "name", "asgi", "wsgi", "root_path"}
    )
    path, modules = table.get("path"), table.get("modules")
    verbs, name = table.get("verbs", []), table.get("name", "")
    where = _label("handlers", index, path)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where} needs a path string")
    if not isinstance(verbs, list) or not all(isinstance(v, str) and v for v in verbs):
        raise ConfigError(f"{where} verbs must be an array of strings")
    if not isinstance(name, str):
        raise ConfigError(f"{where} name must be a string")
    kinds = [kind for kind in ("asgi", "wsgi") if kind in table]
    spec: ModuleSpec | None = None
    if kinds:
        if len(kinds) > 1 or modules is not None:
            raise ConfigError(f"{where}: give one of modules, asgi or wsgi")
        kind = kinds[0]
        app, root_path = table[kind], table.get("root_path")
        if not isinstance(app, str) or not app:
            raise ConfigError(f"{where}: {kind} must be a string pkg.module:attribute")
        if root_path is not None and not isinstance(root_path, str):
            raise ConfigError(f"{where}: root_path must be a string")
        spec = app_module_spec(kind, path, app, name=name, root_path=root_path, base=base)
        modules = [spec.name]
    elif "root_path" in table:
        raise ConfigError(f"{where}: root_path goes with asgi or wsgi")
    if not isinstance(modules, list) or not modules:
        raise ConfigError(f"{where} needs a non-empty modules array")
    if not all(isinstance(m, str) and m for m in modules):
        raise ConfigError(f"{where} modules must be an array of strings")
    mapping = HandlerMapping(
        path,
        tuple(cast("list[str]", modules)),
        frozenset(v.upper() for v in cast("list[str]", verbs)),
        name,
    )
    return mapping, spec


def app_module_spec(
    kind: Literal["asgi", "wsgi"],
    pattern: str,
    app: str,
    *,
    name: str = "",
    root_path: str | None = None,
    base: Path = Path("."),
) -> ModuleSpec:
    """The module that hosts ``app`` (``pkg.mod:attr`` or ``file.py:attr``, a ``.py``
    path relative to ``base``) for the handler pattern ``pattern``: named ``name`` or
    ``"asgi /app/*"``, mounted at ``root_path`` or where the pattern says (``/app/*`` →
    ``/app``)."""
    if split_target(app) is None:
        raise ConfigError(f"{kind} app {app!r} must be pkg.module:attribute")
    options = {
        "app": _relative_to(base, app),
        "root_path": root_path_for(pattern) if root_path is None else root_path,
    }
    return ModuleSpec(
        name=name or f"{kind} {pattern}", target=BUILTIN_MODULES[kind], options=options
    )


def with_mount_points(
    mappings: Sequence[tuple[HandlerMapping, ModuleSpec | None]],
) -> tuple[HandlerMapping, ...]:
    """The mappings, each app's ``/api/*`` followed by one for its mount point ``/api``
    itself, so that the app module answers it with a redirect to ``/api/``."""
    result: list[HandlerMapping] = []
    for mapping, spec in mappings:
        result.append(mapping)
        root_path = spec.options.get("root_path") if spec is not None else None
        if isinstance(root_path, str) and root_path and mapping.path == f"{root_path}/*":
            result.append(
                HandlerMapping(
                    root_path, mapping.modules, mapping.verbs, f"{mapping.label} (mount)"
                )
            )
    return tuple(result)


def parse_app_option(kind: Literal["asgi", "wsgi"], text: str) -> tuple[HandlerMapping, ModuleSpec]:
    """``--asgi PATTERN=pkg.mod:app`` (or ``--wsgi``) from the command line."""
    pattern, sep, app = text.partition("=")
    if not sep or not pattern or not app:
        raise ConfigError(f"--{kind} {text!r} must be PATTERN=pkg.module:attribute")
    spec = app_module_spec(kind, pattern, app)
    return HandlerMapping(pattern, (spec.name,)), spec


def unknown_module(name: str) -> str:
    """``"unknown built-in module 'compresion' (did you mean 'compression'?)"``."""
    close = difflib.get_close_matches(name, BUILTIN_MODULES, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}?" if close else f"built-in: {', '.join(BUILTIN_MODULES)}"
    return f"unknown built-in module {name!r} ({hint})"


def parse_module_option(text: str) -> ModuleSpec:
    """``[NAME=]target`` from the command line; NAME defaults to the target's file/module.
    A built-in module's bare name (``directory_listing``) needs no target."""
    if text in BUILTIN_MODULES:
        return ModuleSpec(name=text, target=BUILTIN_MODULES[text])
    name, sep, target = text.partition("=")
    if not sep:
        name, target = "", text
    split = split_target(target)
    if split is None and not sep and _HOSTNAME.fullmatch(text) and "." not in text:
        raise ConfigError(f"--module: {unknown_module(text)}")
    if split is not None and not sep:
        module_path = split[0]
        name = Path(module_path).stem if module_path.endswith(".py") else module_path.split(".")[-1]
    if split is None or not name:
        raise ConfigError(f"module {text!r} must be [NAME=]package.module:function")
    return ModuleSpec(name=name, target=target)


def parse_handler_option(text: str) -> HandlerMapping:
    """``PATTERN=NAME[,NAME…]`` from the command line."""
    pattern, _, names = text.partition("=")
    modules = tuple(n.strip() for n in names.split(",") if n.strip())
    if not pattern or not modules:
        raise ConfigError(f"handler {text!r} must be PATTERN=MODULE[,MODULE...]")
    return HandlerMapping(pattern, modules)


def split_target(target: str) -> tuple[str, str] | None:
    """``pkg.mod:attr`` or ``path/to/file.py:attr`` → ``(module_path, attr)``; None unless
    both sides are there. The last colon splits, so a Windows path keeps its drive."""
    module_path, sep, attr = target.rpartition(":")
    return (module_path, attr) if sep and module_path and attr else None


def _relative_to(base: Path, target: str) -> str:
    """A target naming a relative ``.py`` file, made relative to ``base`` (the folder of the
    configuration file); any other target as it is."""
    split = split_target(target)
    if split is None or not split[0].endswith(".py") or Path(split[0]).is_absolute():
        return target
    return f"{base / split[0]}:{split[1]}"


def import_target(target: str) -> tuple[ModuleType, str, str]:
    """Import the module of ``pkg.mod:attr`` or ``path/to/file.py:attr``; return it, the
    module part of ``target`` (for messages) and ``attr``. The one place where the server
    runs user code at start-up: module registrations and hosted apps both come through it.

    A file is imported once per process and path, like a package module. A dotted module
    that cannot be found is tried once more with the current folder on ``sys.path`` (where
    ``trioiis serve`` was started), as Uvicorn and Gunicorn do.

    Raises:
        ConfigError: a one-line message: a malformed target, a missing file, or the
            import raised (``SystemExit`` too: a module calling ``sys.exit()`` fails).
    """
    split = split_target(target)
    if split is None:
        raise ConfigError(f"module target {target!r} must be package.module:function")
    module_path, attr = split
    try:
        if module_path.endswith(".py"):
            return _import_file(Path(module_path)), module_path, attr
        try:
            return importlib.import_module(module_path), module_path, attr
        except ModuleNotFoundError as exc:
            if exc.name != module_path.partition(".")[0] or os.getcwd() in sys.path:
                raise
            sys.path.append(os.getcwd())
            return importlib.import_module(module_path), module_path, attr
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        raise ConfigError(f"cannot import {module_path}: {describe_exception(exc)}") from exc


def _import_file(file: Path) -> ModuleType:
    if not file.is_file():
        problem = "is not a file" if file.exists() else "does not exist"
        raise ConfigError(f"module file {file} {problem}")
    name = f"trioiis_loaded_{file.stem}_{abs(hash(str(file.resolve())))}"
    module = sys.modules.get(name)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_register_function(target: str) -> RegisterModule:
    """The ``register_module`` function ``target`` names (``pkg.mod:function``,
    ``path/to/file.py:function``).

    Raises:
        ConfigError: the module cannot be imported (see ``import_target``) or has no such
            callable.
    """
    module, module_path, func_name = import_target(target)
    func = getattr(module, func_name, None)
    if not callable(func):
        raise ConfigError(f"{module_path} has no function {func_name!r}")
    return cast("RegisterModule", func)


def merge_cli(
    config: ServerConfig,
    *,
    root: str | None,
    bindings: Sequence[str | Binding],
    modules: Sequence[str],
    handlers: Sequence[str],
    access_log: str | None,
    tls_cert: str | None = None,
    tls_key: str | None = None,
    asgi: Sequence[str] = (),
    wsgi: Sequence[str] = (),
    http: str | None = None,
    trace_dir: str | None = None,
    trace_when: str | None = None,
    http2: bool | None = None,
    acme_email: str | None = None,
    acme_directory: str | None = None,
    acme_ca_bundle: str | None = None,
    acme_domains: Sequence[str] = (),
    tls_bindings: Sequence[str] = (),
) -> ServerConfig:
    """Command-line options on top of a config (the command line wins; ``--asgi`` and
    ``--wsgi`` mappings come before ``--handler`` ones)."""
    changes: dict[str, object] = {}
    if http is not None:
        changes["http"] = http
    if http2 is not None:
        changes["http2"] = http2
    apps = [parse_app_option("asgi", a) for a in asgi] + [parse_app_option("wsgi", w) for w in wsgi]
    if trace_dir is not None:
        changes["trace_dir"] = Path(trace_dir)
    if trace_when is not None:
        changes["trace_when"] = trace_when
    if tls_cert is not None:
        changes["tls_cert"] = Path(tls_cert)
    if tls_key is not None:
        changes["tls_key"] = Path(tls_key)
    if root is not None:
        changes["root"] = Path(root)
    for name, value in (
        ("acme_email", acme_email),
        ("acme_directory", acme_directory),
        ("acme_ca_bundle", acme_ca_bundle),
    ):
        if value is not None:
            changes[name] = value
    if acme_domains:
        changes["acme_domains"] = config.acme_domains + tuple(acme_domains)
    if tls_bindings:
        changes["tls_bindings"] = tuple(tls_bindings)
    if bindings:
        changes["bindings"] = tuple(bindings)
    if modules or apps:
        changes["modules"] = (
            config.modules
            + tuple(parse_module_option(m) for m in modules)
            + tuple(spec for _, spec in apps)
        )
    if handlers or apps:
        changes["handlers"] = (
            with_mount_points(apps)
            + tuple(parse_handler_option(h) for h in handlers)
            + config.handlers
        )
    if access_log is not None:
        changes["access_log"] = access_log
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
