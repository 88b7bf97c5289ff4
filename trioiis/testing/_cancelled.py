"""Catch a module's handler, or a task of its request, swallowing ``trio.Cancelled``.

Trio's one unbreakable rule: a ``Cancelled`` raised at a checkpoint because a scope *outside*
your code was cancelled must leave your code. A handler that catches it and then returns (a
"commit anyway") or raises something else keeps working for a request that is already gone.

Theory of operation
-------------------
1. ``watch_module`` replaces, on one module instance, every ``on_*`` coroutine method its
   class overrides with a wrapper that runs the handler's coroutine through ``_relay``.
2. ``_relay`` passes every value between Trio and the handler's coroutine unchanged, so the
   handler runs exactly as before. Trio resumes a task parked at a checkpoint by sending it
   an ``outcome``; an ``outcome.Error`` holding ``Cancelled`` is a cancellation delivered
   into the handler (at whatever depth it was awaiting).
3. Such a delivery *must escape the handler* when, at that moment, the cancel status the
   handler was called in is cancelled and visible from where the handler waits (no shield
   in between): then Trio's own cancel scopes inside the handler will not catch it (a scope
   only catches a ``Cancelled`` its parent cannot see), so only the handler's code can stop
   it. A delivery from the handler's own ``move_on_after``, or from ``cancel_io()``'s scope
   (turned into ``OperationAbortedError`` by the server), need not escape and is ignored.
4. When the handler then ends without raising ``Cancelled`` (alone or in an exception
   group), the watch records where the ``Cancelled`` was delivered and how the handler ended.
5. Tasks the request spawns (``ctx.start_soon``, a nursery of the module's) are watched the
   same way: when Trio reports the spawn (an instrument's ``task_spawned``, before the task
   first runs), the task's coroutine is replaced by one that runs it through rule 2. The
   cancel status a task starts in is its nursery's, so rule 3 holds for it unchanged.

Rule 3 reads Trio's cancel-status tree (``Task._cancel_status``, ``CancelStatus.parent``,
``parent_cancellation_is_visible_to_us``): private names; on a Trio without them this one
check is off (``_must_escape`` answers False) instead of breaking the kit. Rule 5 sets
``Task.coro``, which Trio exposes for reading only; it works because Trio takes
``task.coro.send`` for the first step after ``task_spawned`` returns.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import types
from collections.abc import Callable, Coroutine, Generator
from dataclasses import dataclass, field
from typing import Any

import outcome
import trio

from .._pipeline.registration import HttpModule
from ._patches import InstancePatches
from ._where import await_frames, format_frames


def _status_of(task: trio.lowlevel.Task) -> Any:
    return getattr(task, "_cancel_status", None)


def _must_escape(task: trio.lowlevel.Task, outer: Any) -> bool:
    """Rule 3: a Cancelled delivered now cannot be caught by any scope inside the handler."""
    status = _status_of(task)
    try:
        while status is not outer:
            if status is None or not status.parent_cancellation_is_visible_to_us:
                return False
            status = status.parent
        return bool(outer is not None and outer.effectively_cancelled)
    except AttributeError:  # a Trio without this tree: the check is off
        return False


def _carries_cancelled(exc: BaseException) -> bool:
    if isinstance(exc, trio.Cancelled):
        return True
    if isinstance(exc, BaseExceptionGroup):
        matched, _ = exc.split(trio.Cancelled)
        return matched is not None
    return False


@dataclass(slots=True)
class _Delivery:
    """The first Cancelled that had to escape the handler, and where it was delivered."""

    where: str | None = None


@types.coroutine
def _relay(
    coro: Coroutine[Any, Any, Any], outer: Any, delivery: _Delivery
) -> Generator[Any, Any, Any]:
    """Rule 2: run ``coro`` as ``await coro`` would, noting Cancelled deliveries."""
    task = trio.lowlevel.current_task()
    to_send: Any = None
    to_throw: BaseException | None = None
    while True:
        try:
            if to_throw is not None:
                exc, to_throw = to_throw, None
                yielded = coro.throw(exc)
            else:
                yielded = coro.send(to_send)
        except StopIteration as stop:
            return stop.value
        try:
            to_send = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            to_throw = exc
            continue
        if (
            delivery.where is None
            and isinstance(to_send, outcome.Error)
            and isinstance(to_send.error, trio.Cancelled)
            and _must_escape(task, outer)
        ):
            delivery.where = format_frames(await_frames(coro), last=3)


@dataclass(slots=True)
class CancelWatch:
    """Collects, for one attempt, every handler that swallowed a Cancelled; its wrappers go
    through ``patches`` (undone at the attempt's end)."""

    patches: InstancePatches
    swallowed: list[str] = field(default_factory=list)

    async def _run_watched(self, coro: Coroutine[Any, Any, Any], who: str) -> Any:
        """Await ``coro`` through ``_relay`` (rule 2); record a swallow (rule 4)."""
        outer = _status_of(trio.lowlevel.current_task())
        delivery = _Delivery()
        try:
            result = await _relay(coro, outer, delivery)
        except BaseException as exc:
            if delivery.where is not None and not _carries_cancelled(exc):
                self._record(who, delivery, f"raised {exc!r} instead")
            raise
        if delivery.where is not None:
            self._record(who, delivery, f"returned {result!r} instead")
        return result

    def _wrap(
        self, name: str, method_name: str, method: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        @functools.wraps(method)
        async def watched(*args: Any, **kwargs: Any) -> Any:
            return await self._run_watched(
                method(*args, **kwargs), f"module {name!r}: {method_name}"
            )

        watched.__dict__["_trioiis_watch"] = self
        return watched

    def _record(self, who: str, delivery: _Delivery, ending: str) -> None:
        self.swallowed.append(
            f"{who} swallowed trio.Cancelled (the request was "
            f"cancelled; the Cancelled must propagate) and {ending}; it was delivered in:\n"
            + (delivery.where or "")
        )

    def watch_module(self, name: str, module: HttpModule) -> None:
        """Rule 1: wrap the instance's overridden ``on_*`` coroutine methods (a class with
        ``__slots__`` and no ``__dict__`` cannot be wrapped and is left as it is)."""
        kind = type(module)
        for method_name in dir(kind):
            if not method_name.startswith("on_"):
                continue
            method = getattr(kind, method_name)
            if method is getattr(HttpModule, method_name, None):
                continue
            if not inspect.iscoroutinefunction(method):
                continue
            present = getattr(module, method_name)
            if getattr(present, "_trioiis_watch", None) is self:
                continue  # the same instance again (a child request): watched already
            if not self.patches.set(module, method_name, self._wrap(name, method_name, present)):
                return

    def watch_task(self, task: trio.lowlevel.Task) -> None:
        """Rule 5: run a task the request just spawned through ``_run_watched``, unless its
        code is the server's or Trio's own (theirs are tested by trioiis's suite)."""
        code = getattr(task.coro, "cr_code", None)
        if code is None or code.co_filename.startswith(_NOT_WATCHED):
            return
        with contextlib.suppress(AttributeError, TypeError):  # a Trio whose Task refuses it
            watched = self._run_watched(task.coro, f"task {task.name!r}")
            task.coro = watched  # type: ignore[assignment]  # (a coroutine: mypy sees Coroutine)


_NOT_WATCHED = (
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep,  # trioiis/
    os.path.dirname(os.path.abspath(trio.__file__)) + os.sep,  # trio/
)
