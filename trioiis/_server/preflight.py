"""Everything ``serve`` checks before it binds, in one place, so that ``check-config``
runs the very same checks: TLS certificates and keys (the server's and each site's), the
log files and the trace folder. Modules and apps are loaded by ``HttpServer`` itself.

Each check raises ``ConfigError`` with one line naming the file or setting at fault.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from .._errors import ConfigError
from ..config import DEFAULT_ACME_STATE_DIR, ServerConfig
from .tls import certificate_summary, server_context, sni_context

__all__ = ["check_writable", "preflight", "tls_context"]


def tls_context(config: ServerConfig, *, http2: bool | None = None) -> ssl.SSLContext | None:
    """The server's TLS context (None without ``tls_cert``): its own certificate, and each
    site's for the clients that name one of that site's hosts (SNI). ``http2``: offer ALPN
    ``h2`` (default: ``config.http2``); every context a handshake may switch to offers the
    same protocols.

    Raises:
        ConfigError: a certificate or key is missing, unreadable or not a matching pair.
    """
    if config.tls_cert is None or config.tls_key is None:
        if any(site.tls_cert is not None for site in config.sites):
            raise ConfigError("a site's tls_cert needs the server's tls_cert and tls_key too")
        return None
    if http2 is None:
        http2 = config.http2
    default = server_context(config.tls_cert, config.tls_key, http2=http2)
    by_host: dict[str, ssl.SSLContext] = {}
    for site in config.sites:
        if site.tls_cert is not None and site.tls_key is not None:
            context = server_context(site.tls_cert, site.tls_key, http2=http2)
            by_host.update(dict.fromkeys(site.hosts, context))
    return sni_context(default, by_host)


def check_writable(path: Path, what: str) -> None:
    """``path`` can be opened for appending: it is a writable file, or it does not exist
    and its folder exists (or can be made) and is writable. Creates nothing.

    Raises:
        ConfigError: naming ``what`` and the reason.
    """
    if path.exists():
        if path.is_dir():
            raise ConfigError(f"{what} {path} is a folder, not a file")
        if not os.access(path, os.W_OK):
            raise ConfigError(f"{what} {path} is not writable")
        return
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path} cannot be created: {folder} is not a writable folder")


def preflight(config: ServerConfig) -> ssl.SSLContext | None:
    """Run every check ``serve`` runs before binding; the TLS context it would serve with.

    Raises:
        ConfigError: the first problem found.
    """
    context = tls_context(config)
    for cert in (config.tls_cert, *(site.tls_cert for site in config.sites)):
        if cert is not None:
            certificate_summary(cert)  # a PEM certificate the banner can describe
    if config.access_log not in (None, "-"):
        check_writable(Path(config.access_log), "access_log")
    if config.error_log is not None:
        check_writable(config.error_log, "error_log")
    if config.acme_enabled:  # the account key and certificates must be storable
        state = config.acme_state_dir or Path(DEFAULT_ACME_STATE_DIR)
        check_writable(state / "account-key.pem", "acme_state_dir")
    if config.trace_dir is not None and config.trace_dir.exists() and not config.trace_dir.is_dir():
        raise ConfigError(f"trace_dir {config.trace_dir} is not a folder")
    return context
