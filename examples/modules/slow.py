"""A handler that takes 20 ms: ``/slow`` waits (cancellably), then answers. The target of
``docs/bench.md``'s first run:

    trioiis serve examples/site --module status \
        --module slow=examples/modules/slow.py:register_module

Cancelled (the client left, ``request_timeout``): the wait ends at once and nothing is
written; the server logs the request as cancelled.
"""

from __future__ import annotations

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

DELAY = 0.020


class SlowModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        if ctx.request.path != "/slow":
            return Status.CONTINUE
        await trio.sleep(DELAY)
        ctx.response.set_header("Content-Type", "text/plain; charset=utf-8")
        ctx.response.write(b"slow\n")
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(SlowModule), Notification.BEGIN_REQUEST)
