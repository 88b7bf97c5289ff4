"""A raw ASGI hello app, the peers' equivalent of ``examples/modules/hello.py``.

``GET /hello`` answers ``200``, ``Content-Type: text/plain; charset=utf-8``, a
``Content-Length`` and ``Hello, world!``; any other path answers ``404``. No framework,
no middleware: whatever the peers spend per request is the server's own cost.

    .venv/bin/python -m uvicorn --app-dir benchmarks asgi_hello:app
    .venv/bin/python -m hypercorn --worker-class trio benchmarks/asgi_hello.py:app
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

BODY = b"Hello, world!\n"
HELLO_START = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(BODY)).encode()),
    ],
}
HELLO_BODY = {"type": "http.response.body", "body": BODY}
NOT_FOUND = b"404 Not Found\n"
NOT_FOUND_START = {
    "type": "http.response.start",
    "status": 404,
    "headers": [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(NOT_FOUND)).encode()),
    ],
}
NOT_FOUND_BODY = {"type": "http.response.body", "body": NOT_FOUND}


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        if scope["path"] == "/hello":
            await send(HELLO_START)
            await send(HELLO_BODY)
        else:
            await send(NOT_FOUND_START)
            await send(NOT_FOUND_BODY)
    elif kind == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
