"""The load generator: connections as Trio tasks, HTTP/1.1 or HTTP/2, aborts, latency.

Closed loop (no ``--rate``): each connection (each stream, in HTTP/2) takes the next request
as soon as its last one has ended; its latency runs from that moment. Open loop
(``--rate R``): a scheduler task releases request *i* at ``start + i / R`` into a queue that
the connections take from; its latency runs from that scheduled time, not from when a
connection got round to it, so a stalled server shows as the queueing delay it causes (the
coordinated-omission correction of wrk2). The time from actually starting the request is
recorded too (``service``; in closed loop it is the latency).

Timeouts cost nothing per request: each request slot notes its deadline, and one watchdog
task cancels the slots whose deadline has passed (every ``WATCHDOG_TICK`` seconds at most,
so a timeout fires up to one tick late).

Every figure lives in a ``Tally``; ``sent == completed + aborted + errors + cut_off``.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import random
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from . import h2client
from .h1client import ProtocolFailure, RequestBytes, ResponseReader, exchange, read_response
from .histogram import LatencyHistogram
from .options import BenchOptions
from .transport import Connection, ConnectionLost, client_ssl_context, connect

#: How long a duration-bounded run lets requests in progress at its end finish (at most).
DRAIN_GRACE = 2.0
#: The watchdog's period at most (it is a tenth of ``--timeout`` when that is shorter).
WATCHDOG_TICK = 0.05
#: Counters of a Tally that add up when tallies of several processes merge.
COUNTS = (
    "sent",
    "completed",
    "aborted",
    "abort_planned",
    "abort_late",
    "cut_off",
    "backlog",
    "connections_opened",
    "bytes_received",
)


@dataclass
class Tally:
    """Every client-side figure of a run."""

    sent: int = 0  # requests started by a connection
    completed: int = 0  # full response received (abort_late included)
    aborted: int = 0  # abandoned by the client before the response was complete
    abort_planned: int = 0  # requests chosen to be abandoned
    abort_late: int = 0  # chosen, but the response was complete before the abort time
    cut_off: int = 0  # still in progress when the run ended
    backlog: int = 0  # open loop: due but not started when the run ended
    connections_opened: int = 0
    bytes_received: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    service: LatencyHistogram = field(default_factory=LatencyHistogram)
    elapsed: float = 0.0
    hit_max_seconds: bool = False
    #: Only with ``--plot``: (seconds since the start, latency in seconds) per completed request.
    completions: list[tuple[float, float]] = field(default_factory=list)
    #: Only with ``--plot``: seconds since the start of each abort.
    abort_times: list[float] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def finish(self) -> None:
        self.cut_off = self.sent - self.completed - self.aborted - self.error_count

    def merge(self, other: Tally) -> None:
        """Add ``other``'s figures (another process's, or another phase's) to this tally:
        counts add up, histograms merge exactly, the elapsed time is the longer one."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.errors.update(other.errors)
        self.statuses.update(other.statuses)
        self.latency.merge(other.latency)
        self.service.merge(other.service)
        self.elapsed = max(self.elapsed, other.elapsed)
        self.hit_max_seconds = self.hit_max_seconds or other.hit_max_seconds
        self.completions.extend(other.completions)
        self.abort_times.extend(other.abort_times)

    def to_wire(self) -> dict[str, Any]:
        """A JSON-ready copy, histograms encoded (to cross a pipe between processes)."""
        wire: dict[str, Any] = {name: getattr(self, name) for name in COUNTS}
        wire.update(
            errors=dict(self.errors),
            statuses={str(code): n for code, n in self.statuses.items()},
            latency=self.latency.encode().decode("ascii"),
            service=self.service.encode().decode("ascii"),
            elapsed=self.elapsed,
            hit_max_seconds=self.hit_max_seconds,
            completions=self.completions,
            abort_times=self.abort_times,
        )
        return wire

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Tally:
        tally = cls()
        for name in COUNTS:
            setattr(tally, name, int(wire[name]))
        tally.errors.update({str(k): int(v) for k, v in wire["errors"].items()})
        tally.statuses.update({int(k): int(v) for k, v in wire["statuses"].items()})
        tally.latency = LatencyHistogram.decode(wire["latency"].encode("ascii"))
        tally.service = LatencyHistogram.decode(wire["service"].encode("ascii"))
        tally.elapsed = float(wire["elapsed"])
        tally.hit_max_seconds = bool(wire["hit_max_seconds"])
        tally.completions = [(float(a), float(b)) for a, b in wire["completions"]]
        tally.abort_times = [float(t) for t in wire["abort_times"]]
        return tally


class Failed(Exception):
    """A request failed; ``args[0]`` is the error kind."""


class Slot:
    """One request at a time: an HTTP/1.1 connection, or one stream task of an HTTP/2
    connection. Holds the request being made and its deadline, for the watchdog."""

    __slots__ = (
        "abort_after",
        "connection",
        "deadline",
        "finished",
        "h2",
        "reader",
        "requests",
        "scheduled",
        "scope",
    )

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.reader: ResponseReader | None = None
        self.h2: h2client.H2Client | None = None
        self.requests = 0  # on the current connection
        self.scheduled = 0.0
        self.abort_after: float | None = None
        self.deadline = math.inf
        self.scope = trio.CancelScope()
        self.finished = False  # no more requests for this slot


class Bench:
    """One run of ``trioiis bench`` in this process (without the status endpoint, the
    /proc sampling and the report)."""

    def __init__(self, options: BenchOptions, *, clock: Callable[[], float] | None = None) -> None:
        self.options = options
        self.clock = clock or trio.current_time
        self.tally = Tally()
        self.rng = random.Random(options.seed)
        self.request = RequestBytes(options)
        self.ssl_context: ssl.SSLContext | None = (
            client_ssl_context(options) if options.target.tls else None
        )
        self.start = 0.0
        self.deadline = math.inf  # no new requests from then on
        self._issued = 0
        self._timeline = options.plot_file is not None
        self._receive: trio.MemoryReceiveChannel[tuple[float, float | None]] | None = None
        self._slots: list[Slot] = []

    # ------------------------------------------------------------------ scheduling

    def _abort_after(self) -> float | None:
        options = self.options
        if options.abort_share and self.rng.random() < options.abort_share:
            self.tally.abort_planned += 1
            return options.abort_after.sample(self.rng)
        return None

    def due_time(self, index: int) -> float:
        """Open loop: when request ``index`` is due."""
        assert self.options.rate is not None
        return self.start + index / self.options.rate

    async def _scheduler(self, send: trio.MemorySendChannel[tuple[float, float | None]]) -> None:
        requests = self.options.requests
        async with send:
            index = 0
            while requests is None or index < requests:
                due = self.due_time(index)
                if due >= self.deadline:
                    break
                await trio.sleep_until(due)
                send.send_nowait((due, self._abort_after()))
                index += 1

    def _take_closed(self, slot: Slot, now: float) -> bool:
        """Closed loop: give ``slot`` the next request, ``now``; False when there is none."""
        if now >= self.deadline:
            return False
        requests = self.options.requests
        if requests is not None:
            if self._issued >= requests:
                return False
            self._issued += 1
        slot.scheduled = now
        slot.abort_after = self._abort_after() if self.options.abort_share else None
        return True

    async def _take_open(self, slot: Slot) -> bool:
        """Open loop: wait for the next due request; False when there is none."""
        assert self._receive is not None
        if self.clock() >= self.deadline:
            return False
        try:
            slot.scheduled, slot.abort_after = await self._receive.receive()
        except trio.EndOfChannel:
            return False
        if self.clock() >= self.deadline:
            self.tally.backlog += 1
            return False
        return True

    # ------------------------------------------------------------------ the run

    async def run(self) -> Tally:
        """Drive the whole run and return the tally.

        Cancellation: bounded by the run's own hard deadline (requests still open then are
        counted as cut off); a cancel from outside closes every connection and raises.
        """
        options = self.options
        self.start = self.clock()
        if options.duration is not None:
            self.deadline = self.start + options.duration
            hard_deadline = self.deadline + min(DRAIN_GRACE, options.timeout)
        else:
            hard_deadline = self.start + options.max_seconds
        with trio.move_on_at(hard_deadline) as scope:
            async with trio.open_nursery() as helpers:
                helpers.start_soon(self._watchdog)
                if options.rate is not None:
                    send, self._receive = trio.open_memory_channel[tuple[float, float | None]](
                        math.inf
                    )
                    helpers.start_soon(self._scheduler, send)
                async with trio.open_nursery() as nursery:
                    for _ in range(options.connections):
                        if options.h2:
                            slots = [Slot() for _ in range(options.streams)]
                            self._slots += slots
                            nursery.start_soon(self._h2_connection, slots)
                        else:
                            slot = Slot()
                            self._slots.append(slot)
                            nursery.start_soon(self._worker, slot)
                helpers.cancel_scope.cancel()
        if scope.cancelled_caught and options.duration is None:
            self.tally.hit_max_seconds = True
        if self._receive is not None:
            self.tally.backlog += self._receive.statistics().current_buffer_used
        else:
            # Closed loop: the service time is the latency.
            self.tally.service = LatencyHistogram.decode(self.tally.latency.encode())
        self.tally.elapsed = self.clock() - self.start
        self.tally.finish()
        return self.tally

    async def _watchdog(self) -> None:
        """Cancel the request of every slot past its deadline (``--timeout``)."""
        tick = min(WATCHDOG_TICK, self.options.timeout / 10)
        clock = self.clock
        while True:
            await trio.sleep(tick)
            now = clock()
            for slot in self._slots:
                if slot.deadline < now:
                    slot.scope.cancel()

    async def _worker(self, slot: Slot) -> None:
        """Make requests on ``slot`` until there are no more (or its HTTP/2 connection
        died). A timeout closes the HTTP/1.1 connection or resets the HTTP/2 stream."""
        try:
            while True:
                with trio.CancelScope() as scope:
                    slot.scope = scope
                    more = await self._requests(slot)
                if not scope.cancelled_caught:
                    if not more:
                        slot.finished = True
                    if slot.h2 is not None or not more:
                        return
                    continue
                # The watchdog cancelled the request in flight: it passed its deadline.
                slot.deadline = math.inf
                self.tally.errors["timeout"] += 1
                if slot.h2 is not None:
                    await slot.h2.flush()  # the stream's RST_STREAM
                    if slot.h2.dead is not None:
                        return
                else:
                    await self._close(slot)
        finally:
            if slot.h2 is None:
                self._close_now(slot)

    async def _requests(self, slot: Slot) -> bool:
        """Requests on ``slot``, one after the other: False once there are no more, True
        when the slot must go on with a new cancel scope (or a new HTTP/2 connection)."""
        tally = self.tally
        clock = self.clock
        take_closed = self._take_closed if self._receive is None else None
        timeout = self.options.timeout
        scope = slot.scope
        exchange = self.exchange
        record = self.record
        h2 = slot.h2
        while True:
            if h2 is not None and h2.dead is not None:
                return True
            started = clock()
            if take_closed is not None:
                if not take_closed(slot, started):
                    return False
            elif await self._take_open(slot):
                started = clock()
            else:
                return False
            tally.sent += 1
            slot.deadline = started + timeout
            outcome = await exchange(slot)
            slot.deadline = math.inf
            record(slot, started, outcome)
            if scope.cancel_called:
                # The watchdog found this request late just as it completed: the cancel
                # belongs to no request, so the next one gets a fresh scope.
                return True

    def record(self, slot: Slot, started: float, outcome: str | int) -> None:
        """Count one request's outcome: a status code (complete), ``aborted`` or an error."""
        tally = self.tally
        if type(outcome) is int:
            now = self.clock()
            tally.completed += 1
            tally.statuses[outcome] += 1
            tally.latency.record(now - slot.scheduled)
            if self._receive is not None:
                tally.service.record(now - started)
            if self._timeline:
                tally.completions.append((now - self.start, now - slot.scheduled))
            if slot.abort_after is not None:
                tally.abort_late += 1
        elif outcome == "aborted":
            tally.aborted += 1
            if self._timeline:
                tally.abort_times.append(self.clock() - self.start)
        else:
            tally.errors[str(outcome)] += 1

    # ------------------------------------------------------------------ one request

    async def exchange(self, slot: Slot) -> str | int:
        """Send the request planned on ``slot`` and read the answer (or abandon it).

        Returns the status code, ``"aborted"``, or an error kind (``connect``, ``tls``,
        ``alpn``, ``reset``, ``closed``, ``protocol``).

        Cancellation: a cancel leaves the connection unusable; the caller closes it.
        """
        if slot.h2 is not None:
            try:
                return await slot.h2.request(slot.abort_after)
            except h2client.StreamFailed as failure:
                return str(failure.args[0])
        try:
            connection = slot.connection
            if connection is None:
                connection = await self._open(slot)
            reader = slot.reader
            assert reader is not None
            if slot.abort_after is not None:
                return await self._abortable(slot, connection, reader)
            status = await exchange(connection, self.request.whole, reader)
        except ConnectionLost as lost:
            await self._close(slot)
            return str(lost.args[0])
        except ProtocolFailure:
            await self._close(slot)
            return "protocol"
        except Failed as failure:
            return str(failure.args[0])
        if not reader.keep_alive or not self.options.keep_alive:
            await self._close(slot)
        return status

    async def _abortable(
        self, slot: Slot, connection: Connection, reader: ResponseReader
    ) -> str | int:
        assert slot.abort_after is not None
        mode = self.options.abort_mode
        if mode == "mid-body":
            await connection.send_all(self.request.half)
            with trio.move_on_after(slot.abort_after):
                # The server may answer before the body is whole (a 413, a handler that does
                # not read it): the client then has its complete response, which is not an
                # abandoned request. (The body was never finished: the connection closes.)
                status = await read_response(connection, reader)
                await self._close(slot)
                return status
            await self._close(slot)
            return "aborted"
        await connection.send_all(self.request.whole)
        with trio.move_on_after(slot.abort_after):
            status = await read_response(connection, reader)
            if not reader.keep_alive or not self.options.keep_alive:
                await self._close(slot)
            return status
        if mode == "rst":
            connection.set_reset_on_close()
        await self._close(slot)
        return "aborted"

    async def _connect(self) -> Connection:
        try:
            connection = await connect(self.options, self.ssl_context)
        except OSError as exc:
            raise Failed("connect") from exc
        except ConnectionLost as lost:
            raise Failed(str(lost.args[0])) from lost
        self.tally.connections_opened += 1
        return connection

    async def _open(self, slot: Slot) -> Connection:
        connection = slot.connection = await self._connect()
        slot.reader = self.request.new_reader(self.options)
        return connection

    async def _close(self, slot: Slot) -> None:
        connection, slot.connection, slot.reader = slot.connection, None, None
        if connection is not None:
            self.tally.bytes_received += connection.received
            await connection.aclose()

    def _close_now(self, slot: Slot) -> None:
        """Close without a checkpoint (the run is ending, maybe cancelled)."""
        connection, slot.connection, slot.reader = slot.connection, None, None
        if connection is not None:
            self.tally.bytes_received += connection.received
            connection.close_now()

    # ------------------------------------------------------------------ HTTP/2

    async def _h2_connection(self, slots: list[Slot]) -> None:
        """One HTTP/2 connection with one task per slot (stream); a new connection when it
        dies, as long as requests remain."""
        while not all(slot.finished for slot in slots):
            try:
                client = await self._open_h2()
            except Failed as failure:
                # The connection is the first request's: it fails with it.
                slot = next(slot for slot in slots if not slot.finished)
                if not await self._take(slot):
                    return
                self.tally.sent += 1
                self.tally.errors[str(failure.args[0])] += 1
                continue
            try:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(client.read_frames)
                    async with trio.open_nursery() as streams:
                        for slot in slots:
                            if not slot.finished:
                                slot.h2 = client
                                streams.start_soon(self._worker, slot)
                    nursery.cancel_scope.cancel()
            finally:
                for slot in slots:
                    slot.h2 = None
                self.tally.bytes_received += client.transport.received
                client.close_now()

    async def _take(self, slot: Slot) -> bool:
        if self._receive is None:
            return self._take_closed(slot, self.clock())
        return await self._take_open(slot)

    async def _open_h2(self) -> h2client.H2Client:
        connection = await self._connect()
        if self.options.target.tls and connection.alpn != "h2":
            connection.close_now()
            raise Failed("alpn")
        client = h2client.H2Client(connection, self.options)
        await client.start()
        if client.dead is not None:
            client.close_now()
            raise Failed(client.dead)
        return client


# ---------------------------------------------------------------------- status endpoint


async def fetch_status(options: BenchOptions, last: int | None = None) -> dict[str, Any] | None:
    """The target's trioiis status (``--status-path``, over HTTP/1.1), or None if it has none.

    Cancellation: a checkpoint; a cancelled fetch just closes its connection."""
    if options.status_path is None:
        return None
    target = options.target
    path = options.status_path if last is None else f"{options.status_path}?last={last}"
    http1 = dataclasses.replace(options, h2=False)
    client = h11.Connection(h11.CLIENT)
    body = bytearray()
    status = 0
    with trio.move_on_after(min(5.0, options.timeout)):
        try:
            connection = await connect(http1, client_ssl_context(http1) if target.tls else None)
        except (OSError, ConnectionLost):
            return None
        try:
            request = h11.Request(
                method="GET",
                target=path,
                headers=[("Host", target.host_header), ("Connection", "close")],
            )
            await connection.send_all(
                (client.send(request) or b"") + (client.send(h11.EndOfMessage()) or b"")
            )
            while True:
                event = client.next_event()
                if event is h11.NEED_DATA:
                    try:
                        client.receive_data(bytes(await connection.receive()))
                    except ConnectionLost as lost:
                        if lost.args[0] != "closed":
                            raise
                        client.receive_data(b"")
                elif isinstance(event, h11.Response):
                    status = event.status_code
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
        except (ConnectionLost, h11.ProtocolError):
            return None
        finally:
            connection.close_now()
        if status != 200:
            return None
        try:
            figures = json.loads(body)
        except ValueError:
            return None
        if isinstance(figures, dict) and figures.get("server") == "trioiis":
            return figures
    return None


async def settled_status(
    options: BenchOptions, before: dict[str, Any], aborted: int
) -> dict[str, Any] | None:
    """The status after a run, once the server has no request of the run left in flight
    (polled every 20 ms for at most 5 s), its time-to-cancel restricted to the run's own,
    and its ``requests`` without the bench's own status requests: every fetch after
    ``before``'s is one more request there (a fetch counts itself), none of the run's.

    Cancellation: as ``fetch_status``."""
    status = None
    fetches = 0
    with trio.move_on_after(5.0):
        while True:
            status = await fetch_status(options)
            fetches += 1
            if status is None:
                return None
            if (
                status["requests_in_flight"] <= before["requests_in_flight"]
                and status["connections_open"] <= before["connections_open"]
            ):
                break
            await trio.sleep(0.02)
    if status is None:
        return None
    cancelled = status["cancelled_by_client"] - before["cancelled_by_client"]
    final = await fetch_status(options, last=max(0, cancelled))
    if final is not None:
        status, fetches = final, fetches + 1
    return {**status, "requests": status["requests"] - fetches}
