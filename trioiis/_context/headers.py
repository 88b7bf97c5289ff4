"""A small ordered, case-insensitive header list shared by requests and responses."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .._constants import ERROR_INVALID_PARAMETER
from .._errors import HResultError

_NO_ITEMS: tuple[tuple[str, str], ...] = ()


class Headers:
    """Header fields in arrival order; names compare case-insensitively.

    IIS semantics: ``set(name, value, replace=False)`` on an existing field appends
    ``", value"`` to it; ``replace=True`` overwrites. ``delete`` of an absent field is fine.
    """

    # Each field is (lower-case name, name as given, value): the key is made once, not on
    # every lookup (a request looks up about ten fields).
    __slots__ = ("_fields",)

    def __init__(self, items: Iterable[tuple[str, str]] = _NO_ITEMS) -> None:
        self._fields: list[tuple[str, str, str]] = (
            [] if items is _NO_ITEMS else [(n.lower(), n, v) for n, v in items]
        )

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        return cls((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw)

    @staticmethod
    def _empty() -> Headers:
        """``Headers()``, made without a call to ``__init__`` (one per response)."""
        headers = object.__new__(Headers)
        headers._fields = []
        return headers

    @classmethod
    def _from_head(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """The fields of a parsed request head (``RequestHead.headers``: names already
        lower-case, every field already checked by the parser), taken as they are."""
        headers = cls.__new__(cls)
        fields = []
        for raw_name, raw_value in raw:
            name = raw_name.decode("latin-1")
            fields.append((name, name, raw_value.decode("latin-1")))
        headers._fields = fields
        return headers

    def get(self, name: str) -> str | None:
        """The field's value (repeated fields joined with ", "), or None when absent."""
        key = name.lower()
        found: str | None = None
        for k, _, v in self._fields:  # a plain loop: most fields are absent or single
            if k == key:
                found = v if found is None else f"{found}, {v}"
        return found

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for k, _, v in self._fields if k == key]

    def set(self, name: str, value: str, *, replace: bool = True) -> None:
        """Make ``name`` one field: ``value``, or (``replace=False``) every current value of
        ``name`` joined with ", " and then ``value``. Surrounding spaces/tabs are dropped.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for a name that is not an HTTP token or a
                value that could not be sent (CR, LF, NUL, other line breaks, non-Latin-1).
        """
        value = _check_field(name, value)
        key = name.lower()
        fields = self._fields
        first = -1
        for index, field in enumerate(fields):  # (a loop: no generator per call)
            if field[0] == key:
                first = index
                break
        if first < 0:
            fields.append((key, name, value))
            return
        if not replace:
            value = ", ".join([*self.get_all(name), value])
        kept = fields[first][1]
        self._fields = [f for f in fields if f[0] != key]
        self._fields.insert(first, (key, kept, value))

    def add(self, name: str, value: str) -> None:
        """Append another field of this name (e.g. ``Set-Cookie``)."""
        self._fields.append((name.lower(), name, _check_field(name, value)))

    def delete(self, name: str) -> None:
        key = name.lower()
        self._fields = [f for f in self._fields if f[0] != key]

    def clear(self) -> None:
        self._fields.clear()

    def copy(self) -> Headers:
        copied = Headers()
        copied._fields = list(self._fields)
        return copied

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower()
        return any(f[0] == key for f in self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(n, v) for _, n, v in self._fields])

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({[(n, v) for _, n, v in self._fields]!r})"

    def _for_head(self, *, drop_length: bool) -> tuple[list[tuple[bytes, bytes]], bool]:
        """``raw()`` for the response head (less ``Content-Length`` with ``drop_length``),
        and whether what is left frames the body (a Content-Length or Transfer-Encoding);
        one pass."""
        raw: list[tuple[bytes, bytes]] = []
        framed = False
        for key, name, value in self._fields:
            if key == "content-length":
                if drop_length:
                    continue
                framed = True
            elif key == "transfer-encoding":
                framed = True
            raw.append((name.encode("latin-1"), value.encode("latin-1")))
        return raw, framed

    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(n.encode("latin-1"), v.encode("latin-1")) for _, n, v in self._fields]


#: RFC 9110 ``token``: what a field name may be (h11 refuses anything else when sending).
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
#: Names already found to be tokens (modules set the same few names on every response);
#: bounded, so that names made up per request cannot grow it without end.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_KEPT = 1024
#: Values already found sendable (modules set the same few values on every response, such
#: as a type or ``Vary``): bounded in count and length, as ``_VALID_NAMES``.
_VALID_VALUES: set[str] = set()
_VALID_VALUES_KEPT = 1024
_LONGEST_KEPT_VALUE = 256
#: Characters no field value may hold: they would split the header on the wire (response
#: splitting) or make h11 refuse the whole response.
_BAD_VALUE = re.compile(r"[\r\n\0\x0b\x0c]|[^\x00-\xff]")


def _check_field(name: object, value: object) -> str:
    """The value to store (without surrounding spaces/tabs), or ERROR_INVALID_PARAMETER.

    Typed ``object``: modules are not type-checked, and None must be refused, not crash.
    """
    if not isinstance(name, str) or name not in _VALID_NAMES:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise HResultError(f"invalid header name {name!r}", hresult=ERROR_INVALID_PARAMETER)
        if len(_VALID_NAMES) < _VALID_NAMES_KEPT:
            _VALID_NAMES.add(name)
    if type(value) is not str or value not in _VALID_VALUES:  # (a str subclass: checked)
        if not isinstance(value, str) or _BAD_VALUE.search(value):
            raise HResultError(
                f"invalid value for header {name!r}", hresult=ERROR_INVALID_PARAMETER
            )
        if len(_VALID_VALUES) < _VALID_VALUES_KEPT and len(value) <= _LONGEST_KEPT_VALUE:
            _VALID_VALUES.add(value)
    return value.strip(" \t")
