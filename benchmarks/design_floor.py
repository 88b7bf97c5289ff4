"""The design floor: the least a Trio server built the way DESIGN.md says must do per request.

.venv/bin/python benchmarks/design_floor.py PORT h11|httptools

Beside the bare floors (``h11_trio.py``, ``httptools_trio.py``: parse, answer), this loop
also pays for what trioiis's concurrency model promises on every request and nothing else:
a request nursery (``async with trio.open_nursery()``: the request's tasks never outlive it)
and a cancel scope of its own around the write (the pending I/O that ``cancel_io`` aborts).
No pipeline, no modules, no headers object: what is left between this and trioiis is the
pipeline's own cost (issue 26 states its goals against these figures).
"""

from __future__ import annotations

import sys

import h11
import trio

BODY = b"Hello, world!\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, world!\n"
)


async def answer(stream: trio.SocketStream, data: bytes) -> None:
    """One request's share: its nursery, and its write in a cancel scope of its own."""
    async with trio.open_nursery():
        with trio.CancelScope():
            await stream.send_all(data)


async def handle_h11(stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    async with stream:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return
                conn.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                continue
            if isinstance(event, h11.EndOfMessage):
                headers = [("content-type", "text/plain"), ("content-length", str(len(BODY)))]
                out = conn.send(h11.Response(status_code=200, headers=headers)) or b""
                out += conn.send(h11.Data(data=BODY)) or b""
                out += conn.send(h11.EndOfMessage()) or b""
                await answer(stream, out)
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
                continue
            return


async def handle_httptools(stream: trio.SocketStream) -> None:
    import httptools

    class Requests:
        complete = 0

        def on_message_complete(self) -> None:
            self.complete += 1

    requests = Requests()
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
            while requests.complete:  # one nursery and one write per request
                requests.complete -= 1
                await answer(stream, RESPONSE)
            if not parser.should_keep_alive():
                return


async def main(port: int, parser: str) -> None:
    handler = handle_h11 if parser == "h11" else handle_httptools
    await trio.serve_tcp(handler, port, host="127.0.0.1")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[2] not in ("h11", "httptools"):
        sys.exit("usage: design_floor.py PORT h11|httptools")
    trio.run(main, int(sys.argv[1]), sys.argv[2])
