"""``memoize_short``: same answers as the function, remembered only for short keys."""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given
from hypothesis import strategies as st

from trioiis._memo import LONGEST_KEY, memoize_short


def counting() -> tuple[list[str], Callable[[str, str], str]]:
    calls: list[str] = []

    def upper(prefix: str, key: str) -> str:
        calls.append(key)
        return prefix + key.upper()

    return calls, memoize_short(upper, maxsize=8)


def test_a_short_key_is_computed_once_and_a_long_one_every_time() -> None:
    calls, upper = counting()
    short, long = "a" * LONGEST_KEY, "b" * (LONGEST_KEY + 1)
    for _ in range(3):
        assert upper(">", short) == ">" + short.upper()
        assert upper(">", long) == ">" + long.upper()
    assert calls == [short, long, long, long]  # the long key never entered the cache


def test_the_cache_is_bounded() -> None:
    calls, upper = counting()
    for key in [str(i) for i in range(20)] * 2:
        upper("", key)
    assert len(calls) == 40  # 20 keys through an 8-entry LRU: each was evicted in time


@given(st.lists(st.tuples(st.text(max_size=3), st.text(max_size=LONGEST_KEY + 20))))
def test_answers_are_the_functions_answers(pairs: list[tuple[str, str]]) -> None:
    _, upper = counting()
    for prefix, key in pairs:
        assert upper(prefix, key) == prefix + key.upper()
