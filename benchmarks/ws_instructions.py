"""Instructions per WebSocket echo under callgrind: a noise-free A/B for a busy machine.

    .venv/bin/python benchmarks/ws_instructions.py [--messages 300] [--warmup 100]
        [--size 64] [--only trioiis,hypercorn-trio,...] [--rev REV ...] [--no-write]

Messages/s move with the load of a shared 2-core machine; the machine instructions a server
executes per message do not (within about 1 %, ``PYTHONHASHSEED`` fixed). Each server of
``ws_echo.py`` (the same ASGI echo app, ``benchmarks/ws_echo_app.py``) and trioiis as of each
``--rev``, and the floor ``trio+wsproto`` (``benchmarks/ws_raw_trio.py``: Trio and wsproto,
nothing else) is started under ``valgrind --tool=callgrind --instr-atstart=no`` on 127.0.0.1 and
a free port; a blocking client in this process (wsproto, no compression offered) opens one
WebSocket, echoes ``--warmup`` ``--size``-byte text messages, turns instrumentation on
(``callgrind_control -i on``), echoes ``--messages`` more one at a time (each echo read
before the next message), turns it off and dumps the counts: instructions per message, and
the ratio to trioiis's. One readiness wake-up per message, as in ``ws_echo.py`` with one
socket. Needs valgrind; installs nothing. Bounded: every wait has a timeout, every server
is stopped in a ``finally``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import shlex
import socket
import sys
import time
from pathlib import Path

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

sys.path.insert(0, str(Path(__file__).resolve().parent))

import ab
import hello
import instructions  # Callgrind, connect
import ws_echo

SECTION = "## Instructions per WebSocket echo (callgrind)"
HOST = hello.HOST  # loopback only
ANSWER_TIMEOUT = instructions.ANSWER_TIMEOUT


class Client:
    """One blocking WebSocket client (wsproto over a socket)."""

    def __init__(self, sock: socket.socket, port: int) -> None:
        self.sock = sock
        self.ws = WSConnection(ConnectionType.CLIENT)
        sock.sendall(self.ws.send(Request(host=f"{HOST}:{port}", target="/ws")))
        if not any(isinstance(e, AcceptConnection) for e in self._events()):
            raise RuntimeError("handshake refused")

    def _events(self) -> list[object]:
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            self.ws.receive_data(data)
            events = list(self.ws.events())
            if events:
                return events
        raise RuntimeError("no answer in time")

    def echo(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))
        got = ""
        while True:
            for event in self._events():
                if isinstance(event, TextMessage):
                    got += event.data
                    if event.message_finished:
                        if got != text:
                            raise RuntimeError("echo mismatch")
                        return


def measure(server: ws_echo.Server, args: argparse.Namespace) -> float:
    """The server's instructions per echoed message."""
    port = hello.free_port()
    text = "x" * args.size
    env = {} if server.tree is None else {"PYTHONPATH": str(server.tree)}
    cwd = server.tree or hello.ROOT
    with instructions.Callgrind(server.argv(port), cwd=cwd, env=env) as callgrind:
        assert callgrind.process is not None
        with instructions.connect(callgrind.process, port) as sock:
            client = Client(sock, port)
            for _ in range(args.warmup):
                client.echo(text)
            with callgrind.counting():
                for _ in range(args.messages):
                    client.echo(text)
    return callgrind.total / args.messages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--only", default="")
    parser.add_argument("--rev", action="append", default=[], help="also trioiis at REV")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    floor = ws_echo.Server(
        "trio+wsproto",
        lambda port: [sys.executable, "benchmarks/ws_raw_trio.py", str(port)],
        ("wsproto",),
    )
    servers = [
        s
        for s in (*ws_echo.SERVERS, floor)
        if (wanted is None or s.key in wanted)
        and all(importlib.util.find_spec(n) is not None for n in s.needs)
    ]
    counts: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        for rev in args.rev:
            tree = stack.enter_context(ab.checkout(rev))
            servers.append(ws_echo._trioiis_at(tree, f"trioiis@{rev}"))
        for server in servers:
            counts[server.key] = measure(server, args)
            print(f"{server.key}: {counts[server.key]:,.0f} instructions/message", flush=True)
    base = counts.get("trioiis")
    lines = ["| server | instructions/message | ÷ trioiis |", "|---|---|---|"]
    for key, n in counts.items():
        lines.append(
            f"| {key} | {n:,.0f} | {n / base:.2f} |" if base else f"| {key} | {n:,.0f} | - |"
        )
    print("\n".join(lines))
    if not args.no_write:
        words = [".venv/bin/python", "benchmarks/ws_instructions.py", *(argv or sys.argv[1:])]
        section = "\n".join(
            [
                SECTION,
                "",
                f"Command: `{shlex.join(words)}` ({time.strftime('%Y-%m-%d')}). One WebSocket, "
                f"{args.messages} echoes of a {args.size}-byte text message counted after "
                f"{args.warmup} of warm-up: machine instructions the server executed per "
                "message (the same ASGI app under each server; noise-free on a shared machine).",
                "",
                *lines,
                "",
            ]
        )
        hello.write_results_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
