"""Spec section 4 (iis-native-api.md), items 1-19 and 21-25, over a real server.

Every test starts a server with ``running_server`` and talks to it with httpx, twice: on
127.0.0.1 port 0 over a real socket, and in memory (``transport`` fixture: the same
pipeline, context, lifecycle and shutdown, with ``serve_in_memory`` in place of the
socket; tests/memory.py). Modules record what they see into a ``Recorder``; waits on the
server's progress go through ``trio.Event``s (never sleeps), and "nothing else ran
meanwhile" is checked after ``trio.testing.wait_all_tasks_blocked()``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

import trioiis
import trioiis.modules
from tests.helpers import (
    ALL_DETERMINISTIC,
    Recorder,
    TransportName,
    recording_module,
    register,
    running_server,
)
from trioiis import (
    CompletionInfo,
    CustomNotificationProvider,
    GlobalModule,
    GlobalNotification,
    GlobalStatus,
    HandlerMapping,
    HResultError,
    HttpContext,
    HttpModule,
    ModuleRegistrationInfo,
    Priority,
    SimpleFactory,
    Status,
)
from trioiis import Notification as N
from trioiis._constants import (
    DETERMINISTIC_STAGES,
    ERROR_ALREADY_EXISTS,
    ERROR_INVALID_PARAMETER,
    NON_DETERMINISTIC,
    S_OK,
)
from trioiis._pipeline.registration import handler_names

TIMEOUT = 10
#: Only the modules a test loads (no static_file / default_document).
BARE: dict[str, Any] = {"builtin_modules": False}

EVENTS = [handler_names(stage)[0] for stage in DETERMINISTIC_STAGES]
POSTS = [handler_names(stage)[1] for stage in DETERMINISTIC_STAGES]
TABLE_ORDER = [name for pair in zip(EVENTS, POSTS, strict=True) for name in pair]
#: Method name -> (stage index, is_post), for "which slot of the walk is this call in".
SLOT = {name: (i // 2, i % 2 == 1) for i, name in enumerate(TABLE_ORDER)}


@pytest.fixture(params=["socket", "memory"])
def transport(request: pytest.FixtureRequest) -> TransportName:
    """Each test runs over a real socket and in memory."""
    name: TransportName = request.param
    return name


def handlers(*names: str) -> dict[str, Any]:
    """Config for one ``*`` handler mapping running ``names`` at EXECUTE_REQUEST_HANDLER."""
    return {"handlers": (HandlerMapping("*", names),)}


# ------------------------------------------------------------------ registration and lifecycle


class Marker(HttpModule):
    """Sets ``X-Marker`` at BEGIN_REQUEST, so a test can see the module is live."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        ctx.response.set_header("X-Marker", "on", replace=False)
        return Status.CONTINUE


async def test_item01_register_module_called_once_per_module_with_server_major_version(
    transport: TransportName,
) -> None:
    calls: list[tuple[int, str, bool]] = []

    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        calls.append((server_version, info.get_name(), isinstance(server, trioiis.GlobalServer)))
        info.set_request_notifications(SimpleFactory(Marker), N.BEGIN_REQUEST)

    async with (
        running_server(
            ("one", register_module), ("two", register_module), **BARE, transport=transport
        ) as srv,
        srv.client() as client,
    ):
        for _ in range(3):
            response = await client.get("/")
            assert response.headers["x-marker"] == "on, on"
    assert trioiis.SERVER_VERSION == 10  # the IIS major version trioiis models
    assert calls == [(10, "one", True), (10, "two", True)]


async def test_item02_second_set_request_or_global_notifications_is_already_exists(
    transport: TransportName,
) -> None:
    hresults: list[int] = []
    seen: list[str] = []

    class Other(HttpModule):
        async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
            seen.append("second factory ran")
            return Status.CONTINUE

    class Global(GlobalModule):
        def __init__(self, name: str) -> None:
            self.name = name

        async def on_global_pre_begin_request(self, provider: Any) -> GlobalStatus:
            seen.append(self.name)
            return GlobalStatus.CONTINUE

    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_request_notifications(SimpleFactory(Marker), N.BEGIN_REQUEST)
        try:
            info.set_request_notifications(SimpleFactory(Other), N.END_REQUEST)
        except HResultError as exc:
            hresults.append(exc.hresult)
        info.set_global_notifications(Global("first global"), GlobalNotification.PRE_BEGIN_REQUEST)
        try:
            info.set_global_notifications(
                Global("second global"), GlobalNotification.PRE_BEGIN_REQUEST
            )
        except HResultError as exc:
            hresults.append(exc.hresult)

    async with (
        running_server(("m", register_module), **BARE, transport=transport) as srv,
        srv.client() as client,
    ):
        response = await client.get("/")
    assert hresults == [ERROR_ALREADY_EXISTS, ERROR_ALREADY_EXISTS]
    # The first registration stands; the refused ones changed nothing.
    assert response.headers["x-marker"] == "on"
    assert seen == ["first global"]


class CountingFactory:
    """Counts ``get_http_module`` calls and keeps every instance it made."""

    def __init__(self, gate_at: int) -> None:
        self.made: list[Counted] = []
        self.gate_at = gate_at
        self.in_begin = 0
        self.all_in = trio.Event()
        self.log: list[str] = []

    def get_http_module(self, allocator: Any) -> Counted:
        module = Counted(self, len(self.made))
        self.made.append(module)
        return module

    def terminate(self) -> None:
        self.log.append("terminate")


class Counted(HttpModule):
    def __init__(self, factory: CountingFactory, number: int) -> None:
        self.factory = factory
        self.number = number
        self.seen: list[str] = []
        self.disposed = 0

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        self.seen.append(f"begin {ctx.request.path}")
        factory = self.factory
        factory.in_begin += 1
        if factory.in_begin == factory.gate_at:
            factory.all_in.set()
        # The concurrent batch only goes on once every one of its requests is in flight.
        await factory.all_in.wait()
        ctx.response.write(str(self.number))
        return Status.CONTINUE

    async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
        self.seen.append("end")
        return Status.CONTINUE

    def dispose(self) -> None:
        self.seen.append("dispose")
        self.disposed += 1
        self.factory.log.append(f"dispose {self.number}")


async def test_item03_get_http_module_and_dispose_once_per_request_concurrent_and_serial(
    transport: TransportName,
) -> None:
    concurrent, serial = 8, 3
    factory = CountingFactory(gate_at=concurrent)
    module = register(
        lambda: Counted(factory, -1), N.BEGIN_REQUEST | N.END_REQUEST, factory=factory
    )
    bodies: dict[str, str] = {}
    async with (
        running_server(("counted", module), **BARE, transport=transport) as srv,
        srv.client() as client,
    ):

        async def fetch(path: str) -> None:
            response = await client.get(path)
            assert response.status_code == 200
            bodies[path] = response.text

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for i in range(concurrent):
                    nursery.start_soon(fetch, f"/c{i}")
            for i in range(serial):
                await fetch(f"/s{i}")
    total = concurrent + serial
    assert len(factory.made) == total
    # Each request got its own instance (the body names the instance that served it).
    assert sorted(int(body) for body in bodies.values()) == list(range(total))
    for counted in factory.made:
        assert counted.disposed == 1
        assert counted.seen[1:] == ["end", "dispose"]
        assert counted.seen[0].startswith("begin /")


async def test_item04_terminate_once_at_shutdown_after_the_last_dispose(
    transport: TransportName,
) -> None:
    factory = CountingFactory(gate_at=1)
    log = factory.log
    entered, release = trio.Event(), trio.Event()

    class Global(GlobalModule):
        def terminate(self) -> None:
            log.append("global terminate")

    class Slow(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.path == "/last":
                entered.set()
                await release.wait()
            return Status.CONTINUE

        def dispose(self) -> None:
            log.append("dispose slow")

    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_request_notifications(factory, N.BEGIN_REQUEST | N.END_REQUEST)
        info.set_global_notifications(Global(), GlobalNotification.STOP_LISTENING)

    slow = register(Slow, N.BEGIN_REQUEST)
    async with (
        running_server(
            ("counted", register_module), ("slow", slow), **BARE, transport=transport
        ) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            assert (await client.get("/first")).status_code == 200
            assert "terminate" not in log
            statuses: list[int] = []
            async with trio.open_nursery() as nursery:

                async def last_request() -> None:
                    # "close": a keep-alive client would hold the socket, and shutdown would
                    # wait out the server's lingering close (server.py sends no
                    # "Connection: close" on responses finished while draining).
                    response = await client.get("/last", headers={"Connection": "close"})
                    statuses.append(response.status_code)

                nursery.start_soon(last_request)
                await entered.wait()
                nursery.start_soon(srv.server.shutdown, 5.0)
                await trio.testing.wait_all_tasks_blocked()
                # Shutdown is draining the request in flight: nothing terminated yet.
                assert "terminate" not in log
                assert "global terminate" not in log
                release.set()
            assert statuses == [200]
    assert log.count("terminate") == 1
    assert log.count("global terminate") == 1
    last_dispose = max(i for i, entry in enumerate(log) if entry.startswith("dispose"))
    assert log.index("terminate") > last_dispose
    assert log.index("global terminate") > last_dispose
    assert log.count("dispose slow") == 2  # both requests, before terminate


async def test_item05_module_ids_are_unique_and_stable(transport: TransportName) -> None:
    ids: dict[str, int] = {}
    infos: dict[str, ModuleRegistrationInfo] = {}
    owners: list[tuple[str, bool]] = []

    class Stored:
        def __init__(self, owner: str) -> None:
            self.owner = owner

        def cleanup_stored_context(self) -> None:
            pass

    def make_register(name: str) -> Any:
        class Keeper(HttpModule):
            async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
                # A collision of ids would make this raise ERROR_ALREADY_ASSIGNED (→ 500).
                ctx.module_context.set_module_context(Stored(name), infos[name].get_id())
                return Status.CONTINUE

            async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
                stored = ctx.module_context.get_module_context(infos[name].get_id())
                owners.append((name, isinstance(stored, Stored) and stored.owner == name))
                return Status.CONTINUE

        def register_module(
            server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
        ) -> None:
            ids[name] = info.get_id()
            infos[name] = info
            info.set_request_notifications(SimpleFactory(Keeper), N.BEGIN_REQUEST | N.END_REQUEST)

        return register_module

    names = ("a", "b", "c")
    async with (
        running_server(*((n, make_register(n)) for n in names), transport=transport) as srv,
        srv.client() as client,
    ):
        for _ in range(2):
            assert (await client.get("/")).status_code != 500
        every_id = [r.get_id() for r in srv.server.pipeline.registrations]
    # the built-in modules, then a, b, c
    assert len(set(every_id)) == len(every_id) == len(trioiis.modules.DEFAULT_MODULES) + 3
    assert {name: info.get_id() for name, info in infos.items()} == ids
    assert set(ids.values()) <= set(every_id)
    assert owners == [(n, True) for n in names] * 2


async def test_item06_subscribed_handler_not_overridden_is_reported_and_treated_as_continue(
    transport: TransportName,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = Recorder()

    class Partial(HttpModule):  # subscribes to AUTHORIZE_REQUEST but does not override it
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            rec.calls.append(("partial", "on_begin_request"))
            return Status.CONTINUE

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
            rec.calls.append(("partial", "on_end_request"))
            return Status.CONTINUE

    caplog.set_level(logging.DEBUG, logger="trioiis.module")
    mask = N.BEGIN_REQUEST | N.AUTHORIZE_REQUEST | N.END_REQUEST
    async with (
        running_server(
            ("partial", register(Partial, mask)),
            ("after", register(recording_module(rec, "after"), N.AUTHORIZE_REQUEST)),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        response = await client.get("/")
    assert response.status_code == 200
    assert rec.calls == [
        ("partial", "on_begin_request"),
        ("after", "on_authorize_request"),
        ("partial", "on_end_request"),
    ]
    reports = [
        r.getMessage()
        for r in caplog.records
        if r.name == "trioiis.module" and "on_authorize_request" in r.getMessage()
    ]
    assert reports
    assert "partial" in reports[0]


# ------------------------------------------------------------------ ordering


async def test_item07_one_module_sees_all_24_events_in_order(transport: TransportName) -> None:
    rec = Recorder()
    module = register(recording_module(rec, "all"), ALL_DETERMINISTIC, ALL_DETERMINISTIC)
    async with (
        running_server(("all", module), **BARE, **handlers("all"), transport=transport) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    assert len(rec.calls) == 24
    assert rec.names("all") == TABLE_ORDER
    assert TABLE_ORDER[:4] == [
        "on_begin_request",
        "on_post_begin_request",
        "on_authenticate_request",
        "on_post_authenticate_request",
    ]
    assert TABLE_ORDER[-2:] == ["on_end_request", "on_post_end_request"]


async def test_item08_event_mask_and_post_mask_are_independent(transport: TransportName) -> None:
    rec = Recorder()
    events_only = register(recording_module(rec, "events"), ALL_DETERMINISTIC, 0)
    posts_only = register(recording_module(rec, "posts"), 0, ALL_DETERMINISTIC)
    async with (
        running_server(
            ("events", events_only),
            ("posts", posts_only),
            **BARE,
            **handlers("events", "posts"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    assert rec.names("events") == EVENTS
    assert rec.names("posts") == POSTS


async def test_item09_all_events_of_a_stage_run_before_its_posts_and_before_the_next_stage(
    transport: TransportName,
) -> None:
    rec = Recorder()
    modules = [
        ("m_low", Priority.LOW, None),
        ("m_first", Priority.FIRST, Priority.LAST),
        ("m_default", None, Priority.FIRST),
    ]
    async with (
        running_server(
            *(
                (
                    name,
                    register(
                        recording_module(rec, name),
                        ALL_DETERMINISTIC,
                        ALL_DETERMINISTIC,
                        priority=priority,
                        post_priority=post_priority,
                    ),
                )
                for name, priority, post_priority in modules
            ),
            **BARE,
            **handlers("m_low", "m_first", "m_default"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    slots = [SLOT[method] for _, method in rec.calls]
    assert slots == sorted(slots), "a call ran out of its stage / event-before-post slot"
    # Every (stage, is_post) slot was delivered to all three modules.
    assert len(rec.calls) == 3 * 24
    for slot in set(SLOT.values()):
        assert slots.count(slot) == 3


def _priority_modules(rec: Recorder, notification: N) -> list[tuple[str, Any]]:
    """Registered in a scrambled order on purpose: list order must not decide."""
    spec = [
        ("low", Priority.LOW),
        ("last", Priority.LAST),
        ("medium", None),
        ("high", Priority.HIGH),
        ("first", Priority.FIRST),
    ]
    return [
        (name, register(recording_module(rec, name), notification, priority=priority))
        for name, priority in spec
    ]


async def test_item10_higher_priority_runs_first_first_high_medium_low_last(
    transport: TransportName,
) -> None:
    rec = Recorder()
    async with (
        running_server(
            *_priority_modules(rec, N.BEGIN_REQUEST), **BARE, transport=transport
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    assert [name for name, _ in rec.calls] == ["first", "high", "medium", "low", "last"]


async def test_item11_send_response_runs_in_reverse_priority_order(
    transport: TransportName,
) -> None:
    rec = Recorder()
    async with (
        running_server(
            *_priority_modules(rec, N.SEND_RESPONSE), **BARE, transport=transport
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    assert rec.names() == ["on_send_response"] * 5
    assert [name for name, _ in rec.calls] == ["last", "low", "medium", "high", "first"]


async def test_item12_equal_priorities_run_in_registration_order(transport: TransportName) -> None:
    """Ties follow the load order (not names); SEND_RESPONSE reverses the whole order,
    ties included (project decision: the SEND_RESPONSE order is the exact reverse)."""
    rec = Recorder()
    mask = N.BEGIN_REQUEST | N.SEND_RESPONSE
    spec = [("c", None), ("z", Priority.HIGH), ("a", None), ("y", Priority.HIGH), ("b", None)]
    async with (
        running_server(
            *((n, register(recording_module(rec, n), mask, priority=p)) for n, p in spec),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    begin = [n for n, m in rec.calls if m == "on_begin_request"]
    send = [n for n, m in rec.calls if m == "on_send_response"]
    assert begin == ["z", "y", "c", "a", "b"]
    assert send == ["b", "a", "c", "y", "z"]


async def test_item13_execute_request_handler_runs_only_the_mapping_modules_in_its_order(
    transport: TransportName,
) -> None:
    """Decision pinned with it: the *post*-EXECUTE_REQUEST_HANDLER notification is not
    filtered by the mapping; it goes to every subscriber in priority order."""
    rec = Recorder()
    mask = N.EXECUTE_REQUEST_HANDLER
    config = {
        "handlers": (
            HandlerMapping("/a*", ("z", "x")),
            HandlerMapping("*", ("y",)),
        )
    }
    async with (
        running_server(
            *((n, register(recording_module(rec, n), mask, mask)) for n in ("x", "y", "z")),
            **BARE,
            **config,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/a/page")).status_code == 200
        first = list(rec.calls)
        rec.calls.clear()
        assert (await client.get("/b")).status_code == 200
        second = list(rec.calls)
    execute = "on_execute_request_handler"
    post = "on_post_execute_request_handler"
    assert first == [("z", execute), ("x", execute), ("x", post), ("y", post), ("z", post)]
    assert second == [("y", execute), ("x", post), ("y", post), ("z", post)]


async def test_item14_non_deterministic_notifications_have_no_post_events(
    transport: TransportName, site: Path
) -> None:
    rec = Recorder()

    class Driver(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            body = await ctx.request.read_entity_body(100)  # READ_ENTITY
            path = await ctx.map_path("/hello.txt")  # MAP_PATH
            await ctx.notify_custom_notification(CustomNotificationProvider())  # CUSTOM
            ctx.response.write(body + b" " + path.name.encode())
            return Status.CONTINUE  # the final send raises SEND_RESPONSE once

    both = NON_DETERMINISTIC | N.BEGIN_REQUEST
    watcher = register(recording_module(rec, "watcher"), both, both)
    async with (
        running_server(
            ("driver", register(Driver, N.EXECUTE_REQUEST_HANDLER)),
            ("watcher", watcher),
            root=site,
            **BARE,
            **handlers("driver"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        response = await client.post("/", content=b"body")
    assert response.text == "body hello.txt"
    # Each trigger happened once and was delivered once; the post bits were ignored for
    # them, while the same post_mask still gave BEGIN_REQUEST its post-event.
    assert rec.names() == [
        "on_begin_request",
        "on_post_begin_request",
        "on_read_entity",
        "on_map_path",
        "on_custom_request_notification",
        "on_send_response",
    ]


async def test_item15_on_async_completion_only_after_the_modules_own_operation(
    transport: TransportName,
) -> None:
    rec = Recorder()
    completions: list[tuple[str, N, bool, int]] = []

    class Poster(recording_module(rec, "poster")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            ctx.post_completion(3)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: N, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            completions.append(("poster", n, post, info.completion_bytes))
            return Status.CONTINUE

    class Bystander(recording_module(rec, "bystander")):
        async def on_async_completion(
            self, ctx: HttpContext, n: N, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            completions.append(("bystander", n, post, info.completion_bytes))
            return Status.CONTINUE

    refused: list[int] = []

    def register_bad(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        try:  # there is no bit for async completion; an unknown bit is refused
            info.set_request_notifications(SimpleFactory(Bystander), 0x00001000)
        except HResultError as exc:
            refused.append(exc.hresult)

    everything = ALL_DETERMINISTIC | NON_DETERMINISTIC
    async with (
        running_server(
            ("poster", register(Poster, N.BEGIN_REQUEST)),
            ("bystander", register(Bystander, everything, ALL_DETERMINISTIC)),
            ("bad", register_bad),
            **BARE,
            **handlers("bystander"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        for _ in range(2):
            assert (await client.get("/")).status_code == 200
    assert refused == [ERROR_INVALID_PARAMETER]
    assert completions == [("poster", N.BEGIN_REQUEST, False, 3)] * 2
    assert len(rec.names("bystander")) == 2 * (24 + 1)  # all it registered for, no more


# ------------------------------------------------------------------ return statuses


async def test_item16_continue_lets_the_next_module_and_later_stages_run(
    transport: TransportName, site: Path
) -> None:
    rec = Recorder()

    class ReturnsNone(recording_module(rec, "b")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
            await super().on_begin_request(ctx, provider)  # returning None means CONTINUE

    a = recording_module(rec, "a", statuses={"on_begin_request": Status.CONTINUE})
    mask = N.BEGIN_REQUEST | N.AUTHORIZE_REQUEST | N.END_REQUEST
    async with (
        running_server(
            ("a", register(a, mask, priority=Priority.HIGH)),
            ("b", register(ReturnsNone, mask)),
            root=site,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        response = await client.get("/hello.txt")
    assert (response.status_code, response.text) == (200, "hello\n")  # EXECUTE ran too
    assert rec.calls == [
        ("a", "on_begin_request"),
        ("b", "on_begin_request"),
        ("a", "on_authorize_request"),
        ("b", "on_authorize_request"),
        ("a", "on_end_request"),
        ("b", "on_end_request"),
    ]


async def test_item17_finish_request_from_begin_request_skips_to_send_log_and_end(
    transport: TransportName,
    site: Path,
) -> None:
    """Decision pinned: RELEASE_REQUEST_STATE and UPDATE_REQUEST_CACHE are skipped too."""
    rec = Recorder()

    class Refuser(recording_module(rec, "refuser")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            if ctx.request.query != "refuse":
                return Status.CONTINUE
            ctx.response.set_status(403)
            ctx.response.write("refused")
            return Status.FINISH_REQUEST

    everything = ALL_DETERMINISTIC | N.SEND_RESPONSE
    async with (
        running_server(
            ("refuser", register(Refuser, N.BEGIN_REQUEST, priority=Priority.HIGH)),
            ("other", register(recording_module(rec, "other"), everything, ALL_DETERMINISTIC)),
            root=site,
            **handlers("static_file", "other"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        response = await client.get("/hello.txt?refuse")
        assert (response.status_code, response.text) == (403, "refused")
        # The next request on the same connection is not affected.
        assert (await client.get("/hello.txt")).text == "hello\n"
    first = rec.calls[: rec.calls.index(("refuser", "on_begin_request"), 1)]
    assert first == [
        ("refuser", "on_begin_request"),
        ("other", "on_send_response"),
        ("other", "on_log_request"),
        ("other", "on_post_log_request"),
        ("other", "on_end_request"),
        ("other", "on_post_end_request"),
    ]


async def test_item18_disable_notifications_affects_only_the_caller_and_this_request(
    transport: TransportName,
) -> None:
    rec = Recorder()

    class Disabler(recording_module(rec, "disabler")):
        async def on_authenticate_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_authenticate_request(ctx, provider)
            if ctx.request.path == "/disable":
                ctx.disable_notifications(N.AUTHORIZE_REQUEST, 0)
            return Status.CONTINUE

    mask = N.AUTHENTICATE_REQUEST | N.AUTHORIZE_REQUEST
    async with (
        running_server(
            ("disabler", register(Disabler, mask, mask, priority=Priority.HIGH)),
            ("other", register(recording_module(rec, "other"), mask, mask)),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        for path in ("/disable", "/again"):
            assert (await client.get(path)).status_code == 200
    full = [
        ("disabler", "on_authenticate_request"),
        ("other", "on_authenticate_request"),
        ("disabler", "on_post_authenticate_request"),
        ("other", "on_post_authenticate_request"),
        ("disabler", "on_authorize_request"),
        ("other", "on_authorize_request"),
        ("disabler", "on_post_authorize_request"),
        ("other", "on_post_authorize_request"),
    ]
    disabled = [call for call in full if call != ("disabler", "on_authorize_request")]
    assert rec.calls == disabled + full


async def test_item19_disable_notifications_does_not_stop_non_deterministic_ones(
    transport: TransportName,
) -> None:
    rec = Recorder()

    class Disabler(recording_module(rec, "disabler")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            everything = ALL_DETERMINISTIC | NON_DETERMINISTIC
            ctx.disable_notifications(everything, everything)
            return Status.CONTINUE

    class Driver(recording_module(rec, "driver")):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_execute_request_handler(ctx, provider)
            await ctx.notify_custom_notification(CustomNotificationProvider())
            return Status.CONTINUE

    mask = N.BEGIN_REQUEST | N.END_REQUEST | N.SEND_RESPONSE | N.CUSTOM_NOTIFICATION
    async with (
        running_server(
            ("disabler", register(Disabler, mask, N.BEGIN_REQUEST | N.END_REQUEST)),
            ("driver", register(Driver, N.EXECUTE_REQUEST_HANDLER)),
            **BARE,
            **handlers("driver"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
        # The next request is not affected by the first one's disable_notifications.
        assert (await client.get("/")).status_code == 200
    once = [
        ("disabler", "on_begin_request"),
        ("driver", "on_execute_request_handler"),
        ("disabler", "on_custom_request_notification"),
        ("disabler", "on_send_response"),
    ]
    # POST_BEGIN and END (+ post) were disabled; CUSTOM and SEND_RESPONSE still arrive.
    assert rec.calls == once + once


# ------------------------------------------------------------------ async completion


async def _async_write_scenario(
    transport: TransportName,
) -> tuple[list[tuple[N, bool, int, int]], Recorder, str]:
    """Item 21: a handler writes 11 bytes with ``async_=True`` and returns PENDING; a
    SEND_RESPONSE gate holds that write until the test checked nothing else ran."""
    rec = Recorder()
    completions: list[tuple[N, bool, int, int]] = []
    send_entered, send_release = trio.Event(), trio.Event()

    class Writer(recording_module(rec, "writer")):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_execute_request_handler(ctx, provider)
            ctx.response.set_header("Content-Length", "11")
            n, expected = ctx.response.write_entity_chunks([b"hello", b" world"], async_=True)
            assert (n, expected) == (11, True)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: N, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            rec.calls.append(("writer", "on_async_completion"))
            completions.append((n, post, info.completion_bytes, info.completion_status))
            return Status.CONTINUE

    class Gate(HttpModule):
        """Holds the async write inside its SEND_RESPONSE until the test lets it go."""

        async def on_send_response(self, ctx: HttpContext, provider: Any) -> Status:
            if not send_entered.is_set():
                send_entered.set()
                await send_release.wait()
            return Status.CONTINUE

    mask = N.EXECUTE_REQUEST_HANDLER | N.END_REQUEST
    async with (
        running_server(
            ("writer", register(Writer, mask, N.EXECUTE_REQUEST_HANDLER)),
            ("next", register(recording_module(rec, "next"), mask, mask)),
            ("gate", register(Gate, N.SEND_RESPONSE)),
            **BARE,
            **handlers("writer", "next"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                responses: list[Any] = []

                async def fetch() -> None:
                    responses.append(await client.get("/"))

                nursery.start_soon(fetch)
                await send_entered.wait()
                await trio.testing.wait_all_tasks_blocked()
                assert rec.calls == [("writer", "on_execute_request_handler")]
                send_release.set()
    return completions, rec, responses[0].text


async def test_item21_async_write_pends_until_on_async_completion(transport: TransportName) -> None:
    completions, rec, text = await _async_write_scenario(transport=transport)
    assert text == "hello world"
    assert [(n, post, status) for n, post, _, status in completions] == [
        (N.EXECUTE_REQUEST_HANDLER, False, S_OK)
    ]
    assert rec.calls == [
        ("writer", "on_execute_request_handler"),
        ("writer", "on_async_completion"),
        ("next", "on_execute_request_handler"),
        ("writer", "on_post_execute_request_handler"),
        ("next", "on_post_execute_request_handler"),
        ("writer", "on_end_request"),
        ("next", "on_end_request"),
        ("next", "on_post_end_request"),
    ]


async def test_item21_async_write_completion_bytes_are_the_bytes_written(
    transport: TransportName,
) -> None:
    completions, _, _ = await _async_write_scenario(transport=transport)
    assert [bytes_ for _, _, bytes_, _ in completions] == [11]


async def test_item22_no_on_async_completion_when_completion_is_not_expected(
    transport: TransportName,
) -> None:
    rec = Recorder()
    results: list[Any] = []

    class Inline(recording_module(rec, "inline")):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_execute_request_handler(ctx, provider)
            results.append(ctx.response.write_entity_chunks([b"inline"], async_=False))
            results.append(await ctx.notify_custom_notification(CustomNotificationProvider()))
            return Status.CONTINUE

        async def on_async_completion(self, *args: Any) -> Status:
            rec.calls.append(("inline", "on_async_completion"))
            return Status.CONTINUE

    mask = N.EXECUTE_REQUEST_HANDLER | N.CUSTOM_NOTIFICATION | N.END_REQUEST
    async with (
        running_server(
            ("inline", register(Inline, mask)), **BARE, **handlers("inline"), transport=transport
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).text == "inline"
    assert results == [(6, False), False]
    assert rec.names() == [
        "on_execute_request_handler",
        "on_custom_request_notification",
        "on_end_request",
    ]


async def test_item23_on_async_completion_pending_keeps_parked_continue_resumes(
    transport: TransportName,
) -> None:
    rec = Recorder()
    contexts: list[HttpContext] = []
    second_pending = trio.Event()

    class Parker(recording_module(rec, "parker")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            contexts.append(ctx)
            ctx.post_completion(1)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: N, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            rec.calls.append(("parker", f"completion {info.completion_bytes}"))
            if info.completion_bytes == 1:
                second_pending.set()
                return Status.PENDING  # still parked: the test resumes it from outside
            return Status.CONTINUE

    async with (
        running_server(
            ("parker", register(Parker, N.BEGIN_REQUEST, N.BEGIN_REQUEST)),
            ("later", register(recording_module(rec, "later"), N.BEGIN_REQUEST | N.END_REQUEST)),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                statuses: list[int] = []

                async def fetch() -> None:
                    statuses.append((await client.get("/")).status_code)

                nursery.start_soon(fetch)
                await second_pending.wait()
                await trio.testing.wait_all_tasks_blocked()
                assert rec.calls == [
                    ("parker", "on_begin_request"),
                    ("parker", "completion 1"),
                ]
                contexts[0].post_completion(2)
    assert statuses == [200]
    assert rec.calls == [
        ("parker", "on_begin_request"),
        ("parker", "completion 1"),
        ("parker", "completion 2"),
        ("later", "on_begin_request"),
        ("parker", "on_post_begin_request"),
        ("later", "on_end_request"),
    ]


async def test_item24_post_completion_reenters_later_never_inline_with_the_bytes(
    transport: TransportName,
) -> None:
    rec = Recorder()
    completions: list[tuple[N, bool, int, int]] = []

    class Poster(recording_module(rec, "poster")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            ctx.post_completion(42)  # from inside the handler itself
            rec.calls.append(("poster", "post_completion(42) returned"))
            return Status.PENDING

        async def on_post_authorize_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_post_authorize_request(ctx, provider)

            async def later() -> None:  # from a task of the request
                await trio.lowlevel.checkpoint()
                ctx.post_completion(7)
                rec.calls.append(("task", "post_completion(7) returned"))

            ctx.start_soon(later)
            return Status.PENDING

        async def on_async_completion(
            self, ctx: HttpContext, n: N, post: bool, provider: Any, info: CompletionInfo
        ) -> Status:
            rec.calls.append(("poster", "on_async_completion"))
            completions.append((n, post, info.completion_bytes, info.completion_status))
            return Status.CONTINUE

    mask = N.BEGIN_REQUEST | N.AUTHORIZE_REQUEST
    async with (
        running_server(
            ("poster", register(Poster, mask, mask)),
            ("other", register(recording_module(rec, "other"), N.AUTHORIZE_REQUEST)),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        assert (await client.get("/")).status_code == 200
    assert completions == [
        (N.BEGIN_REQUEST, False, 42, S_OK),
        (N.AUTHORIZE_REQUEST, True, 7, S_OK),
    ]
    assert rec.calls == [
        ("poster", "on_begin_request"),
        ("poster", "post_completion(42) returned"),
        ("poster", "on_async_completion"),
        ("poster", "on_post_begin_request"),
        ("poster", "on_authorize_request"),
        ("other", "on_authorize_request"),
        ("poster", "on_post_authorize_request"),
        ("task", "post_completion(7) returned"),
        ("poster", "on_async_completion"),
    ]


async def test_item25_indicate_completion_resumes_without_on_async_completion(
    transport: TransportName,
) -> None:
    """Decision pinned (spec item 25 is [inf] here): ``indicate_completion`` is a plain
    function, so the pipeline cannot run *inside* it; it must not have run when the call
    returns, and it goes on as soon as the caller's task yields — without
    ``on_async_completion``. The status given is the one the pipeline acts on."""
    rec = Recorder()
    next_stage_ran: dict[str, trio.Event] = {}

    class Parker(recording_module(rec, "parker")):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_begin_request(ctx, provider)
            status = Status.FINISH_REQUEST if ctx.request.path == "/finish" else Status.CONTINUE

            async def resume() -> None:
                await trio.lowlevel.checkpoint()
                ctx.indicate_completion(status)
                rec.calls.append(("task", f"indicate_completion({status.name}) returned"))
                with trio.fail_after(TIMEOUT):
                    await next_stage_ran[ctx.request.path].wait()
                rec.calls.append(("task", "saw the next stage run"))

            ctx.start_soon(resume)
            return Status.PENDING

        async def on_async_completion(self, *args: Any) -> Status:
            rec.calls.append(("parker", "on_async_completion"))
            return Status.CONTINUE

    class Next(recording_module(rec, "next")):
        async def on_authenticate_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_authenticate_request(ctx, provider)
            next_stage_ran[ctx.request.path].set()
            return Status.CONTINUE

        async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
            await super().on_end_request(ctx, provider)
            next_stage_ran[ctx.request.path].set()
            return Status.CONTINUE

    async with (
        running_server(
            ("parker", register(Parker, N.BEGIN_REQUEST, N.BEGIN_REQUEST)),
            ("next", register(Next, N.AUTHENTICATE_REQUEST | N.END_REQUEST)),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        for path in ("/continue", "/finish"):
            next_stage_ran[path] = trio.Event()
            with trio.fail_after(TIMEOUT):
                assert (await client.get(path)).status_code == 200
    saw = ("task", "saw the next stage run")
    # When the task wakes after the next stage ran is up to the scheduler: check it against
    # the stage that woke it, and the pipeline's own order without it.
    assert rec.calls.index(saw) > rec.calls.index(("next", "on_authenticate_request"))
    assert rec.calls.count(saw) == 2
    assert [c for c in rec.calls if c != saw] == [
        ("parker", "on_begin_request"),
        ("task", "indicate_completion(CONTINUE) returned"),
        ("parker", "on_post_begin_request"),
        ("next", "on_authenticate_request"),
        ("next", "on_end_request"),
        # FINISH_REQUEST: straight to the tail, post-BEGIN and AUTHENTICATE skipped.
        ("parker", "on_begin_request"),
        ("task", "indicate_completion(FINISH_REQUEST) returned"),
        ("next", "on_end_request"),
    ]
    assert rec.calls[-1] == saw


# ------------------------------------------------------------------ failures stay in the request


@pytest.mark.parametrize("how", ["raises", "returns 'ok'", "returns 7"])
async def test_failing_module_gives_500_logs_and_server_keeps_serving(
    transport: TransportName, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Boom(Exception):
        pass

    class Faulty(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Any:
            if ctx.request.path != "/bad":
                return Status.CONTINUE
            ctx.response.write("partial output that must not leak")
            if how == "raises":
                raise Boom("kaboom in on_begin_request")
            return "ok" if how == "returns 'ok'" else 7

    caplog.set_level(logging.ERROR, logger="trioiis.module")
    async with (
        running_server(
            ("faulty", register(Faulty, N.BEGIN_REQUEST)), **BARE, transport=transport
        ) as srv,
        srv.client() as client,
    ):
        bad = await client.get("/bad")
        good = await client.get("/good")  # same connection (keep-alive)
        async with srv.client() as other:
            fresh = await other.get("/good")
    assert bad.status_code == 500
    assert "partial output" not in bad.text
    assert (good.status_code, fresh.status_code) == (200, 200)
    errors = [
        r for r in caplog.records if r.name == "trioiis.module" and r.levelno >= logging.ERROR
    ]
    assert len(errors) == 1
    record = errors[0]
    assert "faulty" in record.getMessage()
    assert record.exc_info is not None
    exc = record.exc_info[1]
    if how == "raises":
        assert isinstance(exc, Boom)
    else:
        assert isinstance(exc, TypeError)
    assert caplog.text.count("Traceback") == 1


async def test_instances_only_for_modules_a_request_reaches_and_shared_ones_once(
    transport: TransportName,
) -> None:
    """A factory is asked only by requests that call one of its module's handlers; a
    ``SharedFactory``'s one instance serves every request and is disposed once, at stop."""
    events: list[str] = []

    class Finisher(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.path == "/finish":
                return Status.FINISH_REQUEST
            return Status.CONTINUE

    class Handler(HttpModule):
        async def on_execute_request_handler(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.write(b"handled")
            return Status.CONTINUE

        def dispose(self) -> None:
            events.append("handler disposed")

    class Shared(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            ctx.response.set_header("X-Shared", str(id(self)))
            return Status.CONTINUE

        def dispose(self) -> None:
            events.append("shared disposed")

    made: list[HttpModule] = []

    class HandlerFactory:
        def get_http_module(self, allocator: Any) -> HttpModule:
            made.append(Handler())
            return made[-1]

        def terminate(self) -> None:
            pass

    handler_factory = HandlerFactory()
    shared = Shared()
    async with (
        running_server(
            ("shared", register(Shared, N.BEGIN_REQUEST, factory=trioiis.SharedFactory(shared))),
            ("finisher", register(Finisher, N.BEGIN_REQUEST)),
            ("handler", register(Handler, N.EXECUTE_REQUEST_HANDLER, factory=handler_factory)),
            **BARE,
            **handlers("handler"),
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            finished = [await client.get("/finish") for _ in range(3)]
            handled = [await client.get("/") for _ in range(2)]
    assert [r.status_code for r in finished + handled] == [200] * 5
    assert {r.headers["x-shared"] for r in finished + handled} == {str(id(shared))}
    assert [r.text for r in handled] == ["handled"] * 2
    assert len(made) == 2  # none for the requests that finished at BEGIN_REQUEST
    assert events == ["handler disposed"] * 2 + ["shared disposed"]


async def test_factory_get_http_module_failure_gives_500_and_others_are_disposed(
    transport: TransportName,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A factory that raises is a failing module (DESIGN.md: 500, log, server goes on);
    the instances the other factories made for that request still get ``dispose()``."""
    made: list[str] = []

    class Fine(HttpModule):
        async def on_end_request(self, ctx: HttpContext, provider: Any) -> Status:
            made.append("end")
            return Status.CONTINUE

        def dispose(self) -> None:
            made.append("dispose")

    class Failing:
        def get_http_module(self, allocator: Any) -> HttpModule:
            if made.count("dispose") == 0:
                raise RuntimeError("out of modules")
            return Fine()

        def terminate(self) -> None:
            pass

    caplog.set_level(logging.ERROR, logger="trioiis.module")
    async with (
        running_server(
            ("fine", register(Fine, N.END_REQUEST)),
            ("failing", register(Fine, N.BEGIN_REQUEST, factory=Failing())),
            **BARE,
            transport=transport,
        ) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            assert (await client.get("/")).status_code == 500
            assert (await client.get("/")).status_code == 200
    assert made == ["end", "dispose", "end", "dispose", "dispose"]
    messages = [r.getMessage() for r in caplog.records if r.name == "trioiis.module"]
    assert len(messages) == 1
    assert "failing" in messages[0]


async def test_global_stop_listening_is_raised_once_when_shutdown_starts(
    transport: TransportName,
) -> None:
    calls: list[str] = []

    class Watcher(trioiis.GlobalModule):
        async def on_global_stop_listening(self, provider: trioiis.GlobalProvider) -> None:
            assert provider.get_http_context() is None
            calls.append("stop_listening")

        def terminate(self) -> None:
            calls.append("terminate")

    def register_global(version: int, info: ModuleRegistrationInfo, server: Any) -> None:
        info.set_global_notifications(Watcher(), trioiis.GlobalNotification.STOP_LISTENING)

    async with running_server(("watcher", register_global), **BARE, transport=transport):
        assert calls == []
    assert calls == ["stop_listening", "terminate"]


async def test_a_condition_decides_whether_a_handler_is_called_at_all(
    transport: TransportName, caplog: pytest.LogCaptureFixture
) -> None:
    """``set_request_notification_condition``: where the condition is false the handler is
    not called and no instance is made (the request goes on as after CONTINUE); where it is
    true the handler runs as usual; a condition that raises fails the request (500, logged,
    counted), as the handler raising would. Post-notifications are always called."""
    made: list[str] = []
    calls: list[tuple[str, str]] = []

    class Tagger(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            calls.append((ctx.request.path, "begin"))
            ctx.response.set_header("X-Tagged", "yes")
            return Status.CONTINUE

        async def on_post_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            calls.append((ctx.request.path, "post begin"))
            return Status.CONTINUE

        async def on_send_response(self, ctx: HttpContext, provider: Any) -> Status:
            calls.append((ctx.request.path, "send"))
            return Status.CONTINUE

    class Factory:
        def get_http_module(self, allocator: Any) -> HttpModule:
            made.append("instance")
            return Tagger()

        def terminate(self) -> None:
            pass

    def wanted(ctx: HttpContext) -> bool:
        if ctx.request.path == "/raise" and ctx.response.status != 500:  # (once)
            raise RuntimeError("condition broke")
        return ctx.request.path == "/yes"

    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_request_notifications(
            Factory(), N.BEGIN_REQUEST | N.SEND_RESPONSE, N.BEGIN_REQUEST
        )
        info.set_request_notification_condition(N.BEGIN_REQUEST | N.SEND_RESPONSE, wanted)

    async with (
        running_server(("tagger", register_module), **BARE, transport=transport) as srv,
        srv.client() as client,
    ):
        with trio.fail_after(TIMEOUT):
            no = await client.get("/no")
            made_for_no = list(made)
            yes = await client.get("/yes")
            broken = await client.get("/raise")
        counters = srv.server.counters
    assert made_for_no == ["instance"]  # for the post-notification only
    assert "x-tagged" not in no.headers
    assert no.status_code == 200
    assert ("/no", "begin") not in calls
    assert ("/no", "send") not in calls
    assert ("/no", "post begin") in calls
    assert yes.headers["x-tagged"] == "yes"
    assert [c for c in calls if c[0] == "/yes"] == [
        ("/yes", "begin"),
        ("/yes", "post begin"),
        ("/yes", "send"),
    ]
    assert broken.status_code == 500
    assert ("/raise", "begin") not in calls
    assert counters.module_exceptions["tagger"] == 1
    assert "condition broke" in caplog.text


def test_a_condition_must_be_callable() -> None:
    info = ModuleRegistrationInfo("m")
    with pytest.raises(HResultError) as raised:
        info.set_request_notification_condition(N.BEGIN_REQUEST, "yes")  # type: ignore[arg-type]
    assert raised.value.hresult == ERROR_INVALID_PARAMETER
