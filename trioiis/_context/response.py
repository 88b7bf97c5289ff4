"""``HttpResponse``: status, headers and a buffered body that ``flush`` sends."""

from __future__ import annotations

import html
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, final
from urllib.parse import quote, urljoin, urlsplit

from .._constants import (
    ERROR_ARITHMETIC_OVERFLOW,
    ERROR_INVALID_DATA,
    ERROR_INVALID_PARAMETER,
    MAX_RESPONSE_CHUNKS,
    S_OK,
    Notification,
)
from .._errors import HResultError
from .._protocol.http1 import reason_phrase
from . import sending
from .headers import Headers
from .owner import OwningContext

if TYPE_CHECKING:
    from .context import HttpContext


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What ``get_status`` returns: the status and who set it, in which notification."""

    status: int
    sub_status: int
    reason: str
    hresult: int
    module_name: str | None
    notification: Notification | None
    try_skip_custom_errors: bool


@final
class HttpResponse:
    """The response of one context (IIS ``IHttpResponse``).

    ``write`` buffers; nothing reaches the client before ``await flush()`` or the end of the
    request, so the status and headers can change until then (``headers_sent``).
    """

    _ctx = OwningContext()

    def __init__(self, ctx: HttpContext) -> None:
        self._ctx_ref = weakref.ref(ctx)
        self.headers = Headers._empty()
        self._chunks: list[bytes] = []
        self._status = 200
        self._reason = ""
        self._sub_status = 0
        self._hresult = S_OK
        self._status_module: str | None = None
        self._status_notification: Notification | None = None
        self._try_skip_custom_errors = False
        self._suppressed = False
        self.need_disconnect = False
        self.reset = False
        self.error_description = ""

    # -- status

    @property
    def status(self) -> int:
        return self._status

    @property
    def reason(self) -> str:
        return self._reason or reason_phrase(self._status).decode()

    @property
    def sub_status(self) -> int:
        return self._sub_status

    def set_status(
        self,
        status: int,
        reason: str = "",
        sub_status: int = 0,
        hresult: int = S_OK,
        *,
        try_skip_custom_errors: bool = False,
    ) -> None:
        """Set the status; ``try_skip_custom_errors`` asks custom_errors to keep the body.

        Raises:
            HResultError: ERROR_INVALID_DATA for a status outside 200..999 or a reason with
                control characters or over 512 characters.
        """
        # 1xx are the server's to send (100 Continue): a module's final status is >= 200.
        if not 200 <= status <= 999 or len(reason) > 512 or any(c in reason for c in "\r\n\0"):
            raise HResultError(f"invalid status {status} {reason!r}", hresult=ERROR_INVALID_DATA)
        self._status = status
        self._reason = reason
        self._sub_status = sub_status
        self._hresult = hresult
        self._try_skip_custom_errors = try_skip_custom_errors
        self._status_module, self._status_notification = self._ctx._current_module_and_stage()

    def get_status(self) -> StatusInfo:
        return StatusInfo(
            status=self._status,
            sub_status=self._sub_status,
            reason=self.reason,
            hresult=self._hresult,
            module_name=self._status_module,
            notification=self._status_notification,
            try_skip_custom_errors=self._try_skip_custom_errors,
        )

    # -- headers

    def get_header(self, name: str) -> str | None:
        return self.headers.get(name)

    def set_header(self, name: str, value: str, *, replace: bool = True) -> None:
        """Set a header; ``replace=False`` appends ``", value"`` to an existing one."""
        self.headers.set(name, value, replace=replace)

    def delete_header(self, name: str) -> None:
        """Remove a header; removing an absent one is fine."""
        self.headers.delete(name)

    def clear_headers(self) -> None:
        """Remove every header; no effect once ``headers_sent`` (they are on the wire)."""
        if not self.headers_sent:
            self.headers.clear()

    @property
    def headers_sent(self) -> bool:
        """True once the status line and headers are on their way to the client."""
        return self._ctx._headers_sent()

    def suppress_headers(self) -> None:
        """Send no status line or headers: the module writes raw HTTP itself.

        The connection closes after such a response (its framing is the module's).
        """
        self._suppressed = True

    @property
    def headers_suppressed(self) -> bool:
        return self._suppressed

    # -- body

    def write(self, data: bytes | str) -> None:
        """Append to the body buffer (``str`` is encoded as UTF-8)."""
        self.write_entity_chunks([data.encode() if isinstance(data, str) else data])

    def write_entity_chunks(
        self, chunks: list[bytes], *, async_: bool = False, more_data: bool = False
    ) -> tuple[int, bool]:
        """Buffer ``chunks``; with ``async_=True`` also start a flush as pending I/O.

        Returns:
            ``(bytes_buffered, completion_expected)``. With ``async_=True`` completion is
            expected: the calling handler returns ``Status.PENDING`` and its
            ``on_async_completion`` gets the bytes that the flush sent.

        Raises:
            HResultError: ERROR_INVALID_PARAMETER for an empty list; ERROR_ARITHMETIC_OVERFLOW
                past 65535 chunks in one response.
        """
        if not chunks:
            raise HResultError("no chunks to write", hresult=ERROR_INVALID_PARAMETER)
        if len(self._chunks) + len(chunks) > MAX_RESPONSE_CHUNKS:
            raise HResultError("too many chunks", hresult=ERROR_ARITHMETIC_OVERFLOW)
        n = 0
        for chunk in chunks:
            self._chunks.append(bytes(chunk))
            n += len(chunk)
        if async_:
            self._ctx._start_async_io(lambda: self.flush(more_data=more_data))
            return n, True
        return n, False

    def write_entity_chunk_by_reference(self, chunk: bytes, position: int = -1) -> None:
        """Buffer ``chunk`` at the end (-1) or before everything buffered (0)."""
        if position not in (0, -1):
            raise HResultError("position must be 0 or -1", hresult=ERROR_INVALID_PARAMETER)
        if len(self._chunks) + 1 > MAX_RESPONSE_CHUNKS:
            raise HResultError("too many chunks", hresult=ERROR_ARITHMETIC_OVERFLOW)
        if position == 0:
            self._chunks.insert(0, bytes(chunk))
        else:
            self._chunks.append(bytes(chunk))

    @property
    def buffered(self) -> bytes:
        """The body bytes buffered and not yet sent."""
        return b"".join(self._chunks)

    @property
    def buffered_length(self) -> int:
        """How many body bytes are buffered (``len(buffered)`` without joining them)."""
        return sum(map(len, self._chunks))

    def _take_buffer(self) -> list[bytes]:
        chunks, self._chunks = self._chunks, []
        return chunks

    def clear(self) -> None:
        """Reset status, headers and buffered body.

        Once ``headers_sent`` only the unsent buffered body is dropped: the status and
        headers stay what the client got (and what ``get_status`` and the log report).
        """
        self._chunks.clear()
        if self.headers_sent:
            return
        self.headers.clear()
        self._status, self._reason, self._sub_status, self._hresult = 200, "", 0, S_OK
        self._try_skip_custom_errors = False

    def clear_body(self) -> None:
        self._chunks.clear()

    async def transmit_file(self, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of the open file ``fd`` from ``offset`` as body bytes (IIS:
        an ``HTTP_DATA_CHUNK`` of type ``HttpDataChunkFromFileHandle``).

        Flushes first (status, headers and buffered body; SEND_RESPONSE is raised with
        ``MORE_DATA``), then sends the range: zero-copy with ``os.sendfile`` on a plain
        socket, in worker-thread reads elsewhere (TLS, a child whose output is buffered for
        its parent). ``fd`` stays open and owned by the caller; the file bytes pass no
        SEND_RESPONSE handler, so compression does not apply to them.

        Returns:
            The file bytes sent: ``count``, or 0 where the response has no body (HEAD,
            204, 304).

        Raises:
            OperationAbortedError: ``cancel_io()`` aborted it; ``completion_bytes`` is how
                much went out. The body cannot be completed any more: reset the connection.
            ConnectionInvalidError: the client is gone.
            HResultError: ERROR_HANDLE_EOF when the file ended before ``count`` bytes (it
                shrank); ERROR_INVALID_PARAMETER for a negative range; E_FAIL when the range
                is longer than the response's Content-Length.

        Cancellation:
            A checkpoint. ``trio.Cancelled`` stops it between two sends; the connection is
            then closed after the response (its body is cut short).
        """
        return await sending.transmit_file(self._ctx, fd, offset, count)

    async def flush(self, *, more_data: bool = False) -> int:
        """Send the status and headers (the first time) and the buffered body.

        Raises SEND_RESPONSE first. Without a Content-Length the response then goes out
        chunked (HTTP/1.1) or close-delimited (HTTP/1.0).

        Returns:
            Body bytes sent by this call (not the status line, headers or chunk framing).

        Raises:
            OperationAbortedError: ``cancel_io()`` aborted the flush; its
                ``completion.completion_bytes`` counts the body bytes that went out; the rest stays
                queued in order, so the response stays well-formed and the next flush (or the
                end of the request) sends it.
            ConnectionInvalidError: the client is gone.

        Cancellation:
            A checkpoint. ``trio.Cancelled`` leaves unsent bytes queued just like
            ``cancel_io()`` (on TLS streams the connection is closed after the response,
            since how much of the cut piece went out is unknown).
        """
        return await sending.flush(self._ctx, final=False, more_data=more_data)

    # -- redirects and connection control

    def redirect(
        self, url: str, *, reset_status_code: bool = True, include_query: bool = False
    ) -> None:
        """Redirect: 302 with an absolute ``Location`` (the request's host), body dropped.

        With ``reset_status_code=False`` the status is kept and a short HTML "moved" body is
        written. No effect once ``headers_sent``. Return ``Status.FINISH_REQUEST`` after it.
        """
        if not url or any(c in url for c in "\r\n\0"):
            raise HResultError("invalid redirect URL", hresult=ERROR_INVALID_PARAMETER)
        if self.headers_sent:
            return
        request = self._ctx.request
        # Non-ASCII would not fit in a header: percent-encode it (as UTF-8), like browsers.
        url = quote(url, safe="!#$%&'()*+,/:;=?@[]~")
        if not urlsplit(url).scheme:  # relative ("/new", "new", "//host/x"): make absolute
            host = request.get_header("host")
            if not host:
                addr, port = request.local_address
                host = f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"
            url = urljoin(f"{self._ctx._scheme()}://{host}{request.raw_path}", url)
        if include_query and request.query:
            url = f"{url}{'&' if '?' in url else '?'}{request.query}"
        self._chunks.clear()
        if reset_status_code:
            self.set_status(302)
        else:
            self.write(f'<html><body>Object moved to <a href="{html.escape(url)}">here</a>.')
        self.headers.set("Location", url)

    def reset_connection(self) -> None:
        """Abort the connection now (TCP RST); nothing buffered is sent.

        The pipeline goes on unless the handler returns ``Status.FINISH_REQUEST``.
        """
        self.reset = True
        self._chunks.clear()
        self._ctx._reset_connection()

    def set_need_disconnect(self) -> None:
        """Send this whole response, then close the connection (no next request)."""
        self.need_disconnect = True

    def close_connection(self) -> None:
        """Close the connection now (IIS ``CloseConnection``: like ``reset_connection``)."""
        self.reset_connection()

    def get_error_description(self) -> str:
        """What ``set_error_description`` recorded (empty if nothing)."""
        return self.error_description

    def set_error_description(self, text: str) -> None:
        """Text describing the error, for error-page modules and traces (IIS
        ``SetErrorDescription``); trioiis itself never sends it to the client."""
        self.error_description = text
