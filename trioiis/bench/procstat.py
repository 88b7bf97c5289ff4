"""What a server process tree uses, read from Linux's /proc: CPU time, memory, descriptors.

``--server-pid PID`` samples the process ``PID`` and all its descendants (found through
``/proc/*/stat``'s parent pids, so worker processes count). CPU time is user + system time
of each live process plus that of its children that have exited and been reaped, so a
worker that exits during the run does not take its CPU time with it.

Reading /proc needs no privilege for one's own processes; descriptors of another user's
process cannot be counted (then ``fds`` is the count of the ones that could be).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Usage:
    """One sample of a process tree."""

    cpu_s: float  # user + system, children reaped included, since each process started
    rss_bytes: int
    fds: int
    processes: int


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 onwards), or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it (empty when ``pid`` is gone)."""
    if _stat_fields(pid) is None:
        return []
    children: dict[int, list[int]] = {}
    for name in os.listdir(PROC):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(name))
    found = [pid]
    for parent in found:  # grows while it is walked: breadth first
        found.extend(children.get(parent, ()))
    return found


def _fds(pid: int) -> int:
    try:
        return len(os.listdir(PROC / str(pid) / "fd"))
    except OSError:
        return 0


def sample(pid: int) -> Usage | None:
    """The tree's usage now, or None when ``pid`` is gone."""
    cpu_ticks = rss_pages = fds = processes = 0
    for member in tree(pid):
        fields = _stat_fields(member)
        if fields is None:
            continue  # exited since the walk
        # Fields 14-17 (utime, stime, cutime, cstime) and 24 (rss), counted from 1 with the
        # pid and the command name: here from field 3, so 11-14 and 21.
        cpu_ticks += sum(int(value) for value in fields[11:15])
        rss_pages += int(fields[21])
        fds += _fds(member)
        processes += 1
    if not processes:
        return None
    return Usage(cpu_ticks / TICKS_PER_SECOND, rss_pages * PAGE_SIZE, fds, processes)
