"""A request's lifecycle as data: its states, the events that move it, and its one outcome.

Theory of operation
-------------------
1. **States** (``RequestState``): a child request is ``CLONED`` until it is executed. A
   request is ``IN_PIPELINE`` from the moment its head was parsed (a child's: executed),
   ``RESPONSE_STARTED`` once its status line and headers were handed to the transport,
   ``RESPONSE_COMPLETE`` once the transport reported the last byte of the response
   written (for a Content-Length response: the last declared byte, even before the
   pipeline's own end), and ``ENDED`` after its tail (LOG_REQUEST, END_REQUEST) ran.
2. **Events** (``Event``) move it through ``TRANSITIONS``, a table written down as data as
   h11 writes its own (``h11/_state.py``). An event not in the table for the current state
   raises ``LifecycleError``: it is a bug in trioiis, never something a client can cause.
3. **Reasons.** Four events record why a request did not simply complete: ``PEER_GONE`` (the
   client went away: EOF/RST, RST_STREAM, a vanished WebSocket peer), ``TIMED_OUT``
   (``request_timeout``), ``SERVER_ABORTED`` (``send_timeout``, minimum rates, shutdown past
   its grace, ``reset_connection()``) and ``MODULE_FAILED`` (a module raised). The first of
   each kind is kept with its time; none changes the state. ``PEER_GONE`` and
   ``SERVER_ABORTED`` both say who ended the exchange: only the first of the two is kept.
4. **One outcome, decided here** (``RequestLifecycle.outcome``), read by the access log, the
   counters, the metrics, traces, the status module and ``trioiis bench``:

   * ``FAILED`` if a module raised; else
   * ``TIMED_OUT`` if ``request_timeout`` cancelled its work; else
   * ``ABORTED_BY_SERVER`` if the server cut it (before the client left), even if it then
     answered in full (a 408 to a body below the minimum rate); else
   * ``COMPLETED`` if the response completed: the client has every byte, so a client that
     closes right after the last one, however that close races with the final write or
     ``sendfile``, changes nothing; else
   * ``CANCELLED_BY_CLIENT`` if the client left before the response was complete; else
   * ``ABORTED_BY_SERVER``: the request ended without a complete response and without any
     other reason (its response could not be sent).

   A child request has no response of its own on the wire (it writes into its parent's, or
   into a buffer): its end without a reason is ``COMPLETED``.
"""

from __future__ import annotations

import enum
from typing import Final, final


# States and events are string enums: hashed and compared in C (an ``enum.Enum`` member
# hashes in Python, and the table is looked up several times per request).
class RequestState(enum.StrEnum):
    """Where a request is in its life (rule 1)."""

    CLONED = "cloned"
    IN_PIPELINE = "in_pipeline"
    RESPONSE_STARTED = "response_started"
    RESPONSE_COMPLETE = "response_complete"
    ENDED = "ended"


class Event(enum.StrEnum):
    """What can happen to a request (rule 2 and 3)."""

    EXECUTE = "execute"
    HEAD_SENT = "head_sent"
    RESPONSE_DONE = "response_done"
    PEER_GONE = "peer_gone"
    TIMED_OUT = "timed_out"
    SERVER_ABORTED = "server_aborted"
    MODULE_FAILED = "module_failed"
    END = "end"


class Outcome(enum.StrEnum):
    """How a request ended; exactly one per request (rule 4). The value is the spelling of
    the access log, the status module's counters and traces."""

    COMPLETED = "completed"
    CANCELLED_BY_CLIENT = "cancelled_by_client"
    TIMED_OUT = "timed_out"
    ABORTED_BY_SERVER = "aborted_by_server"
    FAILED = "failed"


class LifecycleError(RuntimeError):
    """An event that the table does not allow in the request's state (a trioiis bug)."""


_S = RequestState
_E = Event
# Members read on every request, as module constants: an enum class attribute is looked up
# the slow way (``EnumType.__getattr__``, about a thousand instructions in Python 3.11).
_CLONED, _IN_PIPELINE, _STARTED, _COMPLETE, _ENDED = RequestState
_EXECUTE, _HEAD_SENT, _DONE, _PEER_GONE, _TIMED_OUT, _ABORTED, _MODULE_FAILED, _END = Event
_O_COMPLETED, _O_CANCELLED, _O_TIMED_OUT, _O_ABORTED, _O_FAILED = Outcome
_LIVE: Final = (_S.IN_PIPELINE, _S.RESPONSE_STARTED, _S.RESPONSE_COMPLETE)
#: Events that record a reason and leave the state as it is (rule 3).
REASON_EVENTS: Final = (_E.PEER_GONE, _E.TIMED_OUT, _E.SERVER_ABORTED, _E.MODULE_FAILED)
_REASONS: Final = frozenset(REASON_EVENTS)
#: The reasons that say who ended the exchange: only the first of them is kept (rule 3).
_WHO_ENDED: Final = frozenset((_E.PEER_GONE, _E.SERVER_ABORTED))

#: (state, event) -> next state; anything else raises ``LifecycleError`` (rule 2).
TRANSITIONS: Final[dict[tuple[RequestState, Event], RequestState]] = {
    (_S.CLONED, _E.EXECUTE): _S.IN_PIPELINE,
    (_S.IN_PIPELINE, _E.HEAD_SENT): _S.RESPONSE_STARTED,
    (_S.RESPONSE_STARTED, _E.RESPONSE_DONE): _S.RESPONSE_COMPLETE,
    **{(state, event): state for state in _LIVE for event in REASON_EVENTS},
    **{(state, _E.END): _S.ENDED for state in _LIVE},
}


#: The ``reasons`` of every request that has none yet (most never get one): shared, never
#: written to (``fire`` gives a request its own dict first).
_NO_REASONS: Final[dict[Event, float]] = {}


@final
class RequestLifecycle:
    """One request's state and the reasons recorded for it; ``outcome`` decides (rule 4).

    Synchronous and I/O-free: the context fires events, nothing here awaits.
    """

    __slots__ = ("_completed", "owns_response", "reasons", "state")

    def __init__(self, cloned: bool = False) -> None:
        self.state = _CLONED if cloned else _IN_PIPELINE
        #: False for a child request: its output is its parent's or a buffer (rule 4).
        self.owns_response = not cloned
        #: Reason event -> when it was first recorded (``trio.current_time()``); empty for a
        #: request that simply completes. Read it, never change it.
        self.reasons: dict[Event, float] = _NO_REASONS  # (its own dict at the first reason)
        # Whether RESPONSE_COMPLETE was reached (ENDED alone does not say).
        self._completed = False

    def fire(self, event: Event, when: float = 0.0) -> bool:
        """Apply ``event``; returns True when it recorded a reason for the first time.

        Raises:
            LifecycleError: ``event`` is not allowed in the current state.
        """
        state = TRANSITIONS.get((self.state, event))
        if state is None:
            raise LifecycleError(f"{event.name} is not allowed in {self.state.name}")
        if state is _COMPLETE:
            self._completed = True
        self.state = state
        reasons = self.reasons
        if event not in _REASONS or event in reasons:
            return False
        if event in _WHO_ENDED and not reasons.keys().isdisjoint(_WHO_ENDED):
            return False  # the client left first, or the server cut it first (rule 3)
        if reasons is _NO_REASONS:
            reasons = self.reasons = {}
        reasons[event] = when
        return True

    def end(self, *, response_complete: bool) -> Outcome:
        """The request's tail has run: fire ``RESPONSE_DONE`` first if the transport reports
        the response complete (and the lifecycle had not heard it yet), then ``END``;
        returns the outcome, final from now on.

        Raises:
            LifecycleError: the request had already ended, or was never executed.
        """
        state = self.state
        if response_complete and state is _STARTED:
            state = TRANSITIONS[(state, _DONE)]
            self._completed = True
        if (state, _END) not in TRANSITIONS:
            raise LifecycleError(f"END is not allowed in {state.name}")
        self.state = _ENDED
        return self.outcome

    def has(self, event: Event) -> bool:
        """True when the reason ``event`` was recorded."""
        return event in self.reasons

    def when(self, event: Event) -> float | None:
        """When the reason ``event`` was first recorded, or None."""
        return self.reasons.get(event)

    @property
    def response_complete(self) -> bool:
        """The transport reported the response's last byte written."""
        return self._completed

    @property
    def ended(self) -> bool:
        return self.state is _ENDED

    @property
    def running(self) -> bool:
        """In the pipeline: executed and not yet ended."""
        return self.state in _LIVE

    @property
    def outcome(self) -> Outcome:
        """The request's outcome as things stand (final once ``ended``); rule 4."""
        reasons = self.reasons
        if not reasons:  # (the usual request)
            return _O_COMPLETED if self._completed or not self.owns_response else _O_ABORTED
        if _MODULE_FAILED in reasons:
            return _O_FAILED
        if _TIMED_OUT in reasons:
            return _O_TIMED_OUT
        if _ABORTED in reasons:
            return _O_ABORTED
        if self._completed:
            return _O_COMPLETED
        if _PEER_GONE in reasons:
            return _O_CANCELLED
        return _O_ABORTED
