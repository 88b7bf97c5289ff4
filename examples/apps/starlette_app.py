"""A Starlette app for trioiis (it runs on Trio through anyio): see trioiis.toml."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import trio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    # Runs once before the server accepts its first connection, and once after the last.
    yield {"started": trio.current_time()}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse(
        {"hello": "world", "root_path": request.scope["root_path"], "path": request.url.path}
    )


async def count(request: Request) -> StreamingResponse:
    n = min(int(request.query_params.get("n", "10")), 1000)

    async def numbers() -> AsyncIterator[bytes]:
        for i in range(n):
            yield f"{i}\n".encode()
            await trio.sleep(0.1)  # a slow producer: the client sees each line as it comes

    return StreamingResponse(numbers(), media_type="text/plain")


app = Starlette(routes=[Route("/hello", hello), Route("/count", count)], lifespan=lifespan)
