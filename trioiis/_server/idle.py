"""Idle connections' clocks: one task closes every connection idle past its deadline.

An idle keep-alive connection of the server's own sockets is one task waiting for its socket
to become readable, without a cancel scope of its own (a scope and its cancel status cost
about 0.9 KiB per connection, where an idle connection should cost at most 6 KiB). Its keep-alive or
first-head deadline lives here instead, and when it passes, ``IdleReaper.run`` asks the
connection to stop (``IdleConnection.expire``), like the timer tree of nginx's event loop.

Every connection waiting under one timeout gets its deadline from the same clock, so each
timeout's queue is a dict in insertion order, which is deadline order: starting or stopping
a clock is a dict update, and the reaper only ever looks at each queue's first entry.

Not a public API.
"""

from __future__ import annotations

import math
from typing import Protocol

import trio


class IdleConnection(Protocol):
    """What the reaper knows of a connection."""

    def expire(self) -> None:
        """The connection's deadline passed while it was idle: close it (no checkpoint)."""


class IdleReaper:
    """Deadlines of idle connections, and the task that enforces them."""

    __slots__ = ("_queues", "_wake", "_waking_at")

    def __init__(self) -> None:
        # timeout → {connection: deadline}, oldest first.
        self._queues: dict[float, dict[IdleConnection, float]] = {}
        self._wake = trio.lowlevel.ParkingLot()
        self._waking_at = math.inf  # when run() wakes next by itself

    def watch(self, connection: IdleConnection, timeout: float) -> None:
        """Start (or restart) ``connection``'s clock: it expires ``timeout`` seconds from now
        unless ``forget`` is called first. A connection may have clocks of different
        timeouts at once; the first to run out expires it."""
        deadline = trio.current_time() + timeout
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = {}
        queue.pop(connection, None)  # re-inserted last: the queue stays in deadline order
        queue[connection] = deadline
        if deadline < self._waking_at:
            self._wake.unpark_all()

    def forget(self, connection: IdleConnection) -> None:
        """Stop every clock of ``connection`` (it is busy again, or closed)."""
        for queue in self._queues.values():
            queue.pop(connection, None)

    def __len__(self) -> int:
        """Connections with a clock running (for tests and counters)."""
        return len({c for queue in self._queues.values() for c in queue})

    async def run(self) -> None:
        """Expire connections as their deadlines pass, until cancelled.

        Cancellation: the only way it ends; connections still idle are then closed by
        whoever cancelled it (the server's shutdown).
        """
        while True:
            now = trio.current_time()
            self._waking_at = math.inf
            for queue in list(self._queues.values()):  # (expire may start a clock)
                while queue:
                    connection, deadline = next(iter(queue.items()))
                    if deadline > now:
                        self._waking_at = min(self._waking_at, deadline)
                        break
                    self.forget(connection)  # (its other clocks too: it expires once)
                    connection.expire()
            with trio.move_on_at(self._waking_at):
                await self._wake.park()
