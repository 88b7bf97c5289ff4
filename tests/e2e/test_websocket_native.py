"""WebSockets for native modules, over real sockets with the ``websockets`` client:
``accept_websocket``, fragments, close codes, a vanished peer, ``cancel_outstanding_io``."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.sync.client import connect

import trioiis
from trioiis import OperationAbortedError

from ..helpers import running_server
from .ws_helpers import (
    NATIVE_HANDLERS,
    Seen,
    access_lines,
    client,
    echo,
    frame,
    handshake,
    in_thread,
    native_module,
    read_frame,
    reset,
)


async def test_echo_text_and_a_1mb_binary_message_then_a_clean_close() -> None:
    seen = Seen()
    big = os.urandom(1024 * 1024)
    with access_lines() as log:
        async with running_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as srv:

            def talk() -> tuple[object, object]:
                with client(srv.port, max_size=None) as ws:
                    ws.send("héllo")
                    text = ws.recv()
                    ws.send(big)
                    binary = ws.recv()
                return text, binary

            text, binary = await in_thread(talk)
            line = await log.wait_for("/ws")
    assert text == "héllo"
    assert binary == big
    assert seen.close_status == [trioiis.CloseStatus(1000, "")]
    assert " 101 " in line
    assert "completed" in line
    assert "ws_close=1000" in line
    received = int(line.split("ws_in=")[1].split()[0])
    assert received > len(big)  # the client's frames, masked, after the 101


async def test_fragmented_message_arrives_as_fragments_in_order() -> None:
    seen = Seen()
    async with running_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as srv:

        def talk() -> object:
            with client(srv.port, compression=None) as ws:
                ws.send(iter(["ab", "cd", "ef"]))  # three frames of one text message
                return ws.recv()

        assert await in_thread(talk) == "abcdef"
    data = [f for f in seen.fragments if not f.close]
    assert b"".join(f.data for f in data) == b"abcdef"
    assert all(f.utf8 for f in data)
    assert [f.final for f in data][-1] is True


async def test_ping_gets_a_pong_and_server_pings_are_answered() -> None:
    seen = Seen()
    limits = trioiis.WebSocketLimits(ping_interval=0.05, ping_timeout=5)

    async def idle(ctx, ws, seen):
        fragment = await ws.read_fragment()
        seen.fragments.append(fragment)

    async with running_server(
        native_module(idle, seen, limits=limits), handlers=NATIVE_HANDLERS
    ) as srv:

        def talk() -> float:
            with client(srv.port) as ws:
                latency = ws.ping(b"x").wait(5)
                ws.send("done")
                return latency

        assert await in_thread(talk)
    assert seen.fragments[0].data == b"done"


async def test_close_code_from_the_client_reaches_the_module() -> None:
    seen = Seen()
    async with running_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as srv:

        def talk() -> None:
            with client(srv.port) as ws:
                ws.close(4001, "bye now")

        await in_thread(talk)
        with trio.fail_after(10):
            await seen.ended.wait()
    assert seen.close_status == [trioiis.CloseStatus(4001, "bye now")]


async def test_close_code_from_the_module_reaches_the_client() -> None:
    seen = Seen()

    async def closer(ctx, ws, seen):
        await ws.send_connection_close(4002, "go away")
        fragment = await ws.read_fragment()
        seen.fragments.append(fragment)

    with access_lines() as log:
        async with running_server(native_module(closer, seen), handlers=NATIVE_HANDLERS) as srv:

            def talk() -> tuple[int | None, str | None]:
                with client(srv.port) as ws:
                    with pytest.raises(ConnectionClosed) as caught:
                        ws.recv()
                    rcvd = caught.value.rcvd
                    assert rcvd is not None
                    return rcvd.code, rcvd.reason

            assert await in_thread(talk) == (4002, "go away")
            line = await log.wait_for("/ws")
    assert seen.fragments[0].close
    assert "completed" in line
    assert "ws_close=4002" in line  # the client echoed our code


@pytest.mark.parametrize("how", ["rst", "fin"])
async def test_vanished_client_cancels_the_request_at_once(how: str) -> None:
    """A client that leaves without a close frame (an RST, or a FIN) cancels the request's
    pending read at once: cancelled_by_client, close code 1006."""
    seen = Seen()

    async def wait_forever(ctx, ws, seen):
        await ws.read_fragment()

    with access_lines() as log:
        async with running_server(
            native_module(wait_forever, seen), handlers=NATIVE_HANDLERS
        ) as srv:
            sock = await in_thread(lambda: handshake(srv.port))
            with trio.fail_after(10):
                await seen.accepted.wait()
            if how == "rst":
                reset(sock)
            else:
                sock.close()
            with trio.fail_after(10):
                await seen.ended.wait()
            line = await log.wait_for("/ws")
    assert any(isinstance(e, trio.Cancelled) for e in seen.errors)
    assert "cancelled_by_client" in line
    assert "ws_close=1006" in line


async def test_dead_peer_found_by_the_ping_timeout() -> None:
    seen = Seen()
    limits = trioiis.WebSocketLimits(ping_interval=0.05, ping_timeout=0.2)

    async def wait_forever(ctx, ws, seen):
        await ws.read_fragment()

    with access_lines() as log:
        async with running_server(
            native_module(wait_forever, seen, limits=limits), handlers=NATIVE_HANDLERS
        ) as srv:
            sock = await in_thread(lambda: handshake(srv.port))  # never answers a ping
            try:
                line = await log.wait_for("/ws")
            finally:
                sock.close()
    assert "aborted_by_server" in line
    assert "ws_close=1011" in line


@pytest.mark.parametrize("how", ["cancel_outstanding_io", "cancel_io"])
async def test_cancel_interrupts_a_pending_read(how: str) -> None:
    seen = Seen()
    aborted: list[OperationAbortedError] = []

    async def reader(ctx, ws, seen):
        async def cancel_soon() -> None:
            await trio.testing.wait_all_tasks_blocked()  # the read is pending
            assert ctx.pending_io_count == 1
            cancel = ws.cancel_outstanding_io if how == "cancel_outstanding_io" else ctx.cancel_io
            assert cancel() == 1

        ctx.start_soon(cancel_soon)
        try:
            await ws.read_fragment()
        except OperationAbortedError as exc:
            aborted.append(exc)
        # The socket stays usable: say so, then echo one message.
        await ws.write_fragment(b"aborted", utf8=True)
        fragment = await ws.read_fragment()
        await ws.write_fragment(fragment.data, utf8=fragment.utf8)

    async with running_server(native_module(reader, seen), handlers=NATIVE_HANDLERS) as srv:

        def talk() -> object:
            with client(srv.port) as ws:
                assert ws.recv(timeout=10) == "aborted"  # nothing sent before the abort
                ws.send("after")
                return ws.recv(timeout=10)

        with trio.fail_after(20):
            assert await in_thread(talk) == "after"
    assert len(aborted) == 1
    assert aborted[0].completion is not None
    assert aborted[0].completion.completion_bytes == 0


@pytest.mark.parametrize("how", ["cancel_outstanding_io", "cancel_io"])
async def test_cancel_interrupts_a_pending_write_with_the_bytes_moved(how: str) -> None:
    seen = Seen()
    aborted: list[OperationAbortedError] = []
    data = b"x" * (64 * 1024 * 1024)  # far more than the socket buffers hold
    release = trio.Event()

    async def writer(ctx, ws, seen):
        async def cancel_when_blocked() -> None:
            await trio.testing.wait_all_tasks_blocked()  # the write waits for the client
            assert ctx.pending_io_count == 1
            cancel = ws.cancel_outstanding_io if how == "cancel_outstanding_io" else ctx.cancel_io
            assert cancel() == 1

        ctx.start_soon(cancel_when_blocked)
        try:
            await ws.write_fragment(data)
        except OperationAbortedError as exc:
            aborted.append(exc)
        release.set()
        ws.close_tcp_connection()

    async with running_server(native_module(writer, seen), handlers=NATIVE_HANDLERS) as srv:
        sock = await in_thread(lambda: handshake(srv.port))  # reads nothing yet
        with trio.fail_after(20):
            await release.wait()
        sock.close()
    assert len(aborted) == 1
    moved = aborted[0].completion.completion_bytes
    assert 0 < moved < len(data)


async def test_oversized_message_is_closed_with_1009() -> None:
    seen = Seen()
    limits = trioiis.WebSocketLimits(max_message_size=1000)
    async with running_server(
        native_module(echo, seen, limits=limits), handlers=NATIVE_HANDLERS
    ) as srv:

        def talk() -> int:
            with client(srv.port) as ws:
                ws.send(b"y" * 2000)
                with pytest.raises(ConnectionClosed) as caught:
                    ws.recv(timeout=10)
                assert caught.value.rcvd is not None
                return caught.value.rcvd.code

        assert await in_thread(talk) == 1009


async def test_compression_bomb_is_refused_with_1009() -> None:
    seen = Seen()
    limits = trioiis.WebSocketLimits(max_message_size=100_000)
    async with running_server(
        native_module(echo, seen, limits=limits), handlers=NATIVE_HANDLERS
    ) as srv:

        def talk() -> int:
            import zlib

            sock = handshake(srv.port, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
            try:
                squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
                bomb = squeeze.compress(b"\0" * 50_000_000) + squeeze.flush(zlib.Z_SYNC_FLUSH)
                assert bomb.endswith(b"\x00\x00\xff\xff")
                sock.sendall(frame(Opcode.BINARY.value, bomb[:-4], rsv1=True))
                opcode, payload = read_frame(sock)
                assert opcode == Opcode.CLOSE.value
                return int.from_bytes(payload[:2], "big")
            finally:
                sock.close()

        assert await in_thread(talk) == 1009


async def test_a_module_that_does_not_read_pushes_back_on_a_flooding_client() -> None:
    """Back-pressure: the server stops reading once ``receive_queue`` bytes wait for the
    module, so the client's sends stall instead of the server's memory growing."""
    seen = Seen()
    limits = trioiis.WebSocketLimits(receive_queue=256 * 1024, ping_interval=None)
    stop = trio.Event()

    async def never_reads(ctx, ws, seen):
        await stop.wait()
        ws.close_tcp_connection()

    async with running_server(
        native_module(never_reads, seen, limits=limits), handlers=NATIVE_HANDLERS
    ) as srv:

        def flood() -> int:
            sock = handshake(srv.port)
            sock.settimeout(2)  # no progress for 2 s: the server stopped reading
            message = frame(Opcode.BINARY.value, b"z" * 65536)
            sent = 0
            try:
                for _ in range(1000):  # 64 MB at most
                    sock.sendall(message)
                    sent += len(message)
            except TimeoutError:
                return sent
            finally:
                sock.close()
            return sent

        async with trio.open_nursery() as nursery:

            async def run_flood() -> None:
                sent.append(await in_thread(flood))

            sent: list[int] = []
            nursery.start_soon(run_flood)
            with trio.fail_after(10):
                await seen.accepted.wait()
        engine = seen.contexts[0]._ws
        queued = engine._incoming_bytes
        stop.set()
    assert sent[0] < 64 * 1024 * 1024  # the client was pushed back
    # What the server holds is the queue bound plus one read, not what the client sent.
    assert queued <= limits.receive_queue + 65536


async def test_client_closing_and_leaving_at_once_is_a_clean_close() -> None:
    """A close frame followed at once by the TCP close (before the server's answer can be
    read): the peer closed properly, whatever order the server sees the bytes and the EOF."""
    seen = Seen()
    with access_lines() as log:
        async with running_server(native_module(echo, seen), handlers=NATIVE_HANDLERS) as srv:

            def close_and_leave() -> None:
                sock = handshake(srv.port)
                sock.sendall(frame(Opcode.TEXT.value, b"last") + frame(8, b"\x0f\xa5bye"))
                sock.close()

            await in_thread(close_and_leave)
            line = await log.wait_for("/ws")
    assert "completed" in line
    assert "ws_close=4005" in line
    assert seen.fragments[0].data == b"last"  # sent before the close: not lost
    assert seen.close_status == [trioiis.CloseStatus(4005, "bye")]


async def test_wss_over_tls_echo_and_scheme(tls_files: dict[str, Path], ca: trustme.CA) -> None:
    seen = Seen()
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with running_server(
        native_module(echo, seen), handlers=NATIVE_HANDLERS, **tls_files
    ) as srv:

        def talk() -> tuple[object, object]:
            url = f"wss://127.0.0.1:{srv.port}/ws"
            with connect(url, ssl=context, open_timeout=10, max_size=None) as ws:
                ws.send("secure")
                text = ws.recv(timeout=10)
                ws.send(b"\x01" * 300_000)
                return text, ws.recv(timeout=10)

        text, binary = await in_thread(talk)
        with trio.fail_after(10):
            await seen.ended.wait()
    assert text == "secure"
    assert binary == b"\x01" * 300_000
    assert seen.close_status == [trioiis.CloseStatus(1000, "")]
    assert seen.http[0].connection.secure
