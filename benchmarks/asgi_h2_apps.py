"""Raw ASGI apps for benchmarks/http2.py (Hypercorn's side): ``/hello``, ``/1k.bin`` read
from ``$ASGI_H2_ROOT`` per request (as a static server reads its file), and ``/sleep/N``,
which sends its response head and then waits forever, writing ``time.monotonic()`` to
``$TRIOIIS_CANCEL_LOG`` when it is cancelled or handed ``http.disconnect``.

    .venv/bin/python -m hypercorn --worker-class trio benchmarks/asgi_h2_apps.py:app
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import trio
from asgi_hello import app as hello_app  # type: ignore[import-not-found]

ROOT = Path(os.environ.get("ASGI_H2_ROOT", "."))
LOG = os.environ.get("TRIOIIS_CANCEL_LOG", os.devnull)


def _log(key: str, kind: str) -> None:
    with open(LOG, "a") as log:
        log.write(f"{key} {kind} {time.monotonic()}\n")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope.get("path", "")
    if scope["type"] != "http" or path == "/hello":
        await hello_app(scope, receive, send)
        return
    if path.startswith("/sleep/"):
        key = path[7:]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            _log(key, "disconnect")

        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(disconnected)
                await trio.sleep_forever()
        except trio.Cancelled:
            _log(key, "cancelled")
            raise
        return
    body = (ROOT / path.lstrip("/")).read_bytes()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
