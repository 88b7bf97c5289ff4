"""A module that answers /whoami with the client's address as the server sees it and the
process that served it: handy behind a load balancer and with ``--workers``.

Load it with ``trioiis serve --module whoami=examples/modules/whoami.py:register_module``.
``GET /whoami`` answers ``REMOTE_ADDR REMOTE_PORT PID`` on one line; every response of the
process carries ``X-Worker-Pid``.
"""

from __future__ import annotations

import os

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status


class WhoAmIModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        ctx.response.set_header("X-Worker-Pid", str(os.getpid()))
        if ctx.request.path != "/whoami":
            return Status.CONTINUE
        address = ctx.get_server_variable("REMOTE_ADDR")
        port = ctx.get_server_variable("REMOTE_PORT")
        ctx.response.set_header("Content-Type", "text/plain; charset=utf-8")
        ctx.response.write(f"{address} {port} {os.getpid()}\n".encode())
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(WhoAmIModule), Notification.BEGIN_REQUEST)
