"""Applications the app-hosting tests mount: a Starlette app (run on Trio through anyio), a
Flask app, and raw ASGI apps for the conformance cases. ``EVENTS`` records what the apps
saw, for the tests to check (reset by each test)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import sniffio
import trio
from flask import Flask, Response
from flask import request as flask_request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route

#: What the apps saw, in order: ("startup",), ("disconnect", path), ("closed", path)…
EVENTS: list[tuple[str, ...]] = []
#: Set by raw ASGI apps when they reach a point a test waits for.
REACHED: dict[str, trio.Event] = {}


#: Set (from the worker thread) when a WSGI response's close() ran, by path.
CLOSED: dict[str, threading.Event] = {}


def reached(name: str) -> trio.Event:
    return REACHED.setdefault(name, trio.Event())


def closed(path: str) -> threading.Event:
    return CLOSED.setdefault(path, threading.Event())


def on_close(path: str) -> None:
    EVENTS.append(("closed", path))
    closed(path).set()


# ---------------------------------------------------------------- Starlette


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # Really on Trio: anyio picked its Trio backend.
    EVENTS.append(("startup", sniffio.current_async_library()))
    yield {"greeting": "hello from lifespan"}
    EVENTS.append(("shutdown",))


async def hello(request: Request) -> PlainTextResponse:
    scope = request.scope
    return PlainTextResponse(
        f"{request.state.greeting}|{scope['root_path']}|{scope['path']}|{request.url.path}"
        f"|{request.query_params.get('q', '')}"
    )


async def echo(request: Request) -> StreamingResponse:
    """Streams the request body back, chunk by chunk, upper-cased."""

    async def upper() -> AsyncIterator[bytes]:
        async for chunk in request.stream():
            if chunk:
                yield chunk.upper()

    return StreamingResponse(upper(), media_type="application/octet-stream")


async def count(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "3"))

    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()
            await trio.lowlevel.checkpoint()

    return StreamingResponse(numbers(), media_type="text/plain")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("the app broke")


async def wait_disconnect(scope: Any, receive: Any, send: Any) -> None:
    """Raw ASGI: read the body, then wait for http.disconnect and record it."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            EVENTS.append(("disconnect", scope["path"]))
            reached("disconnect").set()
            return
        reached("chunk").set()
        if not message.get("more_body"):
            reached("body-read").set()


starlette_app = Starlette(
    routes=[
        Route("/hello", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/count", count),
        Route("/boom", boom),
        Mount("/raw", app=wait_disconnect),
    ],
    lifespan=lifespan,
)


# ---------------------------------------------------------------- raw ASGI


async def asyncio_only(scope: Any, receive: Any, send: Any) -> None:
    import asyncio

    if scope["type"] == "lifespan":
        return  # no lifespan support
    await asyncio.sleep(0.001)


async def asyncio_lifespan(scope: Any, receive: Any, send: Any) -> None:
    """Its lifespan startup needs asyncio."""
    import asyncio

    await receive()
    await asyncio.sleep(0.001)


async def failing_startup(scope: Any, receive: Any, send: Any) -> None:
    assert scope["type"] == "lifespan"
    await receive()
    await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


async def conformance(scope: Any, receive: Any, send: Any) -> None:
    """One behaviour per path, after the cases of Uvicorn's and Hypercorn's own tests."""
    if scope["type"] == "lifespan":
        return
    path = scope["path"].removeprefix(scope["root_path"])
    if path == "/scope":
        body = repr(
            {
                k: scope[k]
                for k in (
                    "type",
                    "http_version",
                    "method",
                    "scheme",
                    "path",
                    "raw_path",
                    "query_string",
                    "root_path",
                )
            }
            | {
                "headers": [h for h in scope["headers"] if h[0] == b"x-test"],
                "lower": all(n == n.lower() for n, _ in scope["headers"]),
                "asgi": scope["asgi"]["version"],
                "client": scope["client"][0],
                "server_port_is_int": isinstance(scope["server"][1], int),
            }
        ).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    elif path.startswith("/echo-path"):
        text = f"{scope['path']}|{scope['raw_path'].decode()}|{scope['http_version']}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": text.encode()})
    elif path in ("/undersized", "/oversized"):
        body = b"xxx" if path == "/undersized" else b"x" * 60
        headers = [(b"content-length", b"10")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/close":
        headers = [(b"connection", b"close")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/chunked":
        headers = [(b"transfer-encoding", b"chunked")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
    elif path == "/ignore-disconnect":
        try:
            reached("ignoring").set()
            await trio.sleep_forever()  # never looks at receive()
        finally:
            EVENTS.append(("cancelled", path))
            reached("cancelled").set()
    elif path == "/no-response":
        return
    elif path == "/start-twice":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.start", "status": 200, "headers": []})
    elif path == "/bad-type":
        await send({"type": "http.response.nonsense"})
    elif path == "/body-before-start":
        await send({"type": "http.response.body", "body": b"x"})
    elif path == "/raise-after-body":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("late failure")
    elif path == "/incomplete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    elif path == "/after-complete":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        message = await receive()  # the response is complete: http.disconnect
        EVENTS.append(("after-complete", message["type"]))
    elif path == "/headers":
        await send(
            {
                "type": "http.response.start",
                "status": 201,
                "headers": [
                    (b"set-cookie", b"a=1"),
                    (b"set-cookie", b"b=2"),
                    (b"content-length", b"5"),
                    (b"x-app", b"yes"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"he", "more_body": True})
        await send({"type": "http.response.body", "body": b"llo", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/body-size":
        total = 0
        more = True
        while more:
            message = await receive()
            assert message["type"] == "http.request"
            total += len(message["body"])
            more = message.get("more_body", False)
        body = str(total).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# ---------------------------------------------------------------- Flask


flask_app = Flask(__name__)
# Errors reach the server (a 500 through custom errors), not Flask's own error page.
flask_app.config["PROPAGATE_EXCEPTIONS"] = True


@flask_app.route("/hello")
def flask_hello() -> str:
    environ = flask_request.environ
    return f"{environ['SCRIPT_NAME']}|{environ['PATH_INFO']}|{flask_request.args.get('q', '')}"


@flask_app.route("/echo", methods=["POST"])
def flask_echo() -> Response:
    stream = flask_request.stream

    def upper() -> Iterator[bytes]:
        while chunk := stream.read(4096):
            yield chunk.upper()

    return Response(upper(), mimetype="application/octet-stream")


@flask_app.route("/count")
def flask_count() -> Response:
    n = int(flask_request.args.get("n", "3"))
    path = flask_request.path

    def numbers() -> Iterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()

    response = Response(numbers(), mimetype="text/plain")
    response.call_on_close(lambda: on_close(path))
    return response


@flask_app.route("/forever")
def flask_forever() -> Response:
    """Streams until the server stops taking chunks; close() must still be called."""
    path = flask_request.path

    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    response = Response(endless(), mimetype="application/octet-stream")
    response.call_on_close(lambda: on_close(path))
    return response


@flask_app.route("/boom")
def flask_boom() -> str:
    raise RuntimeError("the app broke")
