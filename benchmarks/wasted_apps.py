"""The CPU-bound handler of ``benchmarks/wasted_work.py``, the same work for every server.

``GET /burn`` does ``SLICES`` slices of pure-Python CPU work (``burn_slice``), yielding to
the event loop between slices, then answers ``burnt``. The handler never looks for its
client itself: whether the work of an abandoned request stops is up to the server.

* ``app``: a raw ASGI app (Hypercorn-trio, Uvicorn); it yields with anyio's checkpoint,
  which runs on Trio and asyncio alike.
* ``register_module``: a trioiis module
  (``--module burn=benchmarks/wasted_apps.py:register_module``); it yields with Trio's
  checkpoint, where trioiis cancels the request when its client leaves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

#: Slices per request, and iterations of ``sum(range(...))`` per slice (about 0.5 ms here).
SLICES = 20
ITERATIONS = 40_000
BODY = b"burnt\n"


def burn_slice() -> int:
    return sum(range(ITERATIONS))


# ---------------------------------------------------------------------- ASGI

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    import anyio

    for _ in range(SLICES):
        burn_slice()
        await anyio.lowlevel.checkpoint()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"6")],
        }
    )
    await send({"type": "http.response.body", "body": BODY})


# ---------------------------------------------------------------------- trioiis


def register_module(server_version: int, info: Any, server: Any) -> None:
    import trio

    import trioiis

    class BurnModule(trioiis.HttpModule):
        async def on_begin_request(
            self, ctx: trioiis.HttpContext, provider: trioiis.EventProvider
        ) -> trioiis.Status:
            for _ in range(SLICES):
                burn_slice()
                await trio.lowlevel.checkpoint()
            ctx.response.set_header("Content-Type", "text/plain")
            ctx.response.write(BODY)
            return trioiis.Status.FINISH_REQUEST

    info.set_request_notifications(
        trioiis.SimpleFactory(BurnModule), trioiis.Notification.BEGIN_REQUEST
    )
