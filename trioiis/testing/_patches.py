"""Instance attributes the kit sets on a module for one attempt, and taking them back."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

_MISSING: Final[Any] = object()


@dataclass(slots=True)
class InstancePatches:
    """Invariant: every attribute ``set`` put on an instance is listed with what the
    instance's ``__dict__`` had there before, and ``undo`` puts that back, so an instance that
    outlives an attempt (a factory handing out one shared instance) ends it as it began."""

    _done: list[tuple[object, str, object]] = field(default_factory=list)

    def set(self, target: object, name: str, value: object) -> bool:
        """Set ``target.name`` in its ``__dict__``; False for an instance without one."""
        own = getattr(target, "__dict__", None)
        if own is None:
            return False
        self._done.append((target, name, own.get(name, _MISSING)))
        own[name] = value
        return True

    def undo(self) -> None:
        for target, name, previous in reversed(self._done):
            if previous is _MISSING:
                vars(target).pop(name, None)
            else:
                vars(target)[name] = previous
        self._done.clear()
