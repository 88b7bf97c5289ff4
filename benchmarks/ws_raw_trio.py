"""The floor of the WebSocket benchmarks: Trio + wsproto and nothing else (no pipeline, no
ASGI): one task per connection reads the socket, wsproto parses it, each message is echoed
at once. What any server built on Trio and wsproto pays per message at least.

    .venv/bin/python benchmarks/ws_raw_trio.py PORT      (127.0.0.1 only)
"""

from __future__ import annotations

import sys

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)


async def serve(stream: trio.SocketStream) -> None:
    ws = WSConnection(ConnectionType.SERVER)
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            ws.receive_data(data)
            out = bytearray()
            for event in ws.events():
                if isinstance(event, Request):
                    out += ws.send(AcceptConnection())
                elif isinstance(event, TextMessage | BytesMessage):
                    out += ws.send(event)  # (an echo: the same message back)
                elif isinstance(event, Ping):
                    out += ws.send(event.response())
                elif isinstance(event, CloseConnection):
                    await stream.send_all(ws.send(event.response()))
                    return
            if out:
                await stream.send_all(out)


async def main(port: int) -> None:
    await trio.serve_tcp(serve, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
