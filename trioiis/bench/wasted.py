"""Wasted work (``--server-pid``): the server's CPU time per completed and per abandoned
request, and its memory and descriptors before, at the peak of, and after a run.

The figures come from outside the server (``procstat``), so they mean the same for any
server. A run with aborts has two phases:

1. the **baseline** (``--baseline-share`` of the requests or of the duration, no aborts):
   the server's CPU time over it, divided by its completed requests, is the CPU cost of a
   completed request;
2. the **measured** phase (the rest, with ``--abort-share``): its CPU time, less its completed
   requests times that cost, divided by its abandoned requests, is the CPU burnt per
   abandoned request. A server that stops working when its client leaves burns little; one
   that finishes every abandoned request burns about what a completed one costs.

After each phase the bench waits (``--settle`` seconds at most) until the tree's CPU time
stops growing — by at most one clock tick in ``SETTLE_WINDOW`` — so that work still running
for abandoned requests is charged to them. Requests that failed are charged nothing: their
CPU time, if any, lands in the phase's total. Other load on the server during the run is
charged too: measure on a server that serves only the bench.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from . import procstat

SAMPLE_INTERVAL = 0.1
SETTLE_WINDOW = 0.25


@dataclass
class Sampler:
    """Samples a process tree until cancelled; keeps its first, peak and latest figures."""

    pid: int
    before: procstat.Usage | None = None
    latest: procstat.Usage | None = None
    peak: dict[str, int] = field(default_factory=lambda: {"rss_bytes": 0, "fds": 0})

    def take(self) -> procstat.Usage | None:
        usage = procstat.sample(self.pid)
        if usage is not None:
            if self.before is None:
                self.before = usage
            self.latest = usage
            self.peak["rss_bytes"] = max(self.peak["rss_bytes"], usage.rss_bytes)
            self.peak["fds"] = max(self.peak["fds"], usage.fds)
        return usage

    async def run(self) -> None:
        """Sample every ``SAMPLE_INTERVAL`` seconds. Cancellation: just stops."""
        while True:
            self.take()
            await trio.sleep(SAMPLE_INTERVAL)

    async def settle(self, limit: float) -> bool:
        """Wait until the tree's CPU time grows by at most one tick in ``SETTLE_WINDOW``
        (True), or ``limit`` seconds (False).

        Cancellation: a checkpoint, nothing else."""
        tick = 1 / procstat.TICKS_PER_SECOND
        with trio.move_on_after(limit):
            last = self.take()
            while last is not None:
                await trio.sleep(SETTLE_WINDOW)
                now = self.take()
                if now is None or now.cpu_s - last.cpu_s <= tick + 1e-9:
                    return True
                last = now
            return True
        return False

    def cpu_s(self) -> float:
        return self.latest.cpu_s if self.latest is not None else 0.0


@dataclass(frozen=True)
class Phase:
    """The server's CPU seconds over one phase and the requests it completed and abandoned."""

    cpu_s: float
    completed: int
    aborted: int
    settled: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "cpu_ms": self.cpu_s * 1000,
            "completed": self.completed,
            "aborted": self.aborted,
            "settled": self.settled,
        }


def figures(sampler: Sampler, baseline: Phase | None, measured: Phase) -> dict[str, Any]:
    """The ``wasted_work`` block of the report (its fields are documented in docs/bench.md)."""
    per_completed: float | None = None
    per_abandoned: float | None = None
    if baseline is not None and baseline.completed:
        per_completed = baseline.cpu_s * 1000 / baseline.completed
        if measured.aborted:
            rest = measured.cpu_s * 1000 - measured.completed * per_completed
            per_abandoned = max(0.0, rest) / measured.aborted
    elif baseline is None and measured.completed and not measured.aborted:
        per_completed = measured.cpu_s * 1000 / measured.completed
    before, after = sampler.before, sampler.latest
    return {
        "pid": sampler.pid,
        "cpu_ms_per_completed": per_completed,
        "cpu_ms_per_abandoned": per_abandoned,
        "baseline": baseline.as_dict() if baseline is not None else None,
        "measured": measured.as_dict(),
        "rss_bytes": {
            "before": before.rss_bytes if before else 0,
            "peak": sampler.peak["rss_bytes"],
            "after": after.rss_bytes if after else 0,
        },
        "fds": {
            "before": before.fds if before else 0,
            "peak": sampler.peak["fds"],
            "after": after.fds if after else 0,
        },
        "processes": {
            "before": before.processes if before else 0,
            "after": after.processes if after else 0,
        },
    }
