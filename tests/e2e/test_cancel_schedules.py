"""hypothesis: random schedules of (client disconnect | cancel_io | normal completion) at a
random point of a request with a body. After each: no task of the request alive, no I/O
scope registered, and the client saw a complete well-formed response or a closed socket."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import h11
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

import trioiis
from tests.helpers import all_tasks, register, running_server
from trioiis import HttpContext, HttpModule, Notification, OperationAbortedError, Status


def parse_response(raw: bytes) -> tuple[int, bytes]:
    """Parse with a real h11 client: raises unless it is one complete response."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
    conn.receive_data(raw)
    conn.receive_data(b"")
    status, body = 0, b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, body
        else:
            raise AssertionError(f"incomplete response: {event!r}")


async def scenario(
    site: Path, action: str, size: int, point: int, chunk: int, splits: list[int]
) -> None:
    reached = trio.Event()
    ended = trio.Event()
    contexts: list[HttpContext] = []
    outcome: dict[str, Any] = {}

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            contexts.append(ctx)
            total = 0
            try:
                while True:
                    if total == point and action != "complete":
                        reached.set()
                        if action == "cancel_io":

                            async def canceller() -> None:
                                await trio.testing.wait_all_tasks_blocked()
                                outcome["cancelled"] = ctx.cancel_io()

                            ctx.start_soon(canceller)
                    try:
                        data = await ctx.request.read_entity_body(chunk)
                    except OperationAbortedError:
                        ctx.response.write(f"aborted {total}")
                        return Status.FINISH_REQUEST
                    except trioiis.HResultError:
                        break
                    total += len(data)
            finally:
                outcome["read"] = total
            ctx.response.write(f"read {total}")
            return Status.FINISH_REQUEST

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            ended.set()

    module = ("reader", register(Reader, Notification.BEGIN_REQUEST | Notification.END_REQUEST))
    body = bytes(size)
    limits = trioiis.Limits(linger_timeout=0.2)
    async with running_server(module, root=site, limits=limits) as srv:
        with trio.fail_after(20):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            head = f"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
            to_send = body if action == "complete" else body[:point]
            await stream.send_all(head)
            cuts = sorted({c % (len(to_send) + 1) for c in splits} | {0, len(to_send)})
            for a, b in itertools.pairwise(cuts):
                await stream.send_all(to_send[a:b])
            raw = b""
            if action == "disconnect":
                await reached.wait()
                await stream.aclose()
            else:
                while data := await stream.receive_some(65536):
                    raw += data
                    if raw.endswith((f"read {size}".encode(), f"aborted {point}".encode())):
                        break
                await stream.aclose()
            await ended.wait()
            await trio.testing.wait_all_tasks_blocked()
        ctx = contexts[0]
        assert ctx.pending_io_count == 0
        assert not ctx._task_scopes
        assert ctx.lifecycle.ended
        assert "canceller" not in set(all_tasks())
        if action == "disconnect":
            assert ctx.lifecycle.outcome is trioiis.Outcome.CANCELLED_BY_CLIENT
            assert outcome["read"] == point
        elif action == "cancel_io":
            assert outcome["cancelled"] == 1
            assert parse_response(raw) == (200, f"aborted {point}".encode())
        else:
            assert parse_response(raw) == (200, f"read {size}".encode())


@settings(max_examples=150, deadline=None)
@given(
    action=st.sampled_from(["complete", "disconnect", "cancel_io"]),
    size=st.integers(1, 5000),
    fraction=st.floats(0, 1, exclude_max=True),
    chunk=st.integers(1, 2048),
    splits=st.lists(st.integers(0, 10_000), max_size=4),
)
def test_random_cancel_schedules_leave_nothing_behind(
    tmp_path_factory: Any, action: str, size: int, fraction: float, chunk: int, splits: list[int]
) -> None:
    site = tmp_path_factory.mktemp("site")
    point = int(size * fraction)
    trio.run(scenario, site, action, size, point, chunk, splits)
