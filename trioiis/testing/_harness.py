"""``check_cancellation_safety``: cancel a module at every checkpoint, three ways, and check
that nothing leaks.

Theory of operation
-------------------
1. The request is served in memory: ``HttpServer.handle_stream`` on one end of
   ``trio.testing.memory_stream_pair``, a tiny h11 client on the other. Everything runs in
   one fresh ``trio.run`` per attempt, so nothing can leak from one attempt into the next.
2. A ``trio.abc.Instrument`` counts the *steps* of the request's tasks: the connection task
   while it runs the request, and every task started under it (module tasks, children), but
   not the connection's reader. Each step ends at a checkpoint, so the first, clean run tells
   how many checkpoints the request reaches: N.
3. Each attempt k = 1..N and mode (client disconnect, ``cancel_io()``, server shutdown) replays
   the request; when step k ends, the injection runs (through ``run_sync_soon``, so it lands
   while the request is parked at that checkpoint or just after it). The stack of the request
   task at that moment is kept for the report.
   A *schedule* (``Injection`` list) replays the request once with several injections, each
   at its own step; a step past the request's last wraps around.
4. Every module instance and every task the request spawns is watched (``_cancelled``): a
   handler or task that swallows a ``trio.Cancelled`` it had to let through is recorded.
5. After each attempt, with nothing of the harness left but its main task: no task, thread
   or file descriptor appeared since just before the request (``_leaks``), no
   ``ResourceWarning`` said a file or socket was closed only by the garbage collector, no
   pending-I/O scope is registered, every module instance got ``dispose()`` exactly once,
   every module context was cleaned up, LOG_REQUEST ran, and the client saw one complete
   well-formed response or a closed connection; then the author's invariants run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import inspect
import tempfile
import warnings
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import trio
import trio.testing

from .._constants import Notification, Priority
from .._context.context import HttpContext
from .._pipeline.registration import (
    GlobalServer,
    HttpModule,
    ModuleAllocator,
    ModuleFactory,
    ModuleRegistrationInfo,
    RegisterModule,
)
from .._server.server import HttpServer
from ..config import ServerConfig
from ._cancelled import CancelWatch
from ._client import complete_response, method_of
from ._leaks import Resources
from ._patches import InstancePatches
from ._where import where_task_is

Mode = Literal["disconnect", "cancel_io", "shutdown"]
MODES: tuple[Mode, ...] = ("disconnect", "cancel_io", "shutdown")
Invariant = Callable[[], object | Awaitable[object]]


class CancellationSafetyError(AssertionError):
    """A module was not cancellation-safe: the message says where, how, and what leaked."""


@dataclass(frozen=True, slots=True)
class Injection:
    """Cancel the request by ``mode`` right after its checkpoint number ``checkpoint``
    (from 1; past the request's last checkpoint N it wraps around: ``(checkpoint - 1) % N +
    1``)."""

    mode: Mode
    checkpoint: int

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.checkpoint < 1:
            raise ValueError(f"checkpoint counts from 1, not {self.checkpoint}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What one attempt observed (``check_cancellation_safety`` returns the clean run's)."""

    checkpoints: int
    status: int | None
    body: bytes
    complete: bool
    problems: tuple[str, ...] = ()


@dataclass(slots=True)
class _Tally:
    """Per-attempt bookkeeping the probe module and the counting factories fill in."""

    contexts: list[HttpContext] = field(default_factory=list)
    logged: set[int] = field(default_factory=set)
    # id of each module instance -> [times handed out, times disposed]
    instances: dict[int, list[int]] = field(default_factory=dict)
    patches: InstancePatches = field(default_factory=InstancePatches)
    watch: CancelWatch = field(init=False)

    def __post_init__(self) -> None:
        self.watch = CancelWatch(self.patches)


class _Probe(HttpModule):
    """Records every context (root and children) and that LOG_REQUEST ran for it."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> None:
        self.tally.contexts.append(ctx)

    async def on_log_request(self, ctx: HttpContext, provider: Any) -> None:
        self.tally.logged.add(id(ctx))


class _ProbeFactory:
    def __init__(self, tally: _Tally) -> None:
        self.tally = tally

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule:
        return _Probe(self.tally)

    def terminate(self) -> None:
        pass


class _CountingFactory:
    """Wraps the module's factory to check ``dispose()`` is called once per instance, and to
    watch every instance's handlers for a swallowed ``Cancelled``."""

    def __init__(self, inner: ModuleFactory, tally: _Tally, name: str) -> None:
        self.inner = inner
        self.tally = tally
        self.name = name

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule:
        module = self.inner.get_http_module(allocator)
        tally = self.tally
        tally.watch.watch_module(self.name, module)
        record = tally.instances.get(id(module))
        if record is not None:  # one instance handed out again: one more dispose() due
            record[0] += 1
            return module
        record = [1, 0]
        dispose = module.dispose

        def counted_dispose() -> None:
            record[1] += 1
            dispose()

        if tally.patches.set(module, "dispose", counted_dispose):  # (not on __slots__)
            tally.instances[id(module)] = record
        return module

    def terminate(self) -> None:
        self.inner.terminate()


class _StepCounter(trio.abc.Instrument):
    """Rule 2: counts steps of the request's tasks; fires the injection after step k."""

    def __init__(
        self,
        root: trio.lowlevel.Task,
        tally: _Tally,
        fire_at: dict[int, list[Mode]],
        fire: Callable[[Mode], None],
    ) -> None:
        self.root = root
        self.tally = tally
        self.fire_at = fire_at
        self.fire = fire
        self.steps = 0
        self.stack: list[str] = []  # per injection: what it was and where the request was

    def _ours(self, task: trio.lowlevel.Task) -> bool:
        current: trio.lowlevel.Task | None = task
        while current is not None:
            if current is self.root:
                return True
            nursery = current.parent_nursery
            current = nursery.parent_task if nursery is not None else None
        return False

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        if self._ours(task):
            self.tally.watch.watch_task(task)

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        # Only while the request runs (from its first BEGIN_REQUEST handler to its end), and
        # not the connection's reader (the root task: it serves the connection, not the
        # request).
        contexts = self.tally.contexts
        if not contexts or contexts[0].lifecycle.ended or task is self.root:
            return
        if not self._ours(task):
            return
        self.steps += 1
        for mode in self.fire_at.get(self.steps, ()):
            self.stack.append(
                f"cancelled by {mode} at checkpoint {self.steps}; the request was in:\n"
                + "".join(_stack_of(self.root))
            )
            trio.lowlevel.current_trio_token().run_sync_soon(self.fire, mode)


def _stack_of(task: trio.lowlevel.Task) -> list[str]:
    """Where the request's tasks are parked, as traceback lines (Trio's internals left out)."""
    lines: list[str] = []
    tasks = [task]
    while tasks:
        current = tasks.pop(0)
        tasks.extend(t for n in current.child_nurseries for t in n.child_tasks)
        if current is task:
            continue  # the connection's reader
        lines.append(f"  task {current.name}:\n" + where_task_is(current))
    return lines


def _probe_register(tally: _Tally) -> RegisterModule:
    def register(server_version: int, info: ModuleRegistrationInfo, server: GlobalServer) -> None:
        info.set_request_notifications(
            _ProbeFactory(tally), Notification.BEGIN_REQUEST | Notification.LOG_REQUEST
        )
        info.set_priority_for_request_notification(Notification.BEGIN_REQUEST, Priority.FIRST)

    return register


async def _attempt(
    modules: Sequence[tuple[str, RegisterModule]],
    request: bytes,
    root: Path,
    config: dict[str, Any],
    *,
    fire_at: dict[int, list[Mode]],
) -> tuple[Outcome, list[str]]:
    tally = _Tally()
    server = HttpServer(ServerConfig(root=root, bindings=("127.0.0.1:0",), **config))
    server.register_module("_trioiis_probe", _probe_register(tally))
    for name, register in modules:
        info = server.register_module(name, register)
        if info.factory is not None:
            info.factory = _CountingFactory(info.factory, tally, name)
    client, served = trio.testing.memory_stream_pair()
    scope = trio.CancelScope()
    problems: list[str] = []
    connection_closed = trio.Event()

    def fire(mode: Mode) -> None:
        if mode == "disconnect":
            client.send_stream.close()  # the client is gone: EOF, then nothing reads
            client.receive_stream.close()
        elif mode == "cancel_io":
            for ctx in tally.contexts[:1]:
                with contextlib.suppress(Exception):  # the request may have ended already
                    ctx.cancel_io()
        else:
            scope.cancel()  # as a shutdown whose grace ran out

    async def serve(task_status: trio.TaskStatus[trio.lowlevel.Task]) -> None:
        task_status.started(trio.lowlevel.current_task())
        try:
            with scope:
                await server.handle_stream(served)
        finally:
            connection_closed.set()

    raw = bytearray()
    closed = False
    method = method_of(request)
    try:
        async with trio.open_nursery() as nursery:
            serving_task = await nursery.start(serve)
            before = Resources.now()
            counter = _StepCounter(serving_task, tally, fire_at, fire)
            trio.lowlevel.add_instrument(counter)
            try:
                await client.send_all(request)
                with trio.move_on_after(10):
                    while True:
                        data = await client.receive_some(65536)
                        if not data:
                            closed = True
                            break
                        raw += data
                        if complete_response(bytes(raw), method) is not None:
                            break
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                closed = True  # the connection went away (or the injection closed it)
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await client.aclose()
            with trio.move_on_after(10) as waited:
                await _wait_request_over(tally)
                await connection_closed.wait()
            trio.lowlevel.remove_instrument(counter)
            if waited.cancelled_caught:
                problems.append("the request did not end within 10 s of the client leaving")
            else:
                # Let whatever can still run (abandoned async generators' finalizers) run, so
                # what is left is what stays.
                with trio.move_on_after(1):
                    await trio.testing.wait_all_tasks_blocked()
                problems += await before.leaked_since()
            nursery.cancel_scope.cancel()
    finally:
        server.pipeline.terminate()
        tally.patches.undo()  # (shared module instances end the attempt as they began)
    parsed = complete_response(bytes(raw), method)
    if parsed is None and not closed:
        problems.append("the client got neither a complete response nor a closed connection")
    problems += tally.watch.swallowed
    problems += _leaks(tally)
    outcome = Outcome(
        checkpoints=counter.steps,
        status=parsed[0] if parsed else None,
        body=parsed[1] if parsed else b"",
        complete=parsed is not None,
        problems=tuple(problems),
    )
    return outcome, counter.stack


def _run_attempt(
    attempt: Callable[[], Awaitable[tuple[Outcome, list[str]]]],
) -> tuple[Outcome, list[str]]:
    """One attempt in its own ``trio.run``; a ``ResourceWarning`` raised meanwhile (a file or
    socket the garbage collector had to close) is a problem of this attempt. The young
    generations are collected at the end so that what the attempt dropped in a reference
    cycle is finalized now, not in a later attempt."""
    gc.collect(1)  # what earlier code dropped is finalized before, not blamed on this attempt
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        outcome, where = trio.run(attempt)
        gc.collect(1)
    unclosed = [
        f"closed only by the garbage collector: {w.message}"
        for w in caught
        if issubclass(w.category, ResourceWarning)
    ]
    for w in caught:
        if not issubclass(w.category, ResourceWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
    return dataclasses.replace(outcome, problems=outcome.problems + tuple(unclosed)), where


async def _wait_request_over(tally: _Tally) -> None:
    while any(not ctx.lifecycle.ended for ctx in tally.contexts):
        await trio.testing.wait_all_tasks_blocked()
        await trio.lowlevel.checkpoint()


def _leaks(tally: _Tally) -> list[str]:
    problems = []
    for ctx in tally.contexts:
        label = f"{ctx.request.method} {ctx.request.url} (depth {ctx.depth})"
        if not ctx.lifecycle.ended:
            problems.append(f"{label}: the request never ended")
            continue
        if ctx.pending_io_count:
            problems.append(f"{label}: {ctx.pending_io_count} pending-I/O scope(s) left")
        if ctx._task_scopes:
            problems.append(f"{label}: {len(ctx._task_scopes)} task(s) still registered")
        if ctx._module_context is not None and ctx._module_context._items:
            problems.append(f"{label}: module context not cleaned up")
        if id(ctx) not in tally.logged:
            problems.append(f"{label}: LOG_REQUEST did not run")
    for i, (created, disposed) in enumerate(tally.instances.values()):
        if disposed != created:
            problems.append(
                f"module instance #{i + 1}: dispose() called {disposed} times "
                f"for {created} request(s)"
            )
    return problems


def _raw_request(request: bytes | str) -> bytes:
    data = request.encode("latin-1") if isinstance(request, str) else request
    if b"\r\n\r\n" not in data:
        raise ValueError("request must be a complete HTTP/1.1 request (head ends with CRLF CRLF)")
    return data


async def _run_invariants(invariants: Iterable[Invariant]) -> list[str]:
    problems = []
    for check in invariants:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except Exception as exc:
            problems.append(f"invariant {getattr(check, '__name__', check)!r} raised {exc!r}")
            continue
        if result is False:
            problems.append(f"invariant {getattr(check, '__name__', check)!r} is false")
    return problems


def check_cancellation_safety(
    module: tuple[str, RegisterModule] | Sequence[tuple[str, RegisterModule]],
    request: bytes | str,
    *,
    root: Path | str | None = None,
    invariants: Iterable[Invariant] = (),
    modes: Sequence[Mode] = MODES,
    schedule: Sequence[Injection | tuple[Mode, int]] | None = None,
    config: dict[str, Any] | None = None,
    max_checkpoints: int = 500,
) -> Outcome:
    """Prove ``module`` is cancellation-safe for ``request``; raise with a report if not.

    Serves ``request`` once to count the checkpoints N the request reaches, then again for
    every k in 1..N and every mode in ``modes`` (``"disconnect"``: the client goes away;
    ``"cancel_io"``: ``ctx.cancel_io()`` on the request; ``"shutdown"``: the server cancels the
    connection, as when shutdown's grace runs out), cancelling after checkpoint k. Given a
    ``schedule`` instead, it serves the request once more with every injection of the
    schedule (several cancellations of one request), which is what
    ``strategies.cancel_schedules()`` draws for ``@given``.

    After every attempt it checks that no handler swallowed a ``trio.Cancelled``; that no
    task (system tasks included), no busy thread and no file descriptor appeared since the
    request began, and no file or socket was left for the garbage collector to close; that
    nothing of the request is registered (pending I/O), every module instance got
    ``dispose()`` once, module contexts were cleaned up, LOG_REQUEST ran, the client saw a
    complete well-formed response or a closed connection; and that every one of
    ``invariants`` (callables, sync or async, returning anything but False) holds.

    Synchronous: call it from a plain test function (it runs its own ``trio.run`` per
    attempt), not from inside a running Trio loop.

    Args:
        module: ``(name, register_module)``, or a list of them loaded in order.
        request: one raw HTTP/1.1 request (bytes, or str encoded as Latin-1).
        root: the site folder (default: an empty temporary folder).
        invariants: the author's own checks, run after every attempt.
        modes: which injections to try (ignored when ``schedule`` is given).
        schedule: ``Injection`` objects (or ``(mode, checkpoint)`` pairs) to apply together in one
            attempt, instead of trying every checkpoint and mode one at a time.
        config: extra ``ServerConfig`` fields.
        max_checkpoints: refuse to try more than this many checkpoints.

    Returns:
        The clean run's outcome (status, body, checkpoints counted).

    Raises:
        CancellationSafetyError: with the checkpoint, the mode, the problems found and where
            the request's tasks were parked when the cancellation hit.
    """
    modules = [module] if isinstance(module, tuple) else list(module)
    data = _raw_request(request)
    checks = list(invariants)
    injections = None if schedule is None else [_injection(item) for item in schedule]
    gc.collect()  # (older garbage too, once: see _run_attempt)
    with contextlib.ExitStack() as stack:
        folder = (
            Path(root)
            if root is not None
            else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        )
        settings = dict(config or {})

        def run(fire_at: dict[int, list[Mode]]) -> tuple[Outcome, list[str]]:
            async def attempt() -> tuple[Outcome, list[str]]:
                outcome, where = await _attempt(modules, data, folder, settings, fire_at=fire_at)
                extra = await _run_invariants(checks)
                return dataclasses.replace(outcome, problems=outcome.problems + tuple(extra)), where

            return _run_attempt(attempt)

        clean, _ = run({})
        if clean.problems:
            raise CancellationSafetyError(
                "the request is not clean even without cancellation:\n  "
                + "\n  ".join(clean.problems)
            )
        if clean.checkpoints > max_checkpoints:
            raise CancellationSafetyError(
                f"{clean.checkpoints} checkpoints is more than max_checkpoints={max_checkpoints}"
            )
        if clean.checkpoints == 0:
            return clean
        if injections is None:
            plans = [{k: [mode]} for k in range(1, clean.checkpoints + 1) for mode in modes]
        else:
            plan: dict[int, list[Mode]] = {}
            for injection in injections:
                k = (injection.checkpoint - 1) % clean.checkpoints + 1
                plan.setdefault(k, []).append(injection.mode)
            plans = [plan]
        for fire_at in plans:
            outcome, where = run(fire_at)
            if outcome.problems:
                what = ", then ".join(
                    f"{mode} at checkpoint {k}" for k in sorted(fire_at) for mode in fire_at[k]
                )
                raise CancellationSafetyError(
                    f"not cancellation-safe: cancelled by {what} of {clean.checkpoints}"
                    "\nproblems:\n  "
                    + "\n  ".join(outcome.problems)
                    + "\nwhere the request was when the cancellation hit:\n"
                    + "".join(where)
                )
        return clean


def _injection(item: Injection | tuple[Mode, int]) -> Injection:
    return item if isinstance(item, Injection) else Injection(*item)
