"""Backpressure: a client that never reads a large response must not grow server memory.

    .venv/bin/python benchmarks/backpressure.py [--size-mib 512] [--wait 5]

Serves a folder holding one ``--size-mib`` file with ``trioiis serve`` in a subprocess, opens
a connection that asks for the file and then reads nothing for ``--wait`` seconds, and prints
the server's resident memory (VmRSS) before the request, while the client is stalled, and
after the client left. Without backpressure the server would buffer the whole file. Bounded
in time; only 127.0.0.1; installs nothing.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hello  # start/stop helpers


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--wait", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        big = Path(folder) / "big.bin"
        with big.open("wb") as file:
            file.truncate(args.size_mib * 1024 * 1024)  # sparse: no disk cost
        port = hello.free_port()
        command = [hello.server_command(port)[0], "serve", folder, "--bind", f"127.0.0.1:{port}"]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            hello.wait_until_accepting(process, port)
            before = rss_kib(process.pid)
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: bench\r\n\r\n")
                peak = before
                end = time.monotonic() + args.wait
                while time.monotonic() < end:  # the client reads nothing meanwhile
                    peak = max(peak, rss_kib(process.pid))
                    time.sleep(0.1)
            time.sleep(0.5)
            after = rss_kib(process.pid)
        finally:
            hello.stop(process)
    print(
        f"command: python benchmarks/backpressure.py --size-mib {args.size_mib} --wait {args.wait}"
    )
    print(
        f"server RSS: before {before} KiB, peak while the client read nothing {peak} KiB "
        f"(+{peak - before} KiB for a {args.size_mib} MiB response), after {after} KiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
