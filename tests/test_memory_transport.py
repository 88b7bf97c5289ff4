"""``MemoryTransport`` keeps the seam's rules (_protocol/transport.py, rules 1-4) on its own,
without a server: what the pipeline's in-memory tests rely on."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis._errors import BodyTooLargeError
from trioiis._protocol.http1_writer import FramingError
from trioiis._protocol.memory_transport import MemoryTransport
from trioiis._protocol.transport import PeerGoneError, PeerTooSlowError

OK = (200, b"OK")


def headed(transport: MemoryTransport, *headers: tuple[bytes, bytes], status: int = 200) -> None:
    transport.send_head(status, b"X", list(headers), close=False)


def stalled(window: int, body: bytes | None = b"") -> MemoryTransport:
    """A transport whose head and first ``window`` of 3 body bytes moved; the rest waits."""
    transport = MemoryTransport(window=window, body=body)
    headed(transport)
    transport.send_body(b"abc")
    assert not transport.try_write()
    return transport


async def raises(error: type[Exception], call: Callable[[], Awaitable[object]]) -> None:
    """Await ``call()`` (in a task of its own) and check that it raises ``error``."""
    with pytest.raises(error):
        await call()


# ------------------------------------------------------------------ rule 1: queue, then write


def test_queueing_moves_nothing_until_try_write() -> None:
    transport = MemoryTransport()
    headed(transport, (b"X-A", b"1"))
    transport.send_body(b"hello")
    transport.send_end()
    assert transport.response.status is None
    assert transport.response.body == b""
    assert transport.body_bytes_sent == 0
    assert transport.queued == 5
    assert transport.try_write() is True
    response = transport.response
    assert (response.status, response.reason, response.headers) == (200, b"X", [(b"X-A", b"1")])
    assert (response.body, response.ended, transport.queued) == (b"hello", True, 0)


def test_try_write_moves_what_the_window_takes_and_write_waits_for_the_rest() -> None:
    async def main() -> None:
        transport = MemoryTransport(window=3)
        headed(transport)
        transport.send_body(b"hello")
        assert transport.try_write() is False
        assert transport.response.status == 200  # the head takes no room
        assert (transport.response.body, transport.body_bytes_sent) == (b"hel", 3)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(transport.write)
            await transport.wait_write_blocked()
            transport.grant(1)
            await trio.testing.wait_all_tasks_blocked()
            assert transport.response.body == b"hell"
            transport.grant(10)
        assert (transport.response.body, transport.queued, transport.window) == (b"hello", 0, 9)

    trio.run(main)


def test_a_cancelled_write_leaves_exactly_the_unsent_bytes_queued_in_order() -> None:
    async def main() -> None:
        transport = MemoryTransport(window=2)
        headed(transport, (b"Content-Length", b"6"))
        transport.send_body(b"abcd")
        assert not transport.try_write()
        with trio.move_on_after(0) as scope:
            await transport.write()
        assert scope.cancelled_caught
        assert (transport.response.body, transport.queued) == (b"ab", 2)
        transport.send_body(b"ef")  # queued behind the unsent rest
        transport.send_end()
        transport.open_window()
        await transport.write()
        assert transport.response.body == b"abcdef"
        assert transport.response_complete

    trio.run(main)


@settings(max_examples=200, deadline=None)
@given(
    pieces=st.lists(st.binary(min_size=1, max_size=20), min_size=1, max_size=6),
    steps=st.lists(
        st.one_of(st.integers(min_value=0, max_value=15), st.just("cancel")), max_size=12
    ),
)
def test_writes_cut_anywhere_deliver_every_byte_once_in_order(
    pieces: list[bytes], steps: list[int | str]
) -> None:
    """Rule 1 and 2 together: whatever grants and cancels come between, what moved is a
    prefix of the body, counted exactly, and the rest stays queued for the next write."""
    whole = b"".join(pieces)

    async def main() -> None:
        transport = MemoryTransport(window=0)
        headed(transport, (b"Content-Length", str(len(whole)).encode()))
        for piece in pieces:
            transport.send_body(piece)
        transport.send_end()
        async with trio.open_nursery() as nursery:
            writer = trio.CancelScope()

            async def write(scope: trio.CancelScope) -> None:
                with scope:
                    await transport.write()

            nursery.start_soon(write, writer)
            for step in steps:
                if step == "cancel":
                    writer.cancel()
                    await trio.testing.wait_all_tasks_blocked()
                    writer = trio.CancelScope()
                    nursery.start_soon(write, writer)
                else:
                    assert isinstance(step, int)
                    transport.grant(step)
                await trio.testing.wait_all_tasks_blocked()
                sent = bytes(transport.response.body)
                assert whole.startswith(sent)
                assert transport.body_bytes_sent == len(sent)
                assert transport.queued == len(whole) - len(sent)
                assert transport.response_complete is (sent == whole)
            transport.open_window()
        assert transport.response.body == whole
        assert transport.response_complete
        assert transport.keep_alive

    trio.run(main)


@pytest.mark.parametrize(
    ("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304), ("GET", 103)]
)
def test_bodiless_answers_drop_their_body_and_are_complete_with_their_head(
    method: str, status: int
) -> None:
    transport = MemoryTransport(method=method)
    headed(transport, (b"Content-Length", b"5"), status=status)
    transport.send_body(b"hello")
    assert transport.try_write()
    assert (transport.response.body, transport.body_bytes_sent) == (b"", 0)
    assert transport.response_complete
    transport.send_end()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([(b"Content-Length", b"x")], b"OK"),
        ([(b"Content-Length", b"-1")], b"OK"),
        ([(b"Content-Length", b"1, 2")], b"OK"),
        ([(b"Content-Length", b"1"), (b"content-length", b"2")], b"OK"),
        ([(b"X-A", b"a\r\nX-B: b")], b"OK"),
        ([], b"O\nK"),
    ],
)
def test_a_head_that_contradicts_itself_or_holds_a_control_byte_is_refused(
    headers: list[tuple[bytes, bytes]], reason: bytes
) -> None:
    transport = MemoryTransport()
    with pytest.raises(FramingError):
        transport.send_head(200, reason, headers, close=False)
    assert transport.try_write()  # nothing was queued
    assert transport.response.status is None


def test_content_length_is_held_to_its_word() -> None:
    transport = MemoryTransport()
    headed(transport, (b"Content-Length", b"3"), (b"content-length", b"3"))
    transport.send_body(b"ab")
    with pytest.raises(FramingError):
        transport.send_body(b"cd")  # too much: nothing of it is queued
    with pytest.raises(FramingError):
        transport.send_end()  # too little
    transport.send_body(b"c")
    transport.send_end()
    assert transport.try_write()
    assert transport.response.body == b"abc"


def test_a_second_head_is_refused() -> None:
    transport = MemoryTransport()
    headed(transport)
    with pytest.raises(FramingError):
        headed(transport)


# ------------------------------------------------------------------ rule 2 and 3: counts, complete


def test_a_content_length_response_is_complete_at_its_last_byte_before_the_end() -> None:
    transport = MemoryTransport(window=4)
    headed(transport, (b"Content-Length", b"5"))
    transport.send_body(b"hello")
    transport.try_write()
    assert not transport.response_complete
    transport.grant(1)
    transport.try_write()
    assert transport.response_complete
    assert not transport.response.ended
    assert not transport.keep_alive  # the end has not moved yet


def test_a_response_of_unknown_length_is_complete_once_its_end_moved() -> None:
    transport = MemoryTransport()
    headed(transport)
    transport.send_body(b"hello")
    transport.try_write()
    assert not transport.response_complete
    transport.send_end()
    transport.try_write()
    assert transport.response_complete
    assert transport.response.complete


def test_reset_drops_what_is_queued_and_the_response_is_not_complete() -> None:
    transport = MemoryTransport(window=2)
    headed(transport, (b"Content-Length", b"4"))
    transport.send_body(b"abcd")
    transport.try_write()
    transport.reset()
    transport.send_body(b"zz")  # nothing more is sent
    transport.send_end()
    assert transport.try_write()
    transport.open_window()
    assert (transport.response.body, transport.body_bytes_sent) == (b"ab", 2)
    assert transport.response.reset
    assert not transport.response_complete
    assert not transport.keep_alive


def test_a_write_waiting_when_the_transport_is_reset_raises_peer_gone() -> None:
    async def main() -> None:
        transport = stalled(0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raises, PeerGoneError, transport.write)
            await transport.wait_write_blocked()
            transport.reset()

    trio.run(main)


def test_raw_bytes_count_as_body_and_never_complete_nor_keep_alive() -> None:
    transport = MemoryTransport()
    transport.send_raw(b"HTTP/1.1 200 OK\r\n\r\nhi")
    assert transport.try_write()
    assert transport.response.raw
    assert transport.response.status is None
    assert transport.body_bytes_sent == 21
    assert not transport.response_complete
    assert not transport.keep_alive


def test_close_is_recorded_and_ends_keep_alive() -> None:
    transport = MemoryTransport()
    transport.send_head(200, b"OK", [], close=True)
    transport.send_end()
    transport.try_write()
    assert transport.response.close
    assert transport.response_complete
    assert not transport.keep_alive


# ------------------------------------------------------------------ rule 4: the peer


def test_disconnect_calls_the_watcher_once_and_writes_raise_peer_gone() -> None:
    async def main() -> None:
        calls: list[str] = []
        transport = stalled(1)
        transport.watch_peer(lambda: calls.append("gone"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raises, PeerGoneError, transport.write)
            await transport.wait_write_blocked()
            transport.disconnect()
            transport.disconnect()
        assert calls == ["gone"]
        assert transport.body_bytes_sent == 1  # exact for a response cut short
        assert not transport.try_write()
        with pytest.raises(PeerGoneError):
            await transport.write()
        transport.watch_peer(lambda: calls.append("late watcher"))  # gone already: at once
        assert calls == ["gone", "late watcher"]

    trio.run(main)


def test_watch_peer_none_stops_watching() -> None:
    calls: list[str] = []
    transport = MemoryTransport()
    transport.watch_peer(lambda: calls.append("gone"))
    transport.watch_peer(None)
    transport.disconnect()
    assert calls == []


def test_give_up_raises_peer_too_slow_without_calling_the_watcher() -> None:
    async def main() -> None:
        calls: list[str] = []
        transport = stalled(0, body=None)
        transport.watch_peer(lambda: calls.append("gone"))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(raises, PeerTooSlowError, transport.write)
            nursery.start_soon(raises, PeerTooSlowError, lambda: transport.receive_body(10))
            await transport.wait_write_blocked()
            await transport.wait_read_blocked()
            transport.give_up()
        assert calls == []

    trio.run(main)


# ------------------------------------------------------------------ the request body


def test_a_given_body_is_read_in_pieces() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=b"hello world")
        assert transport.body_remaining == 11
        assert await transport.receive_body(5) == b"hello"
        assert transport.body_remaining == 6
        assert await transport.receive_body(100) == b" world"
        assert await transport.receive_body(100) == b""
        assert transport.body_remaining == 0

    trio.run(main)


def test_a_fed_body_of_unknown_length_waits_for_the_test() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=None)
        assert transport.body_remaining is None
        got: list[bytes] = []
        async with trio.open_nursery() as nursery:

            async def read() -> None:
                while data := await transport.receive_body(4):
                    got.append(data)

            nursery.start_soon(read)
            await transport.wait_read_blocked()
            transport.feed(b"abcdef")
            await transport.wait_read_blocked()
            transport.end_body()
        assert got == [b"abcd", b"ef"]
        assert transport.body_remaining == 0
        with pytest.raises(ValueError, match="has ended"):
            transport.feed(b"late")

    trio.run(main)


def test_a_fed_body_with_a_length_ends_at_its_length() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=None, body_length=4)
        assert transport.body_remaining == 4
        with pytest.raises(ValueError, match="body_length"):
            transport.feed(b"12345")
        transport.feed(b"1234")
        assert await transport.receive_body(10) == b"1234"
        assert await transport.receive_body(10) == b""

    trio.run(main)


def test_a_fed_body_of_length_zero_has_ended_at_once() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=None, body_length=0)
        assert transport.body_remaining == 0
        with trio.fail_after(1):
            assert await transport.receive_body(10) == b""

    trio.run(main)


def test_the_client_leaving_mid_body_is_peer_gone_after_the_bytes_that_came() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=None)
        transport.feed(b"ab")
        transport.disconnect()
        assert await transport.receive_body(10) == b"ab"
        with pytest.raises(PeerGoneError):
            await transport.receive_body(10)

    trio.run(main)


def test_a_body_past_max_body_bytes_is_refused_at_every_read() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=b"x" * 11, max_body_bytes=10)
        for _ in range(2):
            with pytest.raises(BodyTooLargeError):
                await transport.receive_body(5)

    trio.run(main)


@settings(max_examples=150, deadline=None)
@given(
    feeds=st.lists(st.binary(min_size=1, max_size=10), max_size=5),
    sizes=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=10),
    cancels=st.lists(st.booleans(), min_size=1, max_size=10),
)
def test_cancelled_reads_lose_no_byte(
    feeds: list[bytes], sizes: list[int], cancels: list[bool]
) -> None:
    whole = b"".join(feeds)

    async def main() -> None:
        transport = MemoryTransport(body=None)
        for data in feeds:
            transport.feed(data)
        transport.end_body()
        got = bytearray()
        for i in range(len(whole) + len(sizes) + 1):
            with trio.CancelScope() as scope:
                if cancels[i % len(cancels)]:
                    scope.cancel()
                data = await transport.receive_body(sizes[i % len(sizes)])
                if not data:
                    break
                got += data
        else:
            got += await transport.receive_body(len(whole) + 1)
        assert got == whole
        assert await transport.receive_body(1) == b""

    trio.run(main)


# ------------------------------------------------------------------ transmit_file


def test_transmit_file_sends_the_range_as_body_bytes(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 600)  # more than one piece

    async def main() -> None:
        transport = MemoryTransport()
        headed(transport, (b"Content-Length", b"150000"))
        with path.open("rb") as file:
            assert await transport.transmit_file(file.fileno(), 10, 150000) == 150000
            with pytest.raises(FramingError):
                await transport.transmit_file(file.fileno(), 0, 1)
        assert transport.response.body == path.read_bytes()[10:150010]
        assert transport.body_bytes_sent == 150000
        assert transport.response_complete

    trio.run(main)


def test_transmit_file_past_the_end_of_the_file_is_eof_and_ends_keep_alive(
    tmp_path: Path,
) -> None:
    path = tmp_path / "short.bin"
    path.write_bytes(b"abc")

    async def main() -> None:
        transport = MemoryTransport()
        headed(transport)
        fd = os.open(path, os.O_RDONLY)
        try:
            with pytest.raises(EOFError):
                await transport.transmit_file(fd, 0, 10)
        finally:
            os.close(fd)
        transport.send_end()
        transport.try_write()
        assert transport.response.body == b"abc"
        assert not transport.keep_alive

    trio.run(main)


def test_keep_alive_needs_the_whole_request_body_read() -> None:
    async def main() -> None:
        transport = MemoryTransport(body=b"unread")
        headed(transport)
        transport.send_end()
        transport.try_write()
        assert not transport.keep_alive
        await transport.receive_body(100)
        assert transport.keep_alive

    trio.run(main)
