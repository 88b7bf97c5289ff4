"""Memoization that stays small whatever clients ask for.

The hot path asks the same pure questions of the same few URLs and paths on every request
(map a URL to a file, decode a path): worth remembering. But URLs are the client's choice,
up to ``max_request_line`` long, so only calls whose key is short are remembered; a long one
is computed each time and cannot fill the cache with kilobytes per entry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: Keys (the last argument, as text) up to this long are remembered.
LONGEST_KEY = 256


def memoize_short(fn: Callable[P, R], *, maxsize: int = 1024) -> Callable[P, R]:
    """``fn`` (pure, positional, hashable arguments) with an LRU of ``maxsize`` results for
    the calls whose last argument is at most ``LONGEST_KEY`` characters as text."""
    cached = functools.lru_cache(maxsize=maxsize)(fn)

    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        if kwargs or len(str(args[-1])) > LONGEST_KEY:
            return fn(*args, **kwargs)
        return cached(*args)

    return call
