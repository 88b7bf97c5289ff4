"""static_file's options: ``cache`` rules (``Cache-Control`` / ``Expires`` per path
pattern) and ``fallback`` rules (a document served for unknown paths, as nginx's
``try_files $uri /index.html``).

```toml
[[modules]]
name = "static_file"
options.cache = [
    { path = "/assets/*", max_age = 31536000, immutable = true },
    { path = "*.html", max_age = 0 },
]
options.fallback = [{ path = "/app/*", document = "/app/index.html" }]
```

Patterns are ``fnmatch`` patterns on the URL path, the first matching rule wins.
"""

from __future__ import annotations

import email.utils
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["CacheRule", "FallbackRule", "cache_rules", "fallback_rules", "first_match"]


@dataclass(frozen=True, slots=True)
class CacheRule:
    """``Cache-Control: public, max-age=N[, immutable]`` (``no-cache`` for 0) and an
    ``Expires`` N seconds from the answer, for files whose URL path matches ``path``."""

    path: str
    max_age: int
    immutable: bool = False

    def headers(self, now: float) -> tuple[tuple[str, str], tuple[str, str]]:
        if self.max_age == 0:
            control = "no-cache"
        else:
            control = f"public, max-age={self.max_age}" + (", immutable" if self.immutable else "")
        expires = email.utils.formatdate(now + self.max_age, usegmt=True)
        return ("Cache-Control", control), ("Expires", expires)


@dataclass(frozen=True, slots=True)
class FallbackRule:
    """A GET or HEAD whose path matches ``path`` and names no file gets ``document``
    (a URL path, mapped like any other) with status 200."""

    path: str
    document: str


Rule = TypeVar("Rule", CacheRule, FallbackRule)


def first_match(rules: Sequence[Rule], path: str) -> Rule | None:
    """The first rule whose pattern matches ``path``."""
    return next((rule for rule in rules if fnmatch.fnmatchcase(path, rule.path)), None)


def _tables(module: str, options: Mapping[str, object], key: str) -> list[Mapping[str, object]]:
    value = options.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{module}: option {key!r} must be an array of tables")
    return value


def _pattern(module: str, key: str, table: Mapping[str, object]) -> str:
    path = table.get("path")
    if not isinstance(path, str) or not path:
        raise ValueError(f"{module}: each {key} rule needs a path pattern string")
    return path


def cache_rules(module: str, options: Mapping[str, object]) -> tuple[CacheRule, ...]:
    """The ``cache`` option, checked.

    Raises:
        ValueError: a one-line message naming the module.
    """
    rules = []
    for table in _tables(module, options, "cache"):
        unknown = sorted(set(table) - {"path", "max_age", "immutable"})
        if unknown:
            raise ValueError(f"{module}: unknown key(s) in a cache rule: {', '.join(unknown)}")
        max_age, immutable = table.get("max_age"), table.get("immutable", False)
        if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
            raise ValueError(f"{module}: a cache rule's max_age must be whole seconds, >= 0")
        if not isinstance(immutable, bool):
            raise ValueError(f"{module}: a cache rule's immutable must be true or false")
        rules.append(CacheRule(_pattern(module, "cache", table), max_age, immutable))
    return tuple(rules)


def fallback_rules(module: str, options: Mapping[str, object]) -> tuple[FallbackRule, ...]:
    """The ``fallback`` option, checked.

    Raises:
        ValueError: a one-line message naming the module.
    """
    rules = []
    for table in _tables(module, options, "fallback"):
        unknown = sorted(set(table) - {"path", "document"})
        if unknown:
            raise ValueError(f"{module}: unknown key(s) in a fallback rule: {', '.join(unknown)}")
        document = table.get("document")
        if not isinstance(document, str) or not document.startswith("/"):
            raise ValueError(f"{module}: a fallback rule's document must be a URL path (/…)")
        rules.append(FallbackRule(_pattern(module, "fallback", table), document))
    return tuple(rules)
