"""The connection a request came on, its site, and per-module storage (IIS
``IHttpConnection``, ``IHttpSite``, ``IHttpModuleContextContainer``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, final

from .._constants import ERROR_ALREADY_ASSIGNED, ERROR_INVALID_PARAMETER
from .._errors import HResultError

log = logging.getLogger("trioiis")


class _NoPublicConstructor(type):
    """Metaclass: ``Cls(...)`` raises; the server builds instances with ``Cls._create``."""

    def __call__(cls, *args: object, **kwargs: object) -> None:
        raise TypeError(f"{cls.__module__}.{cls.__qualname__} has no public constructor")

    def _create(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__call__(*args, **kwargs)


@dataclass(frozen=True, slots=True)
class Site:
    """The site serving a request (IIS ``IHttpSite``)."""

    id: int
    name: str
    root: Path


class StoredContext(Protocol):
    """What ``ModuleContextContainer`` stores: cleaned up exactly once by its owner."""

    def cleanup_stored_context(self) -> None: ...


class ModuleContextContainer:
    """Per-module storage owned by a request or a connection (IIS context containers)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[int, StoredContext] = {}

    def get_module_context(self, module_id: int) -> StoredContext | None:
        return self._items.get(module_id)

    def set_module_context(self, stored: StoredContext | None, module_id: int) -> None:
        """Store ``stored`` for ``module_id``.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for None; ERROR_ALREADY_ASSIGNED if set.
        """
        if stored is None:
            raise HResultError("stored context is None", hresult=ERROR_INVALID_PARAMETER)
        if module_id in self._items:
            raise HResultError("module context already set", hresult=ERROR_ALREADY_ASSIGNED)
        self._items[module_id] = stored

    def _cleanup(self) -> None:
        items, self._items = self._items, {}
        for stored in items.values():
            try:
                stored.cleanup_stored_context()
            except Exception:
                log.exception("cleanup_stored_context failed")

    def _each(self) -> list[StoredContext]:
        return list(self._items.values())


@final
class HttpConnection(metaclass=_NoPublicConstructor):
    """The client connection a request arrived on (IIS ``IHttpConnection``)."""

    __slots__ = ("_connected", "local_address", "module_context", "remote_address", "secure")

    def __init__(
        self,
        *,
        remote_address: tuple[str, int],
        local_address: tuple[str, int],
        secure: bool,
    ) -> None:
        self.remote_address = remote_address
        self.local_address = local_address
        self.secure = secure
        self.module_context = ModuleContextContainer()
        self._connected = True

    def is_connected(self) -> bool:
        """False once the client closed or broke the connection."""
        return self._connected

    def _mark_gone(self) -> bool:
        """Record the disconnect; True the first time (notify_disconnect fires once)."""
        if not self._connected:
            return False
        self._connected = False
        for stored in self.module_context._each():
            notify = getattr(stored, "notify_disconnect", None)
            if notify is not None:
                try:
                    notify()
                except Exception:
                    log.exception("notify_disconnect failed")
        return True
