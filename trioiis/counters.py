"""Server-wide counters that the bench tool and (later) metrics read."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field


@dataclass(slots=True)
class ServerCounters:
    """Plain counters, updated in place by the server, pipeline and contexts.

    Attributes:
        requests: requests (root, not children) that have entered the pipeline.
        requests_in_flight: root requests running now.
        connections_open: client connections open now.
        connections_refused: connections answered 503 because the server was full
            (``when_full = "refuse"``).
        cancelled_by_client: requests whose client left while they ran.
        requests_timed_out: requests cancelled by ``request_timeout``.
        cancel_io_calls: calls to ``cancel_io``.
        io_cancelled: pending I/O operations that ``cancel_io`` aborted.
        child_requests: child requests started.
        module_exceptions: exceptions raised by modules, by module name.
        time_to_cancel: seconds from noticing a disconnect to the request's work having
            stopped, for the last 10 000 cancelled requests.
    """

    requests: int = 0
    requests_in_flight: int = 0
    connections_open: int = 0
    connections_refused: int = 0
    cancelled_by_client: int = 0
    requests_timed_out: int = 0
    cancel_io_calls: int = 0
    io_cancelled: int = 0
    child_requests: int = 0
    module_exceptions: collections.Counter[str] = field(default_factory=collections.Counter)
    time_to_cancel: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=10_000)
    )
