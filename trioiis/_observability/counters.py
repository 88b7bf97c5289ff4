"""Server-wide counters: the one bookkeeping behind ``/_trioiis/status`` and the metrics.

The server, pipeline and contexts update a ``ServerCounters`` in place (plain ``+= 1`` on
slots, a dict increment, a bisect for a histogram: a request pays well under a
microsecond). Readers (the ``status`` and ``metrics`` modules, ``trioiis bench``) only read
it, at the moment they answer; nothing is kept twice.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the request latency histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
#: Upper bounds (seconds) of the time-to-cancel histogram's buckets.
TIME_TO_CANCEL_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
)  # fmt: skip


@dataclass(slots=True)
class Histogram:
    """Cumulative-style bucket counts (Prometheus semantics: a value goes in the first
    bucket whose bound is >= it; the last bucket is +Inf).

    Attributes:
        bounds: ascending upper bounds, without +Inf.
        counts: one count per bound, then the +Inf bucket (not cumulative).
        total: the sum of every observed value.
    """

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(slots=True)
class ServerCounters:
    """Plain counters, updated in place by the server, pipeline and contexts.

    Attributes:
        processes: worker processes serving the same listeners (``--workers``). Above 1,
            every figure here is this process's share only, not the server's.
        requests: requests (root, not children) that have entered the pipeline.
        requests_in_flight: root requests running now.
        responses_by_status: root requests that have finished, by the status the access log
            gives them (499 or 444 when no status line went out).
        latency: seconds each finished root request took (pipeline start to end).
        connections_accepted: client connections accepted since the start.
        connections_open: client connections open now.
        connections_refused: connections answered 503 because the server was full
            (``when_full = "refuse"``).
        heads_refused: request heads refused before the pipeline (malformed, over a limit,
            too slow), by the status they were answered with: each has its access-log line
            (outcome ``refused``), and is in no other figure (it never became a request).
        https_redirects: requests an ``https_redirect`` binding answered, by status (``301``;
            ``499`` when the client left before the answer went out): each has its access-log
            line (site ``-``), and is in no other figure (no module ran). A malformed head
            there is in ``heads_refused``.
        outcomes: root requests that have finished, by outcome (``Outcome`` values:
            ``completed``, ``cancelled_by_client``, ``timed_out``, ``aborted_by_server``,
            ``failed``); the one figure each request adds to, decided by its lifecycle.
        cancelled_by_client: ``outcomes["cancelled_by_client"]``: requests whose client
            left before their response was complete.
        requests_timed_out: ``outcomes["timed_out"]``: requests cancelled by
            ``request_timeout``.
        cancel_io_calls: calls to ``cancel_io``.
        io_cancelled: pending I/O operations that ``cancel_io`` aborted.
        child_requests_by_depth: child requests started, by depth (1 = a child of the
            client's request).
        module_exceptions: exceptions raised by modules, by module name.
        time_to_cancel: seconds from noticing a disconnect to the request's work having
            stopped, for the last 10 000 cancelled requests.
        time_to_cancel_histogram: the same times, every one of them, in buckets.
        traces_written: failed-request trace files written (``trace_dir``).
        traces_dropped: traces that matched the rule but were dropped because the writer
            was that far behind.
        event_loop_blocked: task steps that kept the event loop blocked longer than
            ``watchdog_threshold`` (``trioiis._server.watchdog``).
        http2: HTTP/2 events by kind (``trioiis._protocol.http2``): ``connections``, ``streams``,
            ``streams_reset_by_client``, ``streams_after_goaway`` (streams the client opened
            after the server's GOAWAY, refused unprocessed with REFUSED_STREAM, which a
            client may retry elsewhere), and each limit's refusals: ``streams_refused``
            (concurrent streams), ``rapid_reset``, ``ping_flood``, ``settings_flood``,
            ``window_update_flood``, ``header_flood`` (header list size, CONTINUATION),
            ``window_stalls``, ``slow_reads`` (a stream read below ``min_send_rate``),
            ``slow_bodies`` (a stream's body below ``min_body_rate`` or past
            ``body_timeout``), ``write_timeouts``, ``idle_closed``, ``max_requests_goaway``,
            ``protocol_errors``.
    """

    processes: int = 1
    requests: int = 0
    requests_in_flight: int = 0
    responses_by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    connections_accepted: int = 0
    connections_open: int = 0
    connections_refused: int = 0
    heads_refused: collections.Counter[int] = field(default_factory=collections.Counter)
    https_redirects: collections.Counter[int] = field(default_factory=collections.Counter)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    cancelled_by_client: int = 0
    requests_timed_out: int = 0
    cancel_io_calls: int = 0
    io_cancelled: int = 0
    child_requests_by_depth: collections.Counter[int] = field(default_factory=collections.Counter)
    module_exceptions: collections.Counter[str] = field(default_factory=collections.Counter)
    time_to_cancel: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )
    time_to_cancel_histogram: Histogram = field(
        default_factory=lambda: Histogram(TIME_TO_CANCEL_BUCKETS)
    )
    traces_written: int = 0
    traces_dropped: int = 0
    event_loop_blocked: int = 0
    http2: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def child_requests(self) -> int:
        """Child requests started, at any depth."""
        return sum(self.child_requests_by_depth.values())

    def request_finished(
        self, status: int, seconds: float, outcome: str, time_to_cancel: float | None
    ) -> None:
        """A root request ended with ``status`` after ``seconds``, with ``outcome``; for a
        cancelled one, its work stopped ``time_to_cancel`` seconds after its client was
        seen leaving (0 when it had stopped already)."""
        self.responses_by_status[status] += 1
        self.latency.observe(seconds)
        self.outcomes[outcome] += 1
        if outcome == "cancelled_by_client":
            self.cancelled_by_client += 1
            seconds = time_to_cancel or 0.0
            self.time_to_cancel.append(seconds)
            self.time_to_cancel_histogram.observe(seconds)
        elif outcome == "timed_out":
            self.requests_timed_out += 1
