"""Built-in modules, each an ``HttpModule`` written only against the public API.

``BUILTIN_MODULES`` names every built-in module's ``register_module``; a ``[[modules]]``
entry (or ``--module NAME``) naming one of them needs no ``target``. ``DEFAULT_MODULES`` are
loaded, in this order, unless ``ServerConfig.builtin_modules`` is False. Both tables live in
``trioiis.config`` (the server loads these modules by name, it never imports them).
"""

from __future__ import annotations

from trioiis.config import BUILTIN_MODULES as BUILTIN_MODULES
from trioiis.config import DEFAULT_MODULES as DEFAULT_MODULES
