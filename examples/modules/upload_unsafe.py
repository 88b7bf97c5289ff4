"""A deliberately UNSAFE upload module: cancel it mid-upload and it leaks.

``PUT /upload`` streams the body into ``uploads/<n>.part`` under the site root, then renames
it to ``uploads/upload.bin`` and answers 201. It counts uploads in progress in ``IN_PROGRESS``.
If the client leaves, ``cancel_io()`` aborts the read, or the server shuts down in the
middle, the ``.part`` file stays behind and the counter stays up: nothing cleans up on the
way out. ``upload_safe.py`` is the fixed version; ``tests/test_testing_kit.py`` shows
``trioiis.testing.check_cancellation_safety`` catching this one and passing that one.
"""

from __future__ import annotations

import itertools

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

IN_PROGRESS = 0
_names = itertools.count()


class UnsafeUploadModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        global IN_PROGRESS
        if ctx.request.path != "/upload" or ctx.request.method != "PUT":
            return Status.CONTINUE
        folder = trio.Path(ctx.site.root) / "uploads"
        await folder.mkdir(exist_ok=True)
        part = folder / f"{next(_names)}.part"
        IN_PROGRESS += 1
        file = await trio.open_file(part, "wb")
        async for chunk in ctx.request.iter_entity_body():
            await file.write(chunk)  # a cancel here leaves the file open and the .part behind
        await file.aclose()
        await part.rename(folder / "upload.bin")
        IN_PROGRESS -= 1
        ctx.response.set_status(201)
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(UnsafeUploadModule), Notification.BEGIN_REQUEST
    )
