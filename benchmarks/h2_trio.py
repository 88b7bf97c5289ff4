"""A minimal trio + h2 server: the least an h2-based Trio server does per request.

.venv/bin/python benchmarks/h2_trio.py PORT [--design]

Prior-knowledge h2c on 127.0.0.1, ``GET`` anything: ``Hello, world!``. Bare: one task per
connection reads, answers each request from that task as soon as h2 reports it, and writes
what h2 queued after each read. h2 is configured as cheaply as it goes (no outbound header
validation or normalisation; inbound validation stays, as a server needs it).

With ``--design``, the design floor: each stream also gets what trioiis's concurrency model
promises and nothing else, a task of its own in a request nursery (its tasks never outlive
it), its response queued under a cancel scope of its own and awaited until the connection's
writer task has handed it to the socket (the pending I/O ``cancel_io`` aborts). What is left
between that and trioiis is the pipeline's own cost.
"""

from __future__ import annotations

import sys

import h2.config
import h2.connection
import h2.events
import trio

BODY = b"Hello, world!\n"
HEADERS = [
    (b":status", b"200"),
    (b"content-type", b"text/plain"),
    (b"content-length", str(len(BODY)).encode()),
]
DESIGN = "--design" in sys.argv[2:]
CONFIG = h2.config.H2Configuration(
    client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False
)


class Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h2 = h2.connection.H2Connection(CONFIG)
        self.queued = trio.Event()  # something waits in h2's buffer
        self.flushed = trio.Event()  # what was queued before it was set went out

    async def write_forever(self) -> None:
        """The writer task (``--design``): sends what the streams and the reader queued."""
        while True:
            await self.queued.wait()
            self.queued = trio.Event()
            flushed, self.flushed = self.flushed, trio.Event()
            data = self.h2.data_to_send()
            if data:
                await self.stream.send_all(data)
            flushed.set()

    async def answer(self, stream_id: int) -> None:
        """One stream's request (``--design``): its nursery, its write under its scope."""
        async with trio.open_nursery():
            with trio.CancelScope():
                self.h2.send_headers(stream_id, HEADERS)
                self.h2.send_data(stream_id, BODY, end_stream=True)
                flushed = self.flushed
                self.queued.set()
                await flushed.wait()

    async def serve(self, nursery: trio.Nursery) -> None:
        self.h2.initiate_connection()
        await self.stream.send_all(self.h2.data_to_send())
        while True:
            data = await self.stream.receive_some(65536)
            if not data:
                return
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    if DESIGN:
                        nursery.start_soon(self.answer, event.stream_id)
                    else:
                        self.h2.send_headers(event.stream_id, HEADERS)
                        self.h2.send_data(event.stream_id, BODY, end_stream=True)
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return
            if DESIGN:
                self.queued.set()
            else:
                out = self.h2.data_to_send()
                if out:
                    await self.stream.send_all(out)


async def handle(stream: trio.SocketStream) -> None:
    connection = Connection(stream)
    try:
        async with trio.open_nursery() as nursery:
            if DESIGN:
                nursery.start_soon(connection.write_forever)
            await connection.serve(nursery)
            nursery.cancel_scope.cancel()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def main(port: int) -> None:
    await trio.serve_tcp(handle, port, host="127.0.0.1")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]))
