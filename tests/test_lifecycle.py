"""The request lifecycle table (trioiis/_lifecycle.py): random event sequences against it.

Illegal events raise ``LifecycleError`` and change nothing; a legal sequence that ends with
END has exactly one outcome, and that outcome follows the precedence the module documents.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis._lifecycle import (
    REASON_EVENTS,
    TRANSITIONS,
    Event,
    LifecycleError,
    Outcome,
    RequestLifecycle,
    RequestState,
)


def expected_outcome(reasons: list[Event], completed: bool, owns_response: bool) -> Outcome:
    """The documented precedence, written out independently of the implementation."""
    who_ended = [e for e in reasons if e in (Event.PEER_GONE, Event.SERVER_ABORTED)][:1]
    if Event.MODULE_FAILED in reasons:
        return Outcome.FAILED
    if Event.TIMED_OUT in reasons:
        return Outcome.TIMED_OUT
    if who_ended == [Event.SERVER_ABORTED]:
        return Outcome.ABORTED_BY_SERVER
    if completed or (not owns_response and not reasons):
        return Outcome.COMPLETED
    if who_ended == [Event.PEER_GONE]:
        return Outcome.CANCELLED_BY_CLIENT
    return Outcome.ABORTED_BY_SERVER


@settings(max_examples=500)
@given(
    cloned=st.booleans(),
    events=st.lists(st.sampled_from(list(Event)), max_size=12),
)
def test_lifecycle_random_event_sequences(cloned: bool, events: list[Event]) -> None:
    lifecycle = RequestLifecycle(cloned=cloned)
    state = lifecycle.state
    reasons: list[Event] = []
    completed = False
    for event in events:
        allowed = (state, event) in TRANSITIONS
        if not allowed:
            with pytest.raises(LifecycleError):
                lifecycle.fire(event)
            assert lifecycle.state is state  # an illegal event changes nothing
            continue
        lifecycle.fire(event)
        state = TRANSITIONS[(state, event)]
        assert lifecycle.state is state
        if event in REASON_EVENTS and event not in reasons:
            reasons.append(event)
        completed = completed or state is RequestState.RESPONSE_COMPLETE
        if state is RequestState.ENDED:
            break
    if lifecycle.ended:
        assert lifecycle.outcome is expected_outcome(reasons, completed, not cloned)
        for event in Event:  # nothing is legal after the end
            with pytest.raises(LifecycleError):
                lifecycle.fire(event)


def test_lifecycle_every_live_state_can_end_and_end_is_final() -> None:
    for state in (RequestState.IN_PIPELINE, RequestState.RESPONSE_STARTED):
        assert TRANSITIONS[(state, Event.END)] is RequestState.ENDED
    assert not any(s is RequestState.ENDED for s, _ in TRANSITIONS)
    assert (RequestState.CLONED, Event.END) not in TRANSITIONS  # a clone must run first


def test_lifecycle_response_can_complete_only_after_its_head() -> None:
    lifecycle = RequestLifecycle()
    with pytest.raises(LifecycleError):
        lifecycle.fire(Event.RESPONSE_DONE)
    lifecycle.fire(Event.HEAD_SENT)
    with pytest.raises(LifecycleError):
        lifecycle.fire(Event.HEAD_SENT)


def test_lifecycle_a_client_leaving_after_the_last_byte_changes_nothing() -> None:
    lifecycle = RequestLifecycle()
    for event in (Event.HEAD_SENT, Event.RESPONSE_DONE, Event.PEER_GONE, Event.END):
        lifecycle.fire(event)
    assert lifecycle.outcome is Outcome.COMPLETED


def test_lifecycle_the_first_of_client_gone_and_server_abort_wins() -> None:
    first = RequestLifecycle()
    assert first.fire(Event.PEER_GONE, 1.0)
    assert not first.fire(Event.SERVER_ABORTED, 2.0)
    first.fire(Event.END)
    assert first.outcome is Outcome.CANCELLED_BY_CLIENT
    second = RequestLifecycle()
    assert second.fire(Event.SERVER_ABORTED, 1.0)
    assert not second.fire(Event.PEER_GONE, 2.0)
    second.fire(Event.END)
    assert second.outcome is Outcome.ABORTED_BY_SERVER
    assert second.when(Event.SERVER_ABORTED) == 1.0


def test_lifecycle_table_in_the_docs_is_the_code_s() -> None:
    """docs/architecture.md's transition table says exactly what TRANSITIONS does."""
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "architecture.md").read_text()
    table = text.split("| state | event | next state |", 1)[1].split("\n\n", 1)[0]
    documented = set()
    for row in table.strip().splitlines()[1:]:
        states, events, after = (cell.strip() for cell in row.strip("|").split("|"))
        for state in states.split(","):
            for event in events.split(","):
                before = RequestState[state.strip(" `")]
                nxt = before if after.startswith("(unchanged") else RequestState[after.strip("`")]
                documented.add((before, Event[event.strip(" `")], nxt))
    assert documented == {(s, e, n) for (s, e), n in TRANSITIONS.items()}


def test_a_reason_recorded_on_one_request_is_never_seen_by_another() -> None:
    """Requests without a reason share one empty table; the first reason gives a request its
    own, so nothing recorded for one request shows in any other."""
    first, second = RequestLifecycle(), RequestLifecycle()
    assert first.fire(Event.PEER_GONE, 1.0)
    assert first.has(Event.PEER_GONE)
    assert not second.has(Event.PEER_GONE)
    assert not RequestLifecycle().reasons
    assert second.outcome is Outcome.ABORTED_BY_SERVER  # (no reason, response not complete)
