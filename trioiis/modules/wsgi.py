"""wsgi: host a WSGI (PEP 3333) application — Flask, Django — as a handler module.

Mount an app with a handler mapping (``[[handlers]] path = "/shop/*", wsgi = "shop:app"``, or
``trioiis serve --wsgi /shop/*=shop:app``). Every other module (request filtering, custom
errors, compression, the access log) sees the app's requests and responses like any others.

Options (``options = {...}`` of a ``[[modules]]`` entry that loads it by hand):

* ``app`` (required): ``pkg.module:attribute`` or ``path/to/file.py:attribute``.
* ``root_path`` (default ``""``): where the app is mounted: ``SCRIPT_NAME``; ``PATH_INFO``
  is the rest of the path.
* ``threads`` (default 8): how many requests the app serves at once. It is a
  ``trio.CapacityLimiter`` of its own; requests beyond it wait (cancellably) for a thread.

Theory of operation
-------------------
1. **One worker thread per request**, from ``trio.to_thread.run_sync`` under the app's
   limiter: the app is called there and its iterable iterated there.
2. **Streaming both ways through Trio.** ``wsgi.input`` reads call back into Trio
   (``trio.from_thread.run``) for ``ctx.request.read_entity_body``, one chunk at a time; each
   chunk the app yields (or gives ``write()``) is written and flushed from Trio, so the
   thread waits for the socket (backpressure). An iterable with exactly one item is left to
   the pipeline's final flush instead (a Content-Length, and SEND_RESPONSE modules see it
   whole). Status and headers go out with the first body bytes (PEP 3333).
3. **``close()`` is always called** on the app's iterable, in the worker thread, whether the
   iteration ended, failed, or was abandoned.
4. **A WSGI app cannot be interrupted.** When the request is cancelled (client gone,
   request timeout, shutdown) the Trio side stops waiting at once and the thread is
   *abandoned*: its result is dropped, and its next read or write raises
   ``ClientDisconnectedError`` (an ``OSError``) so that it unwinds, closes its iterable and
   ends. It keeps its limiter slot until then, so the number of threads stays bounded. A
   ``cancel_io()`` that aborts a read or a flush does the same to that one call.
5. **Failures**: an exception from the app, or an iterable without ``start_response``, gets
   the request a 500 through the pipeline (custom errors apply) and a logged traceback;
   once headers are on the wire the connection is reset instead.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Final, cast
from urllib.parse import unquote_to_bytes

import trio

import trioiis
from trioiis import (
    ERROR_HANDLE_EOF,
    ConnectionInvalidError,
    HResultError,
    HttpContext,
    HttpModule,
    Notification,
    OperationAbortedError,
    Status,
    request_scheme,
)

from . import _options
from ._apps import get_root_path, load_app, redirect_mount_point

log = logging.getLogger("trioiis.wsgi")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

READ_SIZE: Final = 65536
_OPTIONS: Final = {"app", "root_path", "threads"}
#: Hop-by-hop headers an app must not set (PEP 3333); the server frames the response.
_HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})


class ClientDisconnectedError(OSError):
    """A read or write of an abandoned request (client gone, cancelled, ``cancel_io``)."""


class WsgiApplication:
    """One loaded app: its callable, mount point and thread limiter."""

    def __init__(self, name: str, app: WsgiApp, *, root_path: str = "", threads: int = 8) -> None:
        self.name = name
        self.app = app
        self.root_path = root_path
        self.limiter = trio.CapacityLimiter(threads)

    def environ_for(self, ctx: HttpContext, wsgi_input: io.RawIOBase) -> dict[str, Any]:
        """The PEP 3333 environ of a request."""
        request, connection = ctx.request, ctx.connection
        path = unquote_to_bytes(request.raw_path).decode("latin-1")
        script_name = self.root_path
        if script_name and (path == script_name or path.startswith(script_name + "/")):
            path = path[len(script_name) :]
        host = request.get_header("host") or connection.local_address[0]
        server_name = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
        environ: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path,
            "QUERY_STRING": request.query,
            "SERVER_NAME": server_name or connection.local_address[0],
            "SERVER_PORT": ctx.get_server_variable("SERVER_PORT"),
            "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
            "REMOTE_ADDR": request.remote_address[0],
            "REMOTE_PORT": str(request.remote_address[1]),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request_scheme(ctx),  # a trusted proxy's word included
            "wsgi.input": wsgi_input,
            "wsgi.input_terminated": True,
            "wsgi.errors": _Errors(),
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }
        for name, value in request.headers:
            key = name.upper().replace("-", "_")
            if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                environ[key] = value
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    async def handle(self, ctx: HttpContext) -> None:
        """Run the app for one request in a worker thread (module rules 1 to 5).

        Raises:
            Exception: what the app raised, or ``RuntimeError`` when it never called
                ``start_response``; the pipeline turns it into a 500 (or a reset).

        Cancellation: waiting for a thread is a plain checkpoint. Once the app runs, a
            cancel returns at once and abandons the thread (rule 4): nothing the app does
            after that reaches the client. ``cancel_io()`` aborts a pending read or flush
            of the request: the app gets ``ClientDisconnectedError`` from that call.
        """
        exchange = _Exchange(self, ctx)
        try:
            await trio.to_thread.run_sync(
                exchange.in_thread, limiter=self.limiter, abandon_on_cancel=True
            )
        finally:
            exchange.abandoned = True  # any later call from the thread fails (rule 4)


class _Exchange:
    """One request, seen from both sides. Fields are only touched on the Trio thread,
    except ``status``/``headers``/``exc_info`` (set by ``start_response`` in the worker,
    read by Trio while the worker waits in ``from_thread.run``)."""

    def __init__(self, application: WsgiApplication, ctx: HttpContext) -> None:
        self.application = application
        self.ctx = ctx
        self.abandoned = False
        self.body_done = False
        self.status: tuple[int, str] | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_applied = False

    # ------------------------------------------------------------ worker thread

    def in_thread(self) -> None:
        environ = self.application.environ_for(self.ctx, _Input(self))
        result = self.application.app(environ, self.start_response)
        try:
            single = _has_one_item(result)
            for chunk in result:
                if chunk:
                    trio.from_thread.run(self.write_chunk, bytes(chunk), not single)
            trio.from_thread.run(self.finish)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: ExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            if self.headers_applied:
                raise exc_info[1].with_traceback(exc_info[2])
        elif self.status is not None:
            raise RuntimeError("start_response called twice without exc_info")
        code, _, reason = status.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"WSGI status {status!r} is not 'NNN reason'")
        self.status = (int(code), reason)
        self.headers = [(str(n), str(v)) for n, v in headers]
        return self.write

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy ``write()``: sent (and flushed) at once."""
        if data:
            trio.from_thread.run(self.write_chunk, bytes(data), True)

    def read(self, size: int) -> bytes:
        if self.body_done:
            return b""
        return trio.from_thread.run(self.read_chunk, size)

    # ------------------------------------------------------------ trio side

    def _check(self) -> None:
        if self.abandoned:
            raise ClientDisconnectedError("the request was abandoned (client gone or cancelled)")

    def _apply_headers(self) -> None:
        if self.headers_applied:
            return
        if self.status is None:
            raise RuntimeError(f"WSGI app {self.application.name} did not call start_response")
        response = self.ctx.response
        response.set_status(*self.status)
        for name, value in self.headers:
            if name.lower() in _HOP_BY_HOP:
                continue
            response.headers.add(name, value)
        self.headers_applied = True

    async def write_chunk(self, data: bytes, flush: bool) -> None:
        self._check()
        self._apply_headers()
        response = self.ctx.response
        response.write(data)
        if flush:
            try:
                await response.flush(more_data=True)
            except (OperationAbortedError, ConnectionInvalidError) as exc:
                self.abandoned = True
                raise ClientDisconnectedError("the client is gone") from exc
        else:
            await trio.lowlevel.checkpoint()

    async def finish(self) -> None:
        self._check()
        self._apply_headers()
        await trio.lowlevel.checkpoint()

    async def read_chunk(self, size: int) -> bytes:
        self._check()
        try:
            data = await self.ctx.request.read_entity_body(max(1, min(size, READ_SIZE)))
        except HResultError as exc:
            if exc.hresult == ERROR_HANDLE_EOF:
                self.body_done = True
                return b""
            if isinstance(exc, OperationAbortedError | ConnectionInvalidError):
                self.abandoned = True
                raise ClientDisconnectedError("the client is gone") from exc
            raise
        if self.ctx.request.remaining_entity_bytes == 0:
            self.body_done = True
        return data


def _has_one_item(result: Iterable[bytes]) -> bool:
    try:
        return len(result) == 1  # type: ignore[arg-type]  # any iterable; a list has len
    except TypeError:
        return False


class _Input(io.RawIOBase):
    """``wsgi.input``: reads call into Trio for the next piece of the body."""

    def __init__(self, exchange: _Exchange) -> None:
        super().__init__()
        self._exchange = exchange
        self._buffer = bytearray()
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> bool:
        """One more chunk into the buffer; False at the end of the body."""
        if self._eof:
            return False
        data = self._exchange.read(READ_SIZE)
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            while self._fill():
                pass
        else:
            while len(self._buffer) < size and self._fill():
                pass
        end = len(self._buffer) if size is None or size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = -1 if size is None else size
        while True:
            newline = self._buffer.find(b"\n")
            if newline >= 0 or (0 <= limit <= len(self._buffer)) or not self._fill():
                break
        end = newline + 1 if newline >= 0 else len(self._buffer)
        if limit >= 0:
            end = min(end, limit)
        data = bytes(self._buffer[:end])
        del self._buffer[:end]
        return data

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class _Errors:
    """``wsgi.errors``: lines go to the ``trioiis.wsgi`` logger."""

    def __init__(self) -> None:
        self._partial = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            lines = (self._partial + text).split("\n")
            self._partial = lines.pop()
        for line in lines:
            log.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            partial, self._partial = self._partial, ""
        if partial:
            log.error("%s", partial)


class WsgiModule(HttpModule):
    """Runs the app at EXECUTE_REQUEST_HANDLER."""

    def __init__(self, application: WsgiApplication) -> None:
        self.application = application

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        """Run the app in a worker thread (``WsgiApplication.handle``).

        Cancellation: as ``WsgiApplication.handle``: returns at once and abandons the thread,
            which unwinds at its next read or write; ``cancel_io()`` fails the pending read
            or flush only.
        """
        if redirect_mount_point(ctx, self.application.root_path):
            return Status.CONTINUE
        ctx.set_request_handled()
        await self.application.handle(ctx)
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    """Load the app named by ``info.options["app"]`` (see the module docstring)."""
    name = info.get_name()
    options = info.options
    _options.check_keys(name, options, _OPTIONS)
    threads = _options.get_int(name, options, "threads", 8)
    if threads < 1:
        raise ValueError(f"{name}: option 'threads' must be at least 1")
    application = WsgiApplication(
        name,
        cast("WsgiApp", load_app(name, options.get("app"))),
        root_path=get_root_path(name, options),
        threads=threads,
    )
    info.set_request_notifications(
        trioiis.SimpleFactory(functools.partial(WsgiModule, application)),
        Notification.EXECUTE_REQUEST_HANDLER,
    )
