"""Every public async API is a checkpoint, even on its fast path (trio's rule)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trio.testing import assert_checkpoints

import trioiis
from tests.helpers import register, running_server
from trioiis import CloneFlags, ExecuteFlags, HttpContext, HttpModule, Notification, Status


async def test_public_async_apis_are_checkpoints_on_their_fast_paths(site: Path) -> None:
    checked: list[str] = []

    class Probe(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is not None:
                return Status.FINISH_REQUEST
            request, response = ctx.request, ctx.response
            request.insert_entity_body(b"x")
            with assert_checkpoints():
                await request.read_entity_body(1)  # served from inserted bytes
            checked.append("read_entity_body")
            with assert_checkpoints():
                await request.read_all()  # nothing left: fast path
            checked.append("read_all")
            with assert_checkpoints():
                await ctx.map_path("/hello.txt")
            checked.append("map_path")
            with assert_checkpoints():
                await ctx.notify_custom_notification(trioiis.CustomNotificationProvider())
            checked.append("notify_custom_notification")
            with assert_checkpoints():
                await ctx.run_child(
                    ctx.clone_context(CloneFlags.BASICS), ExecuteFlags.BUFFER_RESPONSE
                )
            checked.append("run_child")
            with assert_checkpoints():
                await response.flush()  # empty buffer: still sends the head
            checked.append("flush")
            return Status.FINISH_REQUEST

    probe = ("probe", register(Probe, Notification.BEGIN_REQUEST))
    async with running_server(probe, root=site) as srv, srv.client() as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert checked == [
        "read_entity_body",
        "read_all",
        "map_path",
        "notify_custom_notification",
        "run_child",
        "flush",
    ]
