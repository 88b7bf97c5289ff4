"""The IIS ``IHttpContext::ExecuteRequest`` sample, ported to trioiis.

On MAP_PATH for ``/`` or ``/default.aspx`` it clones the request, points the clone at
``/example/default.aspx``, runs it as a child request and returns PENDING; when the child has
finished, ``on_async_completion`` releases the clone and continues. The child's response is
the response the client gets (an unbuffered child writes to the client), and the built-in
static file handler sees that the response was sent and does not add to it.
"""

from __future__ import annotations

import trioiis
from trioiis import (
    CloneFlags,
    CompletionInfo,
    ExecuteFlags,
    HttpContext,
    HttpModule,
    Notification,
    Status,
)


class ExecuteRequestSampleModule(HttpModule):
    def __init__(self) -> None:
        self.child: HttpContext | None = None

    async def on_map_path(self, ctx: HttpContext, provider: trioiis.MapPathProvider) -> Status:
        # Only process requests for the root.
        if provider.url in ("/", "/default.aspx"):
            # Clone the current context and point the clone at another URL.
            self.child = ctx.clone_context(CloneFlags.BASICS)
            self.child.request.set_url("/example/default.aspx")
            # Execute the child request; wait for it (PENDING) if completion is expected.
            if ctx.execute_request(self.child, ExecuteFlags(0), None):
                return Status.PENDING
            self.child.release_cloned_context()
            self.child = None
        # Return processing to the pipeline.
        return Status.CONTINUE

    async def on_async_completion(
        self,
        ctx: HttpContext,
        notification: Notification,
        is_post: bool,
        provider: trioiis.EventProvider,
        completion: CompletionInfo,
    ) -> Status:
        # Release the child request.
        if self.child is not None:
            self.child.release_cloned_context()
            self.child = None
        # Return processing to the pipeline.
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(ExecuteRequestSampleModule), Notification.MAP_PATH, 0
    )
