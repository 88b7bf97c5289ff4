"""Handlers the scenarios need that ``examples/modules`` has not: a slow answer, a cancel_io storm.

* ``GET /slow`` answers ``slow`` after ``SLOW`` seconds (so that abandoned requests are
  still running on the server when their client goes).
* ``POST /storm`` reads its request body and calls ``ctx.cancel_io()`` after ``STORM_AFTER``
  seconds: a body still arriving then (a client that sent half of it) has its pending read
  aborted (``OperationAbortedError``) and is answered 503 — a storm of ``cancel_io`` calls
  under load, some of them cancelling real I/O.

    trioiis serve examples/site --module scenario=benchmarks/scenarios/modules.py:register_module
"""

from __future__ import annotations

import contextlib

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

SLOW = 0.05
STORM_AFTER = 0.005


class ScenarioModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        path = ctx.request.path
        if path == "/slow":
            while ctx.request.remaining_entity_bytes:
                await ctx.request.read_entity_body(65536)
            await trio.sleep(SLOW)
            ctx.response.write("slow\n")
            return Status.FINISH_REQUEST
        if path == "/storm" and ctx.get_parent_context() is None:
            return await self._storm(ctx)
        return Status.CONTINUE

    async def _storm(self, ctx: HttpContext) -> Status:
        aborted = False
        async with trio.open_nursery() as nursery:

            async def cancel_soon() -> None:
                await trio.sleep(STORM_AFTER)
                with contextlib.suppress(trioiis.InvalidHandleError):
                    ctx.cancel_io()

            nursery.start_soon(cancel_soon)
            try:
                while ctx.request.remaining_entity_bytes:
                    await ctx.request.read_entity_body(65536)
            except trioiis.OperationAbortedError:
                aborted = True
            nursery.cancel_scope.cancel()
        if aborted:
            ctx.response.set_status(503, "Service Unavailable")
            ctx.response.write("body read cancelled by cancel_io\n")
        else:
            ctx.response.write("storm\n")
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(ScenarioModule), Notification.BEGIN_REQUEST
    )
