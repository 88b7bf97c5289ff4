"""An httpx transport that serves each request in memory: ``HttpServer.serve_in_memory`` over
a fresh ``MemoryTransport``, no socket anywhere.

What it is and is not: the server runs exactly the code a socket's request runs from the
parsed head on (context, site, forwarded headers, pipeline, lifecycle, counters, access
log); no HTTP/1.1 parser or writer is involved, so the response carries only the headers
the pipeline set (no Date, Server, Connection or Transfer-Encoding) and a test about the
wire (framing, keep-alive, raw bytes, timeouts) needs the socket transport.
"""

from __future__ import annotations

import httpx

from trioiis import HttpServer
from trioiis._protocol.memory_transport import MemoryTransport

#: The address the in-memory client says it comes from and the one it reached.
REMOTE = ("127.0.0.1", 40000)
LOCAL = ("127.0.0.1", 80)


class MemoryHttpxTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncClient(transport=MemoryHttpxTransport(server))``: every request is one
    ``serve_in_memory``. The request body is read whole first; the response is returned
    once the request has ended (no streaming either way).

    Cancellation: cancelling the request makes the in-memory peer leave (``disconnect``),
    as a socket client's closed connection does; the server sees its client gone.
    """

    def __init__(self, server: HttpServer) -> None:
        self.server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        transport = MemoryTransport(
            method=request.method,
            body=body,
            max_body_bytes=self.server.config.limits.max_body_bytes,
        )
        try:
            await self.server.serve_in_memory(
                transport,
                method=request.method,
                target=request.url.raw_path.decode("ascii"),
                headers=list(request.headers.raw),
                remote=REMOTE,
                local=LOCAL,
            )
        except BaseException:
            transport.disconnect()
            raise
        response = transport.response
        if response.raw:
            raise httpx.RemoteProtocolError(
                "a module framed its own response (suppress_headers): use a socket",
                request=request,
            )
        if response.status is None:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        if not response.complete:
            raise httpx.RemoteProtocolError(
                "the server ended the response before its end", request=request
            )
        return httpx.Response(
            response.status,
            headers=response.headers,
            stream=httpx.ByteStream(bytes(response.body)),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": response.reason},
            request=request,
        )
