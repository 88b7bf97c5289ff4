"""Failed-request traces: a per-request timeline, kept when a rule matches (IIS's Failed
Request Event Buffering, with cancellation in it).

Theory of operation
-------------------
1. **Off costs one branch.** With no ``trace_dir`` the pipeline has no ``Tracer`` and every
   context's ``trace`` is None; each hook point (a module call, a pending I/O, a request's
   start and end) is ``if trace is not None:`` and nothing else.
2. **On, a request records into plain lists.** ``Tracer.begin`` gives the client's request a
   ``RequestTrace``; a child request gets one nested in its parent's (``children``). Each
   module call appends ``[module, notification, post, start, end, result]``, each pending I/O
   ``[kind, start, end, outcome, bytes]``; times are ``time.perf_counter()`` seconds. The
   whole tree shares one budget of ``max_events`` events: past it, events are only counted
   (``dropped_events``), so a request that loops cannot eat the memory.
3. **The rule decides at the end.** When the client's request ends, ``Tracer.end`` evaluates
   the ``--trace-when`` rule (``trace_rules``) on its facts. No match: the trace is
   garbage at once. A match: the finished tree goes into a bounded memory channel; when the
   writer is that far behind, the trace is dropped and counted (``traces_dropped``).
4. **Writing never blocks the event loop.** One writer task (``run_writer``, started by the
   server) turns each tree into JSON and writes it in a worker thread
   (``trio.to_thread.run_sync``): to a temporary name, then renamed, so a reader never sees
   half a file. File names are unique (time, process id, sequence number, status). After
   each write the folder is pruned to ``max_files`` trace files, oldest first.
5. **Shutdown loses nothing queued.** The server closes the tracer after its last request
   ended; the writer writes what is queued and returns. If the writer is cancelled (a hard
   stop), it still writes what is queued, shielded, within ``DRAIN_TIMEOUT`` seconds.

The JSON format (``"format": "trioiis-trace/1"``) is described in docs/observability.md;
``VIEWER`` is the self-contained HTML page that draws it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import trio

from .._constants import Notification, Status
from .._errors import ConfigError
from .._lifecycle import Outcome
from .counters import ServerCounters
from .trace_rules import RequestFacts, TraceRule, parse_rule

#: The HTML viewer shipped in the package (one static file, no build step, no network).
VIEWER: Final = Path(__file__).with_name("tracing_viewer.html")
FORMAT: Final = "trioiis-trace/1"
DEFAULT_RULE: Final = "status>=500 or cancelled or time>1s"
#: Seconds a cancelled writer may still take to write what is queued.
DRAIN_TIMEOUT: Final = 5.0
#: Finished traces waiting for the writer; more are dropped (and counted).
QUEUE_SIZE: Final = 256
_PREFIX: Final = "trace-"

#: Outcomes of a pending I/O.
IO_COMPLETED: Final = "completed"
IO_CANCELLED_BY_CANCEL_IO: Final = "cancelled_by_cancel_io"
IO_CANCELLED_BY_DISCONNECT: Final = "cancelled_by_disconnect"
IO_CANCELLED: Final = "cancelled"  # by anything else: request_timeout, shutdown, a release
IO_FAILED: Final = "failed"


#: The clock of trace events: trio's default clock is this plus a constant, and calling it
#: directly skips trio's run-context lookup (events are recorded on the hot path).
_now = time.perf_counter


def _result(result: object) -> str:
    """What a module call ended with, as the trace file says it."""
    if isinstance(result, Status):
        return result.name
    if isinstance(result, BaseException):
        return f"raised {type(result).__name__}"
    return "cancelled"


class _Budget:
    """Events a request tree may still record (shared by the root and its children)."""

    __slots__ = ("dropped", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.dropped = 0


class RequestTrace:
    """The timeline of one request (a child's is nested in its parent's ``children``).

    Hook methods are cheap: a budget check, a clock read and a list append; turning the
    events into JSON is left to the writer, for the traces that are written.
    """

    __slots__ = (
        "_budget",
        "bytes",
        "calls",
        "children",
        "depth",
        "disconnect",
        "end",
        "ios",
        "method",
        "outcome",
        "start",
        "status",
        "stream_id",
        "sub_status",
        "time_to_cancel",
        "url",
    )

    def __init__(self, budget: _Budget, method: str, url: str, depth: int) -> None:
        self._budget = budget
        self.method = method
        self.url = url
        self.depth = depth
        self.start = _now()
        self.end: float | None = None
        #: The HTTP/2 stream the request came on (None for HTTP/1.1 and for children).
        self.stream_id: int | None = None
        #: [module, notification, post, start, end, result]
        self.calls: list[list[Any]] = []
        #: [kind, start, end, outcome, bytes]
        self.ios: list[list[Any]] = []
        self.children: list[RequestTrace] = []
        self.status = 0
        self.sub_status = 0
        self.bytes = 0
        self.outcome = "completed"
        self.disconnect: float | None = None
        self.time_to_cancel: float | None = None

    def _take(self) -> bool:
        budget = self._budget
        if budget.left <= 0:
            budget.dropped += 1
            return False
        budget.left -= 1
        return True

    def child(self, method: str, url: str, depth: int) -> RequestTrace:
        trace = RequestTrace(self._budget, method, url, depth)
        self.children.append(trace)
        return trace

    def call_started(self, module: str, notification: Notification, post: bool) -> list[Any] | None:
        """A module handler is about to run; returns the event to finish (None: over budget)."""
        if not self._take():
            return None
        event = [module, notification, post, _now(), None, None]
        self.calls.append(event)
        return event

    @staticmethod
    def call_ended(event: list[Any], result: object) -> None:
        """``result``: the final ``Status``, the exception it raised, or None (cancelled)."""
        event[4] = _now()
        event[5] = result  # turned into text by to_json, only for a trace that is written

    def io_started(self, kind: str) -> list[Any] | None:
        if not self._take():
            return None
        event = [kind, _now(), None, IO_COMPLETED, 0]
        self.ios.append(event)
        return event

    @staticmethod
    def io_ended(event: list[Any], outcome: str, moved: int) -> None:
        event[2] = _now()
        event[3] = outcome
        event[4] = moved

    # ------------------------------------------------------------ output

    def io_cancelled(self) -> bool:
        """True if cancel_io() aborted an I/O of this request or of a child."""
        return any(io[3] == IO_CANCELLED_BY_CANCEL_IO for io in self.ios) or any(
            child.io_cancelled() for child in self.children
        )

    def finish(self, status: int, sub_status: int, bytes_: int, outcome: Outcome) -> None:
        """The request ended with this status, these body bytes and this outcome."""
        self.end = _now()
        self.status = status
        self.sub_status = sub_status
        self.bytes = bytes_
        self.outcome = outcome

    def to_json(self, origin: float) -> dict[str, Any]:
        """This request and its children, times in milliseconds since ``origin``."""

        def ms(moment: float | None) -> float | None:
            return None if moment is None else round((moment - origin) * 1000, 3)

        def span(start: float, end: float | None) -> float | None:
            return None if end is None else round((end - start) * 1000, 3)

        data: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "depth": self.depth,
            "start_ms": ms(self.start),
            "duration_ms": span(self.start, self.end),
            "status": self.status,
            "sub_status": self.sub_status,
            "bytes": self.bytes,
            "outcome": self.outcome,
            "notifications": [
                {
                    "module": module,
                    "notification": notification.name,
                    "post": post,
                    "start_ms": ms(start),
                    "duration_ms": span(start, end),
                    "result": _result(result) if end is not None else "unfinished",
                }
                for module, notification, post, start, end, result in self.calls
            ],
            "io": [
                {
                    "kind": kind,
                    "start_ms": ms(start),
                    "duration_ms": span(start, end),
                    "outcome": outcome if end is not None else "unfinished",
                    "bytes": moved,
                }
                for kind, start, end, outcome, moved in self.ios
            ],
            "children": [child.to_json(origin) for child in self.children],
        }
        if self.stream_id is not None:
            data["stream_id"] = self.stream_id
        if self.disconnect is not None:
            data["disconnect_ms"] = ms(self.disconnect)
        if self.time_to_cancel is not None:
            data["time_to_cancel_ms"] = round(self.time_to_cancel * 1000, 3)
        return data


@dataclass(frozen=True, slots=True)
class _Finished:
    """A matched trace waiting for the writer."""

    trace: RequestTrace
    remote: str
    wall: float  # time.time() at the end
    dropped_events: int


class Tracer:
    """One per server: starts request traces, applies the rule, writes the files.

    Args:
        directory: where trace files go (created if missing).
        rule: the ``--trace-when`` rule text.
        max_files: trace files kept in ``directory``; the oldest go first.
        max_events: events recorded per request tree (the rest are counted only).
        counters: the server's counters (``traces_written``, ``traces_dropped``).

    Raises:
        TraceRuleError: the rule does not parse.
    """

    def __init__(
        self,
        directory: Path,
        rule: str = DEFAULT_RULE,
        *,
        max_files: int = 1000,
        max_events: int = 2000,
        counters: ServerCounters | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.rule: TraceRule = parse_rule(rule)
        self.max_files = max_files
        self.max_events = max_events
        self.counters = counters or ServerCounters()
        self._send, self._receive = trio.open_memory_channel[_Finished](QUEUE_SIZE)
        self._sequence = 0
        self._files: deque[Path] = deque()

    # ------------------------------------------------------------ pipeline hooks

    def begin(self, method: str, url: str, stream_id: int | None) -> RequestTrace:
        """A new trace for a client's request (a child request's trace is its parent's
        ``RequestTrace.child``)."""
        trace = RequestTrace(_Budget(self.max_events), method, url, 0)
        trace.stream_id = stream_id
        return trace

    def end(
        self,
        trace: RequestTrace,
        outcome: Outcome,
        remote_ip: str,
        *,
        peer_gone_at: float | None,
        time_to_cancel: float | None,
    ) -> None:
        """A client's request ended (``RequestTrace.finish`` done): apply the rule and queue
        the trace for writing if it matches. ``peer_gone_at`` is trio's clock."""
        if peer_gone_at is not None and outcome is Outcome.CANCELLED_BY_CLIENT:
            trace.disconnect = peer_gone_at - trio.current_time() + _now()  # trio's -> ours
            trace.time_to_cancel = time_to_cancel
        assert trace.end is not None, "RequestTrace.finish comes first"
        facts = RequestFacts(
            status=trace.status,
            sub_status=trace.sub_status,
            time=trace.end - trace.start,
            bytes=trace.bytes,
            cancelled=outcome is Outcome.CANCELLED_BY_CLIENT,
            timed_out=outcome is Outcome.TIMED_OUT,
            aborted=outcome is Outcome.ABORTED_BY_SERVER,
            failed=outcome is Outcome.FAILED,
            io_cancelled=trace.io_cancelled(),
        )
        if not self.rule.matches(facts):
            return
        finished = _Finished(trace, remote_ip, time.time(), trace._budget.dropped)
        try:
            self._send.send_nowait(finished)
        except (trio.WouldBlock, trio.ClosedResourceError):
            self.counters.traces_dropped += 1

    # ------------------------------------------------------------ the writer

    def close(self) -> None:
        """No more traces: the writer writes what is queued, then returns."""
        self._send.close()

    async def run_writer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Create the folder (and its ``viewer.html``), then write traces until ``close()``.

        Raises:
            ConfigError: the folder cannot be created (before ``task_status.started()``).

        Cancellation: what is still queued is written anyway, shielded, for at most
            ``DRAIN_TIMEOUT`` seconds; then the rest is dropped (counted).
        """
        try:
            await trio.to_thread.run_sync(self._prepare)
        except OSError as exc:
            raise ConfigError(
                f"cannot use trace_dir {self.directory}: {exc.strerror or exc}"
            ) from exc
        task_status.started()
        try:
            async for finished in self._receive:
                await self._write(finished)
        finally:
            with trio.CancelScope(shield=True) as drain:
                drain.deadline = trio.current_time() + DRAIN_TIMEOUT
                while True:
                    try:
                        finished = self._receive.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                        break
                    if drain.cancel_called:
                        self.counters.traces_dropped += 1
                        continue
                    await self._write(finished)
            self._receive.close()

    async def _write(self, finished: _Finished) -> None:
        self._sequence += 1
        try:
            await trio.to_thread.run_sync(self._write_file, finished, self._sequence)
        except OSError:
            self.counters.traces_dropped += 1
            return
        self.counters.traces_written += 1

    def _prepare(self) -> None:
        """(in a thread) Make the folder, copy the viewer, list the traces already there."""
        self.directory.mkdir(parents=True, exist_ok=True)
        viewer = self.directory / "viewer.html"
        if not viewer.exists():
            shutil.copyfile(VIEWER, viewer)
        existing = sorted(
            self.directory.glob(f"{_PREFIX}*.json"), key=lambda p: (p.stat().st_mtime, p.name)
        )
        self._files = deque(existing)

    def file_name(self, finished: _Finished, sequence: int) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(finished.wall))
        micros = int(finished.wall % 1 * 1_000_000)
        status = finished.trace.status
        return f"{_PREFIX}{stamp}.{micros:06d}Z-{os.getpid()}-{sequence:06d}-{status}.json"

    def document(self, finished: _Finished) -> dict[str, Any]:
        """The JSON document of a finished trace."""
        trace = finished.trace
        return {
            "format": FORMAT,
            "server": "trioiis",
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished.wall)),
            "rule": self.rule.text,
            "remote": finished.remote,
            "max_events": self.max_events,
            "dropped_events": finished.dropped_events,
            "request": trace.to_json(trace.start),
        }

    def _write_file(self, finished: _Finished, sequence: int) -> Path:
        """(in a thread) Write one trace atomically, then prune the folder."""
        text = json.dumps(self.document(finished), indent=1)
        path = self.directory / self.file_name(finished, sequence)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                file.write(text)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        self._files.append(path)
        while len(self._files) > self.max_files:
            with contextlib.suppress(OSError):
                self._files.popleft().unlink()
        return path


@contextlib.asynccontextmanager
async def open_trace_writer(tracer: Tracer | None) -> AsyncIterator[None]:
    """Run ``tracer``'s writer around the body (nothing when ``tracer`` is None); on the
    way out, close the tracer and wait until what is queued is written.

    Raises:
        ConfigError: the trace folder cannot be created.

    Cancellation: the writer still writes what is queued (shielded, bounded).
    """
    if tracer is None:
        yield
        return
    async with trio.open_nursery() as nursery:
        await nursery.start(tracer.run_writer)
        try:
            yield
        finally:
            tracer.close()
