"""``HttpRequest``: the request a module sees, and where its entity body comes from."""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol, final
from urllib.parse import unquote

import trio

from .._constants import ERROR_HANDLE_EOF, ERROR_INVALID_PARAMETER, S_OK
from .._errors import BodyTooLargeError as BodyTooLargeError
from .._errors import CompletionInfo, HResultError
from .._errors import MalformedBodyError as MalformedBodyError
from .._errors import RequestBodyError as RequestBodyError
from .._memo import memoize_short
from .._protocol.transport import PeerGoneError, PeerTooSlowError, Transport
from .headers import Headers
from .owner import OwningContext

if TYPE_CHECKING:
    from .context import HttpContext


@memoize_short  # several modules ask for it on every request
def _decoded_path(url: str) -> str:
    """``HttpRequest.path`` of ``url``."""
    return unquote(url.partition("?")[0], errors="surrogateescape")


class BodySource(Protocol):
    """Where a request's entity body comes from (the connection, or a parent's copy).

    ``receive`` is a checkpoint; a cancel (or ``cancel_io()``, through the pending-I/O scope
    its caller holds) loses no byte: unread bytes stay buffered for the next call."""

    async def receive(self, max_bytes: int) -> bytes: ...

    @property
    def remaining(self) -> int | None: ...


class ConnectionBody:
    """The body of the request being read from the client, through its transport (whose
    errors pass through: ``read_entity_body`` turns them into the request's)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    async def receive(self, max_bytes: int) -> bytes:
        return await self._transport.receive_body(max_bytes)

    @property
    def remaining(self) -> int | None:
        return self._transport.body_remaining


class ReplayBody:
    """A copied body: bytes already read by the parent, then the parent's unread rest."""

    __slots__ = ("_prefix", "_rest")

    def __init__(self, prefix: bytes, rest: BodySource | None) -> None:
        self._prefix = prefix
        self._rest = rest

    async def receive(self, max_bytes: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:max_bytes], self._prefix[max_bytes:]
            await trio.lowlevel.checkpoint()
            return data
        if self._rest is None:
            await trio.lowlevel.checkpoint()
            return b""
        return await self._rest.receive(max_bytes)

    @property
    def remaining(self) -> int | None:
        rest = 0 if self._rest is None else self._rest.remaining
        return None if rest is None else len(self._prefix) + rest


class EmptyBody:
    """No body at all (stateless: every bodiless request shares ``EMPTY_BODY``)."""

    __slots__ = ()

    async def receive(self, max_bytes: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return b""

    @property
    def remaining(self) -> int | None:
        return 0


EMPTY_BODY: BodySource = EmptyBody()

#: Bytes of entity body a request remembers so that ``clone_context(ENTITY)`` can copy it.
ENTITY_COPY_LIMIT = 1024 * 1024


@final
class HttpRequest:
    """The HTTP request of one context (IIS ``IHttpRequest``).

    Only the server creates requests. Attributes that IIS exposes as getters are properties.
    """

    _ctx = OwningContext()

    # (positional or keyword: one is made per request, positionally)
    def __init__(
        self,
        ctx: HttpContext,
        method: str,
        url: str,
        http_version: str,
        headers: Headers,
        body: BodySource,
        remote_address: tuple[str, int],
        local_address: tuple[str, int],
    ) -> None:
        self._ctx_ref = weakref.ref(ctx)
        self._method = method
        self._url = url
        self._original_url = url
        self._url_changed = False
        self.http_version = http_version
        self.headers = headers
        self._body = body
        self._inserted = b""
        self._seen: bytearray | None = None  # (made at the first body bytes read)
        self._seen_overflow = False
        self.remote_address = remote_address
        self.local_address = local_address

    # -- line and headers

    @property
    def method(self) -> str:
        return self._method

    @property
    def url(self) -> str:
        """The request target as the pipeline now sees it (path and query)."""
        return self._url

    @property
    def path(self) -> str:
        """The URL's path, percent-decoded (what handlers map to files).

        Bytes that are not UTF-8 (``%ff``) decode as lone surrogates, as ``os.fsdecode``
        does; ``map_path`` refuses such paths.
        """
        return _decoded_path(self._url)

    @property
    def raw_path(self) -> str:
        return self._url.partition("?")[0]

    @property
    def query(self) -> str:
        return self._url.partition("?")[2]

    @property
    def original_url(self) -> str:
        """The URL the client sent (the ``URL`` server variable keeps it too)."""
        return self._original_url

    @property
    def url_changed(self) -> bool:
        """True once ``set_url`` changed the URL."""
        return self._url_changed

    def get_header(self, name: str) -> str | None:
        """The header's value, or None when absent."""
        return self.headers.get(name)

    def set_header(self, name: str, value: str, *, replace: bool = True) -> None:
        """Set a header; ``replace=False`` appends ``", value"`` to an existing one."""
        self.headers.set(name, value, replace=replace)

    def delete_header(self, name: str) -> None:
        self.headers.delete(name)

    def set_url(self, url: str, *, reset_query_string: bool = False) -> None:
        """Make later stages process ``url`` instead (no redirect is sent).

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for a URL that is not an origin-form path.
        """
        if not url.startswith("/") or any(c in url for c in "\r\n\0 "):
            raise HResultError(f"invalid URL {url!r}", hresult=ERROR_INVALID_PARAMETER)
        if not reset_query_string and "?" not in url and self.query:
            url = f"{url}?{self.query}"
        self._url = url
        self._url_changed = True

    def set_http_method(self, method: str) -> None:
        """Later stages and the log see ``method``."""
        if not method or not method.isascii() or not method.isalpha():
            raise HResultError(f"invalid method {method!r}", hresult=ERROR_INVALID_PARAMETER)
        self._method = method

    # -- entity body

    @property
    def remaining_entity_bytes(self) -> int | None:
        """Body bytes not yet read; None while unknown (chunked body not yet finished)."""
        rest = self._body.remaining
        return None if rest is None else rest + len(self._inserted)

    def insert_entity_body(self, data: bytes) -> None:
        """Put ``data`` in front of the unread body (Content-Length is left as it is)."""
        self._inserted = bytes(data) + self._inserted

    async def read_entity_body(self, max_bytes: int = 65536) -> bytes:
        """Read up to ``max_bytes`` (at least one) of the entity body.

        Raises READ_ENTITY on every call, even when nothing is left (its handlers then see
        zero bytes and may supply some).

        Returns:
            The bytes read, never empty.

        Raises:
            HResultError: ERROR_HANDLE_EOF when the whole body was already read.
            OperationAbortedError: ``cancel_io()`` aborted the read; no byte was consumed.
            ConnectionInvalidError: the client went away mid-body.
            ModuleFailedError: a READ_ENTITY handler raised (the request answers 500).
            BodyTooLargeError: a chunked body grew past the server limit (the client gets 413).
            MalformedBodyError: broken chunked framing (the client gets 400).

        Cancellation:
            A checkpoint. ``trio.Cancelled`` or ``cancel_io()`` while waiting for the client
            loses nothing: unread bytes stay buffered for the next call. The abort's
            ``completion.completion_bytes`` is therefore always 0.
        """
        if max_bytes <= 0:
            raise HResultError("max_bytes must be positive", hresult=ERROR_INVALID_PARAMETER)
        ctx = self._ctx
        ctx._check_alive()
        if self._inserted:
            data, self._inserted = self._inserted[:max_bytes], self._inserted[max_bytes:]
            await trio.lowlevel.checkpoint()
        elif self._body.remaining == 0:
            data = b""
            await trio.lowlevel.checkpoint()
        else:
            try:
                with ctx._pending_io(kind="read") as io:
                    data = await self._body.receive(max_bytes)
                    io.done_bytes = len(data)
            except (PeerGoneError, PeerTooSlowError) as exc:
                raise ctx._wire_broken(exc, reading=True) from exc
        data = await ctx._raise_read_entity(data)
        if not data:
            raise HResultError("the entity body was already read", hresult=ERROR_HANDLE_EOF)
        if not self._seen_overflow:
            seen = self._seen
            if seen is None:
                seen = self._seen = bytearray()
            if len(seen) + len(data) <= ENTITY_COPY_LIMIT:
                seen += data
            else:
                self._seen_overflow = True
                seen.clear()
        return data

    def read_entity_body_async(self, max_bytes: int = 65536) -> bool:
        """Start an IIS-style asynchronous read of up to ``max_bytes``.

        Returns:
            ``completion_expected`` (always True): return ``Status.PENDING``; the calling
            module's ``on_async_completion`` then gets a ``CompletionInfo`` with the bytes in
            ``data``, their count in ``completion_bytes`` and ``completion_status`` S_OK,
            ERROR_HANDLE_EOF (nothing was left), ERROR_OPERATION_ABORTED (``cancel_io()``) or
            ERROR_CONNECTION_INVALID (the client left).

        Cancellation: the read runs as a task of the request (cancelled with it); its wait
            is pending I/O that ``cancel_io()`` aborts, which completes it as said above.
        """
        self._ctx._check_alive()

        async def read() -> CompletionInfo:
            data = await self.read_entity_body(max_bytes)
            return CompletionInfo(len(data), S_OK, data)

        self._ctx._start_async_io(read)
        return True

    def iter_entity_body(self, chunk_size: int = 65536) -> AsyncIterator[bytes]:
        """``async for chunk in request.iter_entity_body():`` the rest of the body in pieces
        of at most ``chunk_size``; stops at its end.

        A plain async iterator, not an async generator, so leaving the loop early (an
        exception, a cancel) needs no ``aclosing``.

        Cancellation: as ``read_entity_body`` for each piece.
        """
        return _EntityBodyIterator(self, chunk_size)

    async def read_all(self, limit: int = ENTITY_COPY_LIMIT) -> bytes:
        """The rest of the body as one bytes object (at most ``limit`` bytes).

        Raises:
            BodyTooLargeError: more than ``limit`` bytes remain.

        Cancellation: as ``read_entity_body``; bytes read before a cancel are lost to the
            caller (they were consumed).
        """
        parts = bytearray()
        async for chunk in self.iter_entity_body():
            parts += chunk
            if len(parts) > limit:
                raise BodyTooLargeError(f"request body over {limit} bytes")
        return bytes(parts)

    def _copy_entity(self) -> BodySource:
        """A body source for a clone: what was read so far, then the unread rest."""
        if self._seen_overflow:
            from .._errors import NotSupportedError

            raise NotSupportedError(
                f"cannot copy an entity body of more than {ENTITY_COPY_LIMIT} bytes"
            )
        rest = self._body if self._body.remaining != 0 else None
        return ReplayBody(bytes(self._seen or b"") + self._inserted, rest)


class _EntityBodyIterator:
    """What ``iter_entity_body`` returns."""

    __slots__ = ("_chunk_size", "_request")

    def __init__(self, request: HttpRequest, chunk_size: int) -> None:
        self._request = request
        self._chunk_size = chunk_size

    def __aiter__(self) -> _EntityBodyIterator:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await self._request.read_entity_body(self._chunk_size)
        except HResultError as exc:
            if exc.hresult == ERROR_HANDLE_EOF:
                raise StopAsyncIteration from None
            raise
