"""The module API: ``HttpModule``, factories, and what ``register_module`` is given."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import trio

from .._constants import (
    ERROR_ALREADY_EXISTS,
    ERROR_INVALID_PARAMETER,
    NON_DETERMINISTIC,
    SERVER_VERSION,
    GlobalNotification,
    GlobalStatus,
    Notification,
    Priority,
    Status,
)
from .._errors import CompletionInfo, HResultError

if TYPE_CHECKING:
    from .._context.context import HttpContext
    from .._context.providers import (
        AuthenticationProvider,
        CustomNotificationProvider,
        EventProvider,
        MapHandlerProvider,
        MapPathProvider,
        ReadEntityProvider,
        SendResponseProvider,
    )

#: What a handler may return: a ``Status``, or None for ``Status.CONTINUE``.
HandlerResult = Status | None
#: ``set_request_notification_condition``'s test: may the handler act on this request?
Condition = Callable[["HttpContext"], bool]


class HttpModule:
    """Base class of a per-request module (IIS ``CHttpModule``).

    Override the handlers you registered for; each is ``async`` and returns a ``Status``
    (``None`` means CONTINUE). A new instance serves one request and gets ``dispose()`` at its
    end. A handler you subscribed to but did not override is logged once and treated as
    CONTINUE.
    """

    async def on_begin_request(self, ctx: HttpContext, provider: EventProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_begin_request(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_authenticate_request(
        self, ctx: HttpContext, provider: AuthenticationProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_authenticate_request(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_authorize_request(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_authorize_request(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_resolve_request_cache(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_resolve_request_cache(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_map_request_handler(
        self, ctx: HttpContext, provider: MapHandlerProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_map_request_handler(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_acquire_request_state(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_acquire_request_state(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_pre_execute_request_handler(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_pre_execute_request_handler(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_execute_request_handler(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_release_request_state(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_release_request_state(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_update_request_cache(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_update_request_cache(
        self, ctx: HttpContext, provider: EventProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_log_request(self, ctx: HttpContext, provider: EventProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_log_request(self, ctx: HttpContext, provider: EventProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_end_request(self, ctx: HttpContext, provider: EventProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_post_end_request(self, ctx: HttpContext, provider: EventProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_map_path(self, ctx: HttpContext, provider: MapPathProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_read_entity(self, ctx: HttpContext, provider: ReadEntityProvider) -> HandlerResult:
        return Status.CONTINUE

    async def on_send_response(
        self, ctx: HttpContext, provider: SendResponseProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_custom_request_notification(
        self, ctx: HttpContext, provider: CustomNotificationProvider
    ) -> HandlerResult:
        return Status.CONTINUE

    async def on_async_completion(
        self,
        ctx: HttpContext,
        notification: Notification,
        is_post: bool,
        provider: EventProvider,
        completion: CompletionInfo,
    ) -> HandlerResult:
        """Called after this module's own async operation, ``post_completion`` or child."""
        return Status.CONTINUE

    def dispose(self) -> None:
        """Called once at the end of this module's request."""


def handler_names(notification: Notification) -> tuple[str, str | None]:
    """The (event, post-event) method names for a notification bit."""
    assert notification.name is not None
    base = notification.name.lower()
    name = "on_custom_request_notification" if base == "custom_notification" else f"on_{base}"
    post = None if notification & NON_DETERMINISTIC else f"on_post_{base}"
    return name, post


class ModuleAllocator:
    """IIS ``IModuleAllocator``: request-lifetime memory. Python frees memory itself."""

    def allocate_memory(self, size: int) -> bytearray:
        return bytearray(size)


class ModuleFactory(Protocol):
    """Creates the per-request module instances (IIS ``IHttpModuleFactory``)."""

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule: ...

    def terminate(self) -> None: ...


class SimpleFactory:
    """A factory that calls ``module_class()`` for each request and holds nothing to release.

    ``SimpleFactory(MyModule)``, or ``SimpleFactory(functools.partial(MyModule, settings))``
    for a module whose settings were read once at registration and are shared, read-only, by
    every request's instance.
    """

    def __init__(self, module_class: Callable[[], HttpModule]) -> None:
        self.module_class = module_class

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule:
        return self.module_class()

    def terminate(self) -> None:
        pass


class SharedFactory:
    """A factory for a module that keeps no state of its own between handler calls:
    ``SharedFactory(module)`` hands the one ``module`` to every request.

    The pipeline then never asks for an instance per request (nothing is made or disposed
    per request: the cheapest module there is), and calls ``module.dispose()`` once, when
    the server stops (before ``terminate()``). Its handlers may run for several requests at
    the same time, so per-request state belongs on the context (``ctx.module_context``,
    ``ctx.response``), never on ``self``.
    """

    def __init__(self, module: HttpModule) -> None:
        self.module = module

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule:
        return self.module

    def terminate(self) -> None:
        pass


class GlobalProvider:
    """What a global handler gets; for PRE_BEGIN_REQUEST, ``get_http_context`` works."""

    def __init__(self, ctx: HttpContext | None = None) -> None:
        self._ctx = ctx

    def get_http_context(self) -> HttpContext | None:
        return self._ctx


class ApplicationProvider(GlobalProvider):
    """What GL_APPLICATION_START and GL_APPLICATION_STOP handlers get.

    ``nursery`` is the server's application nursery: it opens before the listeners and
    closes after the last connection ended and every GL_APPLICATION_STOP handler returned
    (what is still running in it then is cancelled). A hosted application's long-lived task
    (an ASGI lifespan, a pool) goes there, never in a request's nursery.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        super().__init__(None)
        self.nursery = nursery


class GlobalModule:
    """Base class of a server-wide module (IIS ``CGlobalModule``)."""

    async def on_global_application_start(
        self, provider: ApplicationProvider
    ) -> GlobalStatus | None:
        """Once, before the server accepts its first connection.

        An exception stops the server from starting: ``serve`` raises ``ConfigError`` with
        the module's name and the exception's message (the CLI prints it, exit status 2).

        Cancellation: the server calls it unshielded; cancelling ``serve`` cancels it.
        """
        return GlobalStatus.CONTINUE

    async def on_global_application_stop(
        self, provider: ApplicationProvider
    ) -> GlobalStatus | None:
        """Once, after every connection ended (or the grace ran out), before ``terminate``.

        Cancellation: the server calls it shielded, with ``shutdown_grace`` as its deadline;
        an exception is logged and the other modules still get theirs.
        """
        return GlobalStatus.CONTINUE

    async def on_global_pre_begin_request(self, provider: GlobalProvider) -> GlobalStatus | None:
        return GlobalStatus.CONTINUE

    async def on_global_stop_listening(self, provider: GlobalProvider) -> GlobalStatus | None:
        return GlobalStatus.CONTINUE

    def terminate(self) -> None:
        """Called once at shutdown."""


_ids = itertools.count(1)
_NONE = Notification(0)
_GLOBAL_NONE = GlobalNotification(0)


@dataclass(slots=True)
class ModuleRegistrationInfo:
    """What ``register_module`` records into (IIS ``IHttpModuleRegistrationInfo``)."""

    name: str
    #: Settings from the module's ``[[modules]]`` table (``options = {...}``); read-only.
    options: Mapping[str, object] = field(default_factory=dict)
    module_id: int = field(default_factory=lambda: next(_ids))
    factory: ModuleFactory | None = None
    notifications: Notification = _NONE
    post_notifications: Notification = _NONE
    priorities: dict[int, Priority] = field(default_factory=dict)
    post_priorities: dict[int, Priority] = field(default_factory=dict)
    global_module: GlobalModule | None = None
    global_notifications: GlobalNotification = _GLOBAL_NONE
    global_priorities: dict[int, Priority] = field(default_factory=dict)
    #: Notification bit -> when the handler can act (``set_request_notification_condition``).
    conditions: dict[int, Condition] = field(default_factory=dict)

    def get_name(self) -> str:
        return self.name

    def get_id(self) -> int:
        """A unique id for this loaded module, stable for its lifetime."""
        return self.module_id

    def set_request_notifications(
        self,
        factory: ModuleFactory,
        notifications: int,
        post_notifications: int = 0,
    ) -> None:
        """Subscribe ``factory``'s modules to events and post-events.

        Post-event bits of non-deterministic notifications are ignored (they have none).

        Raises:
            HResultError: ERROR_ALREADY_EXISTS on a second call; ERROR_INVALID_PARAMETER for
                a factory without ``get_http_module`` or unknown notification bits.
        """
        if self.factory is not None:
            raise HResultError("request notifications already set", hresult=ERROR_ALREADY_EXISTS)
        if not callable(getattr(factory, "get_http_module", None)):
            raise HResultError("factory has no get_http_module", hresult=ERROR_INVALID_PARAMETER)
        self.factory = factory
        self.notifications = _request_mask(notifications)
        self.post_notifications = _request_mask(post_notifications) & ~NON_DETERMINISTIC

    def set_request_notification_condition(self, notifications: int, condition: Condition) -> None:
        """Call this module's handler for the listed notifications only in requests where
        ``condition(ctx)`` is true (not an IIS call: a trioiis extension).

        Where it is false, the pipeline goes on as if the handler had returned CONTINUE
        without doing anything: it does not call the handler, makes no module instance for
        it and records no call in the request's trace. That saves the call on every request
        the handler would pass over (``custom_errors`` names responses below 400, for
        instance). The condition must be cheap and synchronous, change nothing, and be false
        only where the handler would change nothing and return CONTINUE; where it is false
        wrongly, the handler's work is simply not done. An exception in it fails the request
        as an exception in the handler would. Post-notifications are always called.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for a condition that is not callable or
                unknown notification bits.
        """
        if not callable(condition):
            raise HResultError("condition is not callable", hresult=ERROR_INVALID_PARAMETER)
        for bit in _request_mask(notifications):
            self.conditions[int(bit)] = condition

    def set_priority_for_request_notification(self, notifications: int, priority: Priority) -> None:
        """Priority for the listed notifications (MEDIUM when never set)."""
        for bit in _request_mask(notifications):
            self.priorities[int(bit)] = Priority(priority)

    def set_priority_for_post_request_notification(
        self, notifications: int, priority: Priority
    ) -> None:
        """Priority for the listed post-notifications (default: the event's priority)."""
        for bit in _request_mask(notifications):
            self.post_priorities[int(bit)] = Priority(priority)

    def set_global_notifications(self, module: GlobalModule, notifications: int) -> None:
        """Register one global module instance for GL_* notifications.

        Raises:
            HResultError: ERROR_ALREADY_EXISTS on a second call.
        """
        if self.global_module is not None:
            raise HResultError("global notifications already set", hresult=ERROR_ALREADY_EXISTS)
        self.global_module = module
        self.global_notifications = GlobalNotification(notifications)

    def set_priority_for_global_notification(self, notifications: int, priority: Priority) -> None:
        for bit in GlobalNotification(notifications):
            self.global_priorities[int(bit)] = Priority(priority)


#: What ``denied_segments`` is unless configured: a repository, secrets, bytecode.
DEFAULT_DENIED_SEGMENTS: Final[tuple[str, ...]] = (".git", ".env", "__pycache__")

_ALL_REQUEST_BITS = sum(int(bit) for bit in Notification)


def _request_mask(value: int) -> Notification:
    if int(value) & ~_ALL_REQUEST_BITS:
        raise HResultError(
            f"unknown notification bits 0x{int(value):08X}", hresult=ERROR_INVALID_PARAMETER
        )
    return Notification(value)


@dataclass(frozen=True, slots=True)
class GlobalServer:
    """What ``register_module`` gets as its server (IIS ``IHttpServer``, the useful part):
    this server's settings, never another's in the same process.

    Attributes:
        server_version: ``SERVER_VERSION``.
        site_roots: the root of the default site, then of each ``[[sites]]`` entry.
        default_documents: the file names default_document tries, in order.
        denied_segments: URL path segments the built-in file modules never serve (compared
            case-insensitively), like IIS request filtering's ``hiddenSegments``.
        allow_symlinks_outside_root: the built-in file modules serve files that symlinks
            inside a site's root point to outside it.
    """

    server_version: int = SERVER_VERSION
    site_roots: tuple[str, ...] = ()
    default_documents: tuple[str, ...] = ("index.html", "index.htm", "default.htm")
    denied_segments: tuple[str, ...] = DEFAULT_DENIED_SEGMENTS
    allow_symlinks_outside_root: bool = False


class RegisterModule(Protocol):
    """``register_module(server_version, info, server)``, a module's entry point."""

    def __call__(
        self, server_version: int, info: ModuleRegistrationInfo, server: GlobalServer
    ) -> None: ...
