"""Handler mappings: which modules handle EXECUTE_REQUEST_HANDLER for a request."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HandlerMapping:
    """Which modules handle EXECUTE_REQUEST_HANDLER for matching requests.

    Attributes:
        path: an ``fnmatch`` pattern on the URL path (``*``, ``*.txt``, ``/app/*``).
        modules: module names, run in this order.
        verbs: methods it applies to; empty means all.
        name: shown in logs; defaults to the pattern.
    """

    path: str
    modules: tuple[str, ...]
    verbs: frozenset[str] = frozenset()
    name: str = ""

    def matches(self, path: str, method: str) -> bool:
        if self.verbs and method not in self.verbs:
            return False
        return fnmatch.fnmatchcase(path, self.path)

    @property
    def label(self) -> str:
        return self.name or self.path


DEFAULT_MAPPING = HandlerMapping("*", ("static_file", "default_document", "directory_listing"))
