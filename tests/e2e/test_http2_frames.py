"""hypothesis: random HTTP/2 frame sequences from a client, valid and not. The server never
fails internally, leaks no task and no descriptor, ends every stream answered or reset (or
the whole connection with GOAWAY), and one stream's misbehaviour leaves another alone."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import h2.errors
import h2.exceptions
import h2.settings
import trio
import trio.testing
from hyperframe.frame import DataFrame, PriorityFrame, RstStreamFrame, WindowUpdateFrame
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.h2_client import H2Client
from tests.helpers import all_tasks, register, running_server, wait_idle
from trioiis import HResultError, HttpContext, HttpModule, Limits, Notification, Status
from trioiis._constants import ERROR_HANDLE_EOF

E = h2.errors.ErrorCodes

actions = st.lists(
    st.one_of(
        st.tuples(st.just("get")),
        st.tuples(st.just("post"), st.integers(0, 3000), st.booleans()),
        st.tuples(st.just("data"), st.integers(0, 20), st.integers(0, 2000), st.booleans()),
        st.tuples(st.just("reset"), st.integers(0, 20)),
        st.tuples(st.just("ping")),
        st.tuples(st.just("window"), st.integers(0, 20), st.integers(1, 70_000)),
        st.tuples(st.just("initial_window"), st.integers(0, 200_000)),
        st.tuples(st.just("priority"), st.integers(1, 99)),
        # invalid: frames h2 would never let a client send
        st.tuples(st.just("raw_data"), st.integers(0, 99)),
        st.tuples(st.just("raw_rst"), st.integers(0, 99)),
        st.tuples(st.just("raw_window"), st.integers(0, 99), st.integers(0, 2**31 - 1)),
        st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=30)),
    ),
    max_size=25,
)


#: Short clocks: a stream the sequence left stuck ends in seconds, not minutes.
LIMITS = Limits(send_timeout=2, body_timeout=2, linger_timeout=0.5)


class Held(HttpModule):
    """/held answers once released; /echo reads the body and answers its length."""

    release: trio.Event

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        if ctx.request.url == "/held":
            await Held.release.wait()
            ctx.response.write(b"held")
            return Status.FINISH_REQUEST
        if ctx.request.url == "/echo":
            total = 0
            while ctx.request.remaining_entity_bytes != 0:
                try:
                    total += len(await ctx.request.read_entity_body(4096))
                except HResultError as exc:
                    if exc.hresult != ERROR_HANDLE_EOF:
                        raise
                    break
            ctx.response.write(str(total).encode())
            return Status.FINISH_REQUEST
        return Status.CONTINUE


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _pick(client: H2Client, index: int) -> int | None:
    sids = sorted(client.results)
    return sids[index % len(sids)] if sids else None


async def _act(client: H2Client, action: tuple[Any, ...]) -> None:
    """One action; h2's client refuses what a conforming client cannot do (skipped)."""
    conn = client.conn
    kind = action[0]
    try:
        if kind == "get":
            client.request("/hello.txt")
        elif kind == "post":
            _, size, end = action
            client.request(
                "/echo", method="POST", body=b"p" * size, end=end,
                extra=[(b"content-length", str(size).encode())] if end else None,
            )  # fmt: skip
        elif kind == "data":
            sid = _pick(client, action[1])
            if sid is not None:
                conn.send_data(sid, b"d" * action[2], end_stream=action[3])
        elif kind == "reset":
            sid = _pick(client, action[1])
            if sid is not None and sid != 1:  # stream 1 is the bystander
                conn.reset_stream(sid, E.CANCEL)
        elif kind == "ping":
            conn.ping(b"12345678")
        elif kind == "window":
            sid = _pick(client, action[1])
            conn.increment_flow_control_window(action[2], stream_id=sid)
        elif kind == "initial_window":
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: action[1]})
        elif kind == "priority":
            await client.send_raw(PriorityFrame(action[1] * 2 + 1, depends_on=0).serialize())
        elif kind == "raw_data":
            frame = DataFrame(action[1] * 2 + 3)
            frame.data = b"x"
            await client.send_raw(frame.serialize())
        elif kind == "raw_rst":
            await client.send_raw(RstStreamFrame(action[1] * 2 + 3).serialize())
        elif kind == "raw_window":
            frame = WindowUpdateFrame(action[1] * 2 + 3, window_increment=action[2])
            await client.send_raw(frame.serialize())
        elif kind == "garbage":
            await client.send_raw(action[1])
            client.corrupted = True  # the framing is lost: nothing more can be expected
    except (h2.exceptions.ProtocolError, h2.exceptions.FlowControlError, ValueError, KeyError):
        pass  # the client library refused (or knows the stream no more): nothing was sent
    await client.flush()


async def _finish(client: H2Client) -> None:
    """A well-behaved end: windows open again and every request body ended, so that each
    stream can finish."""
    conn = client.conn
    if client.corrupted:
        return
    try:
        conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 65535})
        conn.increment_flow_control_window(2**20)
    except (h2.exceptions.ProtocolError, ValueError):
        return
    for sid in list(client.results):
        with contextlib.suppress(h2.exceptions.ProtocolError, KeyError):
            conn.end_stream(sid)  # (unless already ended, reset or closed)
    await client.flush()


async def _drain(client: H2Client, done: Any) -> None:
    """Read until ``done()`` or the connection ends (a client confused by the garbage it
    sent counts as ended)."""
    with trio.move_on_after(6):
        while not done() and not client.closed and not client.corrupted:
            try:
                await client.receive_once()
            except h2.exceptions.ProtocolError:
                client.closed = True


async def scenario(site: Path, steps: list[tuple[Any, ...]]) -> None:
    Held.release = trio.Event()
    errors = Errors()
    logging.getLogger("trioiis").addHandler(errors)
    try:
        async with running_server(
            ("held", register(Held, Notification.BEGIN_REQUEST)), root=site, limits=LIMITS
        ) as srv:
            fds = len(os.listdir("/proc/self/fd"))
            client = await H2Client.connect(srv.port)
            async with client:
                client.ignore_stream_limit()
                bystander = client.request("/held")
                await client.flush()
                for step in steps:
                    await _act(client, step)
                await _finish(client)
                Held.release.set()
                others = [s for s in client.results if s != bystander]

                def settled() -> bool:
                    return all(
                        client.results[s].done or not _opened(client, s) for s in client.results
                    )

                await _drain(client, settled)
                failed = client.goaway is not None and client.goaway.error_code != E.NO_ERROR
                if not failed and not client.closed and not client.corrupted:
                    # Every stream ends answered or reset; the bystander is untouched.
                    assert settled()
                    result = client.results[bystander]
                    assert (result.status, bytes(result.body)) == (200, b"held")
                    for sid in others:
                        assert client.results[sid].done or not _opened(client, sid)
            await trio.testing.wait_all_tasks_blocked()
            # The server is fine: a new connection is served.
            fresh = await H2Client.connect(srv.port)
            async with fresh:
                assert (await fresh.get("/hello.txt")).status == 200
            with trio.fail_after(10):  # (a stream may still wait for a file lookup's thread)
                await wait_idle(srv.server)
            assert not [name for name in all_tasks() if "h2" in name]
            assert len(os.listdir("/proc/self/fd")) <= fds
    finally:
        logging.getLogger("trioiis").removeHandler(errors)
    assert not errors.records, [r.getMessage() for r in errors.records]


def _opened(client: H2Client, sid: int) -> bool:
    """The stream's HEADERS went out with its END_HEADERS (the client opened it)."""
    stream = client.conn.streams.get(sid)
    return stream is None or stream.state_machine.headers_sent


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=actions)
def test_random_frame_sequences(site: Path, steps: list[tuple[Any, ...]]) -> None:
    trio.run(scenario, site, steps)
