"""The lean ``h2`` connection (``trioiis/_protocol/h2_lean.py``) and the idle HTTP/2
connection as one task.

The first tests check the ``h2`` and ``hpack`` names the lean connection relies on: they fail
first when a new ``h2`` or ``hpack`` changes one (pyproject.toml bounds both to the versions
checked). The last ones check, over a real socket, that an idle connection is its reading
task alone and that HPACK's state survives idling.
"""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import hpack.table
import pytest
import trio
import trio.testing
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

import trioiis
from tests.e2e.conftest import client_context
from tests.h2_client import H2Client
from tests.helpers import Running, register, running_server
from trioiis import HttpContext, HttpModule, Notification, Status
from trioiis._protocol.h2_lean import (
    SERVER_CONFIG,
    LeanH2Connection,
    _SettingValues,
    _TableEntries,
    compact_hpack,
    compact_settings,
    quiet_hpack_logs,
    shared_local_settings,
)

CODES = h2.settings.SettingCodes


def test_h2_settings_keep_their_values_in_lists() -> None:
    """The swap of h2's per-setting deques for lists keeps every value and h2's acknowledge
    cycle; this fails first if h2 changes how it stores them (``Settings._settings``)."""
    assert type(h2.settings.Settings()._settings[CODES.HEADER_TABLE_SIZE]) is collections.deque
    values = h2.settings.Settings(client=False, initial_values={CODES.MAX_FRAME_SIZE: 32768})
    compact_settings(values)
    values[CODES.INITIAL_WINDOW_SIZE] = 100  # sent, not yet acknowledged
    values[0x99] = 7  # a setting h2 does not know: a new entry
    assert values.initial_window_size == 65535
    changed = values.acknowledge()
    assert {k: (c.original_value, c.new_value) for k, c in changed.items()} == {
        CODES.INITIAL_WINDOW_SIZE: (65535, 100),
        0x99: (None, 7),
    }
    assert (values.initial_window_size, values.max_frame_size, values[0x99]) == (100, 32768, 7)
    compact_settings(values)
    assert {type(v) for v in values._settings.values()} == {_SettingValues}


def test_shared_local_settings_are_one_object_that_never_changes() -> None:
    asked = {CODES.MAX_CONCURRENT_STREAMS: 100, CODES.INITIAL_WINDOW_SIZE: 1 << 20}
    shared = shared_local_settings(asked)
    assert shared_local_settings(dict(asked)) is shared
    assert shared_local_settings({**asked, CODES.MAX_CONCURRENT_STREAMS: 7}) is not shared
    assert dict(shared) == dict(h2.settings.Settings(client=False, initial_values=asked))
    assert (shared.max_concurrent_streams, shared.initial_window_size) == (100, 1 << 20)
    assert shared.acknowledge() == {}  # a SETTINGS ACK from the client changes nothing
    with pytest.raises(TypeError):
        shared[CODES.MAX_CONCURRENT_STREAMS] = 5
    with pytest.raises(TypeError):
        del shared[CODES.MAX_CONCURRENT_STREAMS]
    assert shared.max_concurrent_streams == 100


def test_h2_dispatches_frames_through_a_table_of_bound_handlers() -> None:
    """``LeanH2Connection`` replaces ``H2Connection._frame_dispatch_table``: h2 must still
    build it in ``__init__`` as a dict of frame class → bound handler."""
    plain = h2.connection.H2Connection()
    table = plain._frame_dispatch_table
    assert isinstance(table, dict)
    assert len(table) >= 12
    assert all(getattr(handler, "__self__", None) is plain for handler in table.values())
    lean = LeanH2Connection(config=SERVER_CONFIG)
    assert "_frame_dispatch_table" not in vars(lean)
    for frame_type, handler in table.items():
        bound = lean._frame_dispatch_table[frame_type]
        assert (bound.__self__, bound.__func__) == (lean, handler.__func__)


def _frames_of_a_client() -> bytes:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.update_settings({CODES.INITIAL_WINDOW_SIZE: 1000})
    request = [(":method", "POST"), (":path", "/"), (":scheme", "http"), (":authority", "a")]
    client.send_headers(1, [*request, ("x-custom", "one")])
    client.send_data(1, b"body", end_stream=True)
    client.send_headers(3, [*request, ("x-custom", "one")], end_stream=False)
    client.reset_stream(3)
    client.ping(b"12345678")
    client.increment_flow_control_window(1000)
    client.prioritize(5, weight=10)
    client.send_headers(5, [*request, ("x-custom", "two")], end_stream=True)
    client.close_connection()
    return client.data_to_send()


def _events(machine: h2.connection.H2Connection, data: bytes) -> list[str]:
    machine.initiate_connection()
    return [repr(event) for event in machine.receive_data(data)]


def test_a_lean_connection_handles_frames_as_h2_does() -> None:
    data = _frames_of_a_client()
    plain = h2.connection.H2Connection(SERVER_CONFIG)
    lean = LeanH2Connection(config=SERVER_CONFIG)
    compact_settings(lean.remote_settings)
    compact_hpack(lean)
    events = _events(lean, data)
    assert events == _events(plain, data)
    assert len(events) > 10
    assert lean.data_to_send() == plain.data_to_send()


_OPTIONS = (
    "client_side",
    "header_encoding",
    "validate_outbound_headers",
    "normalize_outbound_headers",
    "split_outbound_cookies",
    "validate_inbound_headers",
    "normalize_inbound_headers",
)


def test_the_server_configuration_reads_as_h2s_own_with_plain_attributes() -> None:
    """``SERVER_CONFIG`` hides ``H2Configuration``'s option descriptors with plain class
    attributes: h2 must still define each option under that name (a descriptor or a
    property), and every option must read as a stock configuration's with the same
    arguments, kept in the instance (no call per read)."""
    stock = h2.config.H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    for name in _OPTIONS:
        assert hasattr(vars(h2.config.H2Configuration)[name], "__set__"), name
        assert name in vars(SERVER_CONFIG), name
        assert getattr(SERVER_CONFIG, name) == getattr(stock, name), name
    SERVER_CONFIG.logger.debug("%s %d", "dropped", 1)  # h2's calls: any arguments
    SERVER_CONFIG.logger.trace("dropped", key=1)
    data = _frames_of_a_client()
    assert _events(LeanH2Connection(config=SERVER_CONFIG), data) == _events(
        h2.connection.H2Connection(stock), data
    )


def test_hpack_logs_through_module_loggers_that_are_quiet_unless_debug_is_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``quiet_hpack_logs`` swaps ``hpack.hpack.log`` and ``hpack.table.log``: they must be
    hpack's module loggers; swapped, they drop calls; with DEBUG on they log again."""
    decoder_input = hpack.Encoder().encode([(b":method", b"GET"), (b"x-a", b"b")])
    modules = (hpack.hpack, hpack.table)
    try:
        quiet_hpack_logs()
        assert all(not isinstance(m.log, logging.Logger) for m in modules)
        with caplog.at_level(logging.DEBUG, logger="hpack"):
            assert hpack.Decoder().decode(decoder_input, raw=True) == [
                (b":method", b"GET"),
                (b"x-a", b"b"),
            ]
            assert not [r for r in caplog.records if r.name.startswith("hpack")]
            quiet_hpack_logs()  # a connection made while DEBUG is on
            assert [m.log for m in modules] == [logging.getLogger(m.__name__) for m in modules]
            hpack.Decoder().decode(decoder_input, raw=True)
            assert [r for r in caplog.records if r.name == "hpack.hpack"]
    finally:
        quiet_hpack_logs()
    assert all(not isinstance(m.log, logging.Logger) for m in modules)


def test_hpack_tables_are_deques_with_the_operations_used() -> None:
    """``compact_hpack`` replaces ``HeaderTable.dynamic_entries``: it must exist (a deque)."""
    assert type(hpack.table.HeaderTable().dynamic_entries) is collections.deque
    machine = LeanH2Connection(config=SERVER_CONFIG)
    compact_hpack(machine)
    assert type(machine.encoder.header_table.dynamic_entries) is _TableEntries
    assert type(machine.decoder.header_table.dynamic_entries) is _TableEntries


_names = st.sampled_from([b"x-a", b"x-b", b"cookie", b"accept", b"x-long-name-" * 3])
_values = st.binary(min_size=0, max_size=40)
_blocks = st.lists(
    st.lists(st.tuples(_names, _values), min_size=1, max_size=6), min_size=1, max_size=12
)


@settings(max_examples=60, deadline=None)
@given(blocks=_blocks, table_size=st.sampled_from([0, 64, 128, 256, 4096]))
def test_hpack_with_list_tables_encodes_and_decodes_as_with_deques(
    blocks: list[list[tuple[bytes, bytes]]], table_size: int
) -> None:
    """Header blocks through an encoder and a decoder with list tables: the same bytes as
    hpack's own, decoded back to the same fields, entries evicted as the table fills."""
    lean_encoder, lean_decoder = hpack.Encoder(), hpack.Decoder()
    plain_encoder, plain_decoder = hpack.Encoder(), hpack.Decoder()
    for coder in (lean_encoder, lean_decoder):
        coder.header_table.dynamic_entries = _TableEntries()  # type: ignore[assignment]
    lean_encoder.header_table_size = plain_encoder.header_table_size = table_size
    for fields in blocks:
        encoded = lean_encoder.encode(fields)
        assert encoded == plain_encoder.encode(fields)
        decoded = lean_decoder.decode(encoded, raw=True)
        assert decoded == plain_decoder.decode(encoded, raw=True)
        assert [tuple(f) for f in decoded] == fields
        assert list(lean_decoder.header_table.dynamic_entries) == list(
            plain_decoder.header_table.dynamic_entries
        )


class Echo(HttpModule):
    """Answers with a response field that repeats and one that changes (HPACK indexes
    both), and echoes the request's ``x-round``."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        ctx.response.set_header("x-constant", "the same in every response")
        round_ = ctx.request.headers.get("x-round") or ""
        ctx.response.set_header("x-round", round_)
        ctx.response.write(b"round " + round_.encode())
        return Status.FINISH_REQUEST


def _connection_tasks(srv: Running) -> list[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    stack, found = [root], []
    while stack:
        task = stack.pop()
        if task.name.startswith("trioiis h2") or task.name == "trioiis connection":
            found.append(task)
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return found


async def test_an_idle_connection_is_one_task_and_hpack_state_survives_idling(
    site: Path,
) -> None:
    """Between rounds the connection has no stream: one task, no nursery of its own, its
    idle clock on the server's reaper. Each round's request fields repeat the last round's
    (the client's encoder refers to the server's decoder table) and so do the responses'
    (the other way round)."""
    async with running_server(
        ("echo", register(Echo, Notification.BEGIN_REQUEST)), root=site
    ) as srv:
        async with await H2Client.connect(srv.port) as client:
            for round_ in range(4):
                extra = [(b"x-round", str(round_).encode()), (b"x-client", b"always the same")]
                sids = [client.request("/", extra=extra) for _ in range(3)]
                await client.flush()
                await client.until(lambda sids=sids: all(client.results[s].done for s in sids))
                for sid in sids:
                    result = client.results[sid]
                    assert result.status == 200
                    assert result.headers[b"x-constant"] == b"the same in every response"
                    assert result.headers[b"x-round"] == str(round_).encode()
                    assert bytes(result.body) == b"round %d" % round_
                await trio.testing.wait_all_tasks_blocked()  # the streams' tails ended
                tasks = _connection_tasks(srv)
                assert [task.name for task in tasks] == ["trioiis connection"]
                assert tasks[0].child_nurseries == []
                assert srv.server._reaper is not None
                assert len(srv.server._reaper) == 1  # the idle clock runs
            assert client.conn.decoder.header_table.dynamic_entries  # responses were indexed
        assert srv.server.counters.http2["streams"] == 12


async def test_a_stream_stops_the_idle_clock_and_its_end_restarts_it(site: Path) -> None:
    release = trio.Event()
    started = trio.Event()

    class Held(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            started.set()
            await release.wait()
            ctx.response.write(b"done")
            return Status.FINISH_REQUEST

    limits = trioiis.Limits(keep_alive_timeout=0.05)
    module = ("held", register(Held, Notification.BEGIN_REQUEST))
    async with (
        running_server(module, root=site, limits=limits) as srv,
        await H2Client.connect(srv.port) as client,
    ):
        sid = client.request("/")
        await client.flush()
        with trio.fail_after(10):
            await started.wait()
        assert srv.server._reaper is not None
        assert len(srv.server._reaper) == 0  # a stream runs: no idle deadline
        release.set()
        await client.until(lambda: client.results[sid].done)
        assert bytes(client.results[sid].body) == b"done"
        await client.until_closed()  # idle again: GOAWAY after keep_alive_timeout
    assert client.goaway is not None
    assert srv.server.counters.http2["idle_closed"] == 1


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "tls"])
async def test_a_writer_blocked_on_a_full_socket_ends_with_its_connection(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA, tls: bool
) -> None:
    """The writer runs in the server's connection nursery: when a client that reads
    nothing breaks the protocol, the connection gives its GOAWAY ``linger_timeout`` to go
    out, then stops the writer still waiting for the socket, and nothing of it stays."""

    class Flood(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            for _ in range(64):  # 32 MiB: more than the loopback socket buffers hold
                ctx.response.write(b"x" * (512 * 1024))
                await ctx.response.flush()
            return Status.FINISH_REQUEST

    window = {CODES.INITIAL_WINDOW_SIZE: 2**31 - 1}
    module = ("flood", register(Flood, Notification.BEGIN_REQUEST))
    config: dict[str, Any] = dict(tls_files) if tls else {}
    limits = trioiis.Limits(linger_timeout=0.2)
    async with running_server(module, root=site, limits=limits, **config) as srv:
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
        if tls:
            context = client_context(ca)
            context.set_alpn_protocols(["h2"])
            stream = trio.SSLStream(stream, context, server_hostname="127.0.0.1")
        client = H2Client(stream, settings=window)
        client.conn.increment_flow_control_window(2**31 - 1 - 65535)
        client.request("/")
        await client.flush()  # then reads nothing: the server's writer fills the socket
        with trio.fail_after(10):
            while not any(t.name == "trioiis h2 writer" for t in _connection_tasks(srv)):
                await trio.testing.wait_all_tasks_blocked()
            await trio.testing.wait_all_tasks_blocked()  # the writer waits for the socket
            await client.send_raw(b"\0" * 9)  # DATA on stream 0: a connection error
            while _connection_tasks(srv):
                await trio.testing.wait_all_tasks_blocked()
        await trio.aclose_forcefully(stream)
    assert srv.server.counters.http2["protocol_errors"] == 1
