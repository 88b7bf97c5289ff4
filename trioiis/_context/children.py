"""Child requests: ``clone_context``, ``execute_request`` / ``run_child`` and what a child
inherits (IIS ``IHttpContext3::CloneContext`` and ``ExecuteRequest``). The public methods are
``HttpContext``'s; their work is here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from .._constants import (
    ERROR_INVALID_PARAMETER,
    ERROR_OPERATION_ABORTED,
    MAX_CHILD_DEPTH,
    CloneFlags,
    ExecuteFlags,
)
from .._errors import CompletionInfo, HResultError, NotSupportedError, StackOverflowError
from .._lifecycle import Event, RequestState
from .headers import Headers
from .request import EMPTY_BODY

if TYPE_CHECKING:
    from .context import HttpContext
    from .providers import HttpUser

_PRECONDITION_HEADERS = frozenset(
    {"range", "if-range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"}
)
_DAV_HEADERS = frozenset({"depth", "destination", "overwrite", "lock-token", "timeout", "if"})
_CLONE_FLAGS_ALL = int(
    CloneFlags.BASICS
    | CloneFlags.HEADERS
    | CloneFlags.ENTITY
    | CloneFlags.NO_PRECONDITION
    | CloneFlags.NO_DAV
    | CloneFlags.SERVER_VARIABLE
)


def clone(parent: HttpContext, flags: CloneFlags) -> HttpContext:
    """``parent.clone_context(flags)`` (see there)."""
    parent._check_alive()
    if int(flags) & ~_CLONE_FLAGS_ALL:
        raise HResultError(f"unknown clone flags {flags!r}", hresult=ERROR_INVALID_PARAMETER)
    request = parent.request
    headers = Headers()
    if flags & CloneFlags.HEADERS:
        for name, value in request.headers:
            lower = name.lower()
            if flags & CloneFlags.NO_PRECONDITION and lower in _PRECONDITION_HEADERS:
                continue
            if flags & CloneFlags.NO_DAV and lower in _DAV_HEADERS:
                continue
            headers.add(name, value)
    basics = bool(flags & CloneFlags.BASICS)
    child: HttpContext = type(parent)._create(
        pipeline=parent._pipeline,
        connection=parent.connection,
        site=parent.site,
        wire=parent._wire,
        method=request.method if basics else "GET",
        url=request.url if basics else "/",
        http_version=request.http_version,
        headers=headers,
        body=request._copy_entity() if flags & CloneFlags.ENTITY else EMPTY_BODY,
        parent=parent,
    )
    if flags & CloneFlags.SERVER_VARIABLE and parent._server_variables:
        child._server_variables = dict(parent._server_variables)
    child.user = parent.user
    return child


def check_execute(parent: HttpContext, child: HttpContext, async_: bool) -> None:
    """Refuse what ``execute_request`` / ``run_child`` must not run (see there)."""
    parent._check_alive()
    if not async_:
        raise NotSupportedError("execute_request is asynchronous only (async_=True)")
    if child._parent is not parent:
        raise NotSupportedError("the child was not cloned from this context")
    if child.lifecycle.state is not RequestState.CLONED or child._released:
        raise NotSupportedError("a cloned context runs only once")
    if child._depth > MAX_CHILD_DEPTH:
        raise StackOverflowError(f"child requests nest at most {MAX_CHILD_DEPTH} levels")


def prepare_child(
    parent: HttpContext, child: HttpContext, flags: ExecuteFlags, user: HttpUser | None
) -> None:
    """Give ``child`` what it inherits from ``parent`` for this run, and start it."""
    child._execute_flags = ExecuteFlags(flags)
    if flags & ExecuteFlags.SAME_URL:
        child.request._url = parent.request.url
    if user is not None:
        child.user = user
    child._skip_authentication = user is not None
    child._excluded_handlers = parent._excluded_handlers
    if flags & ExecuteFlags.IGNORE_CURRENT_INTERCEPTOR:
        child._excluded_handlers |= {parent.handler}
    child.lifecycle.fire(Event.EXECUTE)


async def run_child(parent: HttpContext, child: HttpContext) -> CompletionInfo:
    """Run ``child`` through the pipeline as ``parent``'s child; its completion."""
    if child._released:  # released before its task got to run: it never starts
        await trio.lowlevel.checkpoint()
        return CompletionInfo(0, ERROR_OPERATION_ABORTED)
    if parent._children is None:
        parent._children = []
    parent._children.append(child)
    parent._pipeline.counters.child_requests_by_depth[child._depth] += 1
    try:
        with trio.CancelScope() as scope:
            child._release_scope = scope
            info = await parent._pipeline.run_request(child)
        if scope.cancelled_caught:
            info = CompletionInfo(child._produced, ERROR_OPERATION_ABORTED)
    finally:
        parent._children.remove(child)  # (made above)
    if child._execute_flags & ExecuteFlags.BUFFER_RESPONSE and not child._released:
        # (context.py rule 4) A buffered child's body goes into its parent's buffer.
        parent.response._chunks.extend(child.response._take_buffer())
    return info
