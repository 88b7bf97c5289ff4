"""Applications the ASGI WebSocket tests mount: a FastAPI app (run on Trio through anyio)
and a raw ASGI app for the conformance cases. ``EVENTS`` records what the apps saw."""

from __future__ import annotations

from typing import Any

import trio
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

#: What the apps saw, in order: ("disconnect", path, code), ...
EVENTS: list[tuple[Any, ...]] = []
#: Set by the apps when they reach a point a test waits for.
REACHED: dict[str, trio.Event] = {}


def reached(name: str) -> trio.Event:
    return REACHED.setdefault(name, trio.Event())


def disconnected(path: str, code: int) -> None:
    """Record the app's ``websocket.disconnect`` (and wake a test waiting for it)."""
    EVENTS.append(("disconnect", path, code))
    reached(f"{path} disconnect").set()


fastapi_app = FastAPI()


@fastapi_app.websocket("/echo")
async def fastapi_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                disconnected("/ws/echo", message["code"])
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect as exc:
        disconnected("/ws/echo", exc.code)


@fastapi_app.websocket("/json")
async def fastapi_json(websocket: WebSocket) -> None:
    await websocket.accept(
        subprotocol="chat" if "chat" in websocket.scope["subprotocols"] else None
    )
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"got": data, "path": websocket.url.path})
    except WebSocketDisconnect as exc:
        disconnected("/ws/json", exc.code)


@fastapi_app.get("/plain")
async def fastapi_plain() -> dict[str, str]:
    return {"hello": "http"}


async def conformance(scope: Any, receive: Any, send: Any) -> None:
    """A raw ASGI app: what to do comes from the path."""
    if scope["type"] != "websocket":
        return
    path = scope["path"]
    event = await receive()
    assert event["type"] == "websocket.connect"
    if path == "/ws/deny":
        await send(
            {
                "type": "websocket.http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"text/plain"), (b"x-why", b"no token")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": b"token required"})
        return
    if path == "/ws/reject":
        await send({"type": "websocket.close"})
        return
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": "chat" if "chat" in scope["subprotocols"] else None,
            "headers": [(b"x-hello", b"world")],
        }
    )
    if path == "/ws/close":
        await send({"type": "websocket.close", "code": 4100, "reason": "nope"})
        event = await receive()
        disconnected(path, event["code"])
        return
    if path == "/ws/return":
        return  # returns with the socket open: closed with 1000
    if path == "/ws/raise":
        raise RuntimeError("boom after accept")
    # /ws/wait: record the end, however it comes.
    reached(path).set()
    while True:
        event = await receive()
        if event["type"] == "websocket.disconnect":
            disconnected(path, event["code"])
            return
        await send({"type": "websocket.send", "text": event.get("text") or "bytes"})
