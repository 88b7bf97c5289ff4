"""HTTP/2 over real loopback sockets: streams as requests, RST_STREAM as a client's
disconnect, flow control, the limits, shutdown; with httpx, curl and a raw ``h2`` client."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import h2.errors
import h2.settings
import httpx
import pytest
import trio
import trio.testing
import trustme
from hpack import NeverIndexedHeaderTuple
from hyperframe.frame import ContinuationFrame, HeadersFrame

import trioiis
from tests.e2e.conftest import client_context
from tests.h2_client import ZERO_WINDOW, H2Client
from tests.helpers import (
    Running,
    all_tasks,
    builtin,
    raw_request,
    register,
    running_server,
)
from trioiis import HttpContext, HttpModule, Notification, OperationAbortedError, Status

E = h2.errors.ErrorCodes
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # the client connection preface


class Tail(HttpModule):
    """Records every request's outcome at END_REQUEST (the tail runs even when cancelled)."""

    outcomes: list[tuple[str, str]]
    changed: trio.Event

    async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
        Tail.outcomes.append((ctx.request.url, ctx.lifecycle.outcome.value))
        Tail.changed.set()
        Tail.changed = trio.Event()


def tail_module() -> tuple[str, Any]:
    Tail.outcomes = []
    Tail.changed = trio.Event()
    return "tail", register(Tail, Notification.END_REQUEST)


class Script(HttpModule):
    """Runs ``Script.handlers[path]`` at BEGIN_REQUEST; other paths go on to static files."""

    handlers: dict[str, Any]

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
        handler = Script.handlers.get(ctx.request.url)
        if handler is None:
            return Status.CONTINUE
        return await handler(ctx)


@contextlib.asynccontextmanager
async def h2_server(
    *modules: Any, settings: dict[int, int] | None = None, **config: Any
) -> AsyncIterator[tuple[Running, H2Client]]:
    """A server and one raw HTTP/2 connection to it."""
    async with running_server(*modules, **config) as srv:
        client = await H2Client.connect(srv.port, settings=settings)
        async with client:
            yield srv, client


async def wait_outcomes(count: int) -> None:
    """Until ``count`` requests reached END_REQUEST."""
    with trio.fail_after(10):
        while len(Tail.outcomes) < count:
            await Tail.changed.wait()


def script(**handlers: Any) -> tuple[str, Any]:
    Script.handlers = {"/" + name: fn for name, fn in handlers.items()}
    return "script", register(Script, Notification.BEGIN_REQUEST)


async def test_httpx_prior_knowledge_and_the_access_log(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    async with running_server(root=site) as srv:
        async with httpx.AsyncClient(http1=False, http2=True, base_url=srv.url) as client:
            responses = [await client.get("/hello.txt") for _ in range(3)]
        async with srv.client() as client:  # the same port still speaks HTTP/1.1
            plain = await client.get("/hello.txt")
    assert [(r.http_version, r.status_code, r.text) for r in responses] == [
        ("HTTP/2", 200, "hello\n")
    ] * 3
    assert plain.http_version == "HTTP/1.1"
    lines = [r.getMessage() for r in caplog.records if r.name == "trioiis.access"]
    assert sum('"GET /hello.txt HTTP/2.0" 200 6 ' in line for line in lines) == 3
    assert srv.server.counters.http2["connections"] == 1
    assert srv.server.counters.http2["streams"] == 3


async def test_a_hundred_streams_run_at_once_and_the_next_is_refused(site: Path) -> None:
    arrived = 0
    all_in = trio.Event()

    async def wait_for_all(ctx: HttpContext) -> Status:
        nonlocal arrived
        arrived += 1
        if arrived == 100:
            all_in.set()
        await all_in.wait()  # only if the 100 requests run concurrently
        ctx.response.write(b"ok")
        return Status.FINISH_REQUEST

    async with h2_server(script(wait=wait_for_all), root=site) as (srv, client):
        await client.until(lambda: client.conn.remote_settings.max_concurrent_streams == 100)
        client.ignore_stream_limit()
        sids = [client.request("/wait") for _ in range(101)]
        await client.flush()
        await client.until(lambda: all(client.results[s].done for s in sids))
        results = [client.results[s] for s in sids]
    assert sum(r.status == 200 and bytes(r.body) == b"ok" for r in results) == 100
    assert [r.reset for r in results if r.reset is not None] == [E.REFUSED_STREAM]
    assert srv.server.counters.http2["streams_refused"] == 1


async def test_rst_stream_cancels_exactly_that_request(site: Path) -> None:
    seen: dict[str, Any] = {}
    started = trio.Event()
    release = trio.Event()

    async def forever(ctx: HttpContext) -> Status:
        started.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            seen["cancelled"] = True
            raise
        return Status.FINISH_REQUEST  # pragma: no cover

    async def slow(ctx: HttpContext) -> Status:
        await release.wait()
        ctx.response.write(b"slow done")
        return Status.FINISH_REQUEST

    async with h2_server(script(forever=forever, slow=slow), tail_module(), root=site) as (
        srv,
        client,
    ):
        doomed = client.request("/forever")
        other = client.request("/slow")
        await client.flush()
        with trio.fail_after(10):
            await started.wait()
        client.conn.reset_stream(doomed, E.CANCEL)
        await client.flush()
        await wait_outcomes(1)
        assert Tail.outcomes == [("/forever", "cancelled_by_client")]
        assert not client.results[other].done  # the other stream goes on
        release.set()
        await client.until(lambda: client.results[other].done)
        after = await client.get("/hello.txt")  # the connection serves the next one
    assert seen == {"cancelled": True}
    assert bytes(client.results[other].body) == b"slow done"
    assert (after.status, bytes(after.body)) == (200, b"hello\n")
    assert ("/slow", "completed") in Tail.outcomes
    assert srv.server.counters.http2["streams_reset_by_client"] == 1
    assert srv.server.counters.outcomes["cancelled_by_client"] == 1


async def test_rst_stream_mid_body_cancels_the_read(site: Path) -> None:
    seen: dict[str, Any] = {}
    first = trio.Event()

    async def upload(ctx: HttpContext) -> Status:
        seen["first"] = await ctx.request.read_entity_body(100)
        first.set()
        try:
            await ctx.request.read_entity_body(100)
        except trio.Cancelled:
            seen["cancelled"] = True
            raise
        return Status.FINISH_REQUEST  # pragma: no cover

    async with h2_server(script(upload=upload), tail_module(), root=site) as (_, client):
        sid = client.request(
            "/upload", method="POST", body=b"part", end=False,
            extra=[(b"content-length", b"10")],
        )  # fmt: skip
        await client.flush()
        with trio.fail_after(10):
            await first.wait()
        client.conn.reset_stream(sid, E.CANCEL)
        await client.flush()
        await wait_outcomes(1)
        after = await client.get("/hello.txt")
    assert seen == {"first": b"part", "cancelled": True}
    assert Tail.outcomes[0] == ("/upload", "cancelled_by_client")
    assert after.status == 200


async def test_a_window_left_closed_resets_the_stream_after_send_timeout(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def big(ctx: HttpContext) -> Status:
        ctx.response.write(b"x" * 1000)
        return Status.FINISH_REQUEST

    limits = trioiis.Limits(send_timeout=0.3)
    async with h2_server(
        script(big=big), tail_module(), root=site, limits=limits, settings=ZERO_WINDOW
    ) as (srv, client):
        await client.until(lambda: client.conn.local_settings.initial_window_size == 0)
        result = await client.get("/big")
        after = await client.get("/hello.txt")  # others still served (after a window)
    assert (result.status, result.reset, bytes(result.body)) == (200, E.CANCEL, b"")
    assert after.status == 200  # a window of 0 does not hold back HEADERS and END_STREAM
    assert Tail.outcomes[0] == ("/big", "aborted_by_server")
    assert srv.server.counters.http2["window_stalls"] >= 1
    assert any("window closed" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "limits",
    [
        trioiis.Limits(min_body_rate=1_000_000, rate_grace=0.2, body_timeout=60),
        trioiis.Limits(body_timeout=0.3, min_body_rate=0),
    ],
    ids=["min_body_rate", "body_timeout"],
)
@pytest.mark.parametrize("head_first", [False, True], ids=["before_the_head", "after_it"])
async def test_a_stream_uploading_too_slowly_is_aborted_and_ends_alone(
    site: Path, limits: trioiis.Limits, head_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def upload(ctx: HttpContext) -> Status:
        if head_first:
            ctx.response.write(b"started ")
            await ctx.response.flush(more_data=True)
        try:
            await ctx.request.read_all()
        except trioiis.ConnectionInvalidError as exc:
            seen.append(str(exc))
        return Status.FINISH_REQUEST

    async with h2_server(script(upload=upload), tail_module(), root=site, limits=limits) as (
        srv,
        client,
    ):
        sid = client.request(
            "/upload", method="POST", body=b"x" * 10, end=False,
            extra=[(b"content-length", b"100000")],
        )  # fmt: skip
        await client.flush()
        await client.until(lambda: client.results[sid].reset is not None)
        await wait_outcomes(1)
        after = await client.get("/hello.txt")  # the connection goes on
    result = client.results[sid]
    if head_first:  # too late for a 408: the stream is reset
        assert (result.status, bytes(result.body)) == (200, b"started ")
        assert result.reset in (E.NO_ERROR, E.CANCEL)
    else:  # a 408, then RST_STREAM NO_ERROR: the client may stop sending its body
        assert (result.status, result.ended, result.reset) == (408, True, E.NO_ERROR)
    assert len(seen) == 1
    assert Tail.outcomes[0] == ("/upload", "aborted_by_server")
    assert (after.status, client.goaway) == (200, None)  # one stream's client, not all
    assert srv.server.counters.http2["slow_bodies"] == 1
    assert any("sent its request body" in r.getMessage() for r in caplog.records)


async def test_a_stream_read_below_min_send_rate_is_reset(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def big(ctx: HttpContext) -> Status:
        ctx.response.write(b"x" * 1000)
        return Status.FINISH_REQUEST

    # send_timeout long: only the minimum rate can end it before the test's bound
    limits = trioiis.Limits(min_send_rate=1_000_000, rate_grace=0.2, send_timeout=60)
    window = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100}
    modules = (script(big=big), tail_module())
    async with h2_server(*modules, root=site, limits=limits, settings=window) as (srv, client):
        client.auto_window = False  # reads 100 bytes, then takes nothing more
        await client.until(lambda: client.conn.local_settings.initial_window_size == 100)
        result = await client.get("/big")
        await wait_outcomes(1)
        after = await client.get("/hello.txt")  # the connection's other streams go on
    assert (result.status, result.reset, bytes(result.body)) == (200, E.CANCEL, b"x" * 100)
    assert Tail.outcomes[0] == ("/big", "aborted_by_server")
    assert (after.status, bytes(after.body)) == (200, b"hello\n")
    assert srv.server.counters.http2["slow_reads"] == 1
    assert srv.server.counters.http2["window_stalls"] == 0
    assert any("slower than 1e+06 bytes/s" in r.getMessage() for r in caplog.records)


async def test_a_response_that_idles_between_writes_is_not_held_to_the_idle_time(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    """Over TLS every write waits for the connection's writer: the minimum rate counts
    those waits, not the time the request spent between writes."""

    async def ticks(ctx: HttpContext) -> Status:
        for _ in range(2):
            ctx.response.write(b"tick ")
            await ctx.response.flush(more_data=True)
            await trio.sleep(0.5)  # sleep-ok: an app with nothing to say for a while
        return Status.FINISH_REQUEST

    limits = trioiis.Limits(min_send_rate=1_000_000, rate_grace=0.2)
    async with running_server(
        script(ticks=ticks), tail_module(), root=site, limits=limits, **tls_files
    ) as srv:
        context = client_context(ca)
        context.set_alpn_protocols(["h2"])
        tcp = await trio.open_tcp_stream("127.0.0.1", srv.port)
        async with H2Client(trio.SSLStream(tcp, context, server_hostname="127.0.0.1")) as client:
            await client.flush()
            result = await client.get("/ticks")
            await wait_outcomes(1)
    assert (result.status, bytes(result.body), result.reset) == (200, b"tick tick ", None)
    assert Tail.outcomes == [("/ticks", "completed")]


async def test_response_fields_are_normalized_and_credentials_never_indexed(site: Path) -> None:
    async def fields(ctx: HttpContext) -> Status:
        ctx.response.set_header("X-Padded", "  value\t")
        ctx.response.set_header("Authorization", "Bearer secret")
        ctx.response.set_header("TE", "trailers")
        ctx.response.write(b"ok")
        return Status.FINISH_REQUEST

    async with h2_server(script(fields=fields), root=site) as (_, client):
        result = await client.get("/fields")
    assert result.headers[b"x-padded"] == b"value"
    assert b"te" not in result.headers  # connection-specific (RFC 9113 8.2.2)
    [auth] = [f for f in result.fields if f[0] == b"authorization"]
    assert isinstance(auth, NeverIndexedHeaderTuple)  # kept out of the HPACK table
    assert auth[1] == b"Bearer secret"


async def test_cancel_io_on_a_write_waiting_for_window_reports_the_bytes_sent(
    site: Path,
) -> None:
    seen: dict[str, Any] = {}

    async def partial(ctx: HttpContext) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked(0.05)
            seen["cancelled"] = ctx.cancel_io()

        ctx.start_soon(canceller)
        ctx.response.write(b"y" * 100)
        try:
            await ctx.response.flush()
        except OperationAbortedError as exc:
            seen["completion"] = exc.completion.completion_bytes
            ctx.response.reset_connection()  # over HTTP/2: RST_STREAM, this stream only
        return Status.FINISH_REQUEST

    window = {h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10}
    modules = (script(partial=partial), tail_module())
    async with h2_server(*modules, root=site, settings=window) as (_, client):
        client.auto_window = False
        await client.until(lambda: client.conn.local_settings.initial_window_size == 10)
        result = await client.get("/partial")
    assert seen == {"cancelled": 1, "completion": 10}
    assert bytes(result.body) == b"y" * 10
    assert result.reset == E.CANCEL  # the response could not be completed
    assert Tail.outcomes == [("/partial", "aborted_by_server")]


def _headers_flood() -> bytes:
    block = HeadersFrame(1)  # no END_HEADERS: CONTINUATIONs must follow
    block.data = b"\x82"
    frames = [block.serialize()]
    for _ in range(100):
        cont = ContinuationFrame(1)
        cont.data = b"\x40\x01a\x01b"  # a literal header a: b, again and again
        frames.append(cont.serialize())
    return b"".join(frames)


async def _flood(client: H2Client, kind: str) -> None:
    conn = client.conn
    if kind == "ping":
        for i in range(20):
            conn.ping(i.to_bytes(8, "big"))
    elif kind == "settings":
        for _ in range(20):
            conn.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
    elif kind == "window_update":
        for _ in range(20):
            conn.increment_flow_control_window(1)
    elif kind == "rapid_reset":
        for _ in range(20):
            sid = client.request("/hello.txt")
            conn.reset_stream(sid, E.CANCEL)
    elif kind == "continuation":
        await client.send_raw(_headers_flood())
        return
    elif kind == "header_list":
        client.request("/hello.txt", extra=[(b"x-big", b"v" * 70_000)])
    await client.flush()


@pytest.mark.parametrize(
    ("kind", "counter"),
    [
        ("ping", "ping_flood"),
        ("settings", "settings_flood"),
        ("window_update", "window_update_flood"),
        ("rapid_reset", "rapid_reset"),
        ("continuation", "header_flood"),
        ("header_list", "header_flood"),
    ],
)
async def test_floods_get_goaway_enhance_your_calm(
    site: Path, kind: str, counter: str, caplog: pytest.LogCaptureFixture
) -> None:
    started = trio.Event()

    async def forever(ctx: HttpContext) -> Status:
        started.set()
        await trio.sleep_forever()
        return Status.FINISH_REQUEST  # pragma: no cover

    limits = trioiis.Limits(
        h2_max_pings=10, h2_max_settings=10, h2_max_window_updates=10, h2_max_resets=10
    )
    modules = (script(forever=forever), tail_module())
    async with h2_server(*modules, root=site, limits=limits) as (srv, client):
        client.request("/forever")  # a request in flight when the server cuts
        await client.flush()
        with trio.fail_after(10):
            await started.wait()
        await _flood(client, kind)
        await client.until_closed()
        await wait_outcomes(1)
        fresh = await H2Client.connect(srv.port)
        async with fresh:
            assert (await fresh.get("/hello.txt")).status == 200  # the server is fine
    assert client.goaway is not None
    assert client.goaway.error_code == E.ENHANCE_YOUR_CALM
    assert srv.server.counters.http2[counter] == 1
    assert any("ENHANCE_YOUR_CALM" in r.getMessage() for r in caplog.records)
    assert Tail.outcomes[0] == ("/forever", "aborted_by_server")  # the server cut it


async def test_a_path_not_in_origin_form_is_refused_and_the_connection_goes_on(
    site: Path,
) -> None:
    """RFC 9113 §8.3.1: ``:path`` is origin-form; an absolute URI or ``*`` resets that stream."""
    async with h2_server(root=site) as (_, client):
        for path in ("http://127.0.0.1/hello.txt", "*"):
            result = await client.get(path, method="OPTIONS" if path == "*" else "GET")
            assert result.reset == E.PROTOCOL_ERROR, path
        assert (await client.get("/hello.txt")).status == 200


@pytest.mark.parametrize(
    ("fields", "trailers"),
    [
        ([(b"X-Upper", b"v")], None),  # RFC 9113 §8.2.1: names are lower-case
        ([(b"connection", b"close")], None),  # §8.2.2: connection-specific
        ([(b"x-a", b" v")], None),  # §8.2.1: no whitespace around a value
        ([(b"host", b"elsewhere")], None),  # §8.3.1: Host and :authority differ
        ([], [(b":path", b"/")]),  # §8.1: no pseudo-header in trailers
        ([], [(b"x-a", b"a\x00b")]),
    ],
)
async def test_a_malformed_field_block_is_a_connection_error(
    site: Path, fields: list[tuple[bytes, bytes]], trailers: list[tuple[bytes, bytes]] | None
) -> None:
    """What h2 refuses in a request's fields (the server checks them itself, in one pass):
    GOAWAY PROTOCOL_ERROR, counted; other connections go on."""
    async with h2_server(root=site) as (srv, client):
        client.conn.config.validate_outbound_headers = False
        client.conn.config.normalize_outbound_headers = False
        assert (await client.get("/hello.txt")).status == 200
        sid = client.request("/hello.txt", extra=fields, end=trailers is None)
        if trailers is not None:
            client.conn.send_headers(sid, trailers, end_stream=True)
        await client.flush()
        await client.until_closed()
        assert client.goaway is not None
        assert client.goaway.error_code == E.PROTOCOL_ERROR
        assert srv.server.counters.http2["protocol_errors"] == 1
        fresh = await H2Client.connect(srv.port)
        async with fresh:
            assert (await fresh.get("/hello.txt")).status == 200


async def test_max_requests_per_connection_sends_goaway(site: Path) -> None:
    limits = trioiis.Limits(max_requests_per_connection=3)
    async with h2_server(root=site, limits=limits) as (srv, client):
        for _ in range(3):
            assert (await client.get("/hello.txt")).status == 200
        await client.until_closed()
    assert client.goaway is not None
    assert (client.goaway.error_code, client.goaway.last_stream_id) == (E.NO_ERROR, 5)
    assert srv.server.counters.http2["max_requests_goaway"] == 1


async def test_an_idle_connection_gets_goaway(site: Path) -> None:
    limits = trioiis.Limits(keep_alive_timeout=0.2)
    async with h2_server(root=site, limits=limits) as (srv, client):
        assert (await client.get("/hello.txt")).status == 200
        await client.until_closed()
    assert client.goaway is not None
    assert client.goaway.error_code == E.NO_ERROR
    assert srv.server.counters.http2["idle_closed"] == 1


async def test_graceful_shutdown_lets_streams_in_flight_finish(site: Path) -> None:
    started = trio.Event()
    release = trio.Event()

    async def held(ctx: HttpContext) -> Status:
        started.set()
        await release.wait()
        ctx.response.write(b"finished")
        return Status.FINISH_REQUEST

    async with h2_server(script(held=held), root=site) as (srv, client):
        sid = client.request("/held")
        await client.flush()
        with trio.fail_after(10):
            await started.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(srv.server.shutdown, 5.0)
            await trio.testing.wait_all_tasks_blocked()  # the drain began
            late = await client.get("/hello.txt")  # opened while draining
            release.set()
            await client.until(lambda: client.results[sid].done)
            await client.until_closed()
    assert late.reset == E.REFUSED_STREAM  # safe for the client to retry elsewhere
    assert srv.server.counters.http2["streams_after_goaway"] == 1
    assert srv.server.counters.http2["streams"] == 1  # the refused one was never served
    assert bytes(client.results[sid].body) == b"finished"
    assert client.goaway is not None
    assert (client.goaway.error_code, client.goaway.last_stream_id) == (E.NO_ERROR, sid)


async def test_the_status_module_and_the_metrics_show_the_http2_counts(site: Path) -> None:
    async with h2_server(builtin("status"), builtin("metrics"), root=site) as (_, client):
        assert (await client.get("/hello.txt")).headers[b":status"] == b"200"
        status = json.loads(bytes((await client.get("/_trioiis/status")).body))
        scrape = bytes((await client.get("/_trioiis/metrics")).body).decode()
    assert status["http2"] == {"connections": 1, "streams": 2}  # itself the second
    assert 'trioiis_http2_events_total{kind="connections"} 1.0' in scrape
    assert 'trioiis_http2_events_total{kind="streams"} 3.0' in scrape


async def test_a_goaway_from_the_client_cancels_every_stream(site: Path) -> None:
    started = 0
    both = trio.Event()

    async def forever(ctx: HttpContext) -> Status:
        nonlocal started
        started += 1
        if started == 2:
            both.set()
        await trio.sleep_forever()
        return Status.FINISH_REQUEST  # pragma: no cover

    async with h2_server(script(forever=forever), tail_module(), root=site) as (_, client):
        client.request("/forever")
        client.request("/forever")
        await client.flush()
        with trio.fail_after(10):
            await both.wait()
        client.conn.close_connection()
        await client.flush()
        await wait_outcomes(2)
    assert Tail.outcomes == [("/forever", "cancelled_by_client")] * 2


async def test_http2_off_serves_http11_only(site: Path) -> None:
    async with running_server(root=site, http2=False) as srv:
        raw = await raw_request(srv.port, PREFACE)
    assert raw.startswith(b"HTTP/1.1 505 ")  # h11 read PRI * HTTP/2.0 as HTTP/1


async def test_http2_off_on_one_binding_while_another_speaks_it(site: Path) -> None:
    h1_only = trioiis.Binding("127.0.0.1:0", http2=False)
    async with running_server(root=site, bindings=(h1_only, "127.0.0.1:0")) as srv:
        [(_, off), (_, on)] = srv.bound
        refused = await raw_request(off, PREFACE)
        async with httpx.AsyncClient(http1=False, http2=True) as client:
            answer = await client.get(f"http://127.0.0.1:{on}/hello.txt")
        async with httpx.AsyncClient() as client:
            plain = await client.get(f"http://127.0.0.1:{off}/hello.txt")
    assert refused.startswith(b"HTTP/1.1 505 ")  # as with HTTP/2 off everywhere
    assert (answer.http_version, answer.text) == ("HTTP/2", "hello\n")
    assert (plain.http_version, plain.text) == ("HTTP/1.1", "hello\n")
    assert srv.server.counters.http2["connections"] == 1


async def test_a_binding_turns_http2_on_where_the_server_default_is_off(site: Path) -> None:
    h2_on = trioiis.Binding("127.0.0.1:0", http2=True)
    async with running_server(root=site, http2=False, bindings=("127.0.0.1:0", h2_on)) as srv:
        [(_, off), (_, on)] = srv.bound
        refused = await raw_request(off, PREFACE)
        client = await H2Client.connect(on)
        async with client:
            answer = await client.get("/hello.txt")
    assert refused.startswith(b"HTTP/1.1 505 ")
    assert (answer.status, bytes(answer.body)) == (200, b"hello\n")


async def test_inherited_sockets_take_the_http2_setting_of_the_binding_on_their_port(
    site: Path,
) -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = trioiis.ServerConfig(
        root=site, bindings=(trioiis.Binding(f"127.0.0.1:{port}", http2=False),)
    )
    server = trioiis.HttpServer(config, sockets=[sock])  # as a worker or systemd gets them
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        refused = await raw_request(port, PREFACE)
        await server.shutdown(grace=1)
    assert refused.startswith(b"HTTP/1.1 505 ")


async def _alpn(port: int, ca: trustme.CA) -> str | None:
    context = client_context(ca)
    context.set_alpn_protocols(["h2", "http/1.1"])
    tcp = await trio.open_tcp_stream("127.0.0.1", port)
    tls = trio.SSLStream(tcp, context, server_hostname="127.0.0.1")
    async with tls:
        await tls.do_handshake()
        return tls.selected_alpn_protocol()


async def test_alpn_offers_only_http11_on_a_binding_with_http2_off(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    h1_only = trioiis.Binding("127.0.0.1:0", http2=False)
    bindings = (h1_only, "127.0.0.1:0")
    async with running_server(root=site, bindings=bindings, **tls_files) as srv:
        [(_, off), (_, on)] = srv.bound
        chosen = [await _alpn(off, ca), await _alpn(on, ca)]
        context = client_context(ca)
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            answers = [await client.get(f"https://127.0.0.1:{p}/hello.txt") for p in (off, on)]
    assert chosen == ["http/1.1", "h2"]
    assert [(a.http_version, a.text) for a in answers] == [
        ("HTTP/1.1", "hello\n"),
        ("HTTP/2", "hello\n"),
    ]


async def test_alpn_h2_over_tls_with_httpx(
    site: Path, tls_files: dict[str, Path], ca: trustme.CA
) -> None:
    async with running_server(root=site, **tls_files) as srv:
        url = f"https://127.0.0.1:{srv.port}"
        context = client_context(ca)
        async with httpx.AsyncClient(http2=True, verify=context, base_url=url) as client:
            response = await client.get("/hello.txt")
    assert (response.http_version, response.text) == ("HTTP/2", "hello\n")


def _curl_http2() -> str:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (apt-get install curl)")
    features = subprocess.run([curl, "-V"], capture_output=True, text=True, check=True).stdout
    if "HTTP2" not in features:
        pytest.skip("this curl was built without HTTP/2 (nghttp2)")
    return curl


async def test_curl_prior_knowledge_and_alpn(
    site: Path, tls_files: dict[str, Path], tmp_path: Path, ca: trustme.CA
) -> None:
    curl = _curl_http2()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fmt = ["-s", "-o", "-", "-w", "|%{http_version}", "--max-time", "10"]
    async with running_server(root=site) as srv:
        plain = await trio.run_process(
            [curl, *fmt, "--http2-prior-knowledge", f"{srv.url}/hello.txt"], capture_stdout=True
        )
    async with running_server(root=site, **tls_files) as srv:
        url = f"https://127.0.0.1:{srv.port}/hello.txt"
        tls = await trio.run_process(
            [curl, *fmt, "--http2", "--cacert", str(ca_file), url], capture_stdout=True
        )
    assert plain.stdout == b"hello\n|2"
    assert tls.stdout == b"hello\n|2"


async def test_no_task_outlives_its_connection(site: Path) -> None:
    async with running_server(root=site) as srv:
        async with await H2Client.connect(srv.port) as client:
            for _ in range(3):
                await client.get("/hello.txt")
        await trio.testing.wait_all_tasks_blocked()
        open_after = srv.server.counters.connections_open
        names = list(all_tasks())
    assert open_after == 0
    assert not [n for n in names if "h2" in n]


async def test_traces_name_the_stream(site: Path, tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    async with h2_server(root=site, trace_dir=traces, trace_when="status>=200") as (_, client):
        await client.get("/hello.txt")
        await client.get("/hello.txt")
    documents = [json.loads(path.read_text()) for path in traces.glob("*.json")]
    assert sorted(d["request"]["stream_id"] for d in documents) == [1, 3]
