"""The event-loop watchdog: a warning when one task step keeps the loop blocked.

A module that blocks (``time.sleep``, a CPU-bound loop, a blocking socket call) stalls
every connection of the process. A Trio instrument notes which task step runs and since
when (two attribute stores a step); a thread wakes every ``threshold / 2`` seconds and,
when the same step has run longer than ``threshold``, logs one warning naming the module
and stage that run in it (the pipeline's current-handler context variable, read from the
task's context) and counts it in ``ServerCounters.event_loop_blocked``.

The thread only reads; it never touches Trio. A step is reported once, however long it
blocks.
"""

from __future__ import annotations

import logging
import threading
import time

import trio

from .context import _CURRENT
from .counters import ServerCounters

__all__ = ["Watchdog", "describe_task"]

log = logging.getLogger("trioiis.watchdog")


def describe_task(task: trio.lowlevel.Task) -> str:
    """``module 'sleepy' in BEGIN_REQUEST of GET /slow`` for a task running a handler,
    else the task's name."""
    current = task.context.get(_CURRENT)
    if current is None:
        return f"task {task.name!r} (no module running)"
    ctx, handler = current
    post = " (post)" if handler.is_post else ""
    request = ctx.request
    return (
        f"module {handler.module_name!r} in {handler.notification.name}{post}"
        f" of {request.method} {request.url}"
    )


class Watchdog(trio.abc.Instrument):
    """Add with ``trio.lowlevel.add_instrument``, ``start()`` the thread, ``stop()`` it."""

    def __init__(self, threshold: float, counters: ServerCounters) -> None:
        self.threshold = threshold
        self.counters = counters
        self._task: trio.lowlevel.Task | None = None
        self._step = 0  # which step runs: a new number each step
        self._since = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # The instrument: runs in the Trio thread, once per task step (kept minimal).

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self._since = time.monotonic()
        self._step += 1
        self._task = task

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        self._task = None

    # The watching thread.

    def start(self) -> None:
        self._thread = threading.Thread(target=self._watch, name="trioiis watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (returns at once; it ends within ``threshold / 2``)."""
        self._stopping.set()

    def _watch(self) -> None:
        reported = -1
        while not self._stopping.wait(self.threshold / 2):
            task, step, since = self._task, self._step, self._since
            if task is None or step == reported:
                continue
            blocked = time.monotonic() - since
            if blocked < self.threshold:
                continue
            reported = step
            self.counters.event_loop_blocked += 1
            log.warning(
                "event loop blocked for %.1f s (threshold %.2g s) by %s: every connection"
                " waits; use trio.to_thread.run_sync for blocking calls",
                blocked,
                self.threshold,
                describe_task(task),
            )
