"""Child requests: clone_context, execute_request, run_child, the depth guard, flags."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioiis
from examples.modules import execute_request_sample
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import (
    CloneFlags,
    CompletionInfo,
    ExecuteFlags,
    HttpContext,
    HttpModule,
    Notification,
    Status,
)
from trioiis._constants import (
    E_FAIL,
    ERROR_INVALID_PARAMETER,
    ERROR_OPERATION_ABORTED,
    ERROR_STACK_OVERFLOW,
)

Handler = Callable[[HttpContext], Awaitable[Status | None]]


def on_root(handler: Handler, notifications: int = 0) -> tuple[str, Callable[..., None]]:
    """A module running ``handler`` at BEGIN_REQUEST of root requests only (children pass)."""

    class Module(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is not None:
                return Status.CONTINUE
            return await handler(ctx)

    return "root", register(Module, Notification.BEGIN_REQUEST | notifications)


@pytest.fixture
def tree(site: Path) -> Path:
    (site / "a.txt").write_text("AAA")
    (site / "b.txt").write_text("BBB")
    (site / "example").mkdir()
    (site / "example" / "default.aspx").write_text("<p>example page</p>")
    return site


async def get(srv: Any, path: str, **kwargs: Any) -> Any:
    async with srv.client() as client:
        return await client.get(path, **kwargs)


async def test_item35_execute_request_sync_is_not_supported_and_runs_nothing(tree: Path) -> None:
    seen: list[str] = []

    class Spy(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            seen.append(ctx.request.url)

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/a.txt")
        with pytest.raises(trioiis.NotSupportedError) as info:
            ctx.execute_request(child, async_=False)
        seen.append(f"hresult {info.value.hresult:#x}")
        ctx.response.write("done")
        return Status.FINISH_REQUEST

    spy = ("spy", register(Spy, Notification.BEGIN_REQUEST))
    async with running_server(spy, on_root(handler), root=tree) as srv:
        assert (await get(srv, "/x")).text == "done"
    assert seen == ["/x", "hresult 0x80070032"]  # the spy saw no child request


async def test_item36_executing_a_clone_of_another_context_is_not_supported(tree: Path) -> None:
    clones: list[HttpContext] = []
    errors: list[int] = []

    async def handler(ctx: HttpContext) -> Status:
        if not clones:
            clones.append(ctx.clone_context(CloneFlags.BASICS))
        else:
            with pytest.raises(trioiis.NotSupportedError) as info:
                ctx.execute_request(clones[0])
            errors.append(info.value.hresult)
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        await get(srv, "/first")
        await get(srv, "/second")
    assert errors == [0x80070032]


async def test_item37_a_clone_runs_only_once(tree: Path) -> None:
    outcome: dict[str, Any] = {}

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/a.txt")
        child.set_server_variable("RUNS", "0")
        outcome["first"] = await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
        with pytest.raises(trioiis.NotSupportedError):
            await ctx.run_child(child)
        with pytest.raises(trioiis.NotSupportedError):
            ctx.execute_request(child)
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        response = await get(srv, "/")
    assert response.text == "AAA"
    assert outcome["first"] == CompletionInfo(3, 0)


async def test_item38_depth_guard_runs_levels_one_to_ten_and_refuses_the_eleventh(
    tree: Path,
) -> None:
    depths: list[int] = []
    refused: list[int] = []
    hresults: list[int] = []

    class Recurse(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            depths.append(ctx.depth)
            child = ctx.clone_context(CloneFlags.BASICS)
            try:
                await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
            except trioiis.StackOverflowError as exc:
                refused.append(ctx.depth + 1)
                hresults.append(exc.hresult)
            ctx.response.write(f"[{ctx.depth}]")
            return Status.FINISH_REQUEST

    recurse = ("recurse", register(Recurse, Notification.BEGIN_REQUEST))
    async with running_server(recurse, root=tree) as srv:
        response = await get(srv, "/")
        children = srv.server.counters.child_requests
    assert depths == list(range(11))
    assert refused == [11]
    assert hresults == [ERROR_STACK_OVERFLOW] == [0x800703E9]
    assert children == 10
    # Each level's buffered output lands in its parent's buffer: innermost first.
    assert response.text == "".join(f"[{d}]" for d in range(10, -1, -1))


async def test_item39_child_runs_the_whole_pipeline_including_global_pre_begin(
    tree: Path,
) -> None:
    seen: list[tuple[str, int, bool]] = []

    class Both(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            seen.append(("begin", ctx.depth, ctx.get_parent_context() is not None))

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            seen.append(("end", ctx.depth, ctx.get_parent_context() is not None))

    class Global(trioiis.GlobalModule):
        async def on_global_pre_begin_request(self, provider: trioiis.GlobalProvider) -> None:
            ctx = provider.get_http_context()
            assert ctx is not None
            seen.append(("pre", ctx.depth, ctx.get_parent_context() is not None))

    def register_global(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.set_global_notifications(Global(), trioiis.GlobalNotification.PRE_BEGIN_REQUEST)

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/a.txt")
        await ctx.run_child(child)
        return Status.FINISH_REQUEST

    both = ("both", register(Both, Notification.BEGIN_REQUEST | Notification.END_REQUEST))
    async with running_server(
        ("global", register_global), both, on_root(handler), root=tree
    ) as srv:
        response = await get(srv, "/")
    assert response.text == "AAA"
    assert seen == [
        ("pre", 0, False),
        ("begin", 0, False),
        ("pre", 1, True),
        ("begin", 1, True),
        ("end", 1, True),
        ("end", 0, False),
    ]


async def test_item40_parent_and_root_links(tree: Path) -> None:
    links: dict[str, Any] = {}

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        grandchild = child.clone_context(CloneFlags.BASICS)
        links.update(
            root_parent=ctx.get_parent_context(),
            root_root=ctx.get_root_context(),
            child_parent=child.get_parent_context() is ctx,
            child_root=child.get_root_context() is ctx,
            grandchild_root=grandchild.get_root_context() is ctx,
        )
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        await get(srv, "/")
    assert links == {
        "root_parent": None,
        "root_root": None,
        "child_parent": True,
        "child_root": True,
        "grandchild_root": True,
    }


async def test_item41_clone_flags_choose_what_is_copied(tree: Path) -> None:
    got: dict[str, Any] = {}

    class Probe(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is None:
                return None
            request = ctx.request
            body = await request.read_all() if request.remaining_entity_bytes != 0 else b""
            got[ctx.get_server_variable("CASE")] = (
                request.method,
                request.url,
                sorted(name.lower() for name, _ in request.headers),
                body,
            )
            return Status.FINISH_REQUEST

    async def handler(ctx: HttpContext) -> Status:
        cases = {
            "basics": CloneFlags.BASICS,
            "headers": CloneFlags.BASICS | CloneFlags.HEADERS,
            "entity": CloneFlags.BASICS | CloneFlags.ENTITY,
            "noprecond": CloneFlags.BASICS | CloneFlags.HEADERS | CloneFlags.NO_PRECONDITION,
            "nodav": CloneFlags.BASICS | CloneFlags.HEADERS | CloneFlags.NO_DAV,
            "none": CloneFlags(0),
        }
        for name, flags in cases.items():
            child = ctx.clone_context(flags)
            child.set_server_variable("CASE", name)
            await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
        with pytest.raises(trioiis.HResultError) as info:
            ctx.clone_context(CloneFlags(0x1000))
        got["bad"] = info.value.hresult
        return Status.FINISH_REQUEST

    probe = ("probe", register(Probe, Notification.BEGIN_REQUEST))
    headers = {"If-None-Match": '"x"', "Range": "bytes=0-1", "Depth": "1", "X-Keep": "k"}
    async with running_server(on_root(handler), probe, root=tree) as srv, srv.client() as client:
        await client.post("/p?q=1", content=b"payload", headers=headers)
    common = {"host", "accept", "accept-encoding", "connection", "user-agent", "content-length"}
    everything = sorted(common | {"if-none-match", "range", "depth", "x-keep"})
    assert got["basics"] == ("POST", "/p?q=1", [], b"")
    assert got["headers"] == ("POST", "/p?q=1", everything, b"")
    assert got["entity"] == ("POST", "/p?q=1", [], b"payload")
    assert got["noprecond"][2] == sorted(common | {"depth", "x-keep"})
    assert got["nodav"][2] == sorted(common | {"if-none-match", "range", "x-keep"})
    assert got["none"] == ("GET", "/", [], b"")
    assert got["bad"] == ERROR_INVALID_PARAMETER


async def test_item42_set_url_on_the_clone_makes_the_child_serve_it(tree: Path) -> None:
    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/b.txt")
        await ctx.run_child(child)
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        response = await get(srv, "/anything")
    assert response.status_code == 200
    assert response.text == "BBB"


async def test_item43_user_passed_to_execute_request_skips_authentication(tree: Path) -> None:
    authenticated: list[int] = []
    users: list[str | None] = []

    class Auth(HttpModule):
        async def on_authenticate_request(
            self, ctx: HttpContext, provider: trioiis.AuthenticationProvider
        ) -> None:
            authenticated.append(ctx.depth)
            provider.set_user(trioiis.HttpUser("anonymous"))

        async def on_authorize_request(self, ctx: HttpContext, provider: Any) -> None:
            users.append(ctx.user.name if ctx.user else None)

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE, trioiis.HttpUser("alice"))
        return Status.FINISH_REQUEST

    auth = (
        "auth",
        register(Auth, Notification.AUTHENTICATE_REQUEST | Notification.AUTHORIZE_REQUEST),
    )
    async with running_server(
        on_root(handler, Notification.AUTHORIZE_REQUEST), auth, root=tree
    ) as srv:
        await get(srv, "/")
    assert authenticated == []  # the root finished at BEGIN; the child skipped it
    assert users == ["alice"]


async def test_item44_get_execute_flags_inside_the_child(tree: Path) -> None:
    flags_seen: list[ExecuteFlags] = []

    class Probe(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            flags_seen.append(ctx.get_execute_flags())

    async def handler(ctx: HttpContext) -> Status:
        flags = (
            ExecuteFlags.BUFFER_RESPONSE
            | ExecuteFlags.IGNORE_APPPOOL
            | ExecuteFlags.HTTP_CACHE_ELIGIBLE
        )
        await ctx.run_child(ctx.clone_context(), flags)
        return Status.FINISH_REQUEST

    probe = ("probe", register(Probe, Notification.BEGIN_REQUEST))
    async with running_server(probe, on_root(handler), root=tree) as srv:
        await get(srv, "/")
    assert flags_seen == [
        ExecuteFlags(0),
        ExecuteFlags.BUFFER_RESPONSE
        | ExecuteFlags.IGNORE_APPPOOL
        | ExecuteFlags.HTTP_CACHE_ELIGIBLE,
    ]


async def test_item45_buffer_response_composes_a_page_from_two_children(tree: Path) -> None:
    """SSI-like composition: each child's body lands in the parent's buffer, in order; the
    children's own status lines and headers never reach the wire."""
    completions: list[CompletionInfo] = []

    async def handler(ctx: HttpContext) -> Status:
        ctx.response.write("<page>")
        for url in ("/a.txt", "/b.txt"):
            child = ctx.clone_context(CloneFlags.BASICS)
            child.request.set_url(url)
            completions.append(await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE))
            child.release_cloned_context()
        ctx.response.write("</page>")
        ctx.response.set_header("Content-Type", "text/html")
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses_in(raw) == [200]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert body == b"<page>AAABBB</page>"
    assert b"text/html" in head
    assert b"etag" not in head.lower()  # the children's headers were not emitted
    assert completions == [CompletionInfo(3, 0), CompletionInfo(3, 0)]


async def test_item45_no_headers_child_writes_its_body_under_the_parents_head(
    tree: Path,
) -> None:
    async def handler(ctx: HttpContext) -> Status:
        ctx.response.set_status(203)
        ctx.response.set_header("X-Parent", "yes")
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/a.txt")
        await ctx.run_child(child, ExecuteFlags.NO_HEADERS)
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        raw = await raw_request(srv.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert statuses_in(raw) == [203]
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"x-parent: yes" in head.lower()
    assert b"etag" not in head.lower()
    assert body == b"3\r\nAAA\r\n0\r\n\r\n"


async def test_unbuffered_child_then_parent_writes_one_well_formed_response(tree: Path) -> None:
    """Decision: an unbuffered child writes to the client; its status line and headers
    become the response's (without Content-Length, so framing is chunked) and whatever the
    parent writes afterwards is appended. One status line, correct framing, always."""

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        child.request.set_url("/a.txt")
        await ctx.run_child(child)
        assert ctx.response.headers_sent
        ctx.response.set_status(500)  # too late: no effect on the wire
        ctx.response.write(" and the parent")
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        response = await get(srv, "/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.text == "AAA and the parent"


async def test_item46_disable_custom_error_reaches_the_client_unchanged(tree: Path) -> None:
    class CustomErrors(HttpModule):
        async def on_send_response(self, ctx: HttpContext, provider: Any) -> None:
            response = ctx.response
            if response.status >= 400 and not ctx.custom_errors_disabled:
                response.clear_body()
                response.write("custom error page")

    class Failing(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is None:
                return None
            ctx.response.set_status(503)
            ctx.response.write("<h1>backend down</h1>")
            return Status.FINISH_REQUEST

    async def handler(ctx: HttpContext) -> Status:
        flags = ExecuteFlags.BUFFER_RESPONSE | ExecuteFlags.DISABLE_CUSTOM_ERROR
        if ctx.request.path == "/with-custom":
            flags = ExecuteFlags.BUFFER_RESPONSE
        await ctx.run_child(ctx.clone_context(CloneFlags.BASICS), flags)
        return Status.FINISH_REQUEST

    modules = (
        ("custom", register(CustomErrors, Notification.SEND_RESPONSE)),
        ("failing", register(Failing, Notification.BEGIN_REQUEST)),
        on_root(handler),
    )
    async with running_server(*modules, root=tree) as srv:
        unchanged = await get(srv, "/no-custom")
        replaced = await get(srv, "/with-custom")
    assert unchanged.text == "<h1>backend down</h1>"
    assert replaced.text == "custom error page"


async def test_item47_release_rules(tree: Path) -> None:
    results: dict[str, Any] = {}

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context()
        grandchild = child.clone_context()
        grandchild.release_cloned_context()
        child.release_cloned_context()
        results["child_first"] = "ok"
        other = ctx.clone_context()
        orphan = other.clone_context()
        other.release_cloned_context()
        with pytest.raises(trioiis.HResultError) as info:
            orphan.release_cloned_context()
        results["after_parent"] = info.value.hresult
        with pytest.raises(trioiis.HResultError) as twice:
            other.release_cloned_context()
        results["twice"] = twice.value.hresult
        return Status.FINISH_REQUEST

    async with running_server(on_root(handler), root=tree) as srv:
        await get(srv, "/")
    assert results == {
        "child_first": "ok",
        "after_parent": ERROR_INVALID_PARAMETER,
        "twice": ERROR_INVALID_PARAMETER,
    }


async def test_release_cloned_context_cancels_a_running_child(tree: Path) -> None:
    started, cancelled = trio.Event(), trio.Event()
    completion: list[CompletionInfo] = []

    class Slow(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is None:
                return None
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                cancelled.set()

    class Parent(HttpModule):
        child: HttpContext

        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            self.child = ctx.clone_context(CloneFlags.BASICS)
            ctx.execute_request(self.child)

            async def releaser() -> None:
                await started.wait()
                self.child.release_cloned_context()

            ctx.start_soon(releaser)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: Any, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            completion.append(info)
            ctx.response.write("released")
            return Status.FINISH_REQUEST

    modules = (
        ("slow", register(Slow, Notification.BEGIN_REQUEST)),
        ("parent", register(Parent, Notification.EXECUTE_REQUEST_HANDLER)),
    )
    handlers = (trioiis.HandlerMapping("*", ("parent",)),)
    async with running_server(*modules, root=tree, handlers=handlers) as srv:
        response = await get(srv, "/")
    assert cancelled.is_set()
    assert response.text == "released"
    assert completion[0].completion_status == ERROR_OPERATION_ABORTED


async def test_item48_server_variable_set_on_the_clone_is_seen_in_the_child(tree: Path) -> None:
    seen: list[str] = []

    class Probe(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            if ctx.get_parent_context() is not None:
                seen.append(ctx.get_server_variable("X_FORWARDED_MARK"))

    async def handler(ctx: HttpContext) -> Status:
        ctx.set_server_variable("ROOT_ONLY", "r")
        child = ctx.clone_context(CloneFlags.BASICS)
        child.set_server_variable("X_FORWARDED_MARK", "1")
        await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
        copied = ctx.clone_context(CloneFlags.BASICS | CloneFlags.SERVER_VARIABLE)
        seen.append(copied.get_server_variable("ROOT_ONLY"))
        with pytest.raises(trioiis.HResultError):
            ctx.clone_context(CloneFlags.BASICS).get_server_variable("ROOT_ONLY")
        return Status.FINISH_REQUEST

    probe = ("probe", register(Probe, Notification.BEGIN_REQUEST))
    async with running_server(on_root(handler), probe, root=tree) as srv:
        await get(srv, "/")
    assert seen == ["1", "r"]


async def test_execute_request_pending_then_on_async_completion_gets_the_child_completion(
    tree: Path,
) -> None:
    got: list[tuple[Notification, bool, CompletionInfo]] = []

    class Parent(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            child = ctx.clone_context(CloneFlags.BASICS)
            child.request.set_url("/b.txt")
            assert ctx.execute_request(child, ExecuteFlags.BUFFER_RESPONSE) is True
            return Status.PENDING

        async def on_async_completion(
            self,
            ctx: HttpContext,
            notification: Notification,
            is_post: bool,
            provider: Any,
            completion: CompletionInfo,
        ) -> Status:
            got.append((notification, is_post, completion))
            return Status.CONTINUE

    parent = ("parent", register(Parent, Notification.EXECUTE_REQUEST_HANDLER))
    handlers = (trioiis.HandlerMapping("/", ("parent",)),)
    async with running_server(parent, root=tree, handlers=handlers) as srv:
        response = await get(srv, "/")
    assert response.text == "BBB"
    assert got == [(Notification.EXECUTE_REQUEST_HANDLER, False, CompletionInfo(3, 0))]


async def test_failing_child_reports_its_hresult(tree: Path) -> None:
    completion: list[CompletionInfo] = []

    class Boom(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            if ctx.get_parent_context() is not None:
                raise RuntimeError("child failed")

    async def handler(ctx: HttpContext) -> Status:
        child = ctx.clone_context(CloneFlags.BASICS)
        completion.append(await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE))
        ctx.response.clear_body()
        ctx.response.write(f"child status {child.response.status}")
        return Status.FINISH_REQUEST

    modules = (on_root(handler), ("boom", register(Boom, Notification.BEGIN_REQUEST)))
    async with running_server(*modules, root=tree) as srv:
        response = await get(srv, "/")
    assert response.status_code == 200
    assert response.text == "child status 500"
    assert completion[0].completion_status == E_FAIL


async def test_ignore_current_interceptor_skips_the_forwarding_mapping(tree: Path) -> None:
    forwarded: list[int] = []

    class Forwarder(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            forwarded.append(ctx.depth)
            child = ctx.clone_context(CloneFlags.BASICS | CloneFlags.HEADERS)
            await ctx.run_child(
                child, ExecuteFlags.SAME_URL | ExecuteFlags.IGNORE_CURRENT_INTERCEPTOR
            )
            return Status.FINISH_REQUEST

    forwarder = ("forwarder", register(Forwarder, Notification.EXECUTE_REQUEST_HANDLER))
    handlers = (trioiis.HandlerMapping("*.txt", ("forwarder",)),)
    async with running_server(forwarder, root=tree, handlers=handlers) as srv:
        response = await get(srv, "/a.txt")
    assert forwarded == [0]  # the child went to the default static mapping
    assert response.text == "AAA"


async def test_cancel_io_on_the_parent_reaches_the_childs_pending_read(tree: Path) -> None:
    seen: dict[str, Any] = {}

    class Reader(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status | None:
            if ctx.get_parent_context() is None:
                return None
            try:
                await ctx.request.read_entity_body(100)
            except trioiis.OperationAbortedError as exc:
                seen["child"] = exc.completion.completion_status
            ctx.response.write("child done")
            return Status.FINISH_REQUEST

    async def handler(ctx: HttpContext) -> Status:
        async def canceller() -> None:
            await trio.testing.wait_all_tasks_blocked()
            seen["count"] = ctx.cancel_io()

        ctx.start_soon(canceller)
        child = ctx.clone_context(CloneFlags.BASICS | CloneFlags.ENTITY)
        await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
        return Status.FINISH_REQUEST

    modules = (on_root(handler), ("reader", register(Reader, Notification.BEGIN_REQUEST)))
    limits = trioiis.Limits(linger_timeout=0.2)
    async with running_server(*modules, root=tree, limits=limits) as srv:
        raw = await raw_request(
            srv.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"
        )
    assert raw.endswith(b"child done")
    assert seen == {"count": 1, "child": ERROR_OPERATION_ABORTED}


async def test_client_disconnect_cancels_the_whole_tree(tree: Path) -> None:
    started = trio.Event()
    cancelled: list[int] = []
    ended: list[int] = []
    all_ended = trio.Event()

    class Deep(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.depth < 3:
                child = ctx.clone_context(CloneFlags.BASICS)
                ctx.execute_request(child)
                return Status.PENDING
            started.set()
            try:
                await trio.sleep_forever()
            finally:
                cancelled.append(ctx.depth)
            return Status.CONTINUE

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> None:
            ended.append(ctx.depth)
            if ctx.depth == 0:
                all_ended.set()

    deep = ("deep", register(Deep, Notification.BEGIN_REQUEST | Notification.END_REQUEST))
    async with running_server(deep, root=tree) as srv:
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream("127.0.0.1", srv.port)
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            await stream.aclose()
            await all_ended.wait()
    assert cancelled == [3]
    assert sorted(ended) == [0, 1, 2, 3]


async def test_iis_execute_request_sample_serves_the_child_page(tree: Path) -> None:
    sample = ("sample", execute_request_sample.register_module)
    async with running_server(sample, root=tree) as srv:
        response = await get(srv, "/")
        plain = await get(srv, "/a.txt")
    assert response.status_code == 200
    assert response.text == "<p>example page</p>"
    assert plain.text == "AAA"
