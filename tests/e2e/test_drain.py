"""A drain (SIGTERM, a worker replaced by a reload) closes idle keep-alive connections, but
a connection accepted just before it still gets its first request answered: with workers
sharing one accept queue, that request may already be on its way to the old worker."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from tests.helpers import running_server


async def read_until_close(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data


async def test_a_new_connection_gets_its_first_request_answered_during_a_drain(
    tmp_path: Path,
) -> None:
    (tmp_path / "hello.txt").write_text("hello\n")
    async with running_server(root=tmp_path) as srv:
        with trio.fail_after(10):
            fresh = await trio.open_tcp_stream("127.0.0.1", srv.port)
            idle = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with fresh, idle:
                await idle.send_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                assert (await idle.receive_some(65536)).startswith(b"HTTP/1.1 200 ")
                await trio.testing.wait_all_tasks_blocked()
                assert srv.server.counters.connections_open == 2
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(srv.server.shutdown)
                    await trio.testing.wait_all_tasks_blocked()  # the drain has begun
                    assert await idle.receive_some(100) == b""  # idle keep-alive: closed
                    await fresh.send_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                    answer = await read_until_close(fresh)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert answer.endswith(b"\r\n\r\nhello\n")


async def test_a_new_connection_that_sends_nothing_does_not_hold_up_the_drain(
    tmp_path: Path,
) -> None:
    async with running_server(root=tmp_path, shutdown_grace=60) as srv:
        with trio.fail_after(10):  # linger_timeout (2 s by default) bounds the wait
            silent = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with silent:
                await trio.testing.wait_all_tasks_blocked()
                await srv.server.shutdown()
                assert await silent.receive_some(100) == b""


async def test_an_answer_that_leaves_a_large_body_unread_says_connection_close(
    tmp_path: Path,
) -> None:
    """A keep-alive POST whose handler answers without reading a body too large to drain
    (``drain_body_bytes``): the answer says ``Connection: close``, so the client never sends
    its next request on a connection the server closes; a small unread body is drained and
    the connection kept."""
    (tmp_path / "hello.txt").write_text("hello\n")
    async with running_server(root=tmp_path) as srv, srv.client() as client:
        big = await client.post("/hello.txt", content=b"x" * 100_000)
        small = await client.post("/hello.txt", content=b"x" * 1000)
        after = await client.get("/hello.txt")
    assert big.status_code == small.status_code == 405  # static files: GET and HEAD only
    assert big.headers["connection"] == "close"
    assert "connection" not in small.headers
    assert after.status_code == 200
    assert srv.server.counters.connections_accepted == 2  # the big one's closed, as it said
