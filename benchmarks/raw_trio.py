"""The raw-Trio floor: a server that does no HTTP parsing and writes a canned response.

Each connection reads whatever arrives and answers one canned ``200 OK`` per chunk that
ends a request head (``\\r\\n\\r\\n``), which is right for wrk's pipelining-free keep-alive
load. It is the fastest a Trio server on this machine can be; every other number is read
against it.

    .venv/bin/python benchmarks/raw_trio.py PORT
"""

from __future__ import annotations

import sys

import trio

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"
)


async def handle(stream: trio.SocketStream) -> None:
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            count = data.count(b"\r\n\r\n")
            if count:
                await stream.send_all(RESPONSE * count)


async def main(port: int) -> None:
    await trio.serve_tcp(handle, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
