"""``--processes N``: the run split over N worker processes, their tallies merged exactly.

Each worker (``python -m trioiis.bench.processes``) gets its share of the connections, of
``--requests`` and of ``--rate`` (the first ones get the remainders) and its own seed. The
parent starts them all, waits until every one has imported its code and is ready, then lets
them all go at once; each sends back its tally, histograms in HdrHistogram's wire format,
and the parent merges them: counts add up, histograms merge bucket by bucket (so merged
percentiles are those of all the requests), the elapsed time is the longest worker's.

Cancellation: cancelling ``run_processes`` kills the workers.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys

import trio

from .options import BenchOptions
from .runner import Bench, Tally

READY = b"ready\n"
GO = b"go\n"


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def split(options: BenchOptions, parts: int) -> list[BenchOptions]:
    """The options of each of ``parts`` workers."""
    shares = []
    for index in range(parts):
        shares.append(
            dataclasses.replace(
                options,
                connections=_share(options.connections, parts, index),
                requests=(
                    None if options.requests is None else _share(options.requests, parts, index)
                ),
                rate=None if options.rate is None else options.rate / parts,
                seed=None if options.seed is None else options.seed + index,
                processes=1,
                quiet=True,
                json_file=None,
                status_path=None,
                server_pid=None,
            )
        )
    return shares


async def _receive_until(stream: trio.abc.ReceiveStream, buffer: bytearray, end: bytes) -> bytes:
    """Read until ``end`` is in ``buffer`` (or end of file); return what precedes it."""
    while end not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            break
        buffer += data
    head, _, rest = bytes(buffer).partition(end)
    buffer[:] = rest
    return head


async def run_processes(options: BenchOptions) -> Tally:
    """Run ``options`` over ``options.processes`` worker processes; the merged tally.

    Raises:
        RuntimeError: a worker failed (its standard error is passed through).
    """
    shares = split(options, options.processes)
    workers: list[trio.Process] = []
    buffers = [bytearray() for _ in shares]
    try:
        for share in shares:
            worker = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trioiis.bench.processes"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            workers.append(worker)
            payload = pickle.dumps(share)
            assert worker.stdin is not None
            await worker.stdin.send_all(len(payload).to_bytes(8, "big") + payload)
        for worker, buffer in zip(workers, buffers, strict=True):
            assert worker.stdout is not None
            if await _receive_until(worker.stdout, buffer, READY) != b"":
                raise RuntimeError("a bench worker process did not start")
        for worker in workers:
            assert worker.stdin is not None
            await worker.stdin.send_all(GO)
        merged = Tally()
        for worker, buffer in zip(workers, buffers, strict=True):
            assert worker.stdout is not None
            text = await _receive_until(worker.stdout, buffer, b"\n")
            if await worker.wait() != 0 or not text:
                raise RuntimeError(f"a bench worker process failed (status {worker.returncode})")
            merged.merge(Tally.from_wire(json.loads(text)))
        return merged
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
            with trio.CancelScope(shield=True):
                await worker.wait()


async def _worker_main(options: BenchOptions) -> Tally:
    sys.stdout.buffer.write(READY)
    sys.stdout.buffer.flush()
    if await trio.to_thread.run_sync(sys.stdin.buffer.readline) != GO:
        raise SystemExit(1)
    return await Bench(options).run()


def main() -> None:
    """A worker: options (pickled, length-prefixed) on stdin, then ``go``; the tally on
    stdout as one JSON line."""
    size = int.from_bytes(sys.stdin.buffer.read(8), "big")
    options: BenchOptions = pickle.loads(sys.stdin.buffer.read(size))
    tally = trio.run(_worker_main, options)
    sys.stdout.buffer.write(json.dumps(tally.to_wire()).encode("ascii") + b"\n")
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
