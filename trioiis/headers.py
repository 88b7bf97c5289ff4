"""A small ordered, case-insensitive header list shared by requests and responses."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .constants import ERROR_INVALID_PARAMETER
from .errors import HResultError


class Headers:
    """Header fields in arrival order; names compare case-insensitively.

    IIS semantics: ``set(name, value, replace=False)`` on an existing field appends
    ``", value"`` to it; ``replace=True`` overwrites. ``delete`` of an absent field is fine.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)

    def get(self, name: str) -> str | None:
        """The field's value (repeated fields joined with ", "), or None when absent."""
        key = name.lower()
        values = [v for n, v in self._items if n.lower() == key]
        return ", ".join(values) if values else None

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def set(self, name: str, value: str, *, replace: bool = True) -> None:
        _check_field(name, value)
        key = name.lower()
        for i, (n, v) in enumerate(self._items):
            if n.lower() == key:
                new = value if replace else f"{v}, {value}"
                self._items[i] = (n, new)
                self._items[i + 1 :] = [(a, b) for a, b in self._items[i + 1 :] if a.lower() != key]
                return
        self._items.append((name, value))

    def add(self, name: str, value: str) -> None:
        """Append another field of this name (e.g. ``Set-Cookie``)."""
        _check_field(name, value)
        self._items.append((name, value))

    def delete(self, name: str) -> None:
        key = name.lower()
        self._items = [(n, v) for n, v in self._items if n.lower() != key]

    def clear(self) -> None:
        self._items.clear()

    def copy(self) -> Headers:
        return Headers(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self._items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]


def _check_field(name: str, value: str) -> None:
    # Refuse what would split a header on the wire (response splitting).
    if not name or any(c in name for c in ":\r\n\0 \t") or any(c in value for c in "\r\n\0"):
        raise HResultError(f"invalid header field {name!r}", hresult=ERROR_INVALID_PARAMETER)
