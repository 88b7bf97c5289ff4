"""A served request leaves no reference cycle behind: its context, request, response,
headers and (once closed) its connection are freed by reference counting the moment the
server drops them, not by Python's cyclic GC, whose collections cost CPU on every request
and pauses under load."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import HttpContext, HttpModule, HttpResponse, Notification, Status
from trioiis._errors import InvalidHandleError

OURS = {
    "HttpContext", "HttpRequest", "HttpResponse", "Headers", "ModuleContextContainer",
    "HttpConnection", "Http1Connection", "_Session",
}  # fmt: skip


@contextmanager
def garbage_kept() -> Iterator[list[object]]:
    """Collect first, then keep what the cyclic GC finds unreachable inside the block."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
        gc.collect()
        found.extend(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


async def test_served_requests_leave_no_cycles(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    async with running_server(root=tmp_path) as srv:
        with trio.fail_after(10):
            await raw_request(
                srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            with garbage_kept() as garbage:
                for request in (
                    b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    b"GET /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    b"POST /hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n"
                    b"Connection: close\r\n\r\nabc",
                ):
                    raw = await raw_request(srv.port, request)
                    assert statuses_in(raw)[0] in (200, 404, 405)
                await trio.testing.wait_all_tasks_blocked()
    left = sorted({type(o).__name__ for o in garbage} & OURS)
    assert left == [], f"request objects freed only by the cyclic GC: {left}"


async def test_a_response_kept_past_its_request_says_the_request_ended(tmp_path: Path) -> None:
    """Only the response object was kept: its context is gone, so a call that needs the
    context raises InvalidHandleError (not AttributeError, not a crash of the server)."""
    kept: list[HttpResponse] = []

    class Keep(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            kept.append(ctx.response)
            return Status.CONTINUE

    (tmp_path / "hello.txt").write_text("hello\n")
    module = ("keep", register(Keep, Notification.BEGIN_REQUEST))
    async with running_server(module, root=tmp_path) as srv:
        with trio.fail_after(10):
            raw = await raw_request(
                srv.port, b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            await trio.testing.wait_all_tasks_blocked()
    assert statuses_in(raw) == [200]
    assert kept[0].status == 200  # its own state is still readable
    with pytest.raises(InvalidHandleError):
        _ = kept[0].headers_sent
