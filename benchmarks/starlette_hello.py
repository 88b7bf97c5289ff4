"""The Starlette hello app that benchmarks/apps.py serves under every server.

``GET /hello`` answers ``200``, ``text/plain; charset=utf-8`` and ``Hello, world!``, through
Starlette's router and response classes (no middleware of our own). Starlette runs on anyio,
so the same object runs on Trio (trioiis, Hypercorn's trio worker) and on asyncio (Uvicorn).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!\n")


app = Starlette(routes=[Route("/hello", hello)])
