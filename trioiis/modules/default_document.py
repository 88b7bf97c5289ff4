"""default_document: a folder URL gets its default document (EXECUTE_REQUEST_HANDLER).

``/dir`` → 301 to ``/dir/``; ``/dir/`` → the first existing name of ``default_documents``
(``index.html``, ``index.htm``, ``default.htm``). With none, 403.14 ("listing denied"), which
directory_listing may replace later in the same mapping.
"""

from __future__ import annotations

import functools
import stat

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

from .static_file import FileAccess, find_folder, send_error, serve_file

DEFAULT_DOCUMENTS = ("index.html", "index.htm", "default.htm")


class DefaultDocumentModule(HttpModule):
    def __init__(self, documents: tuple[str, ...], access: FileAccess) -> None:
        self.documents = documents
        self.access = access

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        request, response = ctx.request, ctx.response
        if response.headers_sent:
            return Status.FINISH_REQUEST
        located = await find_folder(ctx, self.access)
        if located is None:
            return Status.CONTINUE
        if isinstance(located, Status):
            return located
        folder, _ = located
        for name in self.documents:
            path = folder / name
            document = await self.access.lookup(ctx, path, read_small=request.method == "GET")
            if document is not None and stat.S_ISREG(document.info.st_mode):
                return await serve_file(ctx, path, document)
        send_error(ctx, 403)
        response.set_status(403, "Forbidden", 14)
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    documents = server.default_documents or DEFAULT_DOCUMENTS
    info.set_request_notifications(
        trioiis.SimpleFactory(
            functools.partial(DefaultDocumentModule, documents, FileAccess(server))
        ),
        Notification.EXECUTE_REQUEST_HANDLER,
    )
