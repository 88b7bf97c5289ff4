"""metrics: the server's counters in Prometheus text format at ``GET /_trioiis/metrics``
(opt-in, loopback only by default).

Not loaded by default: add ``--module metrics`` (or a ``[[modules]]`` entry
``name = "metrics"``). Options (``options = {...}`` in its ``[[modules]]`` table):

* ``path`` (default ``/_trioiis/metrics``): the URL it answers.
* ``allow_remote`` (default false): answer clients that are not on loopback too. When false,
  a request for the path from any other address is 404, as if the module were not there.

Every figure is read from the server's ``ServerCounters`` at the moment of the scrape (the
same counters ``/_trioiis/status`` shows), through a collector registered on a
``prometheus_client.CollectorRegistry`` of this server's own, never the process-wide default
one; the text is made by ``prometheus_client.generate_latest``. The scrape request and its
connection are not counted in ``trioiis_requests_in_flight`` and ``trioiis_connections_open``.
The metric names, types and labels are listed in ``docs/observability.md``. It needs
``prometheus-client``: ``pip install 'trioiis[metrics]'`` (loading it without says so).

Only GET and HEAD are answered (else 405 with ``Allow``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
except ModuleNotFoundError as exc:  # loading the module says what to install
    raise ModuleNotFoundError(
        "the metrics module needs prometheus-client: pip install 'trioiis[metrics]'",
        name=exc.name,
    ) from exc

import trioiis
from trioiis import (
    Histogram,
    HttpContext,
    HttpModule,
    Notification,
    Priority,
    ServerCounters,
    Status,
)
from trioiis.modules._options import check_keys, get_bool, get_str
from trioiis.modules.status import OUTCOMES, operator_gate

DEFAULT_PATH = "/_trioiis/metrics"


def _buckets(histogram: Histogram) -> list[tuple[str, float]]:
    """Prometheus' cumulative ``le`` buckets of a ``Histogram``."""
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
    return buckets


def families(counters: ServerCounters, *, scrape: bool = False) -> Iterator[Metric]:
    """The metric families of ``counters``; ``scrape`` leaves out one request and one
    connection (the scrape's own)."""
    ours = 1 if scrape else 0

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, value=value)

    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    def by(name: str, doc: str, label: str, values: Mapping[Any, int]) -> CounterMetricFamily:
        """A counter with one label, a sample per key of ``values`` (in key order)."""
        family = CounterMetricFamily(name, doc, labels=[label])
        for key, n in sorted(values.items()):
            family.add_metric([str(key)], n)
        return family

    yield by(
        "trioiis_requests",
        "Client requests finished, by final status code",
        "status",
        counters.responses_by_status,
    )
    yield counter(
        "trioiis_requests_started", "Client requests that entered the pipeline", counters.requests
    )
    yield gauge(
        "trioiis_requests_in_flight",
        "Client requests running now",
        max(0, counters.requests_in_flight - ours),
    )
    latency = counters.latency
    yield HistogramMetricFamily(
        "trioiis_request_duration_seconds",
        "Seconds from a client request entering the pipeline to its end",
        buckets=_buckets(latency),
        sum_value=latency.total,
    )
    yield counter(
        "trioiis_connections_accepted", "Client connections accepted", counters.connections_accepted
    )
    yield gauge(
        "trioiis_connections_open",
        "Client connections open now",
        max(0, counters.connections_open - ours),
    )
    yield counter(
        "trioiis_connections_refused",
        "Connections answered 503 because the server was full",
        counters.connections_refused,
    )
    yield by(
        "trioiis_heads_refused",
        "Request heads refused before the pipeline (the access log's 'refused'), by status",
        "status",
        counters.heads_refused,
    )
    yield by(
        "trioiis_https_redirects",
        "Requests answered by an https_redirect binding, by status (301; 499: client left)",
        "status",
        counters.https_redirects,
    )
    outcomes = CounterMetricFamily(
        "trioiis_requests_ended",
        "Requests that ended, by outcome (completed, cancelled_by_client, timed_out,"
        " aborted_by_server, failed)",
        labels=["outcome"],
    )
    for outcome in OUTCOMES:
        outcomes.add_metric([outcome], counters.outcomes[outcome])
    yield outcomes
    yield counter(
        "trioiis_requests_cancelled_by_client",
        "Requests whose client left before their response was complete (their work was cancelled)",
        counters.cancelled_by_client,
    )
    ttc = counters.time_to_cancel_histogram
    yield HistogramMetricFamily(
        "trioiis_time_to_cancel_seconds",
        "Seconds from noticing a client disconnect to the request's work having stopped",
        buckets=_buckets(ttc),
        sum_value=ttc.total,
    )
    yield counter(
        "trioiis_requests_timed_out",
        "Requests cancelled by request_timeout",
        counters.requests_timed_out,
    )
    yield counter("trioiis_cancel_io_calls", "Calls to cancel_io()", counters.cancel_io_calls)
    yield counter(
        "trioiis_io_cancelled", "Pending I/O operations cancel_io() aborted", counters.io_cancelled
    )
    yield by(
        "trioiis_child_requests",
        "Child requests started, by nesting depth",
        "depth",
        counters.child_requests_by_depth,
    )
    yield by(
        "trioiis_module_exceptions",
        "Exceptions raised by modules, by module",
        "module",
        counters.module_exceptions,
    )
    yield counter(
        "trioiis_traces_written", "Failed-request trace files written", counters.traces_written
    )
    yield counter(
        "trioiis_traces_dropped",
        "Traces that matched the rule but were dropped (the writer was behind)",
        counters.traces_dropped,
    )
    yield counter(
        "trioiis_event_loop_blocked",
        "Task steps that blocked the event loop past watchdog_threshold",
        counters.event_loop_blocked,
    )
    yield by(
        "trioiis_http2_events",
        "HTTP/2 events by kind: connections, streams, resets, each limit's refusals",
        "kind",
        counters.http2,
    )


class _CountersCollector:
    """A prometheus_client collector reading one server's counters at each scrape."""

    def __init__(self) -> None:
        self.counters: ServerCounters | None = None

    def collect(self) -> Iterator[Metric]:
        if self.counters is not None:
            yield from families(self.counters, scrape=True)


class MetricsModule(HttpModule):
    def __init__(self, factory: _MetricsFactory) -> None:
        self.factory = factory

    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        factory = self.factory
        refused = operator_gate(ctx, factory.path, factory.allow_remote)
        if refused is not None:
            return refused
        response = ctx.response
        factory.collector.counters = ctx.server_counters
        response.set_status(200, "OK")
        response.set_header("Content-Type", CONTENT_TYPE_LATEST)
        response.write(generate_latest(factory.registry))
        return Status.FINISH_REQUEST


class _MetricsFactory:
    """One per server (``register_module`` runs once per server): its own registry."""

    def __init__(self, path: str, allow_remote: bool) -> None:
        self.path = path
        self.allow_remote = allow_remote
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = _CountersCollector()
        self.registry.register(self.collector)

    def get_http_module(self, allocator: Any) -> HttpModule:
        return MetricsModule(self)

    def terminate(self) -> None:
        self.registry.unregister(self.collector)


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    check_keys("metrics", info.options, {"path", "allow_remote"})
    path = get_str("metrics", info.options, "path", DEFAULT_PATH)
    allow_remote = get_bool("metrics", info.options, "allow_remote", False)
    if not path.startswith("/"):
        raise ValueError("metrics: option 'path' must start with /")
    info.set_request_notifications(_MetricsFactory(path, allow_remote), Notification.BEGIN_REQUEST)
    info.set_priority_for_request_notification(Notification.BEGIN_REQUEST, Priority.FIRST)
