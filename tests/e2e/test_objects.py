"""Spec section 4, items 49-60: request, response, server-variable, module-context and
custom-notification objects, each exercised by a module inside a real request over a real
socket, checking both what the module saw and what the client received."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h11
import pytest
import trio

import trioiis
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import (
    CustomNotificationProvider,
    HResultError,
    HttpContext,
    HttpModule,
    Notification,
    Priority,
    SendResponseProvider,
    Status,
)
from trioiis._constants import (
    ERROR_ALREADY_ASSIGNED,
    ERROR_ARITHMETIC_OVERFLOW,
    ERROR_INVALID_INDEX,
    ERROR_INVALID_PARAMETER,
    MAX_RESPONSE_CHUNKS,
    hresult_from_win32,
)

N = Notification
TIMEOUT = 10


def hresult_of(fn: Any, *args: Any, **kwargs: Any) -> int | None:
    """The HRESULT ``fn`` raised, or None when it returned."""
    try:
        fn(*args, **kwargs)
    except HResultError as exc:
        return exc.hresult
    return None


def get(target: str, *extra: tuple[str, str]) -> h11.Request:
    return h11.Request(
        method="GET",
        target=target,
        headers=[("Host", "x"), ("Connection", "close"), *extra],
    )


# ---------------------------------------------------------------------------------- item 49


async def test_item49_headers_get_set_append_delete(site: Path) -> None:
    seen: dict[str, Any] = {}

    class Headers49(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            req, resp = ctx.request, ctx.response
            seen["missing"] = req.get_header("X-Missing")
            req.set_header("x-old", "v", replace=False)
            seen["appended"] = req.get_header("X-OLD")
            req.set_header("X-Multi", "c", replace=False)
            seen["multi"] = req.get_header("x-multi")
            req.set_header("X-Repl", "v", replace=True)
            seen["replaced"] = req.get_header("x-repl")
            req.delete_header("X-Gone")
            seen["gone"] = req.get_header("X-Gone")
            resp.set_header("X-Resp", "old")
            resp.set_header("x-resp", "v", replace=False)
            resp.set_header("X-Over", "old")
            resp.set_header("X-OVER", "v", replace=True)
            resp.set_header("X-Del", "d")
            seen["resp_delete_present"] = hresult_of(resp.delete_header, "x-del")
            seen["resp_delete_absent"] = hresult_of(resp.delete_header, "X-Never-Set")
            seen["resp_missing"] = resp.get_header("X-Never-Set")
            seen["resp_appended"] = resp.get_header("X-RESP")
            return Status.FINISH_REQUEST

        async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
            # A later stage sees the changed request headers.
            seen["later"] = (ctx.request.get_header("X-Old"), ctx.request.get_header("X-Gone"))

    reg = register(Headers49, N.BEGIN_REQUEST | N.LOG_REQUEST)
    async with running_server(("headers49", reg), root=site) as srv, srv.client() as client:
        response = await client.get(
            "/hello.txt",
            headers=[
                ("X-Old", "old"),
                ("X-Multi", "a"),
                ("X-Multi", "b"),
                ("X-Repl", "old"),
                ("X-Gone", "bye"),
            ],
        )
    assert seen == {
        "missing": None,
        "appended": "old, v",
        "multi": "a, b, c",
        "replaced": "v",
        "gone": None,
        "resp_delete_present": None,
        "resp_delete_absent": None,
        "resp_missing": None,
        "resp_appended": "old, v",
        "later": ("old, v", None),
    }
    assert response.status_code == 200
    assert response.headers.get_list("x-resp") == ["old, v"]
    assert response.headers.get_list("x-over") == ["v"]
    assert "x-del" not in response.headers
    assert response.content == b""


# ---------------------------------------------------------------------------------- item 50


async def test_item50_set_url_later_stages_see_new_url_missing_is_404(
    site: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    seen: list[dict[str, Any]] = []

    class Rewrite50(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            req = ctx.request
            record: dict[str, Any] = {"changed_before": req.url_changed}
            seen.append(record)
            target = req.get_header("X-Rewrite-To")
            assert target is not None
            req.set_url(target)
            record["changed_after"] = req.url_changed
            record["url_after"] = req.url

        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> None:
            seen[-1]["authorize_url"] = ctx.request.url
            seen[-1]["URL"] = ctx.get_server_variable("URL")
            seen[-1]["QUERY_STRING"] = ctx.get_server_variable("QUERY_STRING")

        async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
            seen[-1]["log_url"] = ctx.request.url
            seen[-1]["log_changed"] = ctx.request.url_changed
            seen[-1]["log_URL"] = ctx.get_server_variable("URL")

    reg = register(Rewrite50, N.BEGIN_REQUEST | N.AUTHORIZE_REQUEST | N.LOG_REQUEST)
    async with running_server(("rewrite50", reg), root=site) as srv, srv.client() as client:
        found = await client.get("/old.txt?q=1", headers={"X-Rewrite-To": "/hello.txt"})
        missing = await client.get("/hello.txt", headers={"X-Rewrite-To": "/missing.txt"})

    # The client never sees a redirect: the rewritten URL is served in place.
    assert found.status_code == 200
    assert found.text == "hello\n"
    assert "location" not in found.headers
    # The original URL exists, but the rewrite target does not: 404.
    assert missing.status_code == 404
    assert seen == [
        {
            "changed_before": False,
            "changed_after": True,
            "url_after": "/hello.txt?q=1",
            "authorize_url": "/hello.txt?q=1",
            "URL": "/old.txt",
            "QUERY_STRING": "q=1",
            "log_url": "/hello.txt?q=1",
            "log_changed": True,
            "log_URL": "/old.txt",
        },
        {
            "changed_before": False,
            "changed_after": True,
            "url_after": "/missing.txt",
            "authorize_url": "/missing.txt",
            "URL": "/hello.txt",
            "QUERY_STRING": "",
            "log_url": "/missing.txt",
            "log_changed": True,
            "log_URL": "/hello.txt",
        },
    ]
    # The access log records the URL that was processed.
    lines = [r.getMessage() for r in caplog.records if r.name == "trioiis.access"]
    assert len(lines) == 2
    assert '"GET /hello.txt?q=1 HTTP/1.1" 200' in lines[0]
    assert '"GET /missing.txt HTTP/1.1" 404' in lines[1]


# ---------------------------------------------------------------------------------- item 51


async def test_item51_insert_entity_body_comes_first_content_length_unchanged() -> None:
    seen: list[dict[str, Any]] = []

    class Insert51(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            req = ctx.request
            record: dict[str, Any] = {"remaining_before": req.remaining_entity_bytes}
            seen.append(record)
            first = b""
            if req.get_header("X-Mode") == "middle":
                first = await req.read_entity_body(2)
            req.insert_entity_body(b"abc")
            record["remaining_after_insert"] = req.remaining_entity_bytes
            rest = await req.read_all()
            record["first"], record["rest"] = first, rest
            record["content_length"] = req.get_header("Content-Length")
            record["CONTENT_LENGTH"] = ctx.get_server_variable("CONTENT_LENGTH")
            ctx.response.write(first + b"|" + rest)
            return Status.FINISH_REQUEST

    reg = register(Insert51, N.BEGIN_REQUEST)
    async with running_server(("insert51", reg)) as srv, srv.client() as client:
        at_start = await client.post("/echo", content=b"hello")
        middle = await client.post("/echo", content=b"hello", headers={"X-Mode": "middle"})

    start_seen, middle_seen = seen
    assert start_seen == {
        "remaining_before": 5,
        "remaining_after_insert": 8,
        "first": b"",
        "rest": b"abchello",
        "content_length": "5",
        "CONTENT_LENGTH": "5",
    }
    assert at_start.status_code == 200
    assert at_start.content == b"|abchello"

    first = middle_seen["first"]
    assert first
    assert b"hello".startswith(first)
    assert middle_seen["remaining_after_insert"] == 3 + 5 - len(first)
    assert middle_seen["rest"] == b"abc" + b"hello"[len(first) :]
    assert middle_seen["content_length"] == "5"
    assert middle.content == first + b"|abc" + b"hello"[len(first) :]


# ---------------------------------------------------------------------------------- item 52


async def test_item52_more_than_65535_chunks_overflow_empty_list_invalid() -> None:
    seen: dict[str, Any] = {}

    class Chunks52(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            resp = ctx.response
            seen["empty"] = hresult_of(resp.write_entity_chunks, [])
            seen["none"] = hresult_of(resp.write_entity_chunks, None)
            seen["too_many_at_once"] = hresult_of(
                resp.write_entity_chunks, [b"z"] * (MAX_RESPONSE_CHUNKS + 1)
            )
            seen["buffered_after_refusal"] = resp.buffered
            seen["exactly_max"] = resp.write_entity_chunks([b"x"] * MAX_RESPONSE_CHUNKS)
            seen["one_more"] = hresult_of(resp.write_entity_chunks, [b"y"])
            seen["one_more_by_reference"] = hresult_of(
                resp.write_entity_chunk_by_reference, b"y", 0
            )
            seen["one_more_write"] = hresult_of(resp.write, b"y")
            seen["buffered_len"] = len(resp.buffered)
            seen["buffered_length"] = resp.buffered_length  # the same, without a join
            return Status.FINISH_REQUEST

    reg = register(Chunks52, N.BEGIN_REQUEST)
    async with running_server(("chunks52", reg)) as srv, srv.client() as client:
        response = await client.get("/")

    assert MAX_RESPONSE_CHUNKS == 65535
    assert ERROR_ARITHMETIC_OVERFLOW == 0x80070216
    assert seen == {
        "empty": ERROR_INVALID_PARAMETER,
        "none": ERROR_INVALID_PARAMETER,
        "too_many_at_once": ERROR_ARITHMETIC_OVERFLOW,
        "buffered_after_refusal": b"",
        "exactly_max": (65535, False),
        "one_more": ERROR_ARITHMETIC_OVERFLOW,
        "one_more_by_reference": ERROR_ARITHMETIC_OVERFLOW,
        "one_more_write": ERROR_ARITHMETIC_OVERFLOW,
        "buffered_len": 65535,
        "buffered_length": 65535,
    }
    # The refused writes left no trace: the client gets exactly the 65535 accepted chunks.
    assert response.status_code == 200
    assert response.content == b"x" * 65535


# ---------------------------------------------------------------------------------- item 53


async def test_item53_write_chunk_by_reference_0_prepends_minus1_appends() -> None:
    seen: dict[str, Any] = {}

    class ByRef53(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            resp = ctx.response
            resp.write(b"B")
            resp.write_entity_chunk_by_reference(b"A", 0)
            seen["after_prepend"] = resp.buffered
            resp.write_entity_chunk_by_reference(b"C", -1)
            seen["after_append"] = resp.buffered
            resp.write_entity_chunk_by_reference(b"D")
            seen["default_appends"] = resp.buffered
            seen["bad_position"] = hresult_of(resp.write_entity_chunk_by_reference, b"?", 1)
            return Status.FINISH_REQUEST

    reg = register(ByRef53, N.BEGIN_REQUEST)
    async with running_server(("byref53", reg)) as srv, srv.client() as client:
        response = await client.get("/")

    assert seen == {
        "after_prepend": b"AB",
        "after_append": b"ABC",
        "default_appends": b"ABCD",
        "bad_position": ERROR_INVALID_PARAMETER,
    }
    assert response.content == b"ABCD"
    assert response.headers["content-length"] == "4"


# ---------------------------------------------------------------------------------- item 54


async def test_item54_flush_sends_head_then_clear_and_redirect_change_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="trioiis.access")
    seen: dict[str, Any] = {}
    head_received = trio.Event()

    class Flush54(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            resp = ctx.response
            resp.set_status(201, "Made Here")
            resp.set_header("X-Early", "1")
            seen["sent_before"] = resp.headers_sent
            seen["flushed_bytes"] = await resp.flush()
            seen["sent_after"] = resp.headers_sent
            # The module goes on only once the client holds the head: the flush sent it.
            await head_received.wait()
            resp.clear()
            resp.clear_headers()
            resp.redirect("/elsewhere")
            resp.set_header("X-Late", "1")
            seen["sent_at_end"] = resp.headers_sent
            # What the module reads back is what the client got, not the cleared defaults.
            info = resp.get_status()
            seen["status_at_end"] = (info.status, info.reason)
            seen["headers_at_end"] = (resp.get_header("X-Early"), resp.get_header("Location"))
            resp.write(b"dropped")
            resp.clear()
            resp.write(b"after")
            return Status.FINISH_REQUEST

    reg = register(Flush54, N.BEGIN_REQUEST)
    async with running_server(("flush54", reg)) as srv:
        conn = h11.Connection(h11.CLIENT)
        body = bytearray()
        with trio.fail_after(TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            async with stream:
                await stream.send_all(conn.send(get("/page")) + conn.send(h11.EndOfMessage()))
                head: h11.Response | None = None
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await stream.receive_some(65536))
                    elif isinstance(event, h11.Response):
                        head = event
                        # Only the head could have arrived: the module is still waiting.
                        assert not body
                        head_received.set()
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break

    assert seen["sent_before"] is False
    assert seen["flushed_bytes"] == 0  # body bytes: none yet, but the head went out
    assert seen["sent_after"] is True
    assert seen["sent_at_end"] is True
    assert seen["status_at_end"] == (201, "Made Here")
    assert seen["headers_at_end"] == ("1", None)
    assert head is not None
    assert head.status_code == 201
    assert head.reason == b"Made Here"
    names = {name for name, _ in head.headers}
    assert (b"x-early", b"1") in head.headers
    assert b"location" not in names
    assert b"x-late" not in names
    # Nothing was buffered at flush time, so the body went out chunked, after the head.
    assert (b"transfer-encoding", b"chunked") in head.headers
    # clear() after the flush still dropped the unsent buffered body.
    assert bytes(body) == b"after"
    lines = [r.getMessage() for r in caplog.records if r.name == "trioiis.access"]
    assert len(lines) == 1
    assert '"GET /page HTTP/1.1" 201 5 ' in lines[0]


# ---------------------------------------------------------------------------------- item 55


async def test_item55_redirect_302_absolute_location_query_only_on_request() -> None:
    seen: list[tuple[int, str | None]] = []

    class Redirect55(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            resp = ctx.response
            resp.write(b"secret buffered body")
            mode = ctx.request.get_header("X-Mode")
            if mode == "plain":
                resp.redirect("/new")
            elif mode == "query":
                resp.redirect("/new", include_query=True)
            elif mode == "both-queries":
                resp.redirect("/new?b=2", include_query=True)
            elif mode == "relative":
                resp.redirect("new")
            seen.append((resp.status, resp.get_header("Location")))
            return Status.FINISH_REQUEST

    reg = register(Redirect55, N.BEGIN_REQUEST)
    host = "example.test:8123"
    async with running_server(("redirect55", reg)) as srv, srv.client() as client:
        responses = {
            mode: await client.get(target, headers={"Host": host, "X-Mode": mode})
            for mode, target in (
                ("plain", "/old?a=1"),
                ("query", "/old?a=1"),
                ("both-queries", "/old?a=1"),
                ("relative", "/dir/old?a=1"),
            )
        }

    expected = {
        "plain": f"http://{host}/new",
        "query": f"http://{host}/new?a=1",
        "both-queries": f"http://{host}/new?b=2&a=1",
        "relative": f"http://{host}/dir/new",
    }
    assert seen == [(302, location) for location in expected.values()]
    for mode, response in responses.items():
        assert response.status_code == 302, mode
        assert response.headers["location"] == expected[mode]
        # The buffered body was dropped.
        assert b"secret" not in response.content
        assert response.content == b""


# ---------------------------------------------------------------------------------- item 56


async def test_item56_suppress_headers_nothing_but_module_bytes_on_the_wire() -> None:
    seen: list[tuple[str, Any]] = []

    class Raw56(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            resp = ctx.response
            seen.append(("suppressed_before", resp.headers_suppressed))
            if ctx.request.get_header("X-Mode") == "raw":
                resp.suppress_headers()
                seen.append(("suppressed_after", resp.headers_suppressed))
                resp.write(b"RAW-BYTES\n")
            else:
                resp.write(b"normal\n")
            return Status.FINISH_REQUEST

    class Observer56(HttpModule):
        async def on_send_response(self, ctx: HttpContext, provider: SendResponseProvider) -> None:
            seen.append(("headers_being_sent", provider.headers_being_sent))

    async with running_server(
        ("raw56", register(Raw56, N.BEGIN_REQUEST)),
        ("observer56", register(Observer56, N.SEND_RESPONSE)),
    ) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Mode: raw\r\n\r\n")
        normal = await raw_request(
            srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )

    # Exactly the module's bytes, no status line or header, then the connection closes.
    assert raw == b"RAW-BYTES\n"
    assert statuses_in(normal) == [200]
    assert normal.endswith(b"\r\n\r\nnormal\n")
    assert seen == [
        ("suppressed_before", False),
        ("suppressed_after", True),
        ("headers_being_sent", False),
        ("suppressed_before", False),
        ("headers_being_sent", True),
    ]


# ---------------------------------------------------------------------------------- item 57


async def test_item57_get_status_reports_code_substatus_reason_hr_module_stage() -> None:
    hr = hresult_from_win32(2)  # ERROR_FILE_NOT_FOUND
    seen: dict[str, trioiis.StatusInfo] = {}

    class Setter57(HttpModule):
        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> Status:
            reason = ctx.request.get_header("X-Reason") or ""
            ctx.response.set_status(404, reason, 7, hr)
            seen[f"setter:{reason}"] = ctx.response.get_status()
            return Status.FINISH_REQUEST

    class Reader57(HttpModule):
        async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
            reason = ctx.request.get_header("X-Reason") or ""
            seen[f"reader:{reason}"] = ctx.response.get_status()

    async with running_server(
        ("setter57", register(Setter57, N.AUTHORIZE_REQUEST)),
        ("reader57", register(Reader57, N.LOG_REQUEST)),
    ) as srv:
        not_found = await raw_request(
            srv.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Reason: Not Found\r\nConnection: close\r\n\r\n",
        )
        fishing = await raw_request(
            srv.port,
            b"GET / HTTP/1.1\r\nHost: x\r\nX-Reason: Gone Fishing\r\nConnection: close\r\n\r\n",
        )

    for reason in ("Not Found", "Gone Fishing"):
        expected = trioiis.StatusInfo(
            status=404,
            sub_status=7,
            reason=reason,
            hresult=hr,
            module_name="setter57",
            notification=Notification.AUTHORIZE_REQUEST,
            try_skip_custom_errors=False,
        )
        # Read by the setter itself and, later, by another module in another stage.
        assert seen[f"setter:{reason}"] == expected
        assert seen[f"reader:{reason}"] == expected
    assert not_found.startswith(b"HTTP/1.1 404 Not Found\r\n")
    assert fishing.startswith(b"HTTP/1.1 404 Gone Fishing\r\n")


# ---------------------------------------------------------------------------------- item 58


async def test_item58_unknown_server_variable_invalid_index_set_then_get() -> None:
    seen: list[dict[str, Any]] = []

    class Vars58(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            record = {
                "unknown": hresult_of(ctx.get_server_variable, "NO_SUCH_VAR"),
                "mine_before": hresult_of(ctx.get_server_variable, "MY_VAR"),
                "unknown_header": hresult_of(ctx.get_server_variable, "HTTP_X_NOT_SENT"),
            }
            seen.append(record)
            ctx.set_server_variable("MY_VAR", "x")
            record["mine_after"] = ctx.get_server_variable("MY_VAR")

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            seen[-1]["mine_at_end"] = ctx.get_server_variable("MY_VAR")

        async def on_pre_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.set_header("X-My-Var", ctx.get_server_variable("MY_VAR"))
            ctx.set_server_variable("MY_VAR", "y")
            ctx.response.set_header("X-My-Var-Changed", ctx.get_server_variable("MY_VAR"))
            return Status.FINISH_REQUEST

    reg = register(Vars58, N.BEGIN_REQUEST | N.PRE_EXECUTE_REQUEST_HANDLER | N.END_REQUEST)
    async with running_server(("vars58", reg)) as srv, srv.client() as client:
        first = await client.get("/")
        # Same connection, next request: the variable belonged to the first request only.
        second = await client.get("/")

    assert ERROR_INVALID_INDEX == 0x80070585
    expected = {
        "unknown": ERROR_INVALID_INDEX,
        "mine_before": ERROR_INVALID_INDEX,
        "unknown_header": ERROR_INVALID_INDEX,
        "mine_after": "x",
        "mine_at_end": "y",
    }
    assert seen == [expected, expected]
    for response in (first, second):
        assert response.status_code == 200
        assert response.headers["x-my-var"] == "x"
        assert response.headers["x-my-var-changed"] == "y"


# ---------------------------------------------------------------------------------- item 59


async def test_item59_module_context_assigned_once_cleaned_up_once(site: Path) -> None:
    cleaned: list[str] = []
    all_cleaned = [trio.Event(), trio.Event()]  # one per request (two stored contexts each)
    stored_log: list[Any] = []
    seen: list[tuple[str, str, Any]] = []

    class Stored:
        def __init__(self, label: str) -> None:
            self.label = label
            self.cleanups = 0
            stored_log.append(self)

        def cleanup_stored_context(self) -> None:
            self.cleanups += 1
            cleaned.append(self.label)
            if len(cleaned) % 2 == 0:
                all_cleaned[len(cleaned) // 2 - 1].set()

    ids: dict[str, int] = {}

    class Ctx59(HttpModule):
        name = ""
        request_no = 0

        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            container = ctx.module_context
            my_id = ids[self.name]
            label = f"{self.name}#{ctx.request.get_header('X-Request-No')}"
            first = Stored(label)
            container.set_module_context(first, my_id)
            rejected = Stored(f"{label}-rejected")
            seen.append((label, "again", hresult_of(container.set_module_context, rejected, my_id)))
            seen.append((label, "none", hresult_of(container.set_module_context, None, my_id)))
            seen.append((label, "get", container.get_module_context(my_id) is first))

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            stored = ctx.module_context.get_module_context(ids[self.name])
            assert isinstance(stored, Stored)
            seen.append((stored.label, "cleanups_during_end_request", stored.cleanups))

    def make(name: str) -> Any:
        cls = type(f"Ctx59_{name}", (Ctx59,), {"name": name})

        def register_module(
            version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
        ) -> None:
            ids[name] = info.get_id()
            info.set_request_notifications(
                trioiis.SimpleFactory(cls), N.BEGIN_REQUEST | N.END_REQUEST
            )

        return (name, register_module)

    async with running_server(make("m1"), make("m2"), root=site) as srv, srv.client() as client:
        first = await client.get("/hello.txt", headers={"X-Request-No": "1"})
        with trio.fail_after(TIMEOUT):
            await all_cleaned[0].wait()
        # Each stored context of request 1 cleaned exactly once, before request 2 starts.
        assert sorted(cleaned) == ["m1#1", "m2#1"]
        second = await client.get("/hello.txt", headers={"X-Request-No": "2"})
        with trio.fail_after(TIMEOUT):
            await all_cleaned[1].wait()

    assert ids["m1"] != ids["m2"]
    assert first.status_code == second.status_code == 200
    assert first.text == second.text == "hello\n"
    for n in ("1", "2"):
        for m in ("m1", "m2"):
            label = f"{m}#{n}"
            assert (label, "again", ERROR_ALREADY_ASSIGNED) in seen
            assert (label, "none", ERROR_INVALID_PARAMETER) in seen
            assert (label, "get", True) in seen
            assert (label, "cleanups_during_end_request", 0) in seen
    # After the server is gone (connection closed, shutdown): still exactly once each, and
    # the contexts refused by set_module_context were never the container's to clean up.
    assert sorted(cleaned) == ["m1#1", "m1#2", "m2#1", "m2#2"]
    assert {s.label: s.cleanups for s in stored_log} == {
        "m1#1": 1,
        "m1#1-rejected": 0,
        "m2#1": 1,
        "m2#1-rejected": 0,
        "m1#2": 1,
        "m1#2-rejected": 0,
        "m2#2": 1,
        "m2#2-rejected": 0,
    }


# ---------------------------------------------------------------------------------- item 60


class Provider60(CustomNotificationProvider):
    notification_type = "test.item60"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []


async def test_item60_custom_notification_reaches_registered_modules_in_priority_order() -> None:
    calls: list[tuple[str, Any, Any]] = []
    seen: dict[str, Any] = {}

    def listener(name: str) -> type[HttpModule]:
        class Listener(HttpModule):
            async def on_custom_request_notification(
                self, ctx: HttpContext, provider: CustomNotificationProvider
            ) -> None:
                calls.append((name, provider, ctx))
                assert isinstance(provider, Provider60)
                provider.calls.append(name)

            async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
                pass

        return Listener

    class Trigger60(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            custom = Provider60()
            seen["provider"], seen["ctx"] = custom, ctx
            seen["completion_expected"] = await ctx.notify_custom_notification(custom)
            seen["type"] = custom.query_notification_type()
            ctx.response.set_header("X-Order", ",".join(custom.calls))
            return Status.FINISH_REQUEST

    custom = N.CUSTOM_NOTIFICATION
    async with (
        running_server(
            ("low", register(listener("low"), custom, priority=Priority.LOW)),
            ("medium_a", register(listener("medium_a"), custom)),
            # Has the handler but registered only for BEGIN_REQUEST: must not be called.
            ("bystander", register(listener("bystander"), N.BEGIN_REQUEST)),
            ("high", register(listener("high"), custom, priority=Priority.HIGH)),
            ("medium_b", register(listener("medium_b"), custom, priority=Priority.MEDIUM)),
            ("first", register(listener("first"), custom, priority=Priority.FIRST)),
            ("trigger60", register(Trigger60, N.BEGIN_REQUEST)),
        ) as srv,
        srv.client() as client,
    ):
        response = await client.get("/")

    order = ["first", "high", "medium_a", "medium_b", "low"]
    assert [name for name, _, _ in calls] == order
    assert all(p is seen["provider"] for _, p, _ in calls)
    assert all(c is seen["ctx"] for _, _, c in calls)
    assert seen["completion_expected"] is False
    assert seen["type"] == "test.item60"
    assert response.status_code == 200
    assert response.headers["x-order"] == ",".join(order)
