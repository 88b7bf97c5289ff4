"""The event-loop watchdog: a warning when the event loop stays blocked.

A module that blocks (``time.sleep``, a CPU-bound loop, a blocking socket call) stalls
every connection of the process. A heartbeat task stores the time every ``threshold / 4``
seconds; a thread wakes as often and, when the heartbeat is older than ``threshold``, logs
one warning naming the module, stage and request whose handler is on the loop's stack (the
pipeline's ``_call`` frame, found by walking the loop thread's frames) and counts it in
``ServerCounters.event_loop_blocked``. Nothing runs per request or per task step: a request
pays nothing for the watchdog.

The thread only reads (the loop thread's frames, while it holds the GIL); it never touches
Trio. A blocked stretch is reported once, however long it lasts.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import FrameType

import trio

from .._observability.counters import ServerCounters
from .._pipeline.pipeline import Pipeline

__all__ = ["Watchdog", "describe_frame"]

log = logging.getLogger("trioiis.watchdog")
# The frame that runs one module handler (its locals name the module, the stage and the
# request): what the warning reports.
_CALL_CODE = Pipeline._call.__code__


def describe_frame(frame: FrameType | None) -> str:
    """``module 'sleepy' in BEGIN_REQUEST of GET /slow`` when a module handler is on the
    stack that ``frame`` ends, else ``a task that runs no module handler``."""
    while frame is not None:
        if frame.f_code is _CALL_CODE:
            local = frame.f_locals
            ctx, notification = local.get("ctx"), local.get("notification")
            post = " (post)" if local.get("post") else ""
            where = getattr(notification, "name", "?")
            request = getattr(ctx, "request", None)
            of = f" of {request.method} {request.url}" if request is not None else ""
            return f"module {local.get('name')!r} in {where}{post}{of}"
        frame = frame.f_back
    return "a task that runs no module handler"


class Watchdog:
    """``run`` it in a nursery of the server (its heartbeat; it starts and stops the
    watching thread itself)."""

    def __init__(self, threshold: float, counters: ServerCounters) -> None:
        self.threshold = threshold
        self.counters = counters
        self._beat = time.monotonic()
        self._loop_thread = threading.get_ident()
        self._stopping = threading.Event()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat until cancelled; the watching thread runs meanwhile.

        Cancellation: the way it ends; the thread stops within ``threshold / 4``.
        """
        self._loop_thread = threading.get_ident()
        thread = threading.Thread(target=self._watch, name="trioiis watchdog", daemon=True)
        thread.start()
        task_status.started()
        try:
            while True:
                self._beat = time.monotonic()
                await trio.sleep(self.threshold / 4)
        finally:
            self._stopping.set()

    def _watch(self) -> None:
        reported = -1.0
        while not self._stopping.wait(self.threshold / 4):
            beat = self._beat
            blocked = time.monotonic() - beat
            if blocked < self.threshold or beat == reported:
                continue
            reported = beat
            self.counters.event_loop_blocked += 1
            frame = sys._current_frames().get(self._loop_thread)
            log.warning(
                "event loop blocked for %.1f s (threshold %.2g s) by %s: every connection"
                " waits; use trio.to_thread.run_sync for blocking calls",
                blocked,
                self.threshold,
                describe_frame(frame),
            )
