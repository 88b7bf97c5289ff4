"""The start-up banner ``trioiis serve`` prints once it listens: where it serves (with
the scheme), then the sites, modules in order, handler mappings, hosted apps and TLS
certificates (subject, names and expiry).

The first lines keep the form ``trioiis serving ROOT on URL`` (one per binding): scripts
and tests wait for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._context.mapping import DEFAULT_MAPPING
from .._errors import ConfigError
from ..config import BUILTIN_MODULES, ServerConfig, parse_binding
from .tls import certificate_summary

__all__ = ["banner_lines", "url_for"]


def url_for(scheme: str, host: str, port: int) -> str:
    """``http://127.0.0.1:8080/``, ``https://[::1]:8443/``."""
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


def _certificate(label: str, cert: Path | None) -> list[str]:
    if cert is None:
        return []
    try:
        return [f"  tls {label}: {certificate_summary(cert).describe()}"]
    except ConfigError as exc:  # the server loaded it already; say what is odd about it
        return [f"  tls {label}: {exc}"]


def _acme_names(config: ServerConfig) -> list[str]:
    from .autohttps import plan  # only when ACME is on

    return [domain.name for domain in plan(config)]


def banner_lines(
    config: ServerConfig,
    bound: Sequence[tuple[str, int]],
    modules: Sequence[str],
    redirect_bound: Sequence[tuple[str, int]] = (),
    tls_bound: Sequence[tuple[str, int]] | None = None,
) -> list[str]:
    """The banner, a line each (no newlines). ``tls_bound``: which of ``bound`` serve TLS
    when there are ``tls_bindings`` (by default those on a ``tls_bindings`` port)."""
    if config.tls_bindings:
        ports = {parse_binding(b)[1] for b in config.tls_bindings}
        secure = set(tls_bound) if tls_bound is not None else {b for b in bound if b[1] in ports}
        schemes = ["https" if b in secure else "http" for b in bound]
    else:
        schemes = ["https" if config.tls_cert else "http"] * len(bound)
    lines = [
        f"trioiis serving {config.root} on {url_for(scheme, h, p)}"
        for (h, p), scheme in zip(bound, schemes, strict=True)
    ]
    lines += [f"  redirecting {url_for('http', h, p)} to https" for h, p in redirect_bound]
    unknown_hosts = "" if any(site.default for site in config.sites) else " (unknown hosts)"
    lines.append(f"  site default: {config.root}{unknown_hosts}")
    for site in config.sites:
        hosts = ", ".join(site.hosts) or "-"
        default = " (unknown hosts)" if site.default else ""
        lines.append(f"  site {site.name}: {site.root} for {hosts}{default}")
    lines.append(f"  modules, in order: {', '.join(modules) or '(none)'}")
    app_targets = (BUILTIN_MODULES["asgi"], BUILTIN_MODULES["wsgi"])
    apps = {spec.name: spec for spec in config.modules if spec.target in app_targets}
    for mapping in config.handlers:
        if mapping.name.endswith(" (mount)"):
            continue  # shown with its app's line
        verbs = f" [{', '.join(sorted(mapping.verbs))}]" if mapping.verbs else ""
        names = ", ".join(mapping.modules)
        app = apps.get(mapping.modules[0]) if len(mapping.modules) == 1 else None
        if app is not None:
            kind = "asgi" if app.target == BUILTIN_MODULES["asgi"] else "wsgi"
            lines.append(f"  app {mapping.path}{verbs} -> {kind} {app.options.get('app')}")
            mount = mapping.path.removesuffix("/*")
            if any(m.path == mount and m.modules == mapping.modules for m in config.handlers):
                lines.append(f"  redirect {mount} -> {mount}/")
        else:
            lines.append(f"  handler {mapping.path}{verbs} -> {names}")
    fallback = [name for name in DEFAULT_MAPPING.modules if name in modules]
    lines.append(f"  handler * (default) -> {', '.join(fallback) or '(nothing: 404)'}")
    lines += _certificate("certificate", config.tls_cert)
    for site in config.sites:
        lines += _certificate(f"certificate of site {site.name}", site.tls_cert)
    if config.acme_enabled:
        names = ", ".join(_acme_names(config))
        lines.append(f"  acme: certificates for {names} from {config.acme_directory}")
    if config.access_log is not None:
        where = "stderr" if config.access_log == "-" else config.access_log
        lines.append(f"  access log ({config.access_log_format}): {where}")
    if config.error_log is not None:
        lines.append(f"  error log: {config.error_log}")
    return lines
