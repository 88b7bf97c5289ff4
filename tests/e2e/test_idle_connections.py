"""Idle keep-alive connections on the server's own sockets, whose memory per idle
connection is bounded: each is one task waiting for its socket, with no nursery and no
cancel scope; its keep-alive clock is the shared ``IdleReaper``'s. Closing one for idleness is the
server's doing, never reported as the client's disconnect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
import trio.testing

from tests.helpers import register, running_server
from trioiis import HttpContext, HttpModule, Limits, Notification, Status

REQUEST = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"


async def one_request(port: int) -> trio.SocketStream:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    await stream.send_all(REQUEST)
    got = b""
    while not got.endswith(b"hello\n"):
        got += await stream.receive_some(65536)
    assert got.startswith(b"HTTP/1.1 200 ")
    return stream


async def test_an_idle_keep_alive_connection_is_one_task_without_nursery(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    async with running_server(root=tmp_path) as srv:
        with trio.fail_after(10):
            streams = [await one_request(srv.port) for _ in range(5)]
            await trio.testing.wait_all_tasks_blocked()  # every request loop has ended
            connections = srv.server._connections
            assert connections is not None
            tasks = connections.child_tasks
            assert len(tasks) == 5  # one per connection: no request task left running
            assert all(task.child_nurseries == [] for task in tasks)
            assert srv.server._reaper is not None
            assert len(srv.server._reaper) == 5  # each one's keep-alive clock runs
            # And each still serves its next request.
            for stream in streams:
                await stream.send_all(REQUEST)
                assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
            for stream in streams:
                await stream.aclose()
            await trio.testing.wait_all_tasks_blocked()
            assert len(connections.child_tasks) == 0
            assert len(srv.server._reaper) == 0


async def test_keep_alive_expiry_closes_quietly_not_as_a_client_disconnect(
    tmp_path: Path,
) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    seen: list[str] = []

    class Stored:
        def cleanup_stored_context(self) -> None:
            seen.append("cleanup")

        def notify_disconnect(self) -> None:
            seen.append("disconnect")

    class Remember(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.connection.module_context.get_module_context(7) is None:
                ctx.connection.module_context.set_module_context(Stored(), 7)
            return Status.CONTINUE

    module = ("remember", register(Remember, Notification.BEGIN_REQUEST))
    limits = Limits(keep_alive_timeout=0.2)
    async with running_server(module, root=tmp_path, limits=limits) as srv:
        with trio.fail_after(10):
            stream = await one_request(srv.port)
            async with stream:
                assert await stream.receive_some(100) == b""  # closed by the reaper
            await trio.testing.wait_all_tasks_blocked()
        assert srv.server.counters.connections_open == 0
    assert seen == ["cleanup"]


async def test_bytes_arriving_on_an_idle_connection_stop_its_clock(tmp_path: Path) -> None:
    """A head that trickles in is under head_timeout, not keep_alive_timeout: the reaper
    forgets the connection once its first byte arrives."""
    (tmp_path / "hello.txt").write_text("hello\n")
    async with running_server(root=tmp_path) as srv:
        with trio.fail_after(10):
            stream = await one_request(srv.port)
            async with stream:
                await stream.send_all(REQUEST[:5])
                await trio.testing.wait_all_tasks_blocked()
                assert srv.server._reaper is not None
                assert len(srv.server._reaper) == 0
                await stream.send_all(REQUEST[5:])
                assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
