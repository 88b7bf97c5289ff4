"""status: the server's counters as JSON at ``GET /_trioiis/status`` (opt-in, loopback only).

Not loaded by default: add ``--module status`` (or a ``[[modules]]`` entry ``name = "status"``).
Options (``options = {...}`` in its ``[[modules]]`` table):

* ``path`` (default ``/_trioiis/status``): the URL it answers.
* ``allow_remote`` (default false): answer clients that are not on loopback too. When false,
  a request for the path from any other address is 404, as if the module were not there.

The answer (``application/json``, ``Cache-Control: no-store``) holds ``processes`` (the
worker processes serving the same listeners: above 1, every figure is the answering
process's share only, not the server's), ``requests``,
``requests_in_flight`` and ``connections_open`` (both *not* counting the status request and
its connection), ``connections_refused``, ``heads_refused`` (request heads refused before the
pipeline, by the status they got: in the access log as ``refused``, in no other figure),
``https_redirects`` (requests an ``https_redirect`` binding answered, by status),
``outcomes`` (finished requests by outcome:
``completed``, ``cancelled_by_client``, ``timed_out``, ``aborted_by_server``, ``failed``),
``cancelled_by_client``, ``requests_timed_out``,
``cancel_io_calls``, ``io_cancelled``, ``child_requests`` (and ``child_requests_by_depth``),
``responses_by_status`` (finished requests by the access log's status: the one the client
got, 499 or 444 when no status line went out; the status request not yet among them),
``connections_accepted``, ``traces_written``, ``traces_dropped``,
``event_loop_blocked`` (``trioiis._server.watchdog``), ``module_exceptions``, ``http2``
(HTTP/2 events by kind, ``ServerCounters.http2``: streams, resets, each limit's refusals),
``time_to_cancel`` (``count``, ``p50_ms``, ``p99_ms``, ``max_ms`` over the samples the server
keeps — its last 10 000 requests cancelled by their client; ``?last=N`` restricts them to
the last N samples, so a benchmark can ask for exactly its own), ``open_fds`` (entries of
``/proc/self/fd``, -1 where there is none) and ``trio_tasks`` (live Trio tasks of the
server's run). ``trioiis bench`` reads it before and after a run.

Only GET and HEAD are answered (else 405 with ``Allow``).
"""

from __future__ import annotations

import json
import math
import os
import urllib.parse
from collections.abc import Sequence
from typing import Any

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Priority, Status

#: Every request outcome, in the order the status and metrics modules list them.
OUTCOMES = tuple(outcome.value for outcome in trioiis.Outcome)

DEFAULT_PATH = "/_trioiis/status"


def percentile(sorted_samples: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ascending samples; 0.0 if none."""
    if not sorted_samples:
        return 0.0
    rank = max(1, math.ceil(share * len(sorted_samples)))
    return sorted_samples[min(rank, len(sorted_samples)) - 1]


def operator_gate(ctx: HttpContext, path: str, allow_remote: bool) -> Status | None:
    """The checks every operator endpoint (status, metrics) makes before answering.

    Returns ``None`` when the request is a ``GET``/``HEAD`` of ``path`` it may answer;
    ``Status.CONTINUE`` when it is not for the endpoint (another path, a child request, or
    a remote client while ``allow_remote`` is off: as if the module were not loaded, 404);
    ``Status.FINISH_REQUEST`` after a ``405`` for any other method. Sets
    ``Cache-Control: no-store`` on what it answers.
    """
    request = ctx.request
    if request.path != path or ctx.get_parent_context() is not None:
        return Status.CONTINUE
    if not allow_remote and not trioiis.is_local_request(ctx):
        return Status.CONTINUE  # not there for remote clients: whatever follows says 404
    response = ctx.response
    response.set_header("Cache-Control", "no-store")
    if request.method not in ("GET", "HEAD"):
        response.set_status(405, "Method Not Allowed")
        response.set_header("Allow", "GET, HEAD")
        return Status.FINISH_REQUEST
    return None


def count_tasks() -> int:
    """Live tasks of the current Trio run (the root task and everything below it)."""
    root = trio.lowlevel.current_root_task()
    stack = [root] if root is not None else []
    count = 0
    while stack:
        task = stack.pop()
        count += 1
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def snapshot(counters: Any, last: int | None = None) -> dict[str, Any]:
    """The JSON-ready figures of a ``ServerCounters`` (fds and tasks are added by the module)."""
    samples = list(counters.time_to_cancel)
    if last is not None:
        samples = samples[-last:] if last > 0 else []
    samples.sort()
    return {
        "processes": counters.processes,
        "requests": counters.requests,
        "requests_in_flight": counters.requests_in_flight,
        "connections_open": counters.connections_open,
        "connections_refused": counters.connections_refused,
        "heads_refused": {str(code): n for code, n in sorted(counters.heads_refused.items())},
        "https_redirects": {str(code): n for code, n in sorted(counters.https_redirects.items())},
        "outcomes": {outcome: counters.outcomes[outcome] for outcome in OUTCOMES},
        "cancelled_by_client": counters.cancelled_by_client,
        "requests_timed_out": counters.requests_timed_out,
        "cancel_io_calls": counters.cancel_io_calls,
        "io_cancelled": counters.io_cancelled,
        "child_requests": counters.child_requests,
        "child_requests_by_depth": {
            str(depth): n for depth, n in sorted(counters.child_requests_by_depth.items())
        },
        "responses_by_status": {
            str(code): n for code, n in sorted(counters.responses_by_status.items())
        },
        "connections_accepted": counters.connections_accepted,
        "traces_written": counters.traces_written,
        "traces_dropped": counters.traces_dropped,
        "event_loop_blocked": counters.event_loop_blocked,
        "module_exceptions": dict(counters.module_exceptions),
        "http2": dict(sorted(counters.http2.items())),
        "time_to_cancel": {
            "count": len(samples),
            "p50_ms": percentile(samples, 0.50) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
            "max_ms": (samples[-1] if samples else 0.0) * 1000,
        },
    }


class StatusModule(HttpModule):
    def __init__(self, path: str, allow_remote: bool) -> None:
        self.path = path
        self.allow_remote = allow_remote

    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        refused = operator_gate(ctx, self.path, self.allow_remote)
        if refused is not None:
            return refused
        request, response = ctx.request, ctx.response
        last = _last_parameter(request.url)
        counters = ctx.server_counters
        figures = snapshot(counters, last)
        figures["requests_in_flight"] -= 1  # not counting this request...
        figures["connections_open"] = max(0, figures["connections_open"] - 1)  # ...or its conn
        figures["open_fds"] = await trio.to_thread.run_sync(open_fds)
        figures["trio_tasks"] = count_tasks()
        figures = {"server": "trioiis", **figures}
        response.set_status(200, "OK")
        response.set_header("Content-Type", "application/json")
        response.write(json.dumps(figures, sort_keys=True).encode() + b"\n")
        return Status.FINISH_REQUEST


def _last_parameter(url: str) -> int | None:
    query = urllib.parse.urlsplit(url).query
    values = urllib.parse.parse_qs(query).get("last")
    if not values:
        return None
    try:
        return max(0, int(values[0]))
    except ValueError:
        return None


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    path = info.options.get("path", DEFAULT_PATH)
    allow_remote = info.options.get("allow_remote", False)
    if not isinstance(path, str) or not path.startswith("/"):
        raise ValueError("status: option path must be a string starting with /")
    if not isinstance(allow_remote, bool):
        raise ValueError("status: option allow_remote must be true or false")
    info.set_request_notifications(
        trioiis.SharedFactory(StatusModule(path, allow_remote)),
        Notification.BEGIN_REQUEST,
    )
    info.set_priority_for_request_notification(Notification.BEGIN_REQUEST, Priority.FIRST)
