"""Server variables a request has without anyone setting them (IIS's built-in ones:
``REMOTE_ADDR``, ``URL``, ``HTTP_*``, ...). Behind a trusted proxy the server sets ``HTTPS``,
``SERVER_PORT`` and the ``Host`` header from the proxy's word, and those win (they are read
first by ``HttpContext.get_server_variable``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import HttpContext


def builtin_variable(ctx: HttpContext, key: str) -> str | None:
    """The built-in variable ``key`` (upper case) of ``ctx``, or None if there is none.
    Each is read from the context when asked for, never computed ahead."""
    request = ctx.request
    match key:
        case "REMOTE_ADDR" | "REMOTE_HOST":
            return request.remote_address[0]
        case "REMOTE_PORT":
            return str(request.remote_address[1])
        case "LOCAL_ADDR":
            return request.local_address[0]
        case "SERVER_PORT":
            return str(request.local_address[1])
        case "SERVER_NAME":
            host = request.get_header("host") or request.local_address[0]
            return host.rsplit(":", 1)[0].strip("[]")
        case "SERVER_PROTOCOL":
            return f"HTTP/{request.http_version}"
        case "SERVER_SOFTWARE":
            return "trioiis"
        case "REQUEST_METHOD":
            return request.method
        case "URL":
            return request.original_url.partition("?")[0]
        case "SCRIPT_NAME" | "PATH_INFO":
            return request.raw_path
        case "QUERY_STRING":
            return request.query
        case "HTTPS":
            return "on" if ctx.connection.secure else "off"
        case "CONTENT_LENGTH":
            return request.get_header("content-length") or "0"
        case "CONTENT_TYPE":
            return request.get_header("content-type") or ""
        case "APPL_PHYSICAL_PATH":
            return str(ctx.site.root) + os.sep
        case "INSTANCE_ID":
            return str(ctx.site.id)
        case "AUTH_USER":
            return ctx.user.name if ctx.user else ""
    if key.startswith("HTTP_"):
        return request.get_header(key[5:].replace("_", "-"))
    return None
