"""``HttpContext``: one request's world — its I/O cancel scopes, tasks, children and completion.

Theory of operation
-------------------
1. **Every pending I/O has its own cancel scope**, entered through ``_PendingIo`` and kept in
   ``_io_scopes`` only while the I/O is in flight (so the set never grows). ``cancel_io()``
   cancels the scopes of this context and of every child it started, and nothing else. The
   I/O call sees its scope's ``cancelled_caught`` and raises ``OperationAbortedError`` with
   the bytes moved so far. ``trio.Cancelled`` is never caught here: any other cancel
   propagates untouched.
2. **The request's work** runs inside the request nursery's cancel scope (the pipeline's
   stages and the final send, in the request's task), and in module tasks
   started with ``start_soon``, each wrapped in its own scope in ``_task_scopes``
   (registered when started, not when first run). When the client goes away before its
   response is complete (``_peer_gone``), or the server gives up on it
   (``_server_aborted``), ``_cancel_work`` cancels all of those (so tasks started on
   ``ctx.nursery`` directly stop too); the pipeline then still runs LOG_REQUEST and
   END_REQUEST, shielded with a deadline. The request's own ``request_timeout`` is that
   scope's deadline. A client that leaves after its response is complete cancels nothing.
3. **A child request** is a context cloned from this one. ``execute_request`` runs its whole
   pipeline as a task of this context (so it is cancelled with it), inside its own nursery;
   ``run_child`` awaits the same thing in place. Depth is counted on the context: levels
   1..10 run, the 11th raises ``StackOverflowError``.
4. **Where a response goes.** The root's output goes to the connection. A child with
   ``BUFFER_RESPONSE`` keeps its output until it ends, then its body is appended to its
   parent's buffer. Any other child writes to the same place as its parent: straight to the
   client, so its status and headers become the response's if none were sent yet (with
   ``NO_HEADERS`` its parent's are used). There is always one status line and one framing.
5. **PENDING.** A handler that returns ``Status.PENDING`` parks the pipeline until
   ``indicate_completion`` (resume with that status, no ``on_async_completion``) or a
   completion — ``post_completion``, the end of an ``execute_request`` child, or an I/O
   started with ``async_=True`` — which re-enters the module's ``on_async_completion``.
   Completions queue in ``_resume``, so one that arrives before the handler returned
   PENDING is not lost.
6. **One lifecycle, one outcome.** ``lifecycle`` (``lifecycle.py``) holds the request's
   state and the reasons recorded for it; its ``outcome`` is what the access log, counters,
   traces and the status module report. The send path (``sending.py``) fires the
   response's events; this module fires the reasons.
"""

from __future__ import annotations

import collections
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self, final
from urllib.parse import unquote

import trio

from .._constants import (
    ERROR_INVALID_INDEX,
    ERROR_INVALID_PARAMETER,
    ERROR_OPERATION_ABORTED,
    S_OK,
    CloneFlags,
    ExecuteFlags,
    Notification,
    Status,
)
from .._errors import (
    CompletionInfo,
    ConnectionInvalidError,
    HResultError,
    InvalidHandleError,
    OperationAbortedError,
)
from .._lifecycle import Event, Outcome, RequestLifecycle, RequestState
from .._memo import memoize_short
from .._observability import tracing
from .._observability.counters import ServerCounters
from .._protocol.transport import PeerGoneError, PeerTooSlowError
from .children import check_execute, clone, prepare_child, run_child
from .connection import HttpConnection, ModuleContextContainer, Site, _NoPublicConstructor
from .headers import Headers
from .mapping import DEFAULT_MAPPING, HandlerMapping
from .providers import (
    CustomNotificationProvider,
    EventProvider,
    HttpUser,
    MapPathProvider,
    ReadEntityProvider,
)
from .request import BodySource, HttpRequest
from .response import HttpResponse
from .sending import Wire, note_progress
from .server_variables import builtin_variable

log = logging.getLogger("trioiis")

_NO_FLAGS = ExecuteFlags(0)
_BUFFER_RESPONSE = ExecuteFlags.BUFFER_RESPONSE  # (enum class attributes are slow to read)
_ENDED = RequestState.ENDED  # (a module constant: enum class attributes are slow to read)
_MAP_PATH = Notification.MAP_PATH


class RequestRunner(Protocol):
    """What a context needs of the pipeline that runs it (``trioiis._pipeline.Pipeline``):
    the context layer sits below the pipeline, so it names the calls it makes, not the
    class."""

    counters: ServerCounters

    def has_handlers(self, notification: Notification) -> bool: ...

    async def notify(
        self,
        ctx: HttpContext,
        notification: Notification,
        provider: EventProvider,
        *,
        checkpoint: bool = True,
    ) -> Status: ...

    async def run_request(self, ctx: HttpContext) -> CompletionInfo: ...

    async def serve_request(self, ctx: HttpContext) -> Outcome: ...

    def task_failed(self, ctx: HttpContext, exc: Exception) -> None: ...


@dataclass(frozen=True, slots=True)
class _Current:
    """The handler running now (for status attribution and completion routing); one per
    handler slot, shared by every request (the pipeline makes each once)."""

    module_name: str
    module_index: int
    notification: Notification
    is_post: bool


@dataclass(slots=True)
class _Resume:
    status: Status | None = None
    completion: CompletionInfo | None = None
    #: The handler whose async operation this completes; None resumes whichever is parked
    #: (``indicate_completion``, ``post_completion``).
    owner: _Current | None = None


#: (context, handler) running in the current task; see ``HttpContext._current``.
_CURRENT: contextvars.ContextVar[tuple[HttpContext, _Current] | None] = contextvars.ContextVar(
    "trioiis_current_handler", default=None
)


class _RequestStats:
    """Timings of one request and where it was, for the log, counters and traces (its
    outcome is ``HttpContext.lifecycle``'s)."""

    __slots__ = ("exceptions", "module", "stage", "started", "time_to_cancel")

    def __init__(self, started: float = 0.0) -> None:
        self.started = started
        #: Seconds from noticing the client leave to the request's work having stopped.
        self.time_to_cancel: float | None = None
        self.stage: Notification | None = None  # the last deterministic stage entered
        self.module: str | None = None  # the last module called
        self.exceptions: list[str] = []


class _PendingIo:
    """Rule 1: one registered cancel scope around one pending I/O."""

    __slots__ = ("_ctx", "_kind", "_moved", "_scope", "_trace_event", "done_bytes")

    def __init__(self, ctx: HttpContext, moved: Callable[[], int] | None, kind: str) -> None:
        self._ctx = ctx
        self._moved = moved
        self._kind = kind
        self._scope = trio.CancelScope()
        self._trace_event: list[Any] | None = None
        #: Bytes a completed I/O without a ``moved`` function moved (set by the caller).
        self.done_bytes = 0

    def __enter__(self) -> Self:
        scopes = self._ctx._io_scopes
        if scopes is None:
            scopes = self._ctx._io_scopes = set()
        scopes.add(self._scope)
        trace = self._ctx.trace
        if trace is not None:  # tracing hook (_observability/tracing.py): one branch when off
            self._trace_event = trace.io_started(self._kind)
        self._scope.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        scopes = self._ctx._io_scopes
        if scopes is not None:
            scopes.discard(self._scope)
        handled = self._scope.__exit__(exc_type, exc, tb)
        if self._trace_event is not None:
            self._traced(exc)
        if self._scope.cancelled_caught:
            moved = self._moved() if self._moved is not None else 0
            self._ctx._counters_io_cancelled()
            raise OperationAbortedError(
                completion=CompletionInfo(moved, ERROR_OPERATION_ABORTED)
            ) from None
        return bool(handled)

    def _traced(self, exc: BaseException | None) -> None:
        """Record this I/O's outcome in the request's trace."""
        assert self._trace_event is not None
        moved = self._moved() if self._moved is not None else self.done_bytes
        if self._scope.cancelled_caught:
            outcome = tracing.IO_CANCELLED_BY_CANCEL_IO
        elif isinstance(exc, trio.Cancelled):
            gone = self._ctx._root.lifecycle.has(Event.PEER_GONE)
            outcome = tracing.IO_CANCELLED_BY_DISCONNECT if gone else tracing.IO_CANCELLED
        elif isinstance(exc, ConnectionInvalidError | PeerGoneError):
            outcome = tracing.IO_CANCELLED_BY_DISCONNECT  # it saw the client leave first
        elif exc is not None:
            outcome = tracing.IO_FAILED
        else:
            outcome = tracing.IO_COMPLETED
        tracing.RequestTrace.io_ended(self._trace_event, outcome, moved)


@final
class HttpContext(metaclass=_NoPublicConstructor):
    """Everything about one request (IIS ``IHttpContext``); children are contexts too.

    Created only by the server (and by ``clone_context``); valid until the request ends,
    after which every method that needs the request raises ``InvalidHandleError``.
    """

    # (positional or keyword: the server makes one per request, positionally, which costs
    # less than keyword arguments)
    def __init__(
        self,
        pipeline: RequestRunner,
        connection: HttpConnection,
        site: Site,
        wire: Wire,
        method: str,
        url: str,
        http_version: str,
        headers: Headers,
        body: BodySource,
        parent: HttpContext | None = None,
    ) -> None:
        self._pipeline = pipeline
        self.connection: HttpConnection = connection
        self.site: Site = site
        self._wire = wire
        self.request: HttpRequest = HttpRequest(
            self,
            method,
            url,
            http_version,
            headers,
            body,
            connection.remote_address,
            connection.local_address,
        )
        self.response = HttpResponse(self)
        self.user: HttpUser | None = None
        # Made when first asked for (``module_context``): most requests store nothing.
        self._module_context: ModuleContextContainer | None = None
        self._parent = parent
        # The root is found through the parent, not stored in itself: a context that
        # points at itself is a reference cycle, freed only by the cyclic GC.
        self._root_of_child: HttpContext | None = None if parent is None else parent._root
        self._depth: int = 0 if parent is None else parent._depth + 1
        self._execute_flags = _NO_FLAGS
        #: The request's state and outcome (rule 6).
        self.lifecycle = RequestLifecycle(parent is not None)
        self._released = False
        self._nursery: trio.Nursery | None = None
        self._release_scope: trio.CancelScope | None = None
        # Made when first needed (most requests need none of them): None until then.
        self._io_scopes: set[trio.CancelScope] | None = None
        self._task_scopes: set[trio.CancelScope] | None = None
        self._children: list[HttpContext] | None = None
        self._server_variables: dict[str, str] | None = None
        self._resume: collections.deque[_Resume] | None = None
        self._resume_event: trio.Event | None = None
        self._disabled: dict[int, tuple[int, int]] | None = None
        self._finish_requested = False
        self._request_handled = False
        self._skip_authentication = False
        self._excluded_handlers: frozenset[HandlerMapping] = frozenset()
        self._modules: list[Any] = []
        self._produced = 0
        #: The handler mapping chosen at MAP_REQUEST_HANDLER.
        self.handler: HandlerMapping = DEFAULT_MAPPING
        self.stats = _RequestStats(trio.current_time())
        #: This request's timeline when tracing is on (``trace_dir``), else None.
        self.trace: tracing.RequestTrace | None = None

    def __repr__(self) -> str:
        return f"<HttpContext {self.request.method} {self.request.url} depth={self._depth}>"

    @property
    def module_context(self) -> ModuleContextContainer:
        """This request's per-module storage (IIS ``GetModuleContextContainer``): what is
        stored is cleaned up once, at the request's end."""
        container = self._module_context
        if container is None:
            container = self._module_context = ModuleContextContainer()
        return container

    @property
    def _root(self) -> HttpContext:
        """The top-level request of this context's tree (itself for a top-level request)."""
        return self if self._root_of_child is None else self._root_of_child

    # ------------------------------------------------------------ plain accessors

    def get_request_start_time(self) -> float:
        """When the request started, in ``trio.current_time()`` seconds (IIS
        ``GetRequestStartTime`` gives milliseconds of a tick count)."""
        return self.stats.started

    def get_request_elapsed_time(self) -> int:
        """Milliseconds since the request started (IIS ``GetRequestElapsedTime``)."""
        return int((trio.current_time() - self.stats.started) * 1000)

    @property
    def server_counters(self) -> ServerCounters:
        """The server's counters (requests, cancellations, …), for status and metrics
        modules; read them, do not change them."""
        return self._pipeline.counters

    @property
    def depth(self) -> int:
        """0 for the client's request, n for a child n levels down."""
        return self._depth

    def get_parent_context(self) -> HttpContext | None:
        """The context this one was cloned from; None on the root."""
        return self._parent

    def get_root_context(self) -> HttpContext | None:
        """The root of this child's tree; None when called on the root (as IIS does)."""
        return None if self._parent is None else self._root

    def get_execute_flags(self) -> ExecuteFlags:
        """The flags this child was run with; 0 on the root."""
        return self._execute_flags

    @property
    def custom_errors_disabled(self) -> bool:
        """True when this context, or an ancestor child, runs with DISABLE_CUSTOM_ERROR:
        error-page modules must then leave its error responses alone."""
        return self._in_chain(ExecuteFlags.DISABLE_CUSTOM_ERROR)

    def _in_chain(self, flag: ExecuteFlags) -> bool:
        """True if this context or an ancestor was executed with ``flag`` (roots have none)."""
        ctx = self
        while ctx._parent is not None:  # only children are executed with flags
            if ctx._execute_flags & flag:
                return True
            ctx = ctx._parent
        return False

    @property
    def nursery(self) -> trio.Nursery:
        """The request nursery (prefer ``start_soon``, which also guards the task).

        Cancellation: its cancel scope is the request's: ``request_timeout`` and a client
        that leaves cancel it (the stages and every task in it; LOG_REQUEST and END_REQUEST
        still run, shielded), and the request's end cancels the tasks still in it.
        ``cancel_io()`` does not touch it. A task started on it directly that raises makes
        Trio cancel it too: the request fails, it is not a timeout.
        """
        self._check_alive()
        assert self._nursery is not None
        return self._nursery

    def get_server_variable(self, name: str) -> str:
        """A CGI-style variable (``REMOTE_ADDR``, ``URL``, ``HTTP_HOST``, …) or one set here.

        Raises:
            HResultError: ERROR_INVALID_INDEX for an unknown name.
        """
        key = name.upper()
        variables = self._server_variables
        if variables is not None and key in variables:
            return variables[key]
        value = builtin_variable(self, key)
        if value is None:
            raise HResultError(f"no server variable {name!r}", hresult=ERROR_INVALID_INDEX)
        return value

    def set_server_variable(self, name: str, value: str) -> None:
        """Create or change a server variable of this request."""
        if not name:
            raise HResultError("empty variable name", hresult=ERROR_INVALID_PARAMETER)
        if self._server_variables is None:
            self._server_variables = {}
        self._server_variables[name.upper()] = value

    # ------------------------------------------------------------ life and tasks

    def _check_alive(self) -> None:
        if self.lifecycle.state is _ENDED or self._released:
            raise InvalidHandleError("the request has ended")

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        """Start ``fn(*args)`` as a task of this request.

        The task is cancelled when the client disconnects, when ``request_timeout`` passes
        and when the request ends (tasks never outlive their request). An exception in it is
        logged and fails the request (500 if nothing was sent yet), and resumes a pipeline
        parked on PENDING.
        """
        self._check_alive()
        assert self._nursery is not None
        # The scope is registered now, not when the task first runs, so that ending the
        # request also cancels a task that has not started yet.
        scope = trio.CancelScope()
        if self._task_scopes is None:
            self._task_scopes = set()
        self._task_scopes.add(scope)
        self._nursery.start_soon(
            self._guarded_task, scope, fn, args, name=getattr(fn, "__name__", fn)
        )

    async def _guarded_task(
        self,
        scope: trio.CancelScope,
        fn: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
    ) -> None:
        try:
            with scope:
                await fn(*args)
        except Exception as exc:
            self._pipeline.task_failed(self, exc)
            if self.lifecycle.running:
                # Resume a pipeline parked on PENDING for this task: it would wait forever.
                self._post(_Resume(status=Status.FINISH_REQUEST))
        finally:
            if self._task_scopes is not None:
                self._task_scopes.discard(scope)

    def _cancel_work(self) -> None:
        """Cancel the stages and every task of this context (not the shielded tail): the
        request nursery itself, so that tasks started on ``ctx.nursery`` directly stop too."""
        for scope in list(self._task_scopes or ()):
            scope.cancel()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _peer_gone(self) -> None:
        """Rule 2: the transport saw this (root) request's client go away."""
        self.connection._mark_gone()  # (notify_disconnect, once)
        lifecycle = self.lifecycle
        if not lifecycle.running:
            return
        note_progress(self)  # the last byte may have gone out just before the close
        if lifecycle.response_complete:
            return  # the client has its whole response: nothing to cancel or report
        if lifecycle.fire(Event.PEER_GONE, trio.current_time()):
            self._cancel_work()

    def _server_aborted(self, *, reading: bool) -> None:
        """Rule 2: the server gave up on this (root) request's client (``send_timeout``,
        ``body_timeout``, a minimum rate). A response cannot reach a client too slow to
        read it: the work stops and the connection is aborted. A client too slow to send
        its body gets a 408 and a close, if nothing was sent yet."""
        lifecycle = self.lifecycle
        if not lifecycle.running or not lifecycle.fire(Event.SERVER_ABORTED, trio.current_time()):
            return
        if reading and not self._wire.failed:
            response = self.response
            if not response.headers_sent:
                response.clear()
                response.set_status(408)
            response.set_need_disconnect()
            return
        self._wire.failed = True
        self.connection._connected = False
        self._cancel_work()

    def _wire_broken(self, exc: Exception, *, reading: bool = False) -> ConnectionInvalidError:
        """A transport error on this context's wire: record who ended it, and return the
        error the module sees (``ConnectionInvalidError``)."""
        root = self._root
        if isinstance(exc, PeerTooSlowError):
            root._server_aborted(reading=reading)
        else:
            self._wire.failed = True
            root._peer_gone()
        return ConnectionInvalidError(str(exc) or "the client is gone")

    def _reset_connection(self) -> None:
        """``reset_connection()``: the client sees an RST now; the pipeline goes on."""
        root = self._root
        self._wire.failed = True
        root.response.reset = True
        self.connection._connected = False  # gone for the client, but nothing is cancelled
        if root.lifecycle.running:
            root.lifecycle.fire(Event.SERVER_ABORTED, trio.current_time())
        self._wire.transport.reset()

    # ------------------------------------------------------------ pending I/O

    def _pending_io(self, moved: Callable[[], int] | None = None, kind: str = "io") -> _PendingIo:
        self._check_alive()
        if not self.connection._connected:
            raise ConnectionInvalidError("the client is gone")
        return _PendingIo(self, moved, kind)

    def _counters_io_cancelled(self) -> None:
        self._pipeline.counters.io_cancelled += 1

    def _walk(self) -> Iterator[HttpContext]:
        yield self
        for child in list(self._children or ()):
            yield from child._walk()

    def cancel_io(self) -> int:
        """Cancel every pending I/O of this request and of the child requests it started.

        The aborted calls raise ``OperationAbortedError`` (``completion_status`` is
        ERROR_OPERATION_ABORTED, ``completion_bytes`` what moved before). The request goes
        on; nothing else is cancelled.

        Returns:
            How many pending I/O operations were cancelled (0 when none was pending).

        Raises:
            InvalidHandleError: the request has ended or its connection is gone.
        """
        if self.lifecycle.ended or self._released or not self.connection._connected:
            raise InvalidHandleError("cancel_io on a request that has ended")
        n = 0
        for ctx in self._walk():
            for scope in list(ctx._io_scopes or ()):
                if not scope.cancel_called:
                    scope.cancel()
                    n += 1
        self._pipeline.counters.cancel_io_calls += 1
        return n

    @property
    def pending_io_count(self) -> int:
        """Pending I/O operations of this request and its children (for tests and metrics)."""
        return sum(len(ctx._io_scopes or ()) for ctx in self._walk())

    # ------------------------------------------------------------ PENDING and completions

    def indicate_completion(self, status: Status) -> None:
        """Resume a pipeline parked on PENDING with ``status``; no ``on_async_completion``.

        The pipeline task continues at the caller's next checkpoint (trioiis never runs
        handlers inside a synchronous call).
        """
        self._post(_Resume(status=Status(status)))

    def post_completion(self, bytes_moved: int = 0) -> None:
        """Queue a completion: the parked module's ``on_async_completion`` runs later (never
        inside this call) with ``completion.completion_bytes == bytes_moved``."""
        self._post(_Resume(completion=CompletionInfo(bytes_moved, S_OK)))

    def _post(self, item: _Resume) -> None:
        if self.lifecycle.ended:
            raise InvalidHandleError("the request has ended")
        if self._resume is None:
            self._resume = collections.deque()
        self._resume.append(item)
        if self._resume_event is not None:
            self._resume_event.set()

    async def _wait_resume(self, parked: _Current) -> _Resume:
        """The next resume for the handler ``parked``: one it started itself, or one for
        whoever is parked. Completions of other handlers' operations stay queued."""
        while True:
            queued = self._resume or ()
            for item in queued:
                if item.owner is None or item.owner == parked:
                    assert self._resume is not None
                    self._resume.remove(item)
                    self._resume_event = None
                    return item
            self._resume_event = trio.Event()
            await self._resume_event.wait()

    @property
    def _current(self) -> _Current | None:
        """The handler running in *this task* for this context (a context variable, so a
        module task sees the handler that started it, and concurrent notifications from
        several tasks do not overwrite each other)."""
        value = _CURRENT.get()
        return value[1] if value is not None and value[0] is self else None

    def _start_async_io(self, fn: Callable[[], Awaitable[int | CompletionInfo]]) -> None:
        """Run an I/O as a task; its outcome comes back as a completion (``async_=True``)
        for the handler that started it."""
        owner = self._current

        async def run() -> None:
            try:
                result = await fn()
                info = result if isinstance(result, CompletionInfo) else CompletionInfo(result)
            except OperationAbortedError as exc:
                info = exc.completion
            except HResultError as exc:
                info = CompletionInfo(0, exc.hresult)
            self._post(_Resume(completion=info, owner=owner))

        self.start_soon(run)

    def _current_module_and_stage(self) -> tuple[str | None, Notification | None]:
        current = self._current
        return (None, None) if current is None else (current.module_name, current.notification)

    def set_request_handled(self) -> None:
        """The handler's work is done: the rest of the handler mapping's modules do not run."""
        self._request_handled = True

    def disable_notifications(self, notifications: int, post_notifications: int = 0) -> None:
        """Stop this module's remaining deterministic notifications for this request only."""
        current = self._current
        if current is None:
            raise HResultError("not inside a handler", hresult=ERROR_INVALID_PARAMETER)
        if self._disabled is None:
            self._disabled = {}
        mask, post = self._disabled.get(current.module_index, (0, 0))
        self._disabled[current.module_index] = (
            mask | int(notifications),
            post | int(post_notifications),
        )

    # ------------------------------------------------------------ non-deterministic notifications

    async def map_path(self, url: str) -> Path:
        """Map ``url`` to a file path under the site root, raising MAP_PATH.

        MAP_PATH handlers may change the path (``provider.set_physical_path``) or return
        PENDING; a FINISH_REQUEST from one ends the request once the current handler returns.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for a URL that could escape the root.
            OperationAbortedError: ``cancel_io()`` while a MAP_PATH handler was pending.
            ModuleFailedError: a MAP_PATH handler raised (the request answers 500).

        Cancellation: a checkpoint; a pending MAP_PATH handler's wait is pending I/O.
        """
        self._check_alive()
        physical = safe_join(self.site.root, url)
        if physical is None:
            raise HResultError(f"URL {url!r} cannot be mapped", hresult=ERROR_INVALID_PARAMETER)
        provider = MapPathProvider(url, physical)
        await self._pipeline.notify(self, _MAP_PATH, provider)
        return provider.physical_path

    async def notify_custom_notification(self, provider: CustomNotificationProvider) -> bool:
        """Call every module registered for CUSTOM_NOTIFICATION, in priority order.

        Returns:
            ``completion_expected``: always False (the handlers have run when this returns).

        Cancellation: a checkpoint; a cancel stops the handler that is running and the
            handlers after it. ``cancel_io()`` does not touch it (it is not I/O).
        """
        self._check_alive()
        await self._pipeline.notify(self, Notification.CUSTOM_NOTIFICATION, provider)
        return False

    async def _raise_read_entity(self, data: bytes) -> bytes:
        if not self._pipeline.has_handlers(Notification.READ_ENTITY):
            return data
        provider = ReadEntityProvider(data)
        await self._pipeline.notify(self, Notification.READ_ENTITY, provider)
        return provider.entity

    # ------------------------------------------------------------ sending

    def _scheme(self) -> str:
        """The scheme the client used: a trusted proxy's word (it set ``HTTPS``) or the
        connection's own."""
        return "https" if self.get_server_variable("HTTPS") == "on" else "http"

    def _is_buffered(self) -> bool:
        """True if this context's output is kept for an ancestor with BUFFER_RESPONSE."""
        return self._parent is not None and self._in_chain(_BUFFER_RESPONSE)

    def get_response_headers_sent(self) -> bool:
        """True once the status line and headers reached the client (IIS spelling of
        ``response.headers_sent``)."""
        return self._headers_sent()

    def _headers_sent(self) -> bool:
        if self._parent is not None and self._in_chain(_BUFFER_RESPONSE):
            return False
        return self._wire.head_sent

    # ------------------------------------------------------------ child requests

    def clone_context(self, flags: CloneFlags = CloneFlags.BASICS) -> HttpContext:
        """A child of this context, to be changed and then run with ``execute_request``.

        BASICS copies method and URL (else ``GET /``), HEADERS the request headers (less
        Range/If-* with NO_PRECONDITION, less WebDAV ones with NO_DAV), ENTITY the body
        (what was read so far, then the unread rest), SERVER_VARIABLE the variables set here.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for unknown flag bits.
            NotSupportedError: ENTITY when over 1 MiB of body was already read.
        """
        return clone(self, flags)

    def execute_request(
        self,
        child: HttpContext,
        flags: ExecuteFlags = _NO_FLAGS,
        user: HttpUser | None = None,
        *,
        async_: bool = True,
    ) -> bool:
        """Run ``child`` through the whole pipeline as a task of this request.

        Returns:
            ``completion_expected`` (always True): return ``Status.PENDING``; the calling
            module's ``on_async_completion`` gets the child's ``CompletionInfo``
            (``completion_bytes``: body bytes it produced; ``completion_status``: 0, or the
            HRESULT of its failure, ERROR_OPERATION_ABORTED if it was cancelled).

        Raises:
            NotSupportedError: ``async_=False`` (nothing runs), a context not cloned from
                this one, or a clone that already ran.
            StackOverflowError: the child would be the 11th nested level.

        Cancellation: the child is cancelled with this request (client disconnect) and by
            ``child.release_cloned_context()``; ``cancel_io()`` here reaches its pending I/O.
        """
        check_execute(self, child, async_)
        prepare_child(self, child, flags, user)
        owner = self._current

        async def run() -> None:
            info = await run_child(self, child)
            if not self.lifecycle.ended:
                self._post(_Resume(completion=info, owner=owner))

        self.start_soon(run)
        return True

    async def run_child(
        self,
        child: HttpContext,
        flags: ExecuteFlags = _NO_FLAGS,
        user: HttpUser | None = None,
    ) -> CompletionInfo:
        """``execute_request`` awaited in place (the Pythonic form); returns its completion.

        Raises:
            NotSupportedError, StackOverflowError: as ``execute_request``.

        Cancellation: a checkpoint. Cancelling the caller cancels the child's pipeline (its
            LOG_REQUEST/END_REQUEST still run, shielded); ``cancel_io()`` on this context
            aborts the child's pending I/O, which the child's modules see as
            ``OperationAbortedError``.
        """
        check_execute(self, child, async_=True)
        await trio.lowlevel.checkpoint()  # a checkpoint even when the child does no I/O
        prepare_child(self, child, flags, user)
        return await run_child(self, child)

    def release_cloned_context(self) -> None:
        """Free this clone; a clone still running is cancelled.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER on a root context, a clone released twice,
                or a clone whose parent was already released or has ended.
        """
        parent = self._parent
        if parent is None:
            raise HResultError("not a cloned context", hresult=ERROR_INVALID_PARAMETER)
        if self._released or parent._released or parent.lifecycle.ended:
            raise HResultError("the parent context is gone", hresult=ERROR_INVALID_PARAMETER)
        self._released = True
        if self._release_scope is not None:
            self._release_scope.cancel()


@memoize_short  # a site's few URLs are mapped on every request
def safe_join(root: Path, url_path: str) -> Path | None:
    """``root`` joined with the percent-decoded path of ``url_path``, or None if unsafe.

    Refuses ``..`` segments (after decoding, so ``%2e%2e`` and ``%2f`` cannot sneak one in),
    backslashes, NUL bytes and undecodable bytes. Symlinks are the caller's business.
    """
    path = url_path.partition("?")[0]
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\0" in decoded or "\\" in decoded:
        return None
    parts: list[str] = []
    for segment in decoded.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            return None
        parts.append(segment)
    return root.joinpath(*parts)
