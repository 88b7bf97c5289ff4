"""``IdleReaper``: the idle clocks of the server's own connections (trioiis/_server/idle.py).

Run on Trio's MockClock, so deadlines are exact: a connection expires exactly when its
earliest running clock runs out, never before, and never after ``forget``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis._server.idle import IdleReaper


class Conn:
    def __init__(self, name: str, log: list[tuple[str, float]]) -> None:
        self.name = name
        self.log = log

    def expire(self) -> None:
        self.log.append((self.name, trio.current_time()))


@asynccontextmanager
async def running_reaper() -> AsyncIterator[IdleReaper]:
    """A reaper whose task runs for the block (and is cancelled after it)."""
    reaper = IdleReaper()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reaper.run)
        yield reaper
        nursery.cancel_scope.cancel()


def run(test: object) -> None:
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))  # type: ignore[arg-type]


def test_a_connection_expires_at_its_deadline_and_not_again() -> None:
    async def main() -> None:
        log: list[tuple[str, float]] = []
        async with running_reaper() as reaper:
            a = Conn("a", log)
            reaper.watch(a, 5.0)
            await trio.sleep(4.999)
            assert log == []
            await trio.sleep(100)
            assert log == [("a", 5.0)]
            assert len(reaper) == 0

    run(main)


def test_forget_stops_the_clock_and_watch_restarts_it() -> None:
    async def main() -> None:
        log: list[tuple[str, float]] = []
        async with running_reaper() as reaper:
            a, b = Conn("a", log), Conn("b", log)
            reaper.watch(a, 5.0)
            reaper.watch(b, 5.0)
            await trio.sleep(3)
            reaper.forget(a)  # busy again
            reaper.watch(b, 5.0)  # restarted at t=3
            await trio.sleep(100)
            assert log == [("b", 8.0)]

    run(main)


def test_a_shorter_clock_started_later_wakes_the_reaper_and_wins() -> None:
    async def main() -> None:
        log: list[tuple[str, float]] = []
        async with running_reaper() as reaper:
            a = Conn("a", log)
            reaper.watch(a, 60.0)
            await trio.sleep(1)  # the reaper sleeps until t=60
            reaper.watch(a, 2.0)  # a drain: at most 2 s more
            await trio.sleep(100)
            assert log == [("a", 3.0)]  # once: the other clock was forgotten with it

    run(main)


# A model of the clocks: a connection has at most one clock per timeout (watching again
# restarts it), and expires when the earliest of its clocks runs out.
operations = st.lists(
    st.one_of(
        st.tuples(st.just("watch"), st.integers(0, 4), st.sampled_from([0.0, 0.5, 1.0, 5.0])),
        st.tuples(st.just("forget"), st.integers(0, 4), st.just(0.0)),
        st.tuples(st.just("sleep"), st.just(0), st.sampled_from([0.25, 1.0, 3.0])),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_expiries_match_a_model_of_the_clocks(ops: list[tuple[str, int, float]]) -> None:
    async def main() -> None:
        log: list[tuple[str, float]] = []
        expected: list[tuple[str, float]] = []
        clocks: dict[int, dict[float, float]] = {}  # the model: connection → timeout → deadline
        conns = [Conn(str(i), log) for i in range(5)]

        def advance_model(until: float) -> None:
            for i, running in list(clocks.items()):
                deadline = min(running.values())
                if deadline <= until:
                    expected.append((str(i), deadline))
                    del clocks[i]

        async with running_reaper() as reaper:
            await trio.testing.wait_all_tasks_blocked()
            for op, i, value in ops:
                now = trio.current_time()
                if op == "watch":
                    reaper.watch(conns[i], value)
                    clocks.setdefault(i, {})[value] = now + value
                elif op == "forget":
                    reaper.forget(conns[i])
                    clocks.pop(i, None)
                else:
                    await trio.sleep(value)
                    advance_model(trio.current_time())
                # Zero timeouts expire at the reaper's next step: let it run.
                await trio.testing.wait_all_tasks_blocked()
                advance_model(trio.current_time())
                assert sorted(log) == sorted(expected)
            await trio.sleep(10)
            advance_model(trio.current_time())
            assert sorted(log) == sorted(expected)
            assert len(reaper) == 0

    run(main)
