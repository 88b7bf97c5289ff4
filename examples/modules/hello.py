"""A module that answers /hello itself, at BEGIN_REQUEST, ahead of the static file handler.

Load it with ``trioiis serve --module hello=examples/modules/hello.py:register_module``.
It registers for BEGIN_REQUEST, where it answers ``/hello`` and finishes the request, so the
static file handler never runs for that URL.
"""

from __future__ import annotations

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status


class HelloModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        if ctx.request.path != "/hello":
            return Status.CONTINUE
        ctx.response.set_header("Content-Type", "text/plain; charset=utf-8")
        ctx.response.write(b"Hello, world!\n")
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(HelloModule), Notification.BEGIN_REQUEST)
