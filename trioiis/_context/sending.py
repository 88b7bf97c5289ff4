"""The send path: a context's response to the wire, through the transport seam.

Theory of operation
-------------------
1. **Where output goes** (context.py rule 4). A child run with ``BUFFER_RESPONSE`` (or
   below one) keeps its output for its parent; everything else goes to the ``Wire``: the one
   response on the connection (or stream), shared by a root request and the children that
   write to it. There is always one status line and one framing.
2. **SEND_RESPONSE first.** Every flush raises SEND_RESPONSE (its handlers may still change
   the status, headers and buffered body), then hands the buffer over.
3. **The head once.** The first flush that reaches the wire sends the head of the context
   that owns it (a ``NO_HEADERS`` child uses its parent's), adding ``Content-Length`` when
   the whole body is known, and asks the transport to close after the response when a
   module said ``set_need_disconnect``. A module that suppressed the headers writes raw
   bytes instead.
4. **The lifecycle hears what the transport did**: handing the head over fires
   ``HEAD_SENT`` on the root. Whether the transport handed the response's last byte over
   (``RESPONSE_DONE``) is asked when it matters, not after every write (``note_progress``):
   when the peer goes away (a response already delivered in full is never reported
   cancelled), before LOG_REQUEST (whose handlers read the outcome as it stands) and at the
   request's end (``RequestLifecycle.end``).
5. **Every wait is a pending I/O.** ``try_write`` first (no checkpoint and no cancel scope
   when the kernel takes it all); otherwise the write runs in a pending-I/O scope of the
   context (``cancel_io``) and counts the body bytes that moved.
6. **Errors.** The peer gone (``PeerGoneError``) or too slow (``PeerTooSlowError``) become
   ``ConnectionInvalidError`` after the context recorded the reason (``_wire_broken``);
   framing the module got wrong (``FramingError``) fails the wire: the connection is
   aborted after the request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from .._constants import (
    ERROR_HANDLE_EOF,
    ERROR_INVALID_PARAMETER,
    ExecuteFlags,
    Notification,
    SendResponseFlags,
)
from .._errors import HResultError
from .._lifecycle import Event, Outcome, RequestState
from .._protocol.http1 import FILE_PIECE, reason_phrase
from .._protocol.http1_writer import FramingError
from .._protocol.transport import PeerGoneError, PeerTooSlowError, Transport
from .providers import SendResponseProvider

if TYPE_CHECKING:
    from .context import HttpContext

#: The SEND_RESPONSE flags a flush starts from, by MORE_DATA (2) | DISCONNECT (1) (a tuple
#: lookup: no enum arithmetic per response).
_SEND_FLAGS = tuple(SendResponseFlags(bits) for bits in range(4))
_DISCONNECT = int(SendResponseFlags.DISCONNECT)
# Module constants: an enum class attribute is looked up through EnumType.__getattr__'s slow
# hook in Python 3.11.
_HEAD_SENT = Event.HEAD_SENT
_RESPONSE_DONE = Event.RESPONSE_DONE
_RESPONSE_STARTED = RequestState.RESPONSE_STARTED
_SEND_RESPONSE = Notification.SEND_RESPONSE
_NO_HEADERS = ExecuteFlags.NO_HEADERS
_COMPLETED = Outcome.COMPLETED
_CANCELLED = Outcome.CANCELLED_BY_CLIENT


@dataclass(slots=True)
class Wire:
    """The one response on the wire, shared by a root request and its children (rule 1)."""

    transport: Transport
    head_sent: bool = False
    #: The status of the head queued (a child's, when it wrote first): what the client gets,
    #: whatever a module sets afterwards. 0 before, and for a raw response.
    status: int = 0
    #: The headers were suppressed: modules write raw bytes (rule 3).
    raw: bool = False
    #: A send failed or a module reset the connection: nothing more goes out, and the
    #: connection is aborted after the request.
    failed: bool = False


def note_progress(ctx: HttpContext) -> None:
    """Rule 4: fire ``RESPONSE_DONE`` on the root if its transport reports the response
    complete."""
    root = ctx._root
    lifecycle = root.lifecycle
    if lifecycle.state is _RESPONSE_STARTED and root._wire.transport.response_complete:
        lifecycle.fire(_RESPONSE_DONE)


def reported_status(ctx: HttpContext, outcome: Outcome) -> int:
    """The status every report gives a root request that ended with ``outcome`` (the access
    log, the counters by status, metrics, traces): the one the client got. Invariants: the
    status reported is the status line that went out (a child's that wrote first; never one
    a module set after it), and a status that never went out is never reported: with no
    status line sent it is nginx's word for why, 499 (the client left first) or 444 (the
    server closed without a response)."""
    wire = ctx._wire
    # (a raw response's status line is the module's own bytes: any of them went out)
    if outcome is _COMPLETED or (wire.head_sent and (wire.transport.head_written or wire.raw)):
        return wire.status or ctx.response.status
    return 499 if outcome is _CANCELLED else 444


async def flush(ctx: HttpContext, *, final: bool, more_data: bool, checkpoint: bool = True) -> int:
    """SEND_RESPONSE, then hand the buffer to where this context's output goes (rules 1, 2).

    Returns the body bytes sent (0 when kept in a buffer for a parent).
    """
    ctx._check_alive()
    response = ctx.response
    parent = ctx._parent
    flags = _SEND_FLAGS[
        (2 if more_data or not final or parent is not None else 0)
        | (1 if response.need_disconnect else 0)
    ]
    being_sent = not ctx._headers_sent() and not response.headers_suppressed
    if parent is not None and ctx._execute_flags & _NO_HEADERS:
        being_sent = False
    provider = SendResponseProvider(flags, being_sent)
    await ctx._pipeline.notify(ctx, _SEND_RESPONSE, provider, checkpoint=checkpoint)
    if int(provider.flags) & _DISCONNECT:  # (int &: no enum arithmetic)
        response.need_disconnect = True  # a SEND_RESPONSE handler asked to close after
    if response.reset or ctx._wire.failed:
        response.clear_body()
        return 0
    if ctx._is_buffered():
        if final:
            ctx._produced += response.buffered_length
        return 0
    return await _send(ctx, end=final and parent is None)


def _head_owner(ctx: HttpContext) -> HttpContext:
    while ctx._parent is not None and ctx._execute_flags & _NO_HEADERS:
        ctx = ctx._parent
    return ctx


async def _send(ctx: HttpContext, *, end: bool) -> int:
    """Queue the head (once), the buffered body and maybe the end, then write it all in one
    go. Returns the body bytes this call moved (the status line, headers and framing not
    counted), which is also what an abort's ``completion_bytes`` counts."""
    wire = ctx._wire
    transport = wire.transport
    body = b"".join(ctx.response._take_buffer())
    ctx._produced += len(body)
    queued = 0  # body bytes of this call the transport took (none for HEAD, 204, 304)
    try:
        if not wire.head_sent:
            owner = _head_owner(ctx)
            if owner.response.headers_suppressed:
                wire.raw = True
            else:
                _send_head(ctx, owner, body, end=end)
            wire.head_sent = True
            (ctx._root_of_child or ctx).lifecycle.fire(_HEAD_SENT)
        if body:
            queued = transport.send_raw(body) if wire.raw else transport.send_body(body)
        if end:
            transport.send_end()
    except FramingError as exc:  # the module's framing was wrong
        wire.failed = True
        raise HResultError(f"response could not be sent: {exc}") from exc
    if transport.try_write():
        return queued  # all out at once: nothing was ever pending
    # This call's body bytes end at ``until`` in the response's body (others may queue more
    # behind them while this waits): what went out of them is the sent bytes past its start.
    until = transport.body_bytes_queued

    def moved() -> int:
        return min(queued, max(0, transport.body_bytes_sent - (until - queued)))

    try:
        with ctx._pending_io(moved, "write"):
            await transport.write()
    except (PeerGoneError, PeerTooSlowError) as exc:
        raise ctx._wire_broken(exc) from exc
    return moved()


def _send_head(ctx: HttpContext, owner: HttpContext, body: bytes, *, end: bool) -> None:
    response = owner.response
    # A child's head goes out while its parent may still write: no length, so whatever the
    # parent adds keeps the response well-formed.
    headers, framed = response.headers._for_head(drop_length=ctx._parent is not None)
    # No length where none may be sent (204, 304) or where it would be a lie (a HEAD
    # answered without a body says nothing about the GET's length).
    bodiless = response.status in (204, 304)
    if end and not framed and not bodiless and (body or ctx.request.method != "HEAD"):
        headers.append((b"content-length", str(len(body)).encode()))
    close = ctx._root.response.need_disconnect or response.need_disconnect
    status = ctx._wire.status = response.status
    # (``response.reason``, as bytes: the module's own, else the standard phrase)
    reason = response._reason.encode("latin-1") if response._reason else reason_phrase(status)
    ctx._wire.transport.send_head(status, reason, headers, close=close)


async def transmit_file(ctx: HttpContext, fd: int, offset: int, count: int) -> int:
    """``HttpResponse.transmit_file``: flush, then the file range as body bytes."""
    if offset < 0 or count < 0:
        raise HResultError("negative file range", hresult=ERROR_INVALID_PARAMETER)
    await flush(ctx, final=False, more_data=True)
    wire = ctx._wire
    if count == 0 or ctx.response.reset or wire.failed:
        return 0
    if ctx._is_buffered() or wire.raw:
        # Kept for a parent, or a module that writes its own head: plain body bytes.
        return await _transmit_buffered(ctx, fd, offset, count)
    transport = wire.transport
    start = transport.body_bytes_sent

    def moved() -> int:
        return min(count, transport.body_bytes_sent - start)

    try:
        with ctx._pending_io(moved, "transmit_file"):
            sent = await transport.transmit_file(fd, offset, count)
    except (PeerGoneError, PeerTooSlowError) as exc:
        raise ctx._wire_broken(exc) from exc
    except EOFError as exc:
        wire.failed = True
        raise HResultError(f"file ended early: {exc}", hresult=ERROR_HANDLE_EOF) from exc
    except HResultError:
        raise  # OperationAbortedError: cancel_io()
    except (FramingError, OSError) as exc:  # longer than the Content-Length; a disk error
        wire.failed = True
        raise HResultError(f"response could not be sent: {exc}") from exc
    ctx._produced += sent
    return sent


async def _transmit_buffered(ctx: HttpContext, fd: int, offset: int, count: int) -> int:
    done = 0
    while done < count:
        data = await trio.to_thread.run_sync(
            os.pread, fd, min(FILE_PIECE, count - done), offset + done
        )
        if not data:
            raise HResultError("file ended early", hresult=ERROR_HANDLE_EOF)
        ctx.response.write(data)
        await flush(ctx, final=False, more_data=True)
        done += len(data)
    return done
