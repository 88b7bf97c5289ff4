"""The upload module of ``upload_unsafe.py``, made cancellation-safe.

Three changes, each the answer to one way of being cancelled:

1. ``try``/``finally`` around everything after the counter goes up, so the counter comes
   down and the ``.part`` file goes away whatever ends the upload.
2. The cleanup is *shielded* and has a deadline: in a cancelled scope every ``await`` raises
   ``trio.Cancelled`` at once, so an unshielded ``await file.aclose()`` would never run.
3. ``OperationAbortedError`` (``cancel_io()``) and ``ConnectionInvalidError`` (the client left)
   are answered, not raised: the module decides what the client gets (400).
"""

from __future__ import annotations

import itertools

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

IN_PROGRESS = 0
_names = itertools.count()


class SafeUploadModule(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        global IN_PROGRESS
        if ctx.request.path != "/upload" or ctx.request.method != "PUT":
            return Status.CONTINUE
        folder = trio.Path(ctx.site.root) / "uploads"
        await folder.mkdir(exist_ok=True)
        part = folder / f"{next(_names)}.part"
        IN_PROGRESS += 1
        file = None
        done = False
        try:
            file = await trio.open_file(part, "wb")
            async for chunk in ctx.request.iter_entity_body():
                await file.write(chunk)
            await file.aclose()
            file = None
            await part.rename(folder / "upload.bin")
            done = True
        except (trioiis.OperationAbortedError, trioiis.ConnectionInvalidError):
            ctx.response.set_status(400)
            ctx.response.write("upload aborted\n")
            return Status.FINISH_REQUEST
        finally:
            IN_PROGRESS -= 1
            with trio.CancelScope(shield=True) as cleanup:
                cleanup.deadline = trio.current_time() + 5
                if file is not None:
                    await file.aclose()
                if not done:
                    await part.unlink(missing_ok=True)
        ctx.response.set_status(201)
        return Status.FINISH_REQUEST


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(SafeUploadModule), Notification.BEGIN_REQUEST
    )
