"""Built-in modules, each an ``HttpModule`` written only against the public API.

``BUILTIN_MODULES`` names every built-in module's ``register_module``; a ``[[modules]]``
entry (or ``--module NAME``) naming one of them needs no ``target``. ``DEFAULT_MODULES`` are
loaded, in this order, unless ``ServerConfig.builtin_modules`` is False.
"""

from __future__ import annotations

from typing import Final

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
