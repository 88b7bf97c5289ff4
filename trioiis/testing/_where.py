"""Where a task or a coroutine is parked, as traceback lines for a report.

Trio's ``Task.iter_await_frames`` stops at a generator that forwards values by hand (the
kit's own ``_relay``); this walker steps through it into the coroutine it runs (kept in its
``coro`` local), so reports show the module's frames below the kit's wrappers. Trio's own
frames and the kit's own are left out: they are the same for every checkpoint.
"""

from __future__ import annotations

import os
import traceback
from types import FrameType
from typing import Any

import trio

_TRIO_FOLDER = f"{os.sep}trio{os.sep}"
_KIT_FOLDER = os.path.dirname(os.path.abspath(__file__)) + os.sep


def await_frames(coro: Any) -> list[tuple[FrameType, int]]:
    """The frames of ``coro`` and of everything it awaits, outermost first."""
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            break
        frames.append((frame, frame.f_lineno))
        inner = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        if inner is None and frame.f_code.co_name == "_relay":
            inner = frame.f_locals.get("coro")
        coro = inner
    return frames


def format_frames(frames: list[tuple[FrameType, int]], *, last: int | None = None) -> str:
    """Traceback lines for ``frames`` (Trio's left out), only the ``last`` ones if given."""
    kept = [
        (frame, line)
        for frame, line in frames
        if _TRIO_FOLDER not in frame.f_code.co_filename
        and not frame.f_code.co_filename.startswith(_KIT_FOLDER)
    ]
    if last is not None:
        kept = kept[-last:]
    return "".join(traceback.StackSummary.extract(kept, lookup_lines=True).format())


def where_task_is(task: trio.lowlevel.Task) -> str:
    """The task's await stack, as traceback lines."""
    return format_frames(await_frames(task.coro))
