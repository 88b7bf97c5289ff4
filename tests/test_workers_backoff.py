"""``trioiis._server.workers.backoff``: restarts of a dying worker slow down, are capped, and start
over once a worker has run long enough."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trioiis._server.workers import BACKOFF_CAP, BACKOFF_START, STABLE_AFTER, backoff


def test_doubles_from_the_start_to_the_cap() -> None:
    failures, delays = 0, []
    for _ in range(12):
        delay, failures = backoff(failures, lived=0.5)
        delays.append(delay)
    assert delays[:4] == [BACKOFF_START, 2 * BACKOFF_START, 4 * BACKOFF_START, 8 * BACKOFF_START]
    assert delays[-1] == BACKOFF_CAP
    assert failures == 12


@given(st.integers(0, 10_000), st.floats(0, 1e6, allow_nan=False))
def test_bounded_and_reset_after_a_stable_run(failures: int, lived: float) -> None:
    delay, after = backoff(failures, lived)
    assert BACKOFF_START <= delay <= BACKOFF_CAP
    if lived >= STABLE_AFTER:
        assert (delay, after) == (BACKOFF_START, 1)
    else:
        assert after == failures + 1
        assert delay >= backoff(max(failures - 1, 0), lived)[0]
