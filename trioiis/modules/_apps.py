"""What the asgi and wsgi modules share: loading an application object and its options,
and the redirect from an app's mount point (``/api``) to its root (``/api/``)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from trioiis import ConfigError, absolute_url
from trioiis.config import import_target, split_target

if TYPE_CHECKING:  # (config imports this module; trioiis itself imports the server)
    from trioiis import HttpContext


def load_app(module: str, target: object) -> object:
    """Import ``pkg.mod:attr`` (``attr`` may be dotted: ``mod:app.wsgi_app``) or
    ``path/to/file.py:attr``.

    The module is imported by ``trioiis.config.import_target`` (once per process, the
    current folder tried for a dotted module that is not found).

    Raises:
        ValueError: a one-line message naming ``module`` (the server turns it into a
            ``ConfigError``): a bad target, an import that failed, no such attribute.
    """
    if not isinstance(target, str):
        raise ValueError(f"{module}: option 'app' must be a string pkg.module:attribute")
    if split_target(target) is None:
        raise ValueError(f"{module}: app {target!r} must be pkg.module:attribute")
    try:
        loaded, module_path, attr = import_target(target)
    except ConfigError as exc:
        raise ValueError(f"{module}: {exc}") from exc
    app: object = loaded
    for part in attr.split("."):
        if not hasattr(app, part):
            raise ValueError(f"{module}: {module_path} has no attribute {attr!r}")
        app = getattr(app, part)
    if not callable(app):
        raise ValueError(f"{module}: {target} is not callable")
    return app


def get_seconds(module: str, options: Mapping[str, object], key: str, default: float) -> float:
    value = options.get(key, default)
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or math.isnan(value)
        or value < 0
    ):
        raise ValueError(f"{module}: option {key!r} must be a non-negative number, not {value!r}")
    return float(value)


def get_root_path(module: str, options: Mapping[str, object]) -> str:
    """``root_path``: ``""`` or a path starting with ``/`` and not ending with one."""
    value = options.get("root_path", "")
    if not isinstance(value, str) or (value and (not value.startswith("/") or value == "/")):
        raise ValueError(f"{module}: option 'root_path' must be '' or like '/app', not {value!r}")
    return value.rstrip("/")


def redirect_mount_point(ctx: HttpContext, root_path: str) -> bool:
    """For a request to the mount point itself (``/api`` for an app at ``/api``): answer
    a redirect to ``/api/`` (301 for GET and HEAD, 308 keeping the method otherwise), on
    the scheme and host the client used, and return True. False for any other request."""
    request = ctx.request
    if not root_path or request.path != root_path:
        return False
    query = f"?{request.query}" if request.query else ""
    response = ctx.response
    response.clear()
    response.redirect(absolute_url(ctx, request.raw_path + "/" + query))
    response.set_status(301 if request.method in ("GET", "HEAD") else 308)
    ctx.set_request_handled()
    return True
