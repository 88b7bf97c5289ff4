"""What a request may leave behind without any invariant from the module's author: file
descriptors, tasks and threads.

Theory of operation
-------------------
1. ``Resources.now()`` is taken inside the attempt's ``trio.run``, after the harness set up
   everything it owns (the in-memory streams, the connection task) and before the request's
   first byte is sent; ``Resources.now()`` is taken again once the request ended, the
   connection closed and every task that could run has run (``wait_all_tasks_blocked``).
2. A **file descriptor** is ``(number, what it points at)`` as ``/proc/self/fd`` (or
   ``/dev/fd``) shows it: a number reused for something else counts as new. Anything in the
   second listing and not the first was opened by the request and is still open.
3. A **task** is any task of the run, found by walking from ``current_root_task()`` through
   every nursery, the system nursery included. Anything in the second walk and not the first
   outlived the request (``spawn_system_task``, a nursery the module kept).
4. A **thread** is any ``threading.enumerate()`` entry. Trio's thread cache keeps idle
   workers around for reuse; an idle worker carries its default name (``Trio thread N``,
   set back *before* the worker reports its result, so it is exact once the waiting task
   resumed) and is not a leak. A thread still running after ``THREAD_GRACE`` seconds is: it
   was started by the request (or abandoned by it) and still works on its behalf.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from typing import Final

import trio

from ._where import where_task_is

#: How long threads started by the request get to finish once it ended (an abandoned
#: ``to_thread.run_sync`` unwinding, a worker finishing its last write).
THREAD_GRACE: Final = 2.0
_IDLE_TRIO_WORKER: Final = re.compile(r"Trio thread \d+")
_FD_FOLDER: Final = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def open_fds() -> frozenset[tuple[int, str]]:
    """Every open descriptor of the process, as (number, what it points at)."""
    found = set()
    for name in os.listdir(_FD_FOLDER):
        fd = int(name)
        try:
            target = os.readlink(f"{_FD_FOLDER}/{name}")
        except OSError:
            try:  # /dev/fd without links (macOS), or the listing's own descriptor (gone)
                info = os.fstat(fd)
            except OSError:
                continue
            target = f"device {info.st_dev} inode {info.st_ino}"
        found.add((fd, target))
    return frozenset(found)


def all_tasks() -> frozenset[trio.lowlevel.Task]:
    """Every task of the current run, system tasks included."""
    found: set[trio.lowlevel.Task] = set()
    root = trio.lowlevel.current_root_task()
    todo = [root] if root is not None else []
    while todo:
        task = todo.pop()
        found.add(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return frozenset(found)


def busy_threads() -> frozenset[threading.Thread]:
    """Every running thread but Trio's idle cache workers (rule 4)."""
    return frozenset(
        thread
        for thread in threading.enumerate()
        if thread.is_alive() and not _IDLE_TRIO_WORKER.fullmatch(thread.name)
    )


@dataclass(frozen=True, slots=True)
class Resources:
    """What the process holds at one moment (rule 1)."""

    fds: frozenset[tuple[int, str]]
    tasks: frozenset[trio.lowlevel.Task]
    threads: frozenset[threading.Thread]  # busy ones only: an idle worker may be reused

    @classmethod
    def now(cls) -> Resources:
        return cls(open_fds(), all_tasks(), busy_threads())

    async def leaked_since(self) -> list[str]:
        """Problems: what was opened or started since this snapshot and is still there.

        Cancellation: waits (at most ``THREAD_GRACE`` seconds) for busy threads; a cancel
            ends the wait early and the threads still busy are reported."""
        problems = []
        with trio.move_on_after(THREAD_GRACE):
            # A thread going idle or ending sets nothing a task could wait on: poll.
            while busy_threads() - self.threads:  # noqa: ASYNC110
                await trio.sleep(0.005)
        for thread in sorted(busy_threads() - self.threads, key=lambda thread: thread.name):
            problems.append(
                f"thread {thread.name!r} started during the request is still running "
                f"{THREAD_GRACE:g} s after it ended"
            )
        for task in sorted(all_tasks() - self.tasks, key=lambda task: task.name):
            kind = "system task" if _is_system(task) else "task"
            problems.append(
                f"{kind} {task.name!r} started during the request outlived it; it waits in:\n"
                + where_task_is(task)
            )
        for fd, target in sorted(open_fds() - self.fds):
            problems.append(f"file descriptor {fd} ({target}) opened during the request is open")
        return problems


def _is_system(task: trio.lowlevel.Task) -> bool:
    parent = task.parent_nursery
    return parent is not None and parent.parent_task is trio.lowlevel.current_root_task()
