"""Compose a page from two child requests (server-side includes, the IIS way).

``GET /compose`` runs ``/parts/header.html`` and ``/parts/footer.html`` as child requests
with ``EXECUTE_FLAG_BUFFER_RESPONSE``: each child goes through the whole pipeline (static
file handler, conditional requests, any module you add), and its body lands in this
request's buffer, between the lines this module writes itself.

    trioiis serve examples/site --module compose=examples/modules/compose.py:register_module
"""

from __future__ import annotations

import trioiis
from trioiis import CloneFlags, ExecuteFlags, HttpContext, HttpModule, Notification, Status

PARTS = ("/parts/header.html", "/parts/footer.html")


class ComposeModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        if ctx.request.path != "/compose" or ctx.get_parent_context() is not None:
            return Status.CONTINUE
        response = ctx.response
        response.set_header("Content-Type", "text/html; charset=utf-8")
        response.write("<!doctype html>\n")
        for url in PARTS:
            child = ctx.clone_context(CloneFlags.BASICS)
            child.request.set_url(url)
            completion = await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
            child.release_cloned_context()
            if not completion.ok or child.response.status != 200:
                response.clear()
                response.set_status(502, "Bad Gateway")
                response.write(f"part {url} failed with {child.response.status}\n")
                return Status.FINISH_REQUEST
            if url == PARTS[0]:
                response.write("<main>composed from two child requests</main>\n")
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(trioiis.SimpleFactory(ComposeModule), Notification.BEGIN_REQUEST)
