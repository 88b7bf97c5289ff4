"""The scheme and host a request's client used: what absolute URLs (redirects, an app's
``scheme`` / ``url_scheme``) are built from.

Behind a trusted proxy the server sets the ``HTTPS``, ``SERVER_PORT`` server variables and
the ``Host`` header from ``Forwarded`` / ``X-Forwarded-Proto`` / ``X-Forwarded-Host``
(``trioiis._protocol.forwarded``); otherwise they describe the connection itself. These helpers
read them, so they are right in both cases.
"""

from __future__ import annotations

from .context import HttpContext

__all__ = ["absolute_url", "request_scheme"]


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
