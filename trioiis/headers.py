"""A small ordered, case-insensitive header list shared by requests and responses."""

from __future__ import annotations

import re
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
        found: str | None = None
        for n, v in self._items:  # a plain loop: most fields are absent or single
            if n.lower() == key:
                found = v if found is None else f"{found}, {v}"
        return found

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self._items if n.lower() == key]

    def set(self, name: str, value: str, *, replace: bool = True) -> None:
        """Make ``name`` one field: ``value``, or (``replace=False``) every current value of
        ``name`` joined with ", " and then ``value``. Surrounding spaces/tabs are dropped.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for a name that is not an HTTP token or a
                value that could not be sent (CR, LF, NUL, other line breaks, non-Latin-1).
        """
        value = _check_field(name, value)
        key = name.lower()
        first = next((i for i, (n, _) in enumerate(self._items) if n.lower() == key), None)
        if first is None:
            self._items.append((name, value))
            return
        if not replace:
            value = ", ".join([*self.get_all(name), value])
        kept = self._items[first][0]
        self._items = [(n, v) for n, v in self._items if n.lower() != key]
        self._items.insert(first, (kept, value))

    def add(self, name: str, value: str) -> None:
        """Append another field of this name (e.g. ``Set-Cookie``)."""
        self._items.append((name, _check_field(name, value)))

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


#: RFC 9110 ``token``: what a field name may be (h11 refuses anything else when sending).
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
#: Characters no field value may hold: they would split the header on the wire (response
#: splitting) or make h11 refuse the whole response.
_BAD_VALUE = re.compile(r"[\r\n\0\x0b\x0c]|[^\x00-\xff]")


def _check_field(name: object, value: object) -> str:
    """The value to store (without surrounding spaces/tabs), or ERROR_INVALID_PARAMETER.

    Typed ``object``: modules are not type-checked, and None must be refused, not crash.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise HResultError(f"invalid header name {name!r}", hresult=ERROR_INVALID_PARAMETER)
    if not isinstance(value, str) or _BAD_VALUE.search(value):
        raise HResultError(f"invalid value for header {name!r}", hresult=ERROR_INVALID_PARAMETER)
    return value.strip(" \t")
