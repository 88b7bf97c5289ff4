"""How a request or response reaches the context that owns it, without a reference cycle."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Protocol

from .._errors import InvalidHandleError

if TYPE_CHECKING:
    from .context import HttpContext


class OwningContext:
    """``obj._ctx``: the context that owns a request or response, through the weak reference
    ``obj._ctx_ref``. The context owns the object; a strong back-reference would make every
    request a reference cycle, freed only by the cyclic GC.

    Raises:
        InvalidHandleError: only the object was kept, and its request has ended.
    """

    def __get__(self, obj: _OwnedByContext, objtype: type | None = None) -> HttpContext:
        ctx = obj._ctx_ref()
        if ctx is None:
            raise InvalidHandleError("the request has ended")
        return ctx


class _OwnedByContext(Protocol):
    _ctx_ref: weakref.ref[HttpContext]
