"""The integrated pipeline: registrations compiled into one ordered table, and the walk.

Theory of operation
-------------------
1. **Registration closes at start-up.** ``Pipeline`` takes the ``ModuleRegistrationInfo`` of
   every loaded module, in load order, and compiles, for each (notification, is_post), the
   tuple of module indexes that must run, ordered by priority (FIRST, HIGH, MEDIUM, LOW,
   LAST), ties in load order. SEND_RESPONSE runs in reverse. Post-notifications follow the
   same rule with their own priority (default: the event's). A request only reads the table.
2. **EXECUTE_REQUEST_HANDLER** goes only to the modules of the handler mapping chosen at
   MAP_REQUEST_HANDLER (first mapping whose path pattern and verb match), in the mapping's
   order; its post-notification goes to every subscriber.
3. **Statuses.** CONTINUE goes on; FINISH_REQUEST skips every remaining module and stage up
   to the sending of the response; SEND_RESPONSE, LOG_REQUEST and END_REQUEST (and their
   post-notifications) still run. Once the response is sent there is nothing left to
   skip: every LOG_REQUEST/END_REQUEST subscriber runs, whatever the others return.
   PENDING parks until the context is resumed (context.py rule 5). A non-deterministic
   handler's FINISH_REQUEST stops that notification and ends the request when the current
   deterministic handler returns.
4. **Failures stay in the request.** A handler that raises, or returns something that is not
   a ``Status``, gets the request a 500 (or an aborted connection once headers were sent), a
   log line with the traceback, and the server goes on. The same in every stage: a handler
   that raises in MAP_PATH, READ_ENTITY or a custom notification makes the call that raised
   it (``map_path``, ``read_entity_body``, …) raise ``ModuleFailedError``, so its caller
   stops and the 500 stands.
5. **The tail always runs.** LOG_REQUEST and END_REQUEST run shielded, with a deadline, even
   when the client disconnected or the server is shutting down; then every module instance
   gets ``dispose()`` and stored contexts are cleaned up, exactly once.
6. **Tracing hooks** (``trioiis/_observability/tracing.py``): with a ``tracer``, each request gets a
   ``ctx.trace`` at its start and hands it back at its end, and ``_call`` records each
   handler's start, end and result. Without one, each hook is a single ``is None`` branch.
7. **Instances only where a module is called.** A request asks a module's factory for its
   instance when one of its handlers is first called in that request (never for a module the
   request does not reach), and that instance gets ``dispose()`` once at the request's end.
   A ``SharedFactory``'s one instance serves every request and is disposed once, in
   ``terminate``.
8. **Conditions.** A module registered with ``set_request_notification_condition`` for a
   notification is called for it only where its condition is true; where it is false the
   pipeline goes on as after a CONTINUE, with no instance made and no call traced. A
   condition that raises is the module failing (rule 4).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from .._constants import (
    DETERMINISTIC_STAGES,
    E_FAIL,
    ERROR_OPERATION_ABORTED,
    S_OK,
    GlobalNotification,
    GlobalStatus,
    Notification,
    Priority,
    Status,
)
from .._context.context import _CURRENT, HttpContext, _Current
from .._context.mapping import DEFAULT_MAPPING, HandlerMapping
from .._context.providers import AuthenticationProvider, EventProvider, MapHandlerProvider
from .._context.sending import flush, note_progress, reported_status
from .._errors import (
    CompletionInfo,
    ConfigError,
    ConnectionInvalidError,
    HResultError,
    ModuleFailedError,
    OperationAbortedError,
    RequestBodyError,
    describe_exception,
)
from .._lifecycle import Event, Outcome, RequestState
from .._observability.counters import ServerCounters
from .._observability.tracing import RequestTrace, Tracer
from .registration import (
    ApplicationProvider,
    Condition,
    GlobalProvider,
    HttpModule,
    ModuleAllocator,
    ModuleRegistrationInfo,
    SharedFactory,
    handler_names,
)

if TYPE_CHECKING:
    from .registration import GlobalModule

log = logging.getLogger("trioiis")
module_log = logging.getLogger("trioiis.module")

#: Seconds LOG_REQUEST + END_REQUEST may take after a cancelled request.
TAIL_TIMEOUT = 5.0
_ALLOCATOR = ModuleAllocator()
_MAIN_STAGES = DETERMINISTIC_STAGES[:10]
#: (notification, is_post) -> handler method name, computed once.
_METHOD_NAMES: dict[tuple[Notification, bool], str] = {
    (bit, post): name
    for bit in Notification
    for post, name in zip((False, True), handler_names(bit), strict=True)
    if name is not None
}
_TAIL_STAGES = DETERMINISTIC_STAGES[10:]
#: A module slot whose instance was not made yet (rule 7).
_UNMADE: Any = object()
# Read on every request: module constants (an enum class attribute is looked up through
# ``EnumType.__getattr__``'s slow hook: about ten times a global's cost in Python 3.11).
_ENDED = RequestState.ENDED
_COMPLETED = Outcome.COMPLETED
_FAILED = Outcome.FAILED
_PEER_GONE = Event.PEER_GONE
_TIMED_OUT = Event.TIMED_OUT
_AUTHENTICATE = Notification.AUTHENTICATE_REQUEST
_MAP_HANDLER = Notification.MAP_REQUEST_HANDLER
_EXECUTE = Notification.EXECUTE_REQUEST_HANDLER
_SEND_RESPONSE = Notification.SEND_RESPONSE
_MAP_PATH = Notification.MAP_PATH
_CONTINUE = Status.CONTINUE
_FINISH = Status.FINISH_REQUEST
_PENDING = Status.PENDING


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A mapping with its module names resolved to indexes."""

    mapping: HandlerMapping
    indexes: tuple[int, ...]


class Pipeline:
    """The compiled module table and the request walk. One per server."""

    def __init__(
        self,
        registrations: Sequence[ModuleRegistrationInfo],
        handlers: Sequence[HandlerMapping] = (),
        *,
        counters: ServerCounters | None = None,
        request_timeout: float | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        #: Seconds a (root) request's stages and final send may take; None: no limit.
        self.request_timeout = request_timeout
        self.registrations = tuple(registrations)
        self.counters = counters or ServerCounters()
        #: Failed-request tracing (``trace_dir``); None when off (rule 6).
        self.tracer = tracer
        self._names = [r.name for r in self.registrations]
        self._factories = tuple(r.factory for r in self.registrations)
        #: The one instance of each module whose factory is a ``SharedFactory`` (rule 7).
        self._shared = tuple(
            f.module if isinstance(f, SharedFactory) else None for f in self._factories
        )
        #: The slots whose instance is made per request (the others are shared).
        self._per_request = tuple(i for i, m in enumerate(self._shared) if m is None)
        #: A request's module slots before any is made (rule 7).
        self._unmade: list[Any] = [_UNMADE if m is None else m for m in self._shared]
        self._table: dict[tuple[int, bool], tuple[int, ...]] = {}
        for bit in Notification:
            self._table[(int(bit), False)] = self._order(bit, post=False)
            self._table[(int(bit), True)] = self._order(bit, post=True)
        self._handlers = (
            *tuple(self._compile_mapping(m, strict=True) for m in handlers),
            self._compile_mapping(DEFAULT_MAPPING, strict=False),
        )
        #: Notification bit -> {module index: its condition} (rule 8), pre-notifications only.
        self._conditions: dict[int, dict[int, Condition]] = {}
        for index, reg in enumerate(self.registrations):
            for bit_value, condition in reg.conditions.items():
                self._conditions.setdefault(bit_value, {})[index] = condition
        self._global = self._global_order(GlobalNotification.PRE_BEGIN_REQUEST)
        self._has_tail = any(self._table[(int(s), p)] for s in _TAIL_STAGES for p in (False, True))
        # The main stages with their subscribers, looked up once (the compiled table).
        self._main_plan = tuple(
            (stage, self._table[(int(stage), False)], self._table[(int(stage), True)])
            for stage in _MAIN_STAGES
        )
        self._warned: set[tuple[type, str]] = set()
        #: (module type, index, notification, post) -> (who runs, or None when the type
        #: does not override the method; the method's name), for _call.
        self._slots: dict[tuple[type, int, Notification, bool], tuple[_Current | None, str]] = {}
        self._terminated = False

    # ------------------------------------------------------------ compile (rule 1, 2)

    def _order(self, bit: Notification, *, post: bool) -> tuple[int, ...]:
        chosen = []
        for index, reg in enumerate(self.registrations):
            mask = reg.post_notifications if post else reg.notifications
            if reg.factory is None or not mask & bit:
                continue
            priority = reg.priorities.get(int(bit), Priority.MEDIUM)
            if post:
                priority = reg.post_priorities.get(int(bit), priority)
            chosen.append((priority, index))
        # Higher priority first, ties in load order; SEND_RESPONSE runs the other way round.
        chosen.sort(key=lambda pair: (-pair[0], pair[1]))
        order = tuple(index for _, index in chosen)
        return order[::-1] if bit is Notification.SEND_RESPONSE else order

    def _compile_mapping(self, mapping: HandlerMapping, *, strict: bool) -> _Compiled:
        indexes = []
        subscribed = set(self._table[(int(Notification.EXECUTE_REQUEST_HANDLER), False)])
        for name in mapping.modules:
            if name not in self._names:
                if strict:
                    raise ConfigError(f"handler {mapping.label!r} names unknown module {name!r}")
                continue
            index = self._names.index(name)
            if index in subscribed:
                indexes.append(index)
            elif strict:
                log.warning(
                    "handler mapping %r names module %r, which is not registered for"
                    " EXECUTE_REQUEST_HANDLER; it will not run there",
                    mapping.label,
                    name,
                )
        return _Compiled(mapping, tuple(indexes))

    def order_for(self, notification: Notification, *, post: bool = False) -> list[str]:
        """Module names in the order they get ``notification`` (for docs and diagrams)."""
        return [self._names[i] for i in self._table[(int(notification), post)]]

    def has_handlers(self, notification: Notification) -> bool:
        return bool(self._table[(int(notification), False)])

    def select_handler(self, ctx: HttpContext) -> HandlerMapping:
        """The first mapping (not excluded for this child chain) matching path and verb."""
        path, method = ctx.request.path, ctx.request.method
        for compiled in self._handlers:
            mapping = compiled.mapping
            if mapping in ctx._excluded_handlers:
                continue
            if mapping.matches(path, method):
                return mapping
        return DEFAULT_MAPPING

    def _mapping_named(self, name: str, default: HandlerMapping) -> HandlerMapping:
        for compiled in self._handlers:
            if compiled.mapping.label == name:
                return compiled.mapping
        return default

    def _handler_indexes(self, mapping: HandlerMapping) -> tuple[int, ...]:
        for compiled in self._handlers:
            if compiled.mapping == mapping:
                return compiled.indexes
        return ()

    # ------------------------------------------------------------ the request walk

    def _begin_trace(self, ctx: HttpContext) -> RequestTrace | None:
        """Start ``ctx``'s trace (nested in its parent's for a child) and set ``ctx.trace``."""
        assert self.tracer is not None
        parent = ctx.get_parent_context()
        request = ctx.request
        if parent is None:
            stream_id = getattr(ctx._wire.transport, "stream_id", None)  # HTTP/2
            trace = self.tracer.begin(request.method, request.url, stream_id)
        elif parent.trace is not None:
            trace = parent.trace.child(request.method, request.url, ctx.depth)
        else:
            return None
        ctx.trace = trace
        return trace

    def _end_trace(self, ctx: HttpContext, trace: RequestTrace, outcome: Outcome) -> None:
        """Record ``ctx``'s end in its trace; the client's request goes to the tracer's rule."""
        assert self.tracer is not None
        response = ctx.response
        if ctx.get_parent_context() is not None:
            trace.finish(response.status, response.sub_status, ctx._produced, outcome)
            return
        bytes_sent = ctx._wire.transport.body_bytes_sent
        status = reported_status(ctx, outcome)  # the access log's status
        trace.finish(status, response.sub_status, bytes_sent, outcome)
        self.tracer.end(
            trace,
            outcome,
            ctx.request.remote_address[0],
            peer_gone_at=ctx.lifecycle.when(Event.PEER_GONE),
            time_to_cancel=ctx.stats.time_to_cancel,
        )

    async def run_request(self, ctx: HttpContext) -> CompletionInfo:
        """Run ``ctx`` through the whole pipeline; returns its completion (rule 5).

        Cancellation: as ``serve_request``; the completion of a request whose work was
        cancelled is ERROR_OPERATION_ABORTED.
        """
        outcome = await self.serve_request(ctx)
        if outcome is _COMPLETED:
            return CompletionInfo(ctx._produced, S_OK)
        if outcome is _FAILED:
            return CompletionInfo(ctx._produced, E_FAIL)
        return CompletionInfo(ctx._produced, ERROR_OPERATION_ABORTED)

    async def serve_request(self, ctx: HttpContext) -> Outcome:
        """Run ``ctx`` through the whole pipeline; returns its outcome, final (rule 5). The
        server's call for a client's request, whose completion nobody reads (a child's
        caller reads it: ``run_request``).

        Cancellation: a cancel from outside (shutdown, a released child) stops the stages;
        the tail still runs shielded and the cancel then propagates. ``request_timeout`` and
        a client that leaves cancel the request nursery (its stages, tasks and children);
        the tail runs.
        """
        root = ctx._parent is None
        if root:
            self.counters.requests += 1
            self.counters.requests_in_flight += 1
        trace = None if self.tracer is None else self._begin_trace(ctx)  # rule 6
        try:
            # Rule 7: instances are made when first called.
            ctx._modules = self._unmade.copy()
            # One cancel scope for the request's work, the nursery's: a timeout or a client
            # that leaves cancels the stages and the tasks together, and the tail below
            # runs shielded.
            async with trio.open_nursery() as nursery:
                ctx._nursery = nursery
                work = nursery.cancel_scope
                if root and self.request_timeout is not None:
                    work.deadline = trio.current_time() + self.request_timeout
                if ctx.lifecycle.reasons and ctx.lifecycle.has(_PEER_GONE):
                    work.cancel()  # the client left before the stages began: only the tail
                try:
                    await self._run_main(ctx)
                except BaseException as exc:  # (a Cancelled may come inside a group)
                    if _is_cancel(exc):
                        self._cancelled(ctx, work)
                    raise
                finally:
                    if ctx.lifecycle.reasons and ctx.lifecycle.has(_TIMED_OUT):
                        await self._timed_out(ctx)  # (its answer is shielded and bounded)
                    self._work_stopped(ctx)
                    if self._has_tail:
                        if root:  # LOG_REQUEST handlers read the outcome as it stands
                            note_progress(ctx)
                        with trio.CancelScope(shield=True) as tail:
                            tail.deadline = trio.current_time() + TAIL_TIMEOUT
                            await self._run_tail(ctx)
                    # Tasks never outlive their request, however they were started (a
                    # cancel with no task left to cancel would only cost time).
                    if nursery.child_tasks:
                        work.cancel()
        finally:
            # (a child's output is its parent's: only a root's transport says "complete")
            outcome = ctx.lifecycle.end(
                response_complete=root and ctx._wire.transport.response_complete
            )
            modules, ctx._modules = ctx._modules, []
            for index in self._per_request:  # (a shared instance is disposed in terminate)
                module = modules[index]
                if module is _UNMADE or module is None:
                    continue
                try:
                    module.dispose()
                except Exception:
                    module_log.exception("dispose() failed")
            if ctx._module_context is not None:
                ctx._module_context._cleanup()
            if root:
                self.counters.requests_in_flight -= 1
                self.counters.request_finished(
                    reported_status(ctx, outcome),  # the access log's status
                    trio.current_time() - ctx.stats.started,
                    outcome,
                    ctx.stats.time_to_cancel,
                )
            if trace is not None:  # rule 6
                self._end_trace(ctx, trace, outcome)
        return outcome

    def _cancelled(self, ctx: HttpContext, work: trio.CancelScope) -> None:
        """The stages were cancelled: record why, unless the canceller already did (the
        client leaving, the server giving up on it)."""
        lifecycle = ctx.lifecycle
        now = trio.current_time()
        if work.cancel_called:
            # Ours: the deadline passed (or a reason fired earlier, or a task started on
            # ctx.nursery raised and Trio cancelled the nursery: then it failed already).
            if now >= work.deadline and not lifecycle.has(Event.PEER_GONE):
                lifecycle.fire(Event.TIMED_OUT, now)
            return
        # From outside: shutdown past its grace, the embedding program, a parent that
        # released or lost this child. A child inherits its root's reason.
        root = ctx._root
        if root is not ctx and root.lifecycle.has(Event.PEER_GONE):
            lifecycle.fire(Event.PEER_GONE, now)
        elif root is not ctx and root.lifecycle.has(Event.TIMED_OUT):
            lifecycle.fire(Event.TIMED_OUT, now)
        elif not (lifecycle.has(Event.PEER_GONE) or lifecycle.has(Event.SERVER_ABORTED)):
            lifecycle.fire(Event.SERVER_ABORTED, now)

    async def _timed_out(self, ctx: HttpContext) -> None:
        """The request ran past ``request_timeout``: its work was cancelled. Say so in the log
        and answer 503 if nothing was sent yet; else the connection is aborted."""
        if ctx._parent is not None:
            return  # the root's timeout: logged and answered there
        stats = ctx.stats
        log.error(
            "%s %s timed out after %.1f s in %s (module %r); its work was cancelled",
            ctx.request.method,
            ctx.request.url,
            self.request_timeout,
            stats.stage.name if stats.stage is not None else "the pipeline",
            stats.module,
        )
        response = ctx.response
        if response.headers_sent or ctx._wire.failed:
            ctx._wire.failed = True
            return
        response.clear()
        response.set_status(503)
        response.set_need_disconnect()
        with trio.CancelScope(shield=True) as answer:
            answer.deadline = trio.current_time() + TAIL_TIMEOUT
            try:
                await flush(ctx, final=True, more_data=False, checkpoint=False)
            except HResultError:
                ctx._wire.failed = True

    def _new_module(self, ctx: HttpContext, index: int) -> HttpModule | None:
        """The module's instance for this request, made on its first call (rule 7); a
        factory that raises fails the request as its handler raising would (rule 4), and
        the slot stays empty for the rest of the request."""
        factory = self._factories[index]
        assert factory is not None  # (only subscribed modules are called)
        try:
            module = factory.get_http_module(_ALLOCATOR)
        except Exception as exc:
            self._failed(ctx, self._names[index], exc)
            module = None
        ctx._modules[index] = module
        return module

    def _work_stopped(self, ctx: HttpContext) -> None:
        left = ctx.lifecycle.reasons and ctx.lifecycle.when(_PEER_GONE)
        if left:
            ctx.stats.time_to_cancel = trio.current_time() - left

    async def _run_main(self, ctx: HttpContext) -> None:
        finished = False
        for name, module in self._global:
            try:
                status = await module.on_global_pre_begin_request(GlobalProvider(ctx))
            except Exception as exc:
                self._failed(ctx, name, exc)
                finished = True
                break
            if status == GlobalStatus.HANDLED:
                break
        for stage, pre, post in self._main_plan:
            if finished:
                break
            if stage is _AUTHENTICATE and ctx._skip_authentication:
                continue
            if stage is _MAP_HANDLER:
                ctx.handler = self.select_handler(ctx)
            # Stages nobody subscribed to cost nothing (no provider, no call).
            if pre or stage is _EXECUTE:
                provider = self._provider_for(ctx, stage)
                finished = await self._run_stage(ctx, stage, False, provider)
                if isinstance(provider, MapHandlerProvider):
                    if provider.handler != ctx.handler.label:
                        ctx.handler = self._mapping_named(provider.handler, ctx.handler)
                elif isinstance(provider, AuthenticationProvider) and provider.user is not None:
                    ctx.user = provider.user
            if not finished and post:
                finished = await self._run_stage(ctx, stage, True, EventProvider())
        if ctx.response.reset or ctx._wire.failed or not ctx.connection._connected:
            return  # (a module that caught the client's leaving may not have seen a cancel)
        try:
            await flush(ctx, final=True, more_data=False, checkpoint=False)
        except ConnectionInvalidError:
            pass
        except HResultError as exc:
            log.warning("response to %s %s not sent: %s", ctx.request.method, ctx.request.url, exc)
            if ctx._parent is None:
                ctx._wire.failed = True

    def _provider_for(self, ctx: HttpContext, stage: Notification) -> EventProvider:
        if stage is _AUTHENTICATE:
            return AuthenticationProvider()
        if stage is _MAP_HANDLER:
            return MapHandlerProvider(ctx.handler.label)
        return EventProvider()

    async def _run_tail(self, ctx: HttpContext) -> None:
        # Rule 3/5: the response is gone, so FINISH_REQUEST has nothing left to skip; every
        # subscriber of LOG_REQUEST and END_REQUEST runs (no request missing from a log).
        for stage in _TAIL_STAGES:
            for post in (False, True):
                if self._table[(int(stage), post)]:
                    await self._run_stage(ctx, stage, post, EventProvider(), tail=True)

    async def _run_stage(
        self,
        ctx: HttpContext,
        stage: Notification,
        post: bool,
        provider: EventProvider,
        *,
        tail: bool = False,
    ) -> bool:
        """Run one deterministic (post-)notification; True when the request must finish.

        In the ``tail`` (LOG_REQUEST, END_REQUEST) a FINISH_REQUEST stops nothing."""
        if stage is _EXECUTE and not post:
            order = self._handler_indexes(ctx.handler)
        else:
            order = self._table[(int(stage), post)]
        bit = int(stage)
        ctx.stats.stage = stage
        disabled_map = ctx._disabled
        conditions = None if post else self._conditions.get(bit)
        for index in order:
            if disabled_map:
                disabled = disabled_map.get(index)
                if disabled is not None and disabled[1 if post else 0] & bit:
                    continue
            status = None
            if conditions is not None and index in conditions:
                status = self._unless(ctx, index, conditions[index])
            if status is None:
                status = await self._call(ctx, index, stage, post, provider)
            if tail:
                continue
            if status is _FINISH or ctx._finish_requested:
                return True
            if ctx._request_handled and stage is _EXECUTE:
                break
        return False

    async def notify(
        self,
        ctx: HttpContext,
        notification: Notification,
        provider: EventProvider,
        *,
        checkpoint: bool = True,
    ) -> Status:
        """Raise a non-deterministic notification (MAP_PATH, READ_ENTITY, SEND_RESPONSE,
        CUSTOM) on the modules registered for it. FINISH_REQUEST stops it (rule 3).

        ``checkpoint=False`` is for the pipeline's own final send, which needs no extra
        scheduling point; public APIs keep theirs even when nobody is subscribed.

        Cancellation: a cancel stops the handler that is running and the ones after it;
        ``cancel_io()`` reaches only a pending MAP_PATH handler's wait, which then raises
        ``OperationAbortedError`` out of this call (and out of ``ctx.map_path()``).

        Raises:
            ModuleFailedError: a handler raised (rule 4), except in SEND_RESPONSE, whose
                caller then sends the 500 itself."""
        lifecycle = ctx.lifecycle
        failures = ctx.stats.exceptions  # (rule 4: one entry per module that raised)
        bit = int(notification)
        conditions = self._conditions.get(bit)
        for index in self._table[(bit, False)]:
            if lifecycle.state is _ENDED or index >= len(ctx._modules):
                break
            failed = len(failures)
            status = None
            if conditions is not None and index in conditions:
                status = self._unless(ctx, index, conditions[index])
            if status is None:
                status = await self._call(ctx, index, notification, False, provider)
            if status is _FINISH:
                ctx._finish_requested = True
                if len(failures) == failed:
                    return status  # the module's own FINISH_REQUEST
                if notification is not _SEND_RESPONSE:
                    name = self._names[index]
                    raise ModuleFailedError(f"module {name!r} failed in {notification.name}")
                # The 500 is what is being sent now: the later SEND_RESPONSE handlers (error
                # pages, compression) see it as they see any other failure's.
        if checkpoint:
            await trio.lowlevel.checkpoint()
        return _CONTINUE

    async def _call(
        self,
        ctx: HttpContext,
        index: int,
        notification: Notification,
        post: bool,
        provider: EventProvider,
    ) -> Status:
        module = ctx._modules[index]
        name = self._names[index]
        if module is _UNMADE:
            module = self._new_module(ctx, index)
            if module is None:  # its factory raised: a failing module (rule 4)
                return _FINISH
        elif module is None:  # its factory failed earlier in this request
            return _CONTINUE
        key = (type(module), index, notification, post)
        slot = self._slots.get(key)
        if slot is None:  # once per module type and handler slot: it never changes
            slot = self._slots[key] = self._slot(type(module), name, index, notification, post)
        current, method_name = slot
        if current is None:
            self._warn_missing(module, method_name, name)
            return _CONTINUE
        ctx.stats.module = name
        token = _CURRENT.set((ctx, current))
        aborted: OperationAbortedError | None = None
        trace = ctx.trace  # rule 6: None when tracing is off
        event = None if trace is None else trace.call_started(name, notification, post)
        result: object = None  # for the trace: the final status, or what it raised
        try:
            returned = await getattr(module, method_name)(ctx, provider)
            status: Status = (
                returned
                if returned.__class__ is Status  # (else None, an int, or a mistake)
                else _coerce(returned, name, method_name)
            )
            while status is _PENDING:
                if notification is _MAP_PATH:
                    # A pending MAP_PATH handler is pending I/O of the mapping call: a
                    # cancel_io() aborts the map_path() call itself, not the module.
                    try:
                        with ctx._pending_io(kind="map_path"):
                            resume = await ctx._wait_resume(current)
                    except OperationAbortedError as exc:
                        aborted = exc
                        break
                else:
                    resume = await ctx._wait_resume(current)
                if resume.completion is None:
                    status = resume.status or Status.CONTINUE
                    continue
                completed = await module.on_async_completion(
                    ctx, notification, post, provider, resume.completion
                )
                status = _coerce(completed, name, "on_async_completion")
            result = aborted or status
        except Exception as exc:
            result = exc
            self._failed(ctx, name, exc)
            return _FINISH
        finally:
            _CURRENT.reset(token)
            if event is not None:
                RequestTrace.call_ended(event, result)
        if aborted is not None:
            raise aborted
        return status

    def _unless(self, ctx: HttpContext, index: int, condition: Condition) -> Status | None:
        """Rule 8: None when the module's handler is to be called; CONTINUE when its
        condition says it would do nothing here; FINISH_REQUEST when the condition raised
        (the module failed, rule 4)."""
        try:
            if condition(ctx):
                return None
        except Exception as exc:
            self._failed(ctx, self._names[index], exc)
            return _FINISH
        return _CONTINUE

    @staticmethod
    def _slot(
        kind: type, name: str, index: int, notification: Notification, post: bool
    ) -> tuple[_Current | None, str]:
        method_name = _METHOD_NAMES[(notification, post)]
        if getattr(kind, method_name, None) is getattr(HttpModule, method_name):
            return None, method_name
        return _Current(name, index, notification, post), method_name

    def _warn_missing(self, module: HttpModule, method_name: str, name: str) -> None:
        key = (type(module), method_name)
        if key not in self._warned:
            self._warned.add(key)
            module_log.warning(
                "module %r subscribed to %s but does not override it; treated as CONTINUE",
                name,
                method_name,
            )

    def _failed(self, ctx: HttpContext, module_name: str, exc: BaseException) -> None:
        """Rule 4. The client leaving or sending a bad body is not a module's failure, and a
        ``ModuleFailedError`` is one already counted."""
        response = ctx.response
        if isinstance(exc, ModuleFailedError):
            return
        if isinstance(exc, ConnectionInvalidError):
            module_log.info("module %r: client gone: %s", module_name, exc)
            return
        if isinstance(exc, RequestBodyError):
            # The client's fault, not the module's: its status, no traceback, and the
            # connection cannot be trusted further.
            module_log.info("%s %s: bad request body: %s", ctx.request.method, ctx.request.url, exc)
            if response.headers_sent:
                ctx._reset_connection()
                return
            response.clear()
            response.set_status(exc.status)
            response.set_need_disconnect()
            return
        if ctx.lifecycle.running:
            ctx.lifecycle.fire(Event.MODULE_FAILED, trio.current_time())
        self.counters.module_exceptions[module_name] += 1
        ctx.stats.exceptions.append(f"{module_name}: {type(exc).__name__}: {exc}")
        module_log.error(
            "module %r failed on %s %s",
            module_name,
            ctx.request.method,
            ctx.request.url,
            exc_info=exc,
        )
        if response.headers_sent:
            ctx._reset_connection()
            return
        response.clear()
        response.set_status(500)

    def task_failed(self, ctx: HttpContext, exc: Exception) -> None:
        """A task started with ``ctx.start_soon`` raised (rule 4)."""
        name = ctx._current.module_name if ctx._current else "task"
        self._failed(ctx, name, exc)

    # ------------------------------------------------------------ shutdown

    def _global_order(self, bit: GlobalNotification) -> tuple[tuple[str, GlobalModule], ...]:
        """(name, global module) of those registered for ``bit``: higher priority first,
        ties in load order (``sorted`` is stable)."""
        subscribed = [
            (reg, reg.global_module)
            for reg in self.registrations
            if reg.global_module is not None and reg.global_notifications & bit
        ]
        subscribed.sort(key=lambda pair: -pair[0].global_priorities.get(int(bit), Priority.MEDIUM))
        return tuple((reg.name, module) for reg, module in subscribed)

    async def application_start(self, nursery: trio.Nursery) -> None:
        """Raise GL_APPLICATION_START: once, before the first connection is accepted.

        ``nursery`` (``provider.nursery``) lives until after ``application_stop``.

        Raises:
            ConfigError: a handler raised; the message names the module. Modules after it
                are not started.

        Cancellation: a checkpoint; a cancel stops the handler that is running and the ones
            after it (the server is not started).
        """
        provider = ApplicationProvider(nursery)
        for name, module in self._global_order(GlobalNotification.APPLICATION_START):
            try:
                status = await module.on_global_application_start(provider)
            except Exception as exc:
                raise ConfigError(
                    f"module {name!r} failed to start: {describe_exception(exc)}"
                ) from exc
            if status == GlobalStatus.HANDLED:
                break
        await trio.lowlevel.checkpoint()

    async def application_stop(self, nursery: trio.Nursery) -> None:
        """Raise GL_APPLICATION_STOP: once, after the last connection ended.

        Cancellation: a checkpoint; the server calls it shielded, with a deadline. A handler
            that raises is logged and the others still run.
        """
        provider = ApplicationProvider(nursery)
        for name, module in self._global_order(GlobalNotification.APPLICATION_STOP):
            try:
                status = await module.on_global_application_stop(provider)
            except Exception:
                module_log.exception("on_global_application_stop of %r failed", name)
                continue
            if status == GlobalStatus.HANDLED:
                break
        await trio.lowlevel.checkpoint()

    async def stop_listening(self) -> None:
        """Raise GL_STOP_LISTENING on the global modules registered for it (shutdown began).

        Cancellation: a checkpoint; the server calls it shielded, with a deadline.
        """
        for name, module in self._global_order(GlobalNotification.STOP_LISTENING):
            try:
                status = await module.on_global_stop_listening(GlobalProvider(None))
            except Exception:
                module_log.exception("on_global_stop_listening of %r failed", name)
                continue
            if status == GlobalStatus.HANDLED:
                break
        await trio.lowlevel.checkpoint()

    def terminate(self) -> None:
        """Call every factory's and global module's ``terminate()`` once."""
        if self._terminated:
            return
        self._terminated = True
        for reg, shared in zip(self.registrations, self._shared, strict=True):
            if shared is not None:  # rule 7: once, at the end
                try:
                    shared.dispose()
                except Exception:
                    module_log.exception("dispose() of %r failed", reg.name)
            for obj in (reg.factory, reg.global_module):
                if obj is None:
                    continue
                try:
                    obj.terminate()
                except Exception:
                    module_log.exception("terminate() of %r failed", reg.name)


def _is_cancel(exc: BaseException) -> bool:
    """True for a ``trio.Cancelled``, or a group made only of them."""
    if isinstance(exc, BaseExceptionGroup):
        rest = exc.split(trio.Cancelled)[1]
        return rest is None
    return isinstance(exc, trio.Cancelled)


def _coerce(result: Any, module_name: str, method_name: str) -> Status:
    if result.__class__ is Status:
        return result
    if result is None:
        return _CONTINUE
    if isinstance(result, Status):
        return result
    if type(result) is int and result in (0, 1, 2):
        return Status(result)
    raise TypeError(f"{module_name}.{method_name} returned {result!r}, not a Status")
