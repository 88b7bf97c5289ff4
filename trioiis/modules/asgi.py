"""asgi: host an ASGI 3 application (HTTP, WebSocket and lifespan scopes) as a handler module.

Mount an app with a handler mapping (``[[handlers]] path = "/app/*", asgi = "myapp:app"``,
or ``trioiis serve --asgi /app/*=myapp:app``): the server then loads this module under the
mapping's name with ``app`` and ``root_path`` set, and EXECUTE_REQUEST_HANDLER of matching
requests runs the app. Every other module (request filtering, custom errors, compression,
the access log) sees the app's requests and responses like any others.

Options (``options = {...}`` of a ``[[modules]]`` entry that loads it by hand):

* ``app`` (required): ``pkg.module:attribute`` or ``path/to/file.py:attribute``.
* ``root_path`` (default ``""``): where the app is mounted (``/app``); the scope's ``path``
  is the full path (``/app/users``), as ASGI 3 and Starlette expect.
* ``lifespan`` (``"auto"``): ``"on"`` runs the lifespan scope and refuses to start the
  server if the app does not support it; ``"auto"`` runs it, and an app that raises before
  answering ``lifespan.startup`` is taken to have no lifespan; ``"off"`` never runs it.
* ``lifespan_timeout`` (60): seconds startup (and shutdown, within the server's grace)
  may take.
* ``disconnect_grace`` (1.0): seconds an app may go on after its client left (or the
  request timed out or the server stopped waiting) — it gets ``http.disconnect`` (or
  ``websocket.disconnect``) at once — before it is cancelled.
* ``websocket_max_message_size`` (16 MiB), ``websocket_ping_interval`` (20; 0 sends no
  pings), ``websocket_ping_timeout`` (20), ``websocket_close_timeout`` (10),
  ``websocket_compression`` (true): the ``WebSocketLimits`` of the app's sockets.

Theory of operation
-------------------
1. **Trio only.** The app is awaited in the request's pipeline task. anyio apps (Starlette,
   FastAPI) detect Trio through sniffio and run on anyio's Trio backend. An app that needs
   asyncio fails with ``AsyncioAppError``, which names the app and says why.
2. **Body in**: ``receive()`` reads with ``ctx.request.read_entity_body`` (so READ_ENTITY
   modules and limits apply), one chunk per ``http.request`` event, ``more_body`` until the
   end. Then it waits for the end of the exchange: ``http.disconnect`` comes when the
   client left, when ``cancel_io()`` aborted a read or a flush, or once the response is
   complete (as Uvicorn does).
3. **Body out**: ``http.response.start`` sets the status and headers (nothing is sent yet);
   each ``http.response.body`` with ``more_body`` is written and flushed (backpressure: the
   send awaits the socket); the last one is left to the pipeline's final flush, so a
   one-piece response gets a Content-Length and SEND_RESPONSE modules (compression, custom
   errors) see it whole. ``send()`` after a disconnect raises ``ClientDisconnectedError``
   (an ``OSError``, as the ASGI spec asks).
4. **Disconnect vs cancellation.** A client that leaves cancels the request nursery
   (DESIGN.md). The app runs in a shielded scope so that it first *sees* ``http.disconnect``;
   the shield gets a deadline of ``disconnect_grace`` at that moment, so the app's own
   cleanup is bounded and nothing outlives the request.
5. **Failures.** An app that raises, or returns without starting a response, gets the
   request a 500 through the pipeline (custom errors apply) and a logged traceback; once
   headers are on the wire the connection is reset instead. An app that returns before
   finishing a started response has its connection reset too: a truncated body must not
   look complete.
7. **WebSockets.** A WebSocket upgrade (``GET`` with ``Upgrade: websocket``, or an HTTP/2
   extended CONNECT with ``:protocol websocket``) gets a ``websocket`` scope
   (``_WebSocketExchange``): ``websocket.connect`` first; then ``websocket.accept`` switches
   the request to the socket (``trioiis._context.websocket``), and
   each ``websocket.receive`` is one whole message. A close from the client, or the client
   vanishing, is ``websocket.disconnect`` with its code (1006 without a close frame), under
   the same rule 4. ``websocket.close`` before the accept answers 403; the denial-response
   extension (``websocket.http.response.start``/``body``) answers with the app's own HTTP
   response. An app that returns with the socket open closes it with 1000 (1011 when it
   raised). A malformed handshake gets a 400 without the app.
6. **Lifespan** runs in the server's application nursery (GL_APPLICATION_START/STOP): startup
   before the first accept, shutdown after the last connection ended. ``lifespan.startup.
   failed`` (or a timeout) stops the server from starting with a one-line error. The
   lifespan ``state`` dict is shallow-copied into every request's scope.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Final, Literal, cast
from urllib.parse import unquote

import trio

import trioiis
from trioiis import (
    ERROR_HANDLE_EOF,
    ConnectionInvalidError,
    GlobalStatus,
    HResultError,
    HttpContext,
    HttpModule,
    Notification,
    OperationAbortedError,
    Status,
    request_scheme,
)
from trioiis._context.websocket import (
    WebSocket,
    WebSocketClosedError,
    WebSocketLimits,
    accept,
    handshake_problem,
    is_websocket_request,
    offered_subprotocols,
)

from . import _options
from ._apps import get_root_path, get_seconds, load_app, redirect_mount_point

log = logging.getLogger("trioiis.asgi")

#: An ASGI message or scope: the spec's own type (a dict of str keys).
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
AsgiApp = Callable[[Message, Receive, Send], Awaitable[None]]

ASGI_VERSION: Final = {"version": "3.0", "spec_version": "2.4"}
#: Bytes asked for per ``http.request`` event.
READ_SIZE: Final = 65536
_WEBSOCKET_OPTIONS: Final = {
    "websocket_max_message_size": "max_message_size",
    "websocket_ping_interval": "ping_interval",
    "websocket_ping_timeout": "ping_timeout",
    "websocket_close_timeout": "close_timeout",
    "websocket_compression": "compression",
}
_OPTIONS: Final = {
    "app",
    "root_path",
    "lifespan",
    "lifespan_timeout",
    "disconnect_grace",
    *_WEBSOCKET_OPTIONS,
}


class ClientDisconnectedError(OSError):
    """``send()`` after the client left (or ``cancel_io()`` aborted the exchange)."""


class AsyncioAppError(RuntimeError):
    """The app needs asyncio; trioiis runs apps on Trio."""


class LifespanError(RuntimeError):
    """Lifespan startup failed, timed out, or is required (``lifespan = "on"``) but the app
    does not support it."""


def asyncio_hint(exc: BaseException) -> str | None:
    """Why ``exc`` says the app needs asyncio, or None.

    Awaiting an asyncio future under Trio yields it to Trio's scheduler ("unrecognized
    yield message"); asking for the running asyncio loop finds none."""
    text = str(exc)
    if isinstance(exc, TypeError) and "yield message" in text:
        return "it awaited an asyncio object"
    if isinstance(exc, RuntimeError) and "no running event loop" in text:
        return "it asked for the running asyncio loop"
    if type(exc).__name__ == "AsyncLibraryNotFoundError":
        return "it could not tell which async library runs it"
    return None


def _asyncio_error(app_name: str, exc: BaseException) -> AsyncioAppError | None:
    hint = asyncio_hint(exc)
    if hint is None:
        return None
    return AsyncioAppError(
        f"ASGI app {app_name} needs asyncio ({hint}: {type(exc).__name__}: {exc}); trioiis"
        " runs apps on Trio: apps written for anyio (Starlette, FastAPI) work, asyncio-only"
        " ones need an asyncio server"
    )


class AsgiApplication:
    """One loaded app: its callable, mount point, lifespan state; shared by its requests."""

    def __init__(
        self,
        name: str,
        app: AsgiApp,
        *,
        root_path: str = "",
        lifespan: Literal["auto", "on", "off"] = "auto",
        lifespan_timeout: float = 60.0,
        disconnect_grace: float = 1.0,
        websocket_limits: WebSocketLimits | None = None,
    ) -> None:
        self.name = name
        self.websocket_limits = websocket_limits or WebSocketLimits()
        self.app = app
        self.root_path = root_path
        self.lifespan = lifespan
        self.lifespan_timeout = lifespan_timeout
        self.disconnect_grace = disconnect_grace
        #: The lifespan scope's ``state``; copied (shallow) into every request's scope.
        self.state: dict[str, Any] = {}
        self._lifespan: _Lifespan | None = None
        #: The loaded module's id (its per-connection storage key).
        self.module_id = 0

    # ------------------------------------------------------------ lifespan

    async def startup(self, nursery: trio.Nursery) -> None:
        """Run the lifespan scope in ``nursery`` until the app answers startup.

        Raises:
            LifespanError: ``lifespan.startup.failed``, a timeout, or an app without
                lifespan support when ``lifespan = "on"``.
            AsyncioAppError: the app needs asyncio.

        Cancellation: a checkpoint; a cancel abandons the startup (the lifespan task is
            cancelled with the server's application nursery).
        """
        if self.lifespan == "off":
            await trio.lowlevel.checkpoint()
            return
        lifespan = _Lifespan(self)
        self._lifespan = lifespan
        nursery.start_soon(lifespan.run, name=f"asgi lifespan {self.name}")
        with trio.move_on_after(self.lifespan_timeout) as timer:
            await lifespan.startup_done.wait()
        if timer.cancelled_caught:
            raise LifespanError(
                f"{self.name}: lifespan startup took more than {self.lifespan_timeout:g} s"
            )
        if lifespan.error is not None:
            raise lifespan.error
        if not lifespan.supported:
            self._lifespan = None
            if self.lifespan == "on":
                raise LifespanError(f"{self.name}: the app does not support the lifespan scope")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the answer (bounded by
        ``lifespan_timeout``; the server adds its own grace). A failure is logged.

        Cancellation: a checkpoint; the server calls it shielded with a deadline; the
            lifespan task is then cancelled with the application nursery.
        """
        lifespan, self._lifespan = self._lifespan, None
        if lifespan is None:
            await trio.lowlevel.checkpoint()
            return
        lifespan.shutdown_requested.set()
        with trio.move_on_after(self.lifespan_timeout):
            await lifespan.shutdown_done.wait()
        if not lifespan.shutdown_done.is_set():
            log.error("%s: lifespan shutdown did not finish in time", self.name)
        elif lifespan.shutdown_message:
            log.error("%s: lifespan shutdown failed: %s", self.name, lifespan.shutdown_message)

    # ------------------------------------------------------------ requests

    def scope_for(self, ctx: HttpContext) -> Message:
        """The ``http`` scope of a request (ASGI 3, HTTP spec 2.4)."""
        request, connection = ctx.request, ctx.connection
        raw_path = request.raw_path
        headers = [(n.lower(), v) for n, v in request.headers.raw()]
        return {
            "type": "http",
            "asgi": dict(ASGI_VERSION),
            "http_version": "2" if request.http_version == "2.0" else request.http_version,
            "method": request.method,
            "scheme": request_scheme(ctx),  # a trusted proxy's X-Forwarded-Proto included
            "path": _decoded_path(raw_path),
            "raw_path": raw_path.encode("latin-1", "replace"),
            "query_string": request.query.encode("latin-1", "replace"),
            "root_path": self.root_path,
            "headers": headers,
            "client": tuple(request.remote_address),  # after PROXY / trusted forwarding
            "server": tuple(connection.local_address),
            "state": dict(self.state),
            "extensions": {},
        }

    async def handle(self, ctx: HttpContext) -> None:
        """Run the app for one request (module rules 2 to 5).

        Raises:
            Exception: what the app raised (``AsyncioAppError`` for an asyncio-only app),
                or ``RuntimeError`` when it returned without a response; the pipeline
                turns it into a 500 (or a reset once headers were sent).

        Cancellation: see rule 4: the app sees ``http.disconnect`` at once and is
            cancelled ``disconnect_grace`` seconds later; the cancel then propagates.
            ``cancel_io()`` aborts a pending read or flush: the app sees
            ``http.disconnect`` from ``receive()`` and ``ClientDisconnectedError`` from
            ``send()``.
        """
        if is_websocket_request(ctx):
            await _WebSocketExchange(self, ctx).run()
            return
        exchange = _Exchange(self, ctx)
        await exchange.run()

    def websocket_scope_for(self, ctx: HttpContext) -> Message:
        """The ``websocket`` scope of an upgrade request (ASGI 3, WebSocket spec 2.4)."""
        scope = self.scope_for(ctx)
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if ctx.connection.secure else "ws"
        scope["subprotocols"] = offered_subprotocols(ctx)
        scope["extensions"] = {"websocket.http.response": {}}
        del scope["method"]
        return scope


def _decoded_path(raw_path: str) -> str:
    """The scope's ``path``: ``raw_path`` percent-decoded as UTF-8, except ``%2F``, which
    stays encoded (decoding it would change the path's segments; Uvicorn does the same)."""
    if "%" not in raw_path:
        return raw_path
    protected = raw_path.replace("%2F", "%252F").replace("%2f", "%252f")
    return unquote(protected, errors="surrogateescape")


class _AppRun:
    """Runs the app for one request under rule 4 (shared by the HTTP and WebSocket
    exchanges): shielded, told of the end at once, cancelled ``disconnect_grace`` later."""

    def __init__(self, application: AsgiApplication, ctx: HttpContext) -> None:
        self.application = application
        self.ctx = ctx
        #: Set when the exchange is over for the app (client gone, request ending, ...).
        self.ended = trio.Event()
        self.app_done = False
        self.app_scope = trio.CancelScope(shield=True)

    def end(self) -> None:
        self.ended.set()

    async def _flush_more(self) -> None:
        """Send what the app wrote so far (``more_body``); a client gone ends the exchange.

        Raises:
            ClientDisconnectedError: the client is gone, or ``cancel_io()`` aborted it.

        Cancellation: as ``HttpResponse.flush``.
        """
        try:
            await self.ctx.response.flush(more_data=True)
        except (OperationAbortedError, ConnectionInvalidError) as exc:
            self.end()
            raise ClientDisconnectedError("the client is gone") from exc

    async def receive(self) -> Message:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        raise NotImplementedError

    async def run_app(self, scope: Message) -> BaseException | None:
        """Await the app; returns what it raised (rule 4 around it)."""
        watcher = _DisconnectWatcher.install(self.ctx, self)
        failure: BaseException | None = None
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._watch_outer_cancel)
                try:
                    with self.app_scope:
                        await self.application.app(scope, self.receive, self.send)
                except Exception as exc:
                    failure = exc
                finally:
                    self.app_done = True
                    nursery.cancel_scope.cancel()
        finally:
            watcher.exchange = None
        return failure

    async def after_app(self, failure: BaseException | None) -> None:
        """Raise what the app raised (an asyncio-only app named as such); once the grace
        ran out, let the outer cancel propagate from here."""
        if failure is not None:
            asyncio_error = _asyncio_error(self.application.name, failure)
            if asyncio_error is not None:
                raise asyncio_error from failure
            raise failure
        if self.app_scope.cancelled_caught:
            # The grace ran out; the outer cancel (already delivered to the watcher)
            # is what ends the request. Checkpoint so that it propagates from here.
            await trio.lowlevel.checkpoint()

    async def _watch_outer_cancel(self) -> None:
        """Rule 4: runs until the app returns; if the request is cancelled first (client
        gone, request timeout, server stopping), tell the app and bound its grace."""
        try:
            await trio.sleep_forever()
        finally:
            if not self.app_done:
                self.end()
                self.app_scope.deadline = min(
                    self.app_scope.deadline,
                    trio.current_time() + self.application.disconnect_grace,
                )


class _Exchange(_AppRun):
    """One request's receive/send pair."""

    def __init__(self, application: AsgiApplication, ctx: HttpContext) -> None:
        super().__init__(application, ctx)
        self.body_done = False
        self.started = False
        self.complete = False

    async def run(self) -> None:
        ctx = self.ctx
        failure = await self.run_app(self.application.scope_for(ctx))
        await self.after_app(failure)
        if not self.started:
            raise RuntimeError(f"ASGI app {self.application.name} returned without a response")
        if not self.complete and not self.ended.is_set():
            log.error(
                "ASGI app %s returned before finishing its response to %s %s; resetting",
                self.application.name,
                ctx.request.method,
                ctx.request.url,
            )
            ctx.response.reset_connection()

    async def receive(self) -> Message:
        """Rule 2."""
        if not self.body_done and not self.ended.is_set():
            request = self.ctx.request
            try:
                data = await request.read_entity_body(READ_SIZE)
            except HResultError as exc:
                if exc.hresult == ERROR_HANDLE_EOF:
                    self.body_done = True
                    return {"type": "http.request", "body": b"", "more_body": False}
                if isinstance(exc, OperationAbortedError | ConnectionInvalidError):
                    self.end()
                    return {"type": "http.disconnect"}
                raise
            self.body_done = request.remaining_entity_bytes == 0
            return {"type": "http.request", "body": data, "more_body": not self.body_done}
        await self.ended.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        """Rule 3."""
        kind = message.get("type")
        response = self.ctx.response
        if self.ended.is_set() and not self.complete:
            await trio.lowlevel.checkpoint()
            raise ClientDisconnectedError("the client is gone")
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            status = message.get("status")
            if type(status) is not int or not 100 <= status <= 999:
                raise TypeError(f"http.response.start status must be an int, not {status!r}")
            self.started = True
            response.set_status(status)
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            await trio.lowlevel.checkpoint()
            return
        if kind == "http.response.body":
            if not self.started:
                raise RuntimeError("http.response.body before http.response.start")
            if self.complete:
                raise RuntimeError("http.response.body after the response was complete")
            body = message.get("body", b"")
            if not isinstance(body, bytes | bytearray | memoryview):
                raise TypeError(f"http.response.body body must be bytes, not {type(body)}")
            if body:
                response.write(bytes(body))
            if message.get("more_body", False):
                await self._flush_more()
            else:
                self.complete = True
                self.end()  # later receive() calls get http.disconnect (as Uvicorn does)
                await trio.lowlevel.checkpoint()
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} for an http scope")


class _WebSocketExchange(_AppRun):
    """One WebSocket's receive/send pair (rule 7); rule 4 as ``_Exchange``."""

    def __init__(self, application: AsgiApplication, ctx: HttpContext) -> None:
        super().__init__(application, ctx)
        self.connected = False  # websocket.connect was received
        self.ws: WebSocket | None = None
        self.denied = False  # closed before the accept, or a denial response started
        self.response_done = False
        self.disconnected = False  # websocket.disconnect was received

    def end(self) -> None:
        self.ended.set()
        if self.ws is not None:
            self.ws.stop_receiving()  # a receive() waiting for a message returns now

    async def run(self) -> None:
        ctx = self.ctx
        problem = handshake_problem(ctx)
        if problem is not None:
            ctx.response.set_status(400)
            ctx.response.write(f"{problem}\n".encode())
            await trio.lowlevel.checkpoint()
            return
        failure = await self.run_app(self.application.websocket_scope_for(ctx))
        ws = self.ws
        if ws is not None and not ws.ended.is_set():
            with trio.CancelScope(shield=True) as closing:
                closing.deadline = trio.current_time() + ws.limits.close_timeout
                with contextlib.suppress(ConnectionInvalidError, OperationAbortedError):
                    await ws.close(1011 if failure is not None else 1000)
        await self.after_app(failure)
        if self.ws is None and not self.denied:
            raise RuntimeError(
                f"ASGI app {self.application.name} returned without accepting or closing"
                " the WebSocket"
            )

    def _disconnect(self) -> Message:
        self.disconnected = True
        ws = self.ws
        code, reason = 1006, ""
        if ws is not None:
            code = ws.close_code
            if ws.received_close is not None:
                reason = ws.received_close.reason
            elif ws.sent_close is not None:
                reason = ws.sent_close.reason
        return {"type": "websocket.disconnect", "code": code, "reason": reason}

    async def receive(self) -> Message:
        """``websocket.connect``, then whole messages, then ``websocket.disconnect``."""
        if not self.connected:
            self.connected = True
            await trio.lowlevel.checkpoint()
            return {"type": "websocket.connect"}
        ws = self.ws
        if ws is None or self.disconnected:
            # Not accepted (or already told): nothing comes but the end.
            await self.ended.wait()
            return self._disconnect()
        data = await ws.receive_message()
        if data is None:
            return self._disconnect()
        if isinstance(data, str):
            return {"type": "websocket.receive", "text": data}
        return {"type": "websocket.receive", "bytes": data}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        ws = self.ws
        if kind == "websocket.accept":
            if ws is not None or self.denied:
                raise RuntimeError("websocket.accept after the socket was accepted or closed")
            headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
            try:
                self.ws = await accept(
                    self.ctx,
                    subprotocol=message.get("subprotocol"),
                    headers=headers,
                    limits=self.application.websocket_limits,
                )
            except (ConnectionInvalidError, OperationAbortedError) as exc:
                self.end()
                raise ClientDisconnectedError("the client is gone") from exc
            return
        if kind == "websocket.send":
            if ws is None:
                raise RuntimeError("websocket.send before websocket.accept")
            text, data = message.get("text"), message.get("bytes")
            payload: bytes | str = text if text is not None else bytes(data or b"")
            try:
                await ws.send(ws.frame_message(payload))
            except (WebSocketClosedError, ConnectionInvalidError, OperationAbortedError) as exc:
                raise ClientDisconnectedError("the WebSocket is closed") from exc
            return
        if kind == "websocket.close":
            code = int(message.get("code", 1000))
            reason = str(message.get("reason") or "")
            if ws is None:
                if self.denied:
                    raise RuntimeError("websocket.close after the handshake was answered")
                self.denied = True  # before the accept: the handshake gets a 403
                self.ctx.response.set_status(403)
                await trio.lowlevel.checkpoint()
                return
            try:
                await ws.send_close(code, reason)
            except (ConnectionInvalidError, OperationAbortedError) as exc:
                raise ClientDisconnectedError("the client is gone") from exc
            return
        if kind == "websocket.http.response.start":
            if ws is not None or self.denied:
                raise RuntimeError("websocket.http.response.start after the handshake")
            self.denied = True
            status = message.get("status")
            if type(status) is not int or not 200 <= status <= 999:
                raise TypeError(f"websocket.http.response.start status: {status!r}")
            response = self.ctx.response
            response.set_status(status)
            for name, value in message.get("headers", ()):
                response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
            await trio.lowlevel.checkpoint()
            return
        if kind == "websocket.http.response.body":
            if not self.denied or ws is not None or self.response_done:
                raise RuntimeError("websocket.http.response.body out of order")
            body = bytes(message.get("body", b""))
            response = self.ctx.response
            if body:
                response.write(body)
            if message.get("more_body", False):
                await self._flush_more()
            else:
                self.response_done = True
                await trio.lowlevel.checkpoint()
            return
        raise RuntimeError(f"unexpected ASGI message type {kind!r} for a websocket scope")


class _DisconnectWatcher:
    """Stored on the connection (one per module and connection): ``notify_disconnect``
    ends the exchange running on it, before the request is cancelled."""

    def __init__(self) -> None:
        self.exchange: _AppRun | None = None

    @classmethod
    def install(cls, ctx: HttpContext, exchange: _AppRun) -> _DisconnectWatcher:
        container = ctx.connection.module_context
        key = exchange.application.module_id
        stored = container.get_module_context(key)
        if not isinstance(stored, cls):
            stored = cls()
            container.set_module_context(stored, key)
        stored.exchange = exchange
        if not ctx.connection.is_connected():
            exchange.end()
        return stored

    def notify_disconnect(self) -> None:
        if self.exchange is not None:
            self.exchange.end()

    def cleanup_stored_context(self) -> None:
        self.exchange = None


class _Lifespan:
    """The lifespan scope's task and the events the module waits on."""

    def __init__(self, application: AsgiApplication) -> None:
        self.application = application
        self.startup_done = trio.Event()
        self.shutdown_requested = trio.Event()
        self.shutdown_done = trio.Event()
        self.supported = False
        self.error: Exception | None = None
        self.shutdown_message = ""
        self._received = 0

    async def run(self) -> None:
        app = self.application
        scope: Message = {"type": "lifespan", "asgi": dict(ASGI_VERSION), "state": app.state}
        try:
            await app.app(scope, self.receive, self.send)
        except Exception as exc:
            asyncio_error = _asyncio_error(app.name, exc)
            if asyncio_error is not None:
                self.error = asyncio_error
            elif not self.startup_done.is_set():
                if app.lifespan == "on" or self.supported:
                    self.error = LifespanError(
                        f"{app.name}: lifespan startup raised {type(exc).__name__}: {exc}"
                    )
                else:
                    log.info("%s: no lifespan support (%s: %s)", app.name, type(exc).__name__, exc)
            else:
                log.exception("%s: the lifespan task failed", app.name)
        finally:
            self.startup_done.set()
            self.shutdown_done.set()

    async def receive(self) -> Message:
        self._received += 1
        if self._received == 1:
            self.supported = True
            return {"type": "lifespan.startup"}
        await self.shutdown_requested.wait()
        return {"type": "lifespan.shutdown"}

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        await trio.lowlevel.checkpoint()
        if kind == "lifespan.startup.complete":
            self.startup_done.set()
        elif kind == "lifespan.startup.failed":
            text = message.get("message", "")
            self.error = LifespanError(
                f"{self.application.name}: lifespan startup failed"
                + (f": {' '.join(str(text).split())}" if text else "")
            )
            self.startup_done.set()
        elif kind == "lifespan.shutdown.complete":
            self.shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self.shutdown_message = str(message.get("message", "")) or "(no message)"
            self.shutdown_done.set()
        else:
            raise RuntimeError(f"unexpected ASGI message type {kind!r} for a lifespan scope")


class AsgiModule(HttpModule):
    """Runs the app at EXECUTE_REQUEST_HANDLER."""

    def __init__(self, application: AsgiApplication) -> None:
        self.application = application

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        """Run the app (``AsgiApplication.handle``); the mapping's later modules do not run.

        Cancellation: as ``AsgiApplication.handle``: the app sees ``http.disconnect`` and is
            cancelled ``disconnect_grace`` seconds later; ``cancel_io()`` aborts its pending
            read or flush only.
        """
        if redirect_mount_point(ctx, self.application.root_path):
            return Status.CONTINUE
        ctx.set_request_handled()
        await self.application.handle(ctx)
        return Status.CONTINUE


class _Global(trioiis.GlobalModule):
    def __init__(self, application: AsgiApplication) -> None:
        self.application = application

    async def on_global_application_start(
        self, provider: trioiis.ApplicationProvider
    ) -> GlobalStatus:
        await self.application.startup(provider.nursery)
        return GlobalStatus.CONTINUE

    async def on_global_application_stop(
        self, provider: trioiis.ApplicationProvider
    ) -> GlobalStatus:
        await self.application.shutdown()
        return GlobalStatus.CONTINUE


def _websocket_limits(name: str, options: Mapping[str, object]) -> WebSocketLimits:
    """The ``websocket_*`` options as ``WebSocketLimits`` (defaults for the others)."""
    given: dict[str, Any] = {}
    for key, field in _WEBSOCKET_OPTIONS.items():
        if key not in options:
            continue
        value = options[key]
        if field == "compression":
            if not isinstance(value, bool):
                raise ValueError(f"{name}: option {key!r} must be true or false")
            given[field] = value
        elif field == "max_message_size":
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name}: option {key!r} must be a positive integer")
            given[field] = value
        else:
            seconds = get_seconds(name, options, key, 0.0)
            given[field] = None if field == "ping_interval" and seconds == 0 else seconds
    return WebSocketLimits(**given)


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    """Load the app named by ``info.options["app"]`` (see the module docstring)."""
    name = info.get_name()
    options = info.options
    _options.check_keys(name, options, _OPTIONS)
    lifespan = options.get("lifespan", "auto")
    if lifespan not in ("auto", "on", "off"):
        raise ValueError(f"{name}: option 'lifespan' must be auto, on or off, not {lifespan!r}")
    application = AsgiApplication(
        name,
        cast("AsgiApp", load_app(name, options.get("app"))),
        root_path=get_root_path(name, options),
        lifespan=lifespan,
        lifespan_timeout=get_seconds(name, options, "lifespan_timeout", 60.0),
        disconnect_grace=get_seconds(name, options, "disconnect_grace", 1.0),
        websocket_limits=_websocket_limits(name, options),
    )
    application.module_id = info.get_id()
    info.set_request_notifications(
        trioiis.SimpleFactory(functools.partial(AsgiModule, application)),
        Notification.EXECUTE_REQUEST_HANDLER,
    )
    info.set_global_notifications(
        _Global(application),
        trioiis.GlobalNotification.APPLICATION_START | trioiis.GlobalNotification.APPLICATION_STOP,
    )
