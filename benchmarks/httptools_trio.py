"""A minimal trio + httptools (llhttp) server: the least an llhttp-based Trio server does per
request, the floor for ``trioiis --http fast``.

.venv/bin/python benchmarks/httptools_trio.py PORT [--design]

One task per connection reads the socket, feeds llhttp, and answers every complete request
with a canned ``Hello, world!`` response (keep-alive unless the request says otherwise).
With ``--design``, each request is answered in a nursery and a cancel scope of its own, as
``h11_trio.py --design`` does: the design floor of ``trioiis --http fast``.
"""

from __future__ import annotations

import sys

import httptools
import trio
from h11_trio import DESIGN, answer

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"
)


class _Requests:
    """llhttp callbacks: counts complete requests, and whether one asked to close."""

    def __init__(self) -> None:
        self.complete = 0

    def on_message_complete(self) -> None:
        self.complete += 1


async def handle(stream: trio.SocketStream) -> None:
    requests = _Requests()
    parser = httptools.HttpRequestParser(requests)
    async with stream:
        while True:
            try:
                data = await stream.receive_some(65536)
            except trio.BrokenResourceError:
                return
            if not data:
                return
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:
                return
            if requests.complete and DESIGN:
                for _ in range(requests.complete):  # a nursery and a write per request
                    await answer(stream, RESPONSE)
                requests.complete = 0
            elif requests.complete:
                await stream.send_all(RESPONSE * requests.complete)
                requests.complete = 0
                if not parser.should_keep_alive():
                    return


async def main(port: int) -> None:
    await trio.serve_tcp(handle, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
