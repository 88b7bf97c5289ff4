"""Each check of ``check_cancellation_safety`` that needs no invariant from the author, with
an unsafe module it must catch and a safe twin it must pass: a swallowed ``trio.Cancelled``,
a leaked file descriptor (file, pipe, socket), a task that outlives the request (system
tasks too), a thread still running after it."""

from __future__ import annotations

import functools
import importlib
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
from hypothesis import find, given, settings

import trioiis
from examples.modules import compose, upload_safe, upload_unsafe
from trioiis import HttpContext, HttpModule, Notification, Status
from trioiis.testing import CancellationSafetyError, Injection, check_cancellation_safety
from trioiis.testing._client import complete_response
from trioiis.testing._harness import _leaks, _Tally
from trioiis.testing.strategies import cancel_schedules

GET = b"GET /work HTTP/1.1\r\nHost: x\r\n\r\n"
SITE = Path(__file__).resolve().parent.parent / "examples" / "site"
UPLOAD = b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\n\r\nhello world!"
COMMITTED: list[str] = []  # what the "charge" modules committed


def registered(kind: type[HttpModule]) -> tuple[str, Callable[..., None]]:
    def register(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.set_request_notifications(trioiis.SimpleFactory(kind), Notification.BEGIN_REQUEST)

    return kind.__name__, register


def caught(kind: type[HttpModule], **options: Any) -> str:
    with pytest.raises(CancellationSafetyError) as info:
        check_cancellation_safety(registered(kind), GET, **options)
    report = str(info.value)
    # Every report names the checkpoint, the mode and where the request was parked.
    assert "not cancellation-safe: cancelled by " in report
    assert " at checkpoint " in report
    assert "where the request was when the cancellation hit:" in report
    assert __file__.rsplit(os.sep, 1)[-1] in report
    return report


def passes(kind: type[HttpModule]) -> None:
    outcome = check_cancellation_safety(registered(kind), GET)
    assert outcome.status == 200
    assert outcome.checkpoints >= 3


async def answer(ctx: HttpContext) -> Status:
    ctx.response.set_status(200)
    ctx.response.write("done\n")
    return Status.FINISH_REQUEST


# -- a swallowed trio.Cancelled -------------------------------------------------------------


class ChargesAnyway(HttpModule):
    """Catches the cancellation and commits anyway: answers as if nothing happened."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        try:
            for _ in range(3):
                await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            COMMITTED.append("charged a client who left")
        return await answer(ctx)


class RaisesInstead(HttpModule):
    """Turns the cancellation into an error of its own."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        try:
            for _ in range(3):
                await trio.lowlevel.checkpoint()
        except BaseException as exc:
            raise RuntimeError("payment aborted") from exc
        return await answer(ctx)


class RollsBackAndReraises(HttpModule):
    """The safe twin: its own timeouts fire and are absorbed by its own scopes (those are not
    a swallowed cancellation), it catches Cancelled to roll back, shielded, and re-raises."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        with trio.move_on_after(0):  # expires at once: a Cancelled of its own scope
            await trio.lowlevel.checkpoint()
        try:
            with trio.fail_after(0):
                await trio.lowlevel.checkpoint()
        except trio.TooSlowError:
            pass
        try:
            for _ in range(3):
                await trio.lowlevel.checkpoint()
        except trio.Cancelled:
            with trio.CancelScope(shield=True):
                await trio.lowlevel.checkpoint()  # the rollback
            raise
        return await answer(ctx)


@pytest.mark.parametrize(
    ("kind", "ending"),
    [(ChargesAnyway, "returned <Status.FINISH_REQUEST"), (RaisesInstead, "raised RuntimeError")],
)
def test_swallowed_cancelled_is_caught(kind: type[HttpModule], ending: str) -> None:
    report = caught(kind)
    assert f"module {kind.__name__!r}: on_begin_request swallowed trio.Cancelled" in report
    assert ending in report
    assert "await trio.lowlevel.checkpoint()" in report  # where it was delivered


def test_cancelled_let_through_and_own_timeouts_pass() -> None:
    passes(RollsBackAndReraises)


def test_cancel_io_turned_into_an_answer_is_not_a_swallowed_cancelled() -> None:
    """``cancel_io()`` cancels a scope inside the handler; the server turns it into
    ``OperationAbortedError``, which the safe upload module answers (400)."""
    upload_safe.IN_PROGRESS = 0
    outcome = check_cancellation_safety(
        ("upload", upload_safe.register_module), UPLOAD, modes=("cancel_io",)
    )
    assert outcome.status == 201


# -- file descriptors -----------------------------------------------------------------------


class LeaksOsOpen(HttpModule):
    """``os.open`` closed only on the happy path: nothing will ever close it."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        fd = os.open(__file__, os.O_RDONLY)
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        os.close(fd)
        return await answer(ctx)


class LeaksPipe(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        read, write = os.pipe()
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        os.close(read)
        os.close(write)
        return await answer(ctx)


class LeaksSocket(HttpModule):
    """A socket object closed only on the happy path: the garbage collector closes it."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        one, two = socket.socketpair()
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        one.close()
        two.close()
        return await answer(ctx)


class ClosesEverything(HttpModule):
    """The safe twin: the same descriptors, closed in ``finally``/``with``."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        fd = os.open(__file__, os.O_RDONLY)
        read, write = os.pipe()
        try:
            pair = socket.socketpair()
            with pair[0] as one, pair[1] as two:
                await trio.lowlevel.checkpoint()
                one.send(os.pread(fd, 10, 0))
                two.recv(10)
                await trio.lowlevel.checkpoint()
        finally:
            os.close(fd)
            os.close(read)
            os.close(write)
        return await answer(ctx)


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # LeaksSocket's, collected later
@pytest.mark.parametrize(
    ("kind", "problem"),
    [
        (LeaksOsOpen, "opened during the request is open"),
        (LeaksPipe, "(pipe:["),
        (LeaksSocket, "closed only by the garbage collector: unclosed <socket.socket"),
    ],
)
def test_leaked_file_descriptors_are_caught(kind: type[HttpModule], problem: str) -> None:
    report = caught(kind)
    assert problem in report


def test_descriptors_closed_on_every_path_pass() -> None:
    passes(ClosesEverything)


# -- tasks ----------------------------------------------------------------------------------


async def work(done: trio.Event) -> None:
    await trio.lowlevel.checkpoint()
    await trio.sleep(0.05)  # a slow back end: the request waits for it
    done.set()


class HandsWorkToASystemTask(HttpModule):
    """``spawn_system_task`` puts the work outside the request: cancelled, the request stops
    waiting for it, and it goes on."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        done = trio.Event()
        trio.lowlevel.spawn_system_task(work, done, name="charge card")
        await done.wait()
        return await answer(ctx)


class StartsAndJoinsOnItsNursery(HttpModule):
    """The safe twin: the same work on ``ctx.nursery``, so it ends with the request."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        done = trio.Event()
        ctx.nursery.start_soon(work, done, name="charge card")
        await done.wait()
        async with trio.open_nursery() as nursery:  # and a nursery of its own, joined
            nursery.start_soon(trio.lowlevel.checkpoint)
        return await answer(ctx)


def test_a_system_task_outliving_the_request_is_caught() -> None:
    report = caught(HandsWorkToASystemTask)
    assert "system task 'charge card' started during the request outlived it" in report
    assert "await trio.sleep(0.05)" in report  # where the leaked task waits


def test_tasks_on_the_request_nursery_pass() -> None:
    passes(StartsAndJoinsOnItsNursery)


# -- threads --------------------------------------------------------------------------------

JOBS: list[threading.Event] = []


def job(go: threading.Event) -> None:
    go.wait()  # until the module lets it finish (or the test ends)


class LeavesAThreadRunning(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        go = threading.Event()
        JOBS.append(go)
        thread = threading.Thread(target=job, args=(go,), name="report writer")
        thread.start()
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
        go.set()  # only on the happy path
        await trio.to_thread.run_sync(thread.join)
        return await answer(ctx)


class StopsAndJoinsItsThread(HttpModule):
    """The safe twin: the thread is told to stop and joined in a shielded ``finally``."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        go = threading.Event()
        JOBS.append(go)
        thread = threading.Thread(target=job, args=(go,), name="report writer")
        thread.start()
        try:
            await trio.lowlevel.checkpoint()
            await trio.lowlevel.checkpoint()
        finally:
            go.set()
            with trio.move_on_after(5, shield=True):
                await trio.to_thread.run_sync(thread.join)
        return await answer(ctx)


@pytest.fixture
def release_jobs() -> Any:
    yield
    for go in JOBS:
        go.set()
    JOBS.clear()


@pytest.mark.usefixtures("release_jobs")
def test_a_thread_still_running_after_the_request_is_caught() -> None:
    report = caught(LeavesAThreadRunning)
    assert "thread 'report writer' started during the request is still running" in report


@pytest.mark.usefixtures("release_jobs")
def test_a_thread_stopped_and_joined_passes() -> None:
    passes(StopsAndJoinsItsThread)


# -- all of it at once, and the shipped examples --------------------------------------------


class CarefulModule(HttpModule):
    """Opens and closes descriptors, starts and joins tasks on ``ctx.nursery``, runs a
    thread, and shields its cleanup: everything the checks look at, done right."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        path = trio.Path(ctx.site.root) / "scratch"
        file = await trio.open_file(path, "w")
        try:
            results: list[int] = []

            async def part(n: int) -> None:
                await trio.lowlevel.checkpoint()
                results.append(await trio.to_thread.run_sync(abs, -n))

            async with trio.open_nursery() as nursery:
                for n in range(3):
                    nursery.start_soon(part, n)
            ctx.nursery.start_soon(trio.lowlevel.checkpoint)
            await file.write(str(sum(results)))
        finally:
            with trio.move_on_after(5, shield=True):
                await file.aclose()
                await path.unlink(missing_ok=True)
        return await answer(ctx)


def test_a_careful_module_passes_every_check() -> None:
    passes(CarefulModule)


def test_shipped_upload_examples(tmp_path: Path) -> None:
    """upload_safe passes with no invariant; upload_unsafe is caught without any either: its
    file is left for the garbage collector to close."""
    upload_safe.IN_PROGRESS = 0
    outcome = check_cancellation_safety(("upload", upload_safe.register_module), UPLOAD)
    assert outcome.status == 201
    with pytest.raises(CancellationSafetyError, match="closed only by the garbage collector"):
        check_cancellation_safety(("upload", upload_unsafe.register_module), UPLOAD)


# -- schedules ------------------------------------------------------------------------------


@settings(max_examples=20, deadline=None)
@given(schedule=cancel_schedules(max_checkpoint=40))
def test_safe_upload_passes_any_cancel_schedule(schedule: list[Injection]) -> None:
    upload_safe.IN_PROGRESS = 0
    outcome = check_cancellation_safety(
        ("upload", upload_safe.register_module), UPLOAD, schedule=schedule
    )
    assert outcome.status == 201
    assert upload_safe.IN_PROGRESS == 0


def test_a_schedule_that_catches_a_swallowed_cancelled_is_found() -> None:
    def catches(schedule: list[Injection]) -> bool:
        try:
            check_cancellation_safety(registered(ChargesAnyway), GET, schedule=schedule)
        except CancellationSafetyError:
            return True
        return False

    schedule = find(cancel_schedules(max_checkpoint=20), catches, settings=settings(deadline=None))
    assert any(injection.mode in ("disconnect", "shutdown") for injection in schedule)


def test_a_schedule_applies_several_injections_to_one_request() -> None:
    with pytest.raises(CancellationSafetyError) as info:
        check_cancellation_safety(
            registered(ChargesAnyway),
            GET,
            schedule=[("cancel_io", 1), Injection("shutdown", 2)],
        )
    assert "cancelled by cancel_io at checkpoint 1, then shutdown at checkpoint 2" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("module", "target", "status"),
    [
        ("compose", "/compose", 200),  # two child requests
        ("execute_request_sample", "/", 404),  # a pending MAP_PATH and a child request
        ("cancel_io_sample", "/notes.txt", 200),
        ("hello", "/hello", 200),
    ],
)
def test_shipped_example_modules_pass(module: str, target: str, status: int) -> None:
    register = importlib.import_module(f"examples.modules.{module}").register_module
    outcome = check_cancellation_safety(
        (module, register), f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n", root=SITE
    )
    assert outcome.status == status


# -- the server's own bookkeeping -----------------------------------------------------------


def test_server_side_checks_report_what_they_find() -> None:
    """Pending I/O, tasks registered, module contexts, LOG_REQUEST and dispose() are the
    server's to get right (no module can break them): the checks, fed a request that got
    each wrong, name it."""
    ctx = SimpleNamespace(
        request=SimpleNamespace(method="GET", url="/x"),
        depth=0,
        lifecycle=SimpleNamespace(ended=True),
        pending_io_count=1,
        _task_scopes=[object()],
        _module_context=SimpleNamespace(_items={"k": 1}),  # (made when first asked for)
    )
    tally = _Tally(contexts=[ctx], instances={1: [1, 0]})
    assert _leaks(tally) == [
        "GET /x (depth 0): 1 pending-I/O scope(s) left",
        "GET /x (depth 0): 1 task(s) still registered",
        "GET /x (depth 0): module context not cleaned up",
        "GET /x (depth 0): LOG_REQUEST did not run",
        "module instance #1: dispose() called 0 times for 1 request(s)",
    ]


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", (200, b"ok")),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok", None),  # cut short
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", None),
        (b"HTTP/1.1 2OO OK\r\n\r\n", None),  # malformed
    ],
)
def test_only_a_complete_well_formed_response_counts(
    raw: bytes, parsed: tuple[int, bytes] | None
) -> None:
    assert complete_response(raw) == parsed


# -- instances that outlive a request -------------------------------------------------------

SHARED = ChargesAnyway()


class SharedFactory:
    """Hands every request the same module instance."""

    def get_http_module(self, allocator: Any) -> HttpModule:
        return SHARED

    def terminate(self) -> None:
        pass


def register_shared(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(SharedFactory(), Notification.BEGIN_REQUEST)


def test_a_shared_instance_is_watched_and_given_back_unchanged() -> None:
    with pytest.raises(CancellationSafetyError, match="on_begin_request swallowed"):
        check_cancellation_safety(("shared", register_shared), GET)
    assert vars(SHARED) == {}  # the kit's wrappers (handlers, dispose) are gone


class SharedSafe(HttpModule):
    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        await trio.lowlevel.checkpoint()
        return await answer(ctx)


def test_a_shared_instance_disposed_once_per_request_passes() -> None:
    """One instance for the request and its two children: three dispose() calls due."""
    shared = SharedSafe()

    class Factory:
        def get_http_module(self, allocator: Any) -> HttpModule:
            return shared

        def terminate(self) -> None:
            pass

    def register(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.set_request_notifications(Factory(), Notification.BEGIN_REQUEST)

    passes_with = check_cancellation_safety(
        [("compose", compose.register_module), ("shared", register)],
        "GET /compose HTTP/1.1\r\nHost: x\r\n\r\n",
        root=SITE,
    )
    assert passes_with.status == 200
    assert vars(shared) == {}


# -- a swallowed trio.Cancelled in a task the module started ---------------------------------


async def charge(done: trio.Event, *, reraise: bool) -> None:
    try:
        await trio.lowlevel.checkpoint()
        await trio.lowlevel.checkpoint()
    except trio.Cancelled:
        COMMITTED.append("charged in the background")
        if reraise:
            raise
    done.set()


class ChargesInATask(HttpModule):
    reraise = False

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        done = trio.Event()
        ctx.nursery.start_soon(functools.partial(charge, done, reraise=self.reraise))
        await done.wait()
        return await answer(ctx)


class RollsBackInATask(ChargesInATask):
    reraise = True


def test_a_task_swallowing_cancelled_is_caught() -> None:
    report = caught(ChargesInATask)
    assert "task 'tests.test_testing_kit_checks.charge' swallowed trio.Cancelled" in report
    assert "returned None instead" in report


def test_a_task_letting_cancelled_through_passes() -> None:
    passes(RollsBackInATask)
