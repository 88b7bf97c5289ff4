"""A minimal trio + h11 server: the least an h11-based Trio server does per request.

.venv/bin/python benchmarks/h11_trio.py PORT [--design | --scope-only]

With ``--design``, the design floor: each request also gets what trioiis's concurrency
model promises and nothing else, a request nursery (``async with trio.open_nursery()``: its
tasks never outlive it) and a cancel scope of its own around its write (the pending I/O
``cancel_io`` aborts). What is left between that and trioiis is the pipeline's own cost.
``--scope-only`` keeps the cancel scope and drops the nursery (for ``batching.py``: what
the nursery alone costs, at one connection and at fifty).
"""

from __future__ import annotations

import sys

import h11
import trio

BODY = b"Hello, world!\n"


DESIGN = "--design" in sys.argv[2:]
SCOPE_ONLY = "--scope-only" in sys.argv[2:]


async def answer(stream: trio.SocketStream, data: bytes) -> None:
    """Write one response; under ``--design``, in a nursery and a cancel scope of its own."""
    if SCOPE_ONLY:
        with trio.CancelScope():
            await stream.send_all(data)
        return
    if not DESIGN:
        await stream.send_all(data)
        return
    async with trio.open_nursery():
        with trio.CancelScope():
            await stream.send_all(data)


async def handle(stream: trio.SocketStream) -> None:
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


async def main(port: int) -> None:
    await trio.serve_tcp(handle, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
