"""Failed-request traces, the metrics endpoint and the status JSON, over real loopback sockets.

One scenario module serves every test:

* ``POST /tree`` (Content-Length 10, body never sent): runs child ``/mid`` (which runs child
  ``/leaf``), then child ``/leaf``, then starts a body read in a task and ``cancel_io()``s it.
* ``/leaf``: ``leaf``; ``/boom``: raises; ``POST /hang``: waits for a body that never comes
  (the test then disconnects). Anything else falls through to static_file (404).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

import trioiis
from tests.helpers import builtin, register, running_server
from trioiis import (
    CloneFlags,
    ExecuteFlags,
    HttpContext,
    HttpModule,
    Notification,
    OperationAbortedError,
    Status,
)

FAST = trioiis.Limits(linger_timeout=0.5)


class Scenario(HttpModule):
    hanging: trio.Event = trio.Event()

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        path = ctx.request.path
        if path == "/tree":
            for url in ("/mid", "/leaf"):
                child = ctx.clone_context(CloneFlags.BASICS)
                child.request.set_url(url)
                await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
            aborted = trio.Event()

            async def read() -> None:
                try:
                    await ctx.request.read_entity_body(10)
                except OperationAbortedError:
                    aborted.set()

            ctx.start_soon(read)
            for _ in range(1000):  # bounded: the read registers its I/O on its first step
                if ctx.pending_io_count:
                    break
                await trio.lowlevel.checkpoint()
            cancelled = ctx.cancel_io()
            await aborted.wait()
            ctx.response.write(f"|tree cancelled={cancelled}|end\n".encode())
            ctx.response.set_need_disconnect()
            return Status.FINISH_REQUEST
        if path == "/mid":
            child = ctx.clone_context(CloneFlags.BASICS)
            child.request.set_url("/leaf")
            await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
            ctx.response.write(b"|mid")
            return Status.FINISH_REQUEST
        if path == "/leaf":
            ctx.response.write(b"leaf")
            return Status.FINISH_REQUEST
        if path == "/boom":
            raise RuntimeError("boom")
        if path == "/hang":
            Scenario.hanging.set()
            await ctx.request.read_entity_body(10)  # never comes: the client leaves
        return Status.CONTINUE


def scenario() -> tuple[str, Any]:
    Scenario.hanging = trio.Event()
    return "scenario", register(Scenario, Notification.BEGIN_REQUEST)


async def exchange(port: int, head: bytes, until: bytes) -> bytes:
    """Send ``head``, read until ``until`` shows up, then close (no body is ever sent)."""
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(head)
            data = b""
            while until not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, data
                data += chunk
            return data


async def tree(port: int) -> bytes:
    head = b"POST /tree HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n"
    return await exchange(port, head, b"|end\n")


async def hang_and_leave(port: int) -> None:
    with trio.fail_after(10):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"POST /hang HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n")
        await Scenario.hanging.wait()
        await stream.aclose()


def traces(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("trace-*.json"))]


def walk(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [request, *(r for child in request["children"] for r in walk(child))]


# ---------------------------------------------------------------- traces


async def test_trace_of_two_children_and_a_cancel_io_has_the_right_shape(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    async with running_server(
        scenario(), root=tmp_path, limits=FAST, trace_dir=folder, trace_when="io_cancelled"
    ) as srv:
        body = await tree(srv.port)
        assert b"leaf|midleaf|tree cancelled=1|end" in body
    (document,) = traces(folder)  # written by the time the server has shut down
    assert document["format"] == "trioiis-trace/1"
    assert document["rule"] == "io_cancelled"
    root = document["request"]
    assert (root["method"], root["url"], root["depth"], root["status"]) == ("POST", "/tree", 0, 200)
    assert root["outcome"] == "completed"
    assert root["start_ms"] == 0
    # Children nested under their parent, in the order they ran.
    mid, leaf = root["children"]
    assert (mid["url"], mid["depth"], leaf["url"], leaf["depth"]) == ("/mid", 1, "/leaf", 1)
    (grandchild,) = mid["children"]
    assert (grandchild["url"], grandchild["depth"], grandchild["children"]) == ("/leaf", 2, [])
    assert mid["start_ms"] < grandchild["start_ms"] < leaf["start_ms"]
    assert grandchild["bytes"] == len(b"leaf")
    # Every module call, with its result; the children's calls are in the children.
    begin = [n for n in root["notifications"] if n["module"] == "scenario"]
    assert [(n["notification"], n["post"], n["result"]) for n in begin] == [
        ("BEGIN_REQUEST", False, "FINISH_REQUEST")
    ]
    assert begin[0]["duration_ms"] >= 0
    for request in walk(root):
        assert "BEGIN_REQUEST" in [n["notification"] for n in request["notifications"]]
        for n in request["notifications"]:
            assert n["start_ms"] >= request["start_ms"]
            assert n["duration_ms"] is not None
    # The cancel_io'd read, and the final write of the response.
    outcomes = [(io["kind"], io["outcome"], io["bytes"]) for io in root["io"]]
    assert ("read", "cancelled_by_cancel_io", 0) in outcomes
    assert all(io["outcome"] in ("completed", "cancelled_by_cancel_io") for io in root["io"])
    assert document["dropped_events"] == 0


async def test_rules_select_the_right_requests(tmp_path: Path) -> None:
    """Default-style rule: the 500 and the request cancelled by its client are written; the
    200s, the 404 and the request whose I/O was only cancel_io'd are not."""
    folder = tmp_path / "traces"
    async with running_server(
        scenario(),
        root=tmp_path,
        limits=FAST,
        trace_dir=folder,
        trace_when="status>=500 or cancelled",
    ) as srv:
        async with srv.client() as client:
            assert (await client.get("/leaf")).status_code == 200
            assert (await client.get("/missing")).status_code == 404
            assert (await client.get("/boom")).status_code == 500
        await tree(srv.port)
        await hang_and_leave(srv.port)
    written = {d["request"]["url"]: d["request"] for d in traces(folder)}
    assert sorted(written) == ["/boom", "/hang"]
    boom, hang = written["/boom"], written["/hang"]
    assert (boom["status"], boom["outcome"]) == (500, "failed")
    assert [n["result"] for n in boom["notifications"] if n["module"] == "scenario"] == [
        "raised RuntimeError"
    ]
    assert hang["outcome"] == "cancelled_by_client"
    assert hang["disconnect_ms"] >= 0
    assert hang["time_to_cancel_ms"] >= 0
    assert ("read", "cancelled_by_disconnect") in [(i["kind"], i["outcome"]) for i in hang["io"]]
    (call,) = [n for n in hang["notifications"] if n["module"] == "scenario"]
    # Cancelled by the disconnect, or the read saw the connection end first: a race.
    assert call["result"] in ("cancelled", "raised ConnectionInvalidError")


async def test_trace_folder_is_bounded_and_shutdown_loses_no_trace(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    folder.mkdir()
    (folder / "trace-00000000T000000.000000Z-1-000001-500.json").write_text("{}")  # oldest
    async with (
        running_server(
            scenario(), root=tmp_path, trace_dir=folder, trace_when="true", trace_max_files=3
        ) as srv,
        srv.client() as client,
    ):
        for n in range(5):
            assert (await client.get(f"/leaf?n={n}")).status_code == 200
    documents = traces(folder)
    assert [d["request"]["url"] for d in documents] == ["/leaf?n=2", "/leaf?n=3", "/leaf?n=4"]
    assert srv.server.counters.traces_written == 5
    assert (
        folder / "viewer.html"
    ).read_bytes() == trioiis._observability.tracing.VIEWER.read_bytes()
    assert not list(folder.glob(".tmp-*"))


async def test_events_per_request_are_bounded(tmp_path: Path) -> None:
    folder = tmp_path / "traces"
    async with running_server(
        scenario(),
        root=tmp_path,
        limits=FAST,
        trace_dir=folder,
        trace_when="true",
        trace_max_events=3,
    ) as srv:
        await tree(srv.port)
    (document,) = [d for d in traces(folder) if d["request"]["url"] == "/tree"]
    recorded = sum(len(r["notifications"]) + len(r["io"]) for r in walk(document["request"]))
    assert recorded == 3
    assert document["dropped_events"] > 0


async def test_tracing_off_leaves_no_trace_on_the_context(tmp_path: Path) -> None:
    seen: list[object] = []

    class Probe(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            seen.append(ctx.trace)
            return Status.CONTINUE

    async with (
        running_server(
            ("probe", register(Probe, Notification.BEGIN_REQUEST)), root=tmp_path
        ) as srv,
        srv.client() as client,
    ):
        await client.get("/")
    assert seen == [None]
    assert srv.server.pipeline.tracer is None


# ---------------------------------------------------------------- metrics


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_parse_and_count_what_the_test_did(tmp_path: Path) -> None:
    async with running_server(scenario(), builtin("metrics"), root=tmp_path, limits=FAST) as srv:
        async with srv.client() as client:
            for _ in range(2):
                assert (await client.get("/leaf")).status_code == 200
            assert (await client.get("/missing")).status_code == 404
            assert (await client.get("/boom")).status_code == 500
        await tree(srv.port)
        await hang_and_leave(srv.port)
        async with srv.client() as client:
            answer = await client.get("/_trioiis/metrics")
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/plain; version=")
        got = samples(answer.text)
    # Two /leaf and /tree; /hang was cancelled by its client before any status line went
    # out: 499, as its access-log line says.
    assert got[("trioiis_requests_total", (("status", "200"),))] == 3
    assert got[("trioiis_requests_total", (("status", "499"),))] == 1
    assert got[("trioiis_requests_total", (("status", "404"),))] == 1
    assert got[("trioiis_requests_total", (("status", "500"),))] == 1
    finished = sum(v for (name, _), v in got.items() if name == "trioiis_requests_total")
    assert finished == 6
    assert got[("trioiis_requests_started_total", ())] == 7  # the scrape is running
    assert got[("trioiis_requests_in_flight", ())] == 0
    assert got[("trioiis_request_duration_seconds_count", ())] == 6
    assert got[("trioiis_request_duration_seconds_bucket", (("le", "+Inf"),))] == 6
    assert got[("trioiis_requests_cancelled_by_client_total", ())] == 1
    assert got[("trioiis_time_to_cancel_seconds_count", ())] == 1
    assert got[("trioiis_cancel_io_calls_total", ())] == 1
    assert got[("trioiis_io_cancelled_total", ())] == 1
    assert got[("trioiis_child_requests_total", (("depth", "1"),))] == 2
    assert got[("trioiis_child_requests_total", (("depth", "2"),))] == 1
    assert got[("trioiis_module_exceptions_total", (("module", "scenario"),))] == 1
    assert got[("trioiis_connections_accepted_total", ())] >= 3
    assert got[("trioiis_traces_written_total", ())] == 0


async def test_two_servers_have_their_own_metrics(tmp_path: Path) -> None:
    """Each server has its own registry: one server's requests never show in another's."""
    async with (
        running_server(scenario(), builtin("metrics"), root=tmp_path) as one,
        running_server(scenario(), builtin("metrics"), root=tmp_path) as two,
        one.client() as first,
        two.client() as second,
    ):
        for _ in range(3):
            await first.get("/leaf")
        got_one = samples((await first.get("/_trioiis/metrics")).text)
        got_two = samples((await second.get("/_trioiis/metrics")).text)
    assert got_one[("trioiis_requests_total", (("status", "200"),))] == 3
    assert ("trioiis_requests_total", (("status", "200"),)) not in got_two


async def test_status_json_and_metrics_agree(tmp_path: Path) -> None:
    async with running_server(
        scenario(), builtin("metrics"), builtin("status"), root=tmp_path, limits=FAST
    ) as srv:
        await tree(srv.port)
        await hang_and_leave(srv.port)
        async with srv.client() as client:
            await client.get("/boom")
            metrics = samples((await client.get("/_trioiis/metrics")).text)
            status = (await client.get("/_trioiis/status")).json()

    def metric(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert status["cancel_io_calls"] == metric("trioiis_cancel_io_calls_total") == 1
    assert status["io_cancelled"] == metric("trioiis_io_cancelled_total") == 1
    assert status["cancelled_by_client"] == metric("trioiis_requests_cancelled_by_client_total")
    assert status["time_to_cancel"]["count"] == metric("trioiis_time_to_cancel_seconds_count")
    assert status["requests_timed_out"] == metric("trioiis_requests_timed_out_total")
    assert status["connections_refused"] == metric("trioiis_connections_refused_total")
    for depth, n in status["child_requests_by_depth"].items():
        assert metric("trioiis_child_requests_total", depth=depth) == n
    assert status["child_requests"] == 3
    for module, n in status["module_exceptions"].items():
        assert metric("trioiis_module_exceptions_total", module=module) == n
    # The metrics scrape ended (a 200) before the status request began.
    assert status["requests"] == metric("trioiis_requests_started_total") + 1
    for code, n in status["responses_by_status"].items():
        extra = 1 if code == "200" else 0
        assert metric("trioiis_requests_total", status=code) + extra == n
    assert status["requests_in_flight"] == metric("trioiis_requests_in_flight") == 0


async def test_metrics_answer_loopback_only_unless_allowed(tmp_path: Path) -> None:
    """A client that is not on loopback gets 404, as if the module were not there, unless
    ``allow_remote``. (The remote address is faked over an in-memory stream: tests use no
    other address than 127.0.0.1.)"""

    async def get(server: trioiis.HttpServer, remote: str, method: bytes = b"GET") -> bytes:
        client, server_side = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lambda: server.handle_stream(server_side, remote=(remote, 40000)))
            await client.send_all(
                method + b" /_trioiis/metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := await client.receive_some(65536):
                data += chunk
            await client.aclose()
        return data

    closed = trioiis.HttpServer(trioiis.ServerConfig(root=tmp_path))
    closed.register_module(*builtin("metrics"))
    assert (await get(closed, "192.0.2.7")).startswith(b"HTTP/1.1 404 ")
    assert (await get(closed, "127.0.0.1")).startswith(b"HTTP/1.1 200 ")
    assert (await get(closed, "::ffff:127.0.0.1")).startswith(b"HTTP/1.1 200 ")
    assert (await get(closed, "127.0.0.1", b"POST")).startswith(b"HTTP/1.1 405 ")
    opened = trioiis.HttpServer(trioiis.ServerConfig(root=tmp_path))
    opened.register_module(*builtin("metrics", {"allow_remote": True}))
    assert (await get(opened, "192.0.2.7")).startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("options", [{"path": "nope"}, {"allow_remote": "yes"}, {"colour": 1}])
def test_metrics_options_are_checked(options: dict[str, Any]) -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig())
    with pytest.raises(trioiis.ConfigError, match="metrics"):
        server.register_module(*builtin("metrics", options))
