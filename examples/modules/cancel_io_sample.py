"""The IIS ``IHttpContext::CancelIo`` sample, ported unchanged.

On every SEND_RESPONSE it cancels the request's pending I/O and continues. In trioiis the
response is not yet being written when SEND_RESPONSE runs, so ``cancel_io()`` finds nothing
pending and returns 0 — the response goes out intact, as it does under IIS.
"""

from __future__ import annotations

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status


class CancelIoSampleModule(HttpModule):
    async def on_send_response(
        self, ctx: HttpContext, provider: trioiis.SendResponseProvider
    ) -> Status:
        # Cancel any pending I/O operations.
        ctx.cancel_io()
        # Return processing to the pipeline.
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(CancelIoSampleModule), Notification.SEND_RESPONSE, 0
    )
