"""The scheme and host a request's client used: what absolute URLs (redirects, an app's
``scheme`` / ``url_scheme``) are built from.

Behind a trusted proxy the server sets the ``HTTPS``, ``SERVER_PORT`` server variables and
the ``Host`` header from ``Forwarded`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host``
(``trioiis._protocol.forwarded``); otherwise they describe the connection itself. These helpers
read them, so they are right in both cases.
"""

from __future__ import annotations

from .._protocol.forwarded import TrustedProxies, client_address, forwarded_origin, ip_address
from .context import HttpContext

__all__ = ["absolute_url", "apply_forwarded", "is_local_request", "request_scheme"]


def is_local_request(ctx: HttpContext) -> bool:
    """True when the client is on this machine: its address (``REMOTE_ADDR``, the one a
    trusted proxy vouched for when there is one) is loopback, ``127.0.0.0/8`` or ``::1``
    (IPv4-mapped too), like ASP.NET's ``Request.IsLocal``."""
    ip = ip_address(ctx.get_server_variable("REMOTE_ADDR"))
    return ip is not None and ip.is_loopback


def request_scheme(ctx: HttpContext) -> str:
    """``"https"`` when the client used HTTPS (``HTTPS`` server variable ``on``)."""
    return ctx._scheme()


def absolute_url(ctx: HttpContext, path: str) -> str:
    """``path`` (starting with ``/``) on the scheme and host the client used."""
    request = ctx.request
    host = request.get_header("host")
    if not host:
        address, port = request.local_address
        host = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    return f"{request_scheme(ctx)}://{host}{path}"


def apply_forwarded(ctx: HttpContext, trusted: TrustedProxies) -> None:
    """From a trusted proxy, ``Forwarded`` / ``X-Forwarded-For`` name the client, and
    ``Forwarded`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` the scheme and host it
    used: they become the ``HTTPS`` and ``SERVER_PORT`` server variables and the
    ``Host`` header (so redirects and apps see them, through the helpers above)."""
    request = ctx.request
    peer = request.remote_address[0]
    forwarded = request.headers.get_all("forwarded")
    found = client_address(peer, trusted, forwarded, request.headers.get_all("x-forwarded-for"))
    if found is not None:
        request.remote_address = found
    origin = forwarded_origin(
        peer,
        trusted,
        forwarded,
        request.headers.get_all("x-forwarded-proto"),
        request.headers.get_all("x-forwarded-host"),
    )
    if origin.scheme is not None:
        ctx.set_server_variable("HTTPS", "on" if origin.scheme == "https" else "off")
        ctx.set_server_variable("SERVER_PORT", "443" if origin.scheme == "https" else "80")
    if origin.host is not None:
        request.set_header("Host", origin.host)
        port = origin.host.rpartition("]")[2].rpartition(":")[2]
        if port.isdigit():
            ctx.set_server_variable("SERVER_PORT", port)
