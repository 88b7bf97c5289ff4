"""The load generator: connections as Trio tasks, h11 on raw sockets, aborts, latency.

Closed loop (no ``--rate``): each connection takes the next request as soon as its last one
has ended; its latency runs from that moment. Open loop (``--rate R``): a scheduler task
releases request *i* at ``start + i / R`` into a queue that the connections take from; its
latency runs from that scheduled time, not from when a connection got round to it, so a
stalled server shows as the queueing delay it causes (the coordinated-omission correction
of wrk2). The time from actually starting the request is recorded too (``service``).

Every figure lives in a ``Tally``; ``sent == completed + aborted + errors + cut_off``.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import random
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import trio

from .histogram import LatencyHistogram
from .options import BenchOptions

#: How long a duration-bounded run lets requests in progress at its end finish (at most).
DRAIN_GRACE = 2.0
USER_AGENT = "trioiis-bench"


@dataclass(frozen=True, slots=True)
class Plan:
    """One request: its number, when it was due, and whether (and when) to abandon it."""

    index: int
    scheduled: float
    abort_after: float | None = None


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


class _Failed(Exception):
    """A request failed; ``args[0]`` is the error kind."""


@dataclass
class _Connection:
    stream: trio.SocketStream | None = None
    h11: h11.Connection | None = None
    requests: int = 0


class Bench:
    """One run of ``trioiis bench`` (without the status endpoint and the report)."""

    def __init__(self, options: BenchOptions, *, clock: Callable[[], float] | None = None) -> None:
        self.options = options
        self.clock = clock or trio.current_time
        self.tally = Tally()
        self.rng = random.Random(options.seed)
        self.body = b"x" * options.body_size
        self.start = 0.0
        self.deadline = math.inf  # no new requests from then on
        self._issued = 0
        self._timeline = options.plot_file is not None
        self._receive: trio.MemoryReceiveChannel[Plan] | None = None

    # ------------------------------------------------------------------ scheduling

    def _plan(self, index: int, scheduled: float) -> Plan:
        options = self.options
        abort_after = None
        if options.abort_share and self.rng.random() < options.abort_share:
            abort_after = options.abort_after.sample(self.rng)
            self.tally.abort_planned += 1
        return Plan(index, scheduled, abort_after)

    def due_time(self, index: int) -> float:
        """Open loop: when request ``index`` is due."""
        assert self.options.rate is not None
        return self.start + index / self.options.rate

    async def _scheduler(self, send: trio.MemorySendChannel[Plan]) -> None:
        requests = self.options.requests
        async with send:
            index = 0
            while requests is None or index < requests:
                due = self.due_time(index)
                if due >= self.deadline:
                    break
                await trio.sleep_until(due)
                send.send_nowait(self._plan(index, due))
                index += 1

    async def _next_plan(self) -> Plan | None:
        if self.clock() >= self.deadline:
            return None
        if self._receive is not None:
            try:
                plan = await self._receive.receive()
            except trio.EndOfChannel:
                return None
            if self.clock() >= self.deadline:
                self.tally.backlog += 1
                return None
            return plan
        if self.options.requests is not None and self._issued >= self.options.requests:
            return None
        self._issued += 1
        return self._plan(self._issued - 1, self.clock())

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
            async with trio.open_nursery() as nursery:
                if options.rate is not None:
                    send, self._receive = trio.open_memory_channel[Plan](math.inf)
                    nursery.start_soon(self._scheduler, send)
                for _ in range(options.connections):
                    nursery.start_soon(self._worker)
        if scope.cancelled_caught and options.duration is None:
            self.tally.hit_max_seconds = True
        if self._receive is not None:
            self.tally.backlog += self._receive.statistics().current_buffer_used
        self.tally.elapsed = self.clock() - self.start
        self.tally.finish()
        return self.tally

    async def _worker(self) -> None:
        connection = _Connection()
        try:
            while (plan := await self._next_plan()) is not None:
                self.tally.sent += 1
                started = self.clock()
                outcome = await self.exchange(connection, plan)
                self.record(plan, started, outcome)
        finally:
            await self._close(connection)

    def record(self, plan: Plan, started: float, outcome: str | int) -> None:
        """Count one request's outcome: a status code (complete), ``aborted`` or an error."""
        tally = self.tally
        if isinstance(outcome, int):
            now = self.clock()
            tally.completed += 1
            tally.statuses[outcome] += 1
            tally.latency.record(now - plan.scheduled)
            tally.service.record(now - started)
            if self._timeline:
                tally.completions.append((now - self.start, now - plan.scheduled))
            if plan.abort_after is not None:
                tally.abort_late += 1
        elif outcome == "aborted":
            tally.aborted += 1
            if self._timeline:
                tally.abort_times.append(self.clock() - self.start)
        else:
            tally.errors[outcome] += 1

    # ------------------------------------------------------------------ one request

    async def exchange(self, connection: _Connection, plan: Plan) -> str | int:
        """Send ``plan``'s request and read the answer (or abandon it).

        Returns the status code, ``"aborted"``, or an error kind (``connect``, ``reset``,
        ``closed``, ``protocol``, ``timeout``).

        Cancellation: a cancel leaves the connection unusable; the caller closes it.
        """
        try:
            with trio.fail_after(self.options.timeout):
                return await self._exchange(connection, plan)
        except trio.TooSlowError:
            await self._close(connection)
            return "timeout"
        except _Failed as failure:
            await self._close(connection)
            return str(failure.args[0])

    async def _exchange(self, connection: _Connection, plan: Plan) -> str | int:
        options = self.options
        target = options.target
        if connection.stream is None:
            try:
                connection.stream = await trio.open_tcp_stream(target.address, target.port)
            except OSError as exc:
                raise _Failed("connect") from exc
            connection.h11 = h11.Connection(h11.CLIENT)
            connection.requests = 0
            self.tally.connections_opened += 1
        stream, client = connection.stream, connection.h11
        assert client is not None
        headers = [("Host", target.host_header), ("User-Agent", USER_AGENT)]
        if self.body or options.method in ("POST", "PUT", "PATCH"):
            headers.append(("Content-Length", str(len(self.body))))
        if not options.keep_alive:
            headers.append(("Connection", "close"))
        try:
            head = client.send(
                h11.Request(method=options.method, target=target.target, headers=headers)
            )
            body = client.send(h11.Data(data=self.body)) if self.body else b""
            end = client.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise _Failed("protocol") from exc
        assert head is not None
        assert body is not None
        assert end is not None
        connection.requests += 1
        if plan.abort_after is not None and options.abort_mode == "mid-body":
            await self._send(stream, head + body[: len(body) // 2])
            await trio.sleep(plan.abort_after)
            await self._abandon(connection, "fin")
            return "aborted"
        await self._send(stream, head + body + end)
        if plan.abort_after is None:
            status = await self._read_response(connection)
        else:
            with trio.move_on_after(plan.abort_after):
                return await self._read_response(connection)
            await self._abandon(connection, options.abort_mode)
            return "aborted"
        return status

    async def _send(self, stream: trio.SocketStream, data: bytes) -> None:
        try:
            await stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise _Failed("reset") from exc

    async def _read_response(self, connection: _Connection) -> int:
        stream, client = connection.stream, connection.h11
        assert stream is not None
        assert client is not None
        status = 0
        while True:
            try:
                event = client.next_event()
            except h11.RemoteProtocolError as exc:
                raise _Failed("closed" if client.their_state is h11.ERROR else "protocol") from exc
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise _Failed("reset") from exc
                self.tally.bytes_received += len(data)
                client.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise _Failed("closed")
        if (
            self.options.keep_alive
            and client.our_state is h11.DONE
            and client.their_state is h11.DONE
        ):
            client.start_next_cycle()
        else:
            await self._close(connection)
        return status

    async def _abandon(self, connection: _Connection, mode: str) -> None:
        """Close the connection with FIN (``fin``) or RST (``rst``: SO_LINGER 0)."""
        if connection.stream is not None and mode == "rst":
            with contextlib.suppress(OSError):
                connection.stream.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
        await self._close(connection)

    async def _close(self, connection: _Connection) -> None:
        stream, connection.stream, connection.h11 = connection.stream, None, None
        if stream is not None:
            await trio.aclose_forcefully(stream)


# ---------------------------------------------------------------------- status endpoint


async def fetch_status(options: BenchOptions, last: int | None = None) -> dict[str, Any] | None:
    """The target's trioiis status (``--status-path``), or None if it has none.

    Cancellation: a checkpoint; a cancelled fetch just closes its connection."""
    if options.status_path is None:
        return None
    target = options.target
    path = options.status_path if last is None else f"{options.status_path}?last={last}"
    client = h11.Connection(h11.CLIENT)
    body = bytearray()
    status = 0
    with trio.move_on_after(min(5.0, options.timeout)):
        try:
            stream = await trio.open_tcp_stream(target.address, target.port)
        except OSError:
            return None
        async with stream:
            request = h11.Request(
                method="GET",
                target=path,
                headers=[("Host", target.host_header), ("Connection", "close")],
            )
            try:
                await stream.send_all(
                    (client.send(request) or b"") + (client.send(h11.EndOfMessage()) or b"")
                )
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
            except (trio.BrokenResourceError, h11.ProtocolError):
                return None
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
    (polled every 20 ms for at most 5 s), its time-to-cancel restricted to the run's own.

    Cancellation: as ``fetch_status``."""
    status = None
    with trio.move_on_after(5.0):
        while True:
            status = await fetch_status(options)
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
    return await fetch_status(options, last=max(0, cancelled)) or status
