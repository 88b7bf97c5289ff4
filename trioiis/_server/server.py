"""``HttpServer``: listeners, one task per connection, one pipeline run per request.

Task tree (DESIGN.md's, with an idle connection held by one task)::

    serve()
    ├── idle reaper: one task for every idle connection's keep-alive clock (idle.py)
    ├── accept loop (one per listening socket; accepts in batches)
    └── connection nursery
        ├── connection task (one per socket): the pump, the connection's only reader;
        │   notices EOF/RST (the disconnect watcher)
        └── request loop (only while the connection has requests; the pump starts it)
            └── request: pipeline.serve_request(ctx) — its own nursery, children nested inside

An idle keep-alive connection is its connection task alone (no nursery, no cancel scope:
the reaper holds its clock). The connection task waits for its request loop before it
closes the socket. ``handle_stream`` keeps the same shape inside a nursery of its own.

Shutdown: ``shutdown(grace)`` stops accepting, closes idle connections, lets requests in
flight finish (their connections close after the response), and cancels what is left when
``grace`` runs out. Then every factory gets ``terminate()``.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import logging
import math
import socket as stdlib_socket
import ssl
import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

import trio

from .._constants import SERVER_VERSION
from .._context import websocket
from .._context.connection import HttpConnection
from .._context.context import HttpContext
from .._context.headers import Headers
from .._context.origin import apply_forwarded
from .._context.request import EMPTY_BODY, ConnectionBody
from .._context.sending import Wire
from .._errors import ConfigError, describe_exception
from .._lifecycle import Outcome
from .._observability.counters import ServerCounters
from .._observability.tracing import Tracer, open_trace_writer
from .._pipeline.pipeline import Pipeline
from .._pipeline.registration import ModuleRegistrationInfo, RegisterModule
from .._protocol.forwarded import TrustedProxies
from .._protocol.http1 import (
    HeadError,
    HeadParser,
    Http1Connection,
    RequestHead,
    error_response_bytes,
)
from .._protocol.http1_fast import available as fast_parser_available
from .._protocol.http1_fast import parse_head_fast
from .._protocol.http1_writer import request_keep_alive
from .._protocol.http2 import Http2Connection, sniff_preface
from .._protocol.http2_transport import Http2Transport
from .._protocol.proxy_protocol import ProxyProtocolError
from .._protocol.proxy_protocol import receive as receive_proxy_header
from .._protocol.transport import Transport
from ..config import (
    BUILTIN_MODULES,
    DEFAULT_MODULES,
    Binding,
    ServerConfig,
    binding_address,
    load_register_function,
    parse_binding,
)
from .access_log import AccessLog
from .https_redirect import Answer, serve_https_redirect
from .idle import IdleReaper
from .preflight import preflight, tls_context
from .sites import SiteTable
from .sockets import peername, sockname
from .tls import answer_plain_http
from .watchdog import Watchdog

if TYPE_CHECKING:
    from .autohttps import AutoHttps

log = logging.getLogger("trioiis")

_ACCEPT_BATCH = 256
# Task names: one string for every connection, not one made per task.
_CONNECTION_TASK = "trioiis connection"
_REQUESTS_TASK = "trioiis requests"
_MEMORY_TASK = "trioiis in-memory request"
#: Seconds a TLS connection may take to send its close_notify before it is just closed.
_TLS_CLOSE_TIMEOUT = 1.0


class _Outcome(enum.Enum):
    IDLE = "idle"  # nothing of a next request yet: the reader waits for it
    CLOSE = "close"  # close after the response (lingering, so it arrives whole)
    ABORT = "abort"  # reset the connection


# (module constants: an enum class attribute is looked up through a slow hook in Python 3.11)
_IDLE, _CLOSE, _ABORT = _Outcome.IDLE, _Outcome.CLOSE, _Outcome.ABORT


class _Session:
    """One connection's request loop: which request runs, how many were served, how it
    ends, and its idle clock.

    An idle keep-alive connection is its reader task alone (``Http1Connection.pump``); the
    request loop runs in a task of its own only while there are requests, started in
    ``nursery``. For ``handle_stream`` that is the connection's own nursery, whose cancel
    scope carries the idle deadline; the server's own sockets use the server's connection
    nursery and the shared ``IdleReaper`` instead, so that an idle one holds no nursery and
    no cancel scope either (memory per idle connection).
    """

    __slots__ = (
        "abort", "connection", "done", "http", "nursery", "reaper", "running", "served",
        "server",
    )  # fmt: skip

    def __init__(
        self,
        server: HttpServer,
        http: Http1Connection,
        connection: HttpConnection,
        nursery: trio.Nursery,
        reaper: IdleReaper | None,
    ) -> None:
        self.server = server
        self.http = http
        self.connection = connection
        self.nursery = nursery
        self.reaper = reaper
        self.running = False
        self.served = 0
        self.abort = False
        self.done: trio.Event | None = None  # made when someone waits for the loop to end

    def on_data(self) -> None:
        """Bytes arrived (``pump``): start the request loop unless it runs already."""
        self.server._start_requests(self)

    def on_disconnect(self) -> None:
        """The peer closed or reset the connection: tell the running request (the one
        watching the connection, its transport), or mark the connection gone."""
        if not self.http.peer_gone():
            self.connection._mark_gone()

    def go_idle(self, timeout: float) -> None:
        """Start the idle clock: the reader stops ``timeout`` s from now unless bytes come."""
        if self.reaper is not None:
            self.reaper.watch(self, timeout)
        else:
            self.nursery.cancel_scope.deadline = trio.current_time() + timeout

    def idle_at_most(self, timeout: float) -> None:
        """As ``go_idle``, unless the clock already runs out sooner."""
        if self.reaper is not None:
            self.reaper.watch(self, timeout)  # the first of its clocks to run out wins
        else:
            scope = self.nursery.cancel_scope
            scope.deadline = min(scope.deadline, trio.current_time() + timeout)

    def go_busy(self) -> None:
        if self.reaper is not None:
            self.reaper.forget(self)
        else:
            self.nursery.cancel_scope.deadline = math.inf

    @property
    def stopped(self) -> bool:
        """The reader was told to stop: no new request starts."""
        if self.reaper is not None:
            return self.http.reading_stopped
        return self.nursery.cancel_scope.cancel_called

    def stop_reader(self) -> None:
        """End the connection's reader task (then the connection closes)."""
        if self.reaper is not None:
            self.reaper.forget(self)
            self.http.stop_reading()
        else:
            self.nursery.cancel_scope.cancel()

    def expire(self) -> None:
        """The idle clock ran out (``IdleReaper``)."""
        if not self.running:
            self.stop_reader()

    def loop_ended(self) -> None:
        self.running = False
        if self.done is not None:
            self.done.set()

    async def wait_loop(self) -> None:
        """Wait until the request loop has ended.

        Cancellation: shielded: the loop ends by itself (a cancelled request still runs its
        bounded tail), and the connection must not close under it."""
        if not self.running:
            return
        if self.done is None:
            self.done = trio.Event()
        with trio.CancelScope(shield=True):
            await self.done.wait()


class HttpServer:
    """An HTTP/1.1 server running the integrated pipeline.

    Example::

        server = HttpServer(ServerConfig(root="site", bindings=["127.0.0.1:0"]))
        server.register_module("hello", register_module)
        async with trio.open_nursery() as nursery:
            bound = await nursery.start(server.serve)
            ...
            await server.shutdown(grace=5.0)
    """

    def __init__(
        self,
        config: ServerConfig | None = None,
        *,
        sockets: Sequence[stdlib_socket.socket] | None = None,
        redirect_sockets: Sequence[stdlib_socket.socket] | None = None,
    ) -> None:
        """``sockets``: listening sockets already open (inherited from a supervisor, or
        systemd's ``LISTEN_FDS``) to serve instead of opening ``config.bindings``;
        ``redirect_sockets``: the same for ``config.https_redirect``. The server owns them
        from now on and closes them when it stops."""
        self.config = config or ServerConfig()
        self._given_sockets = list(sockets) if sockets is not None else None
        self._given_redirect_sockets = (
            list(redirect_sockets) if redirect_sockets is not None else None
        )
        self._trusted = TrustedProxies(self.config.trusted_proxies)
        self._any_trusted = bool(self._trusted)  # (read on every request)
        self.counters = ServerCounters()
        self._registrations: list[ModuleRegistrationInfo] = []
        self._pipeline: Pipeline | None = None
        self._stop = trio.Event()
        self._done = trio.Event()
        self._grace = self.config.shutdown_grace
        self._draining = False
        self._live: set[_Session] = set()
        self._live_http2: set[Http2Connection] = set()
        self._sniffing: set[trio.CancelScope] = set()  # connections not yet sent a byte
        self._connections: trio.Nursery | None = None  # where connections and requests run
        self._reaper: IdleReaper | None = None  # idle clocks of the server's own sockets
        self._slots: trio.Semaphore | None = None
        self._access_log = AccessLog(self.config.access_log, self.config.access_log_format)
        #: ``(host, port)`` of each ``https_redirect`` binding, once ``serve`` listens.
        self.redirect_bound: list[tuple[str, int]] = []
        self._sites = SiteTable(self.config.root, self.config.sites)
        #: The top-level root's site (site 1).
        self.site = self._sites.top
        self._ssl_context: ssl.SSLContext | None = None
        #: The listening sockets that serve TLS (their file descriptors).
        self._tls_fds: set[int] = set()
        #: ``(host, port)`` of each TLS socket of ``tls_bindings``, once ``serve`` listens.
        self.tls_bound: list[tuple[str, int]] = []
        #: Certificates from an ACME CA (``acme``), or None.
        self.auto_https: AutoHttps | None = None
        # The TLS context of each HTTP/2 setting some binding has (ALPN differs).
        self._ssl_contexts: dict[bool, ssl.SSLContext] = {}
        self._http2_by_socket: dict[int, bool] = {}  # listening socket's fd → HTTP/2 on
        self._head_parser: HeadParser | None = None
        if self.config.http == "fast":
            if not fast_parser_available():
                raise ConfigError("http = \"fast\" needs httptools: pip install 'trioiis[fast]'")
            self._head_parser = parse_head_fast
        configured = {spec.name for spec in self.config.modules}
        if self.config.acme_enabled:  # its module first: challenges and redirects come first
            from .autohttps import AutoHttps

            self.auto_https = AutoHttps(self.config)
            self.register_module("acme_challenge", self.auto_https.register_module)
        if self.config.builtin_modules:
            for name in DEFAULT_MODULES:
                if name not in configured:  # a [[modules]] entry of that name replaces it
                    self.register_module(name, load_register_function(BUILTIN_MODULES[name]))
        for spec in self.config.modules:
            self.register_module(spec.name, load_register_function(spec.target), spec.options)

    # ------------------------------------------------------------ modules

    def register_module(
        self,
        name: str,
        register: RegisterModule,
        options: Mapping[str, object] | None = None,
    ) -> ModuleRegistrationInfo:
        """Load a module: call its ``register_module(server_version, info, server)`` once;
        ``options`` (from its ``[[modules]]`` table) reach it as ``info.options``.

        Raises:
            ConfigError: the name is taken, registration already closed (``serve`` started),
                or the module's ``register_module`` raised.
        """
        if self._pipeline is not None:
            raise ConfigError("modules must be registered before serve() starts")
        if any(r.name == name for r in self._registrations):
            raise ConfigError(f"a module named {name!r} is already loaded")
        info = ModuleRegistrationInfo(name, options=MappingProxyType(dict(options or {})))
        server = self.config.global_server()
        try:
            register(SERVER_VERSION, info, server)
        except Exception as exc:
            raise ConfigError(
                f"module {name!r} failed to register: {describe_exception(exc)}"
            ) from exc
        self._registrations.append(info)
        return info

    @property
    def module_names(self) -> tuple[str, ...]:
        """The loaded modules' names, in the order they were registered."""
        return tuple(r.name for r in self._registrations)

    @property
    def pipeline(self) -> Pipeline:
        """The compiled pipeline (compiled on first use; registration then closes)."""
        if self._pipeline is None:
            config = self.config
            tracer = None
            if config.trace_dir is not None:
                tracer = Tracer(
                    config.trace_dir,
                    config.trace_when,
                    max_files=config.trace_max_files,
                    max_events=config.trace_max_events,
                    counters=self.counters,
                )
            self._pipeline = Pipeline(
                self._registrations,
                config.handlers,
                counters=self.counters,
                request_timeout=config.limits.request_timeout,
                tracer=tracer,
            )
        return self._pipeline

    # ------------------------------------------------------------ serving

    async def serve(
        self, *, task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on every binding and serve until ``shutdown`` (or cancellation).

        ``task_status.started`` gets the ``(host, port)`` pairs actually bound.

        Raises:
            ConfigError: a binding cannot be opened (address in use, no permission, …),
                the TLS certificate or key cannot be loaded, ``trace_dir`` cannot be created,
                or a module failed at GL_APPLICATION_START (an ASGI app's lifespan startup,
                for instance).

        Cancellation: cancelling ``serve`` cancels every connection at once; requests still
            run LOG_REQUEST/END_REQUEST (shielded, bounded) and factories get ``terminate()``.
            Traces already queued are still written (shielded, bounded).
        """
        async with open_trace_writer(self.pipeline.tracer):
            await self._serve(task_status=task_status)

    def reopen_access_log(self) -> None:
        """Open ``access_log`` again (SIGUSR1, after a log rotator renamed it).

        Raises:
            ConfigError: the new file cannot be opened; lines keep going to the old one.
        """
        self._access_log.reopen()

    async def _serve(self, *, task_status: trio.TaskStatus[list[tuple[str, int]]]) -> None:
        pipeline = self.pipeline
        self._slots = trio.Semaphore(self.config.max_connections)
        sockets: list[stdlib_socket.socket] = []
        try:
            self._ssl_context = preflight(self.config)  # what check-config checks, too
            if self.auto_https is not None:
                self._ssl_context = self.auto_https.tls_context(self._ssl_context)
            sockets = self._open_sockets() if self._given_sockets is None else self._adopt()
            self._tls_per_binding()
            self._access_log.open()
            # The applications' nursery (GL_APPLICATION_START/STOP) outlives every
            # connection: an app is started before the first accept and stopped after the
            # last connection ended.
            try:
                async with trio.open_nursery() as applications:
                    await pipeline.application_start(applications)
                    await self._serve_listeners(sockets, task_status)
                    with trio.CancelScope(shield=True) as stopping:
                        stopping.deadline = trio.current_time() + self._grace
                        await pipeline.application_stop(applications)
                    applications.cancel_scope.cancel()  # what the apps left behind
            except BaseExceptionGroup as group:
                raise _sole_exception(group) from None
        finally:
            for sock in sockets:
                sock.close()
            pipeline.terminate()
            self._access_log.close()
            self._done.set()

    async def _serve_listeners(
        self,
        sockets: list[stdlib_socket.socket],
        task_status: trio.TaskStatus[list[tuple[str, int]]],
    ) -> None:
        """Accept on ``sockets`` until ``shutdown``, then drain the connections (grace)."""
        bound = [sockname(s) for s in sockets]
        async with trio.open_nursery() as housekeeping:
            self._reaper = IdleReaper()
            housekeeping.start_soon(self._reaper.run, name="trioiis idle reaper")
            if self.config.watchdog_threshold > 0:
                watchdog = Watchdog(self.config.watchdog_threshold, self.counters)
                await housekeeping.start(watchdog.run, name="trioiis watchdog")
            self.tls_bound = [sockname(s) for s in sockets if s.fileno() in self._tls_fds]
            if self.auto_https is not None:
                self.auto_https.https_port = self.tls_bound[0][1] if self.tls_bound else None
                await housekeeping.start(self.auto_https.run, name="trioiis acme")
            if self.config.https_redirect:
                # To the first TLS binding: with ``tls_bindings`` the first binding is
                # cleartext.
                https_port = (self.tls_bound or bound)[0][1]
                self.redirect_bound = await housekeeping.start(
                    serve_https_redirect, self._redirect_sockets(), https_port, self._redirected
                )
            await self._serve_connections(sockets, bound, task_status)
            housekeeping.cancel_scope.cancel()

    async def _serve_connections(
        self,
        sockets: list[stdlib_socket.socket],
        bound: list[tuple[str, int]],
        task_status: trio.TaskStatus[list[tuple[str, int]]],
    ) -> None:
        pipeline = self.pipeline
        scheme = "https" if self._ssl_context is not None else "http"
        async with trio.open_nursery() as connections:
            self._connections = connections
            async with trio.open_nursery() as acceptors:
                for sock in sockets:
                    acceptors.start_soon(self._accept_loop, sock, connections)
                log.debug("serving %s", ", ".join(f"{scheme}://{_fmt(h, p)}/" for h, p in bound))
                task_status.started(bound)
                await self._stop.wait()
                acceptors.cancel_scope.cancel()
            for sock in sockets:
                sock.close()
            self._draining = True
            with trio.CancelScope(shield=True) as notifying:
                notifying.deadline = trio.current_time() + self._grace
                await pipeline.stop_listening()
            for session in self._live:
                self._drain(session)
            for http2 in self._live_http2:
                websocket.going_away(http2)  # each WebSocket stream closes with 1001
                http2.drain()  # GOAWAY; its streams in flight finish within the grace
            for sniffing in self._sniffing:
                self._drain_sniff(sniffing)
            connections.cancel_scope.deadline = trio.current_time() + self._grace

    async def shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, finish requests in flight (at most ``grace`` seconds), then return.

        Cancellation: cancelling the caller stops the wait, not the shutdown.
        """
        if grace is not None:
            self._grace = grace
        self._stop.set()
        await self._done.wait()

    def _open_sockets(self) -> list[stdlib_socket.socket]:
        """A listening socket per address of each binding, each with that binding's
        HTTP/2 setting; then the ``tls_bindings`` ones."""
        sockets: list[stdlib_socket.socket] = []
        try:
            for binding in self.config.bindings:
                http2 = self.config.binding_http2(binding)
                for sock in open_listeners([binding_address(binding)]):
                    sockets.append(sock)
                    self._http2_by_socket[sock.fileno()] = http2
            tls = open_listeners(self.config.tls_bindings)
        except ConfigError:
            for sock in sockets:
                sock.close()
            raise
        self._tls_fds = {s.fileno() for s in tls}
        return sockets + tls

    def _redirect_sockets(self) -> list[stdlib_socket.socket]:
        """The ``https_redirect`` listening sockets: the given ones (once), else opened."""
        given, self._given_redirect_sockets = self._given_redirect_sockets, []
        if given is None:
            try:
                return open_listeners(self.config.https_redirect)
            except ConfigError as exc:
                raise ConfigError(f"https_redirect: {exc}") from exc
        for sock in given:
            sock.setblocking(False)
        return given

    def _adopt(self) -> list[stdlib_socket.socket]:
        """The sockets given to the constructor, made non-blocking (once: a second serve()
        would find them closed); each gets the HTTP/2 setting of the binding on its port."""
        sockets, self._given_sockets = self._given_sockets or [], []
        for sock in sockets:
            sock.setblocking(False)
            binding = binding_listening_on(self.config.bindings, sockname(sock))
            http2 = self.config.http2 if binding is None else self.config.binding_http2(binding)
            self._http2_by_socket[sock.fileno()] = http2
        # A given socket serves TLS when its port is a tls_bindings port.
        tls_ports = {parse_binding(b)[1] for b in self.config.tls_bindings}
        self._tls_fds = {s.fileno() for s in sockets if sockname(s)[1] in tls_ports}
        return sockets

    def _tls_per_binding(self) -> None:
        """With TLS, a context for each HTTP/2 setting the listening sockets have."""
        if self._ssl_context is None:
            return
        self._ssl_contexts = {self.config.http2: self._ssl_context}
        secure = {fd: h for fd, h in self._http2_by_socket.items() if self._serves_tls(fd)}
        for http2 in set(secure.values()) - {self.config.http2}:
            context = tls_context(self.config, http2=http2)
            assert context is not None
            self._ssl_contexts[http2] = context

    def _serves_tls(self, fd: int) -> bool:
        """The listening socket ``fd`` serves TLS: every one with ``tls_cert`` alone, only
        the ``tls_bindings`` ones when there are some (``bindings`` stay cleartext)."""
        if self._ssl_context is None:
            return False
        return not self.config.tls_bindings or fd in self._tls_fds

    async def _accept_loop(self, sock: stdlib_socket.socket, nursery: trio.Nursery) -> None:
        # Accept in batches until the socket would block: trio.serve_listeners takes one
        # connection per scheduler turn, which starves the accept loop under a burst.
        assert self._slots is not None
        refuse_when_full = self.config.when_full == "refuse"
        http2 = self._http2_by_socket.get(sock.fileno(), self.config.http2)
        secure = self._serves_tls(sock.fileno())
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(_ACCEPT_BATCH):
                if refuse_when_full and self._slots.value == 0:
                    if not _refuse_one(sock):
                        break
                    self.counters.connections_refused += 1
                    continue
                await self._slots.acquire()
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    self._slots.release()
                    break
                except OSError as exc:
                    self._slots.release()
                    if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                        continue  # that one client is gone; the next may be fine
                    # Out of descriptors or memory, or anything unexpected: the listener
                    # stays up, it just waits a little before trying again.
                    log.error("accept failed (%s); pausing 0.1 s", exc)
                    await trio.sleep(0.1)
                    break
                try:
                    conn.setblocking(False)
                    if conn.family in (stdlib_socket.AF_INET, stdlib_socket.AF_INET6):
                        conn.setsockopt(stdlib_socket.IPPROTO_TCP, stdlib_socket.TCP_NODELAY, 1)
                except OSError:
                    conn.close()  # reset before we could set it up
                    self._slots.release()
                    continue
                nursery.start_soon(
                    self._connection_task, conn, http2, secure, name=_CONNECTION_TASK
                )

    async def _connection_task(self, raw: stdlib_socket.socket, http2: bool, secure: bool) -> None:
        """One accepted connection; ``http2``: its binding serves HTTP/2 too; ``secure``:
        it serves TLS."""
        assert self._slots is not None
        self.counters.connections_accepted += 1
        self.counters.connections_open += 1
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(raw))
        remote, local = peername(raw), sockname(raw)
        try:
            if self.config.proxy_protocol:
                addresses = await self._proxy_header(raw, remote, local)
                if addresses is None:
                    await trio.aclose_forcefully(stream)
                    return
                remote, local = addresses
            if not secure:
                if http2:
                    with trio.CancelScope() as sniffing:
                        self._sniffing.add(sniffing)
                        sniffing.deadline = trio.current_time() + self.config.limits.head_timeout
                        if self._draining:
                            self._drain_sniff(sniffing)
                        try:
                            preface = await sniff_preface(raw)
                        finally:
                            self._sniffing.discard(sniffing)
                    if sniffing.cancelled_caught:  # silent past head_timeout (or the drain)
                        await trio.aclose_forcefully(stream)
                        return
                    if preface:
                        await self._serve_http2(stream, remote, local, secure=False, raw=raw)
                        return
                await self._serve_socket(stream, raw, remote, local)
            else:
                await self._serve_tls(stream, self._ssl_contexts[http2], remote, local)
        except Exception:
            log.exception("internal error on a connection")  # never takes the server down
        finally:
            self.counters.connections_open -= 1
            self._slots.release()

    async def _proxy_header(
        self, raw: stdlib_socket.socket, remote: tuple[str, int], local: tuple[str, int]
    ) -> tuple[tuple[str, int], tuple[str, int]] | None:
        """The PROXY protocol header's addresses (the peer's own for LOCAL/UNKNOWN); None
        when it is missing, malformed or late (``head_timeout``): close without answering."""
        try:
            with trio.fail_after(self.config.limits.head_timeout):
                header = await receive_proxy_header(raw)
        except (ProxyProtocolError, trio.TooSlowError) as exc:
            log.debug("PROXY header from %s refused: %s", _fmt(*remote), str(exc) or "timed out")
            return None
        if header.source is None or header.destination is None:
            return remote, local
        return header.source, header.destination

    async def _serve_tls(
        self,
        stream: trio.SocketStream,
        context: ssl.SSLContext,
        remote: tuple[str, int],
        local: tuple[str, int],
    ) -> None:
        """Handshake (within ``head_timeout``), then serve HTTPS; a failed handshake (a
        plain-HTTP client, a bad certificate, a timeout) just closes the connection."""
        if await answer_plain_http(stream, self.config.limits.head_timeout):
            # A plain-HTTP request got a clear-text 400: a refused head like any other.
            connection: HttpConnection = HttpConnection._create(
                remote_address=remote, local_address=local, secure=True
            )
            self._refused(connection, 400)
            await trio.aclose_forcefully(stream)
            return
        timeout = self.config.limits.head_timeout
        if self.auto_https is not None and await self.auto_https.answer_tls_alpn(stream, timeout):
            return  # an ACME TLS-ALPN-01 validation, answered
        tls = trio.SSLStream(stream, context, server_side=True, https_compatible=True)
        try:
            with trio.fail_after(self.config.limits.head_timeout):
                await tls.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as exc:
            log.debug("TLS handshake with %s failed: %s", _fmt(*remote), str(exc) or "timed out")
            await trio.aclose_forcefully(tls)
            return
        if tls.selected_alpn_protocol() == "h2":
            await self._serve_http2(tls, remote, local, secure=True)
            return
        await self.handle_stream(tls, remote=remote, local=local, secure=True)

    def _drain_sniff(self, sniffing: trio.CancelScope) -> None:
        """A connection that has not sent its first byte gets ``linger_timeout`` more."""
        linger = trio.current_time() + self.config.limits.linger_timeout
        sniffing.deadline = min(sniffing.deadline, linger)

    async def _serve_http2(
        self,
        stream: trio.abc.Stream,
        remote: tuple[str, int],
        local: tuple[str, int],
        *,
        secure: bool,
        raw: stdlib_socket.socket | None = None,
        tasks: trio.Nursery | None = None,
        idle_clock: IdleReaper | None = None,
    ) -> None:
        """An HTTP/2 connection (``http2.py``): each stream a request run as HTTP/1.1's are,
        with an ``HttpConnection`` of its own (a stream's reset is its disconnect). Its
        streams run in the server's connection nursery and its idle clock is the reaper's
        (unless ``tasks`` and ``idle_clock`` are given: tests serve a memory stream without
        ``serve``), so an idle connection is one task, as an HTTP/1.1 one is."""
        tasks = self._connections if tasks is None else tasks
        idle_clock = self._reaper if idle_clock is None else idle_clock  # (falsy when empty)
        assert tasks is not None, "serve() runs the connections"
        assert idle_clock is not None
        http2 = Http2Connection(
            stream, self.config.limits, self.counters, self._run_http2_stream,
            tasks=tasks, idle_clock=idle_clock, raw_socket=raw,
            remote=remote, local=local, secure=secure, peer=_fmt(*remote),
            on_refused=self._refused_http2,
        )  # fmt: skip
        self._live_http2.add(http2)
        if self._draining:
            http2.drain()
        try:
            await http2.serve()
        finally:
            self._live_http2.discard(http2)

    def _refused_http2(self, http2: Http2Connection) -> None:
        """A malformed HTTP/2 request, refused with RST_STREAM: logged (400) and counted as
        nginx does, as HTTP/1.1's refused heads are."""
        connection: HttpConnection = HttpConnection._create(
            remote_address=http2.remote, local_address=http2.local, secure=http2.secure
        )
        self._refused(connection, 400, "2.0")

    async def _run_http2_stream(
        self, http2: Http2Connection, transport: Http2Transport, head: RequestHead
    ) -> None:
        """One HTTP/2 stream's request (``Http2Connection``'s ``run_stream``)."""
        connection: HttpConnection = HttpConnection._create(
            remote_address=http2.remote, local_address=http2.local, secure=http2.secure
        )
        ctx = self._new_context(transport, connection, head)
        transport.on_server_abort = lambda: ctx._server_aborted(reading=False)
        try:
            await self._run(ctx)
        finally:
            transport.watch_peer(None)  # (the callbacks point at ctx: a cycle)
            transport.on_server_abort = None
            connection._connected = False
            connection.module_context._cleanup()

    async def handle_stream(
        self,
        stream: trio.abc.Stream,
        *,
        remote: tuple[str, int] = ("127.0.0.1", 0),
        local: tuple[str, int] = ("127.0.0.1", 0),
        secure: bool = False,
        raw_socket: stdlib_socket.socket | None = None,
    ) -> None:
        """Serve HTTP/1.1 on an already open stream until it closes (any ``trio.abc.Stream``:
        a socket, TLS, or ``trio.testing.memory_stream_pair`` in tests).

        Cancellation: closes the stream; a request in flight is cancelled, and its tail
            (LOG_REQUEST, END_REQUEST) still runs shielded.
        """
        session: _Session | None = None
        try:
            async with trio.open_nursery() as nursery:
                session = self._open_session(
                    stream, nursery, None, remote, local, secure, raw_socket
                )
                await self._read(session)
        finally:
            if session is not None:
                await self._close_session(session)

    async def serve_in_memory(
        self,
        transport: Transport,
        *,
        method: str,
        target: str,
        headers: Sequence[tuple[bytes, bytes]] = (),
        http_version: str = "1.1",
        remote: tuple[str, int] = ("127.0.0.1", 0),
        local: tuple[str, int] = ("127.0.0.1", 0),
        secure: bool = False,
    ) -> Outcome:
        """Run one request over ``transport`` (a ``MemoryTransport`` in tests) through the
        code a socket's request runs: ``_new_context`` (site, forwarded headers, the peer
        watch), then ``_run`` (the pipeline, its lifecycle and counters, the access log).
        For tests (docs/testing.md, "In memory"); not part of the serving API.

        ``method``, ``target``, ``headers`` and ``http_version`` are the request head as a
        parser would give it (well-formed; header names reach modules lower-cased); the
        body's framing is the transport's (``body_remaining``). ``remote``/``local``/``secure``
        describe the connection, which ends with the request.

        While ``serve`` runs, the request runs in the server's connection nursery, so
        shutdown waits for it and its grace cancels it as it would a socket's request;
        ``HttpServer(config, sockets=[])`` serves with no listener at all. Without
        ``serve``, it runs in the caller's task (the pipeline compiles on first use; no
        access-log file, no GL_APPLICATION_START: as ``handle_stream``).

        Returns the request's outcome (``Outcome``), final once this returns.

        Raises:
            RuntimeError: shutdown has begun: no new request is taken.

        Cancellation: while ``serve`` runs, cancelling the caller stops its wait, not the
            request (a socket's request ends when its client leaves: the caller's peer
            leaves by its transport, ``MemoryTransport.disconnect``). Without ``serve``,
            the request is cancelled; its tail (LOG_REQUEST, END_REQUEST) still runs,
            shielded.
        """
        if self._stop.is_set():
            raise RuntimeError("the server is shutting down: it takes no new request")
        fields = [(name.lower(), value) for name, value in headers]
        length = transport.body_remaining
        head = RequestHead(
            method=method,
            target=target,
            http_version=http_version,
            headers=fields,
            content_length=length,
            chunked=length is None,
            keep_alive=request_keep_alive(http_version, fields),
        )
        connection: HttpConnection = HttpConnection._create(
            remote_address=remote, local_address=local, secure=secure
        )
        ctx = self._new_context(transport, connection, head)
        nursery = self._connections
        if nursery is None:
            await self._run_in_memory(ctx, transport, connection)
            return ctx.lifecycle.outcome
        failed: list[Exception] = []
        ended = trio.Event()

        async def run() -> None:
            try:
                await self._run_in_memory(ctx, transport, connection)
            except Exception as exc:  # the caller sees it (a connection's loop logs it)
                failed.append(exc)
            finally:
                ended.set()

        nursery.start_soon(run, name=_MEMORY_TASK)
        await ended.wait()
        if failed:
            raise failed[0]
        return ctx.lifecycle.outcome

    async def _run_in_memory(
        self, ctx: HttpContext, transport: Transport, connection: HttpConnection
    ) -> None:
        try:
            await self._run(ctx)
        finally:
            transport.watch_peer(None)  # (the callback points at ctx: a cycle)
            connection._connected = False  # as _close_session: closed by us
            connection.module_context._cleanup()

    async def _serve_socket(
        self,
        stream: trio.SocketStream,
        raw: stdlib_socket.socket,
        remote: tuple[str, int],
        local: tuple[str, int],
    ) -> None:
        """``handle_stream`` for the server's own plain sockets: the request loop runs in the
        server's connection nursery and the idle clock is the reaper's, so an idle
        connection is one task and nothing more."""
        assert self._connections is not None
        assert self._reaper is not None
        session = self._open_session(
            stream, self._connections, self._reaper, remote, local, False, raw
        )
        try:
            await self._read(session)
            await session.wait_loop()
        finally:
            await self._close_session(session)

    def _open_session(
        self,
        stream: trio.abc.Stream,
        nursery: trio.Nursery,
        reaper: IdleReaper | None,
        remote: tuple[str, int],
        local: tuple[str, int],
        secure: bool,
        raw_socket: stdlib_socket.socket | None,
    ) -> _Session:
        http = Http1Connection(
            stream, self.config.limits, raw_socket=raw_socket, head_parser=self._head_parser
        )
        http.closing = self._draining
        connection: HttpConnection = HttpConnection._create(
            remote_address=remote, local_address=local, secure=secure
        )
        session = _Session(self, http, connection, nursery, reaper)
        http.on_data = session.on_data
        http.on_disconnect = session.on_disconnect
        self._live.add(session)
        return session

    async def _read(self, session: _Session) -> None:
        """The connection's reader (``pump``) in this task; requests start from it."""
        # The first request's head must start within head_timeout of the accept.
        session.go_idle(self.config.limits.head_timeout)
        try:
            await session.http.pump()
        finally:
            if session.reaper is not None:
                session.reaper.forget(session)

    async def _close_session(self, session: _Session) -> None:
        http, connection = session.http, session.connection
        self._live.discard(session)
        http.on_data = http.on_disconnect = None  # (they point back at the session: a cycle)
        connection._connected = False  # closed by us: no notify_disconnect
        connection.module_context._cleanup()
        with trio.CancelScope(shield=True):
            if isinstance(http.stream, trio.SSLStream) and not session.abort:
                await _close_tls(http.stream)
            await http.aclose(abort=session.abort)

    def _start_requests(self, session: _Session) -> None:
        if session.running or session.http.idle or session.stopped:
            return  # (a connection whose idle clock just ran out closes: clients retry)
        session.running = True
        session.go_busy()  # a running request has its own timeouts
        session.nursery.start_soon(self._serve_requests, session, name=_REQUESTS_TASK)

    def _drain(self, session: _Session) -> None:
        """Shutdown began: responses from now on say Connection: close; an idle connection
        closes now (one that has not sent its first request yet gets ``linger_timeout``)."""
        session.http.wake_idle()
        websocket.going_away(session.http)  # its keeper sends close 1001
        if session.running:
            return
        if session.served:
            session.stop_reader()
        else:
            session.idle_at_most(self.config.limits.linger_timeout)

    async def _serve_requests(self, session: _Session) -> None:
        """Serve requests until the connection is idle (then the reader waits for the next
        one, with ``keep_alive_timeout``) or must close (then this closes it)."""
        http = session.http
        try:
            outcome = await self._request_loop(session)
        except Exception:
            if session.reaper is None:
                raise  # handle_stream's caller sees it
            log.exception("internal error on a connection")  # never takes the server down
            outcome = _CLOSE
        finally:
            session.loop_ended()
        if outcome is _IDLE and not self._draining:
            session.go_idle(self.config.limits.keep_alive_timeout)
            return
        session.abort = outcome is _ABORT
        if not session.abort:
            await http.linger()
        session.stop_reader()  # the connection closes

    async def _request_loop(self, session: _Session) -> _Outcome:
        """Requests one after another (pipelined ones in order)."""
        http, connection = session.http, session.connection
        limits = self.config.limits
        while True:
            if session.served and self._draining:
                return _CLOSE
            if http.idle:
                return _IDLE
            try:
                head = await http.next_request(first=not session.served)
            except HeadError as exc:
                await self._refuse(http, exc, connection)
                return _CLOSE
            if head is None:
                return _CLOSE
            session.served += 1
            if session.served == limits.max_requests_per_connection:
                http.closing = True  # this response says Connection: close; then we close
            ctx = self._new_context(http, connection, head)
            try:
                await self._run(ctx)
            finally:
                http.watch_peer(None)  # (the callback points at ctx: a cycle)
            if ctx.response.reset or ctx._wire.failed:
                return _ABORT
            if not http.body_complete:
                with trio.move_on_after(limits.linger_timeout):
                    await http.drain_body(limits.drain_body_bytes)
            if ctx.response.need_disconnect or not http.can_keep_alive:
                return _CLOSE
            http.next_cycle()
            del ctx  # an idle keep-alive connection does not hold its last request

    async def _refuse(
        self, http: Http1Connection, exc: HeadError, connection: HttpConnection
    ) -> None:
        """Answer a head we refuse, and log it like any request (no request is missing)."""
        self._refused(connection, exc.status)
        try:
            with trio.move_on_after(self.config.limits.linger_timeout):
                await http.write_raw(error_response_bytes(exc.status))
        except trio.BrokenResourceError:
            pass

    def _redirected(self, answer: Answer) -> None:
        """A redirect binding's answer: its access-log line and its count (a 400 for a
        malformed head is a refused head like the TLS bindings' own)."""
        self._access_log.write_redirect(answer)
        if answer.outcome == "refused":
            self.counters.heads_refused[answer.status] += 1
        else:
            self.counters.https_redirects[answer.status] += 1

    def _refused(self, connection: HttpConnection, status: int, http_version: str = "1.1") -> None:
        """A head refused before the pipeline: its access-log line and its count, both (every
        refusal is in the log and in the counters alike)."""
        self._access_log.write_refused(connection, status, http_version)
        self.counters.heads_refused[status] += 1

    def _new_context(
        self, transport: Transport, connection: HttpConnection, head: RequestHead
    ) -> HttpContext:
        # (every driver gives an origin-form target: HTTP/1.1's check_request rewrites an
        # absolute-form one, moving its authority to Host; HTTP/2 refuses any other :path)
        has_body = head.chunked or bool(head.content_length)
        ctx: HttpContext = HttpContext._create(  # (positional: cheaper per request)
            self._pipeline or self.pipeline,
            connection,
            self._sites.site_for(head.headers),
            Wire(transport),
            head.method,
            head.target,
            head.http_version,
            Headers._from_head(head.headers),
            ConnectionBody(transport) if has_body else EMPTY_BODY,
        )
        transport.watch_peer(ctx._peer_gone)
        if self._any_trusted:
            apply_forwarded(ctx, self._trusted)
        return ctx

    async def _run(self, ctx: HttpContext) -> None:
        started = time.time()
        try:
            await ctx._pipeline.serve_request(ctx)
        finally:
            self._access_log.write(ctx, started)


def _sole_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception inside nested single-member groups (a ``ConfigError`` from
    ``serve``'s nursery), else the group itself."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup) and len(leaf.exceptions) == 1:
        leaf = leaf.exceptions[0]
    return leaf


async def _close_tls(stream: trio.SSLStream[trio.abc.Stream]) -> None:
    """Send close_notify, then close; bounded and best effort.

    ``https_compatible`` streams skip close_notify in ``aclose``; turning the flag off at the
    very end (nothing reads or writes any more) makes ``aclose`` send it without waiting
    for the client's reply.
    """
    with trio.move_on_after(_TLS_CLOSE_TIMEOUT):
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            if hasattr(stream, "_https_compatible"):
                stream._https_compatible = False
            await stream.aclose()


def _refuse_one(sock: stdlib_socket.socket) -> bool:
    """Accept one connection and answer it 503 at once (``when_full = "refuse"``); best
    effort, never waits. False when nothing was waiting."""
    try:
        conn, _ = sock.accept()
    except OSError:
        return False
    with conn:
        conn.setblocking(False)
        with contextlib.suppress(OSError):
            conn.send(error_response_bytes(503))
            conn.shutdown(stdlib_socket.SHUT_WR)
    return True


def binding_listening_on(
    bindings: Sequence[str | Binding], local: tuple[str, int]
) -> str | Binding | None:
    """The binding an inherited listening socket bound to ``local`` was opened for: one on
    its port, the one naming its address first; None when no binding has that port (port
    0, or sockets from systemd for other addresses)."""
    host, port = local
    on_port = [b for b in bindings if parse_binding(binding_address(b))[1] == port]
    named = [b for b in on_port if parse_binding(binding_address(b))[0] == host]
    chosen = named or on_port
    return chosen[0] if chosen else None


def open_listeners(bindings: Sequence[str]) -> list[stdlib_socket.socket]:
    """Listening sockets for ``HOST:PORT`` bindings (non-blocking, SO_REUSEADDR).

    Raises:
        ConfigError: a binding cannot be opened (what was opened is closed again).
    """
    sockets: list[stdlib_socket.socket] = []
    for binding in bindings:
        host, port = parse_binding(binding)
        try:
            sockets.extend(_listen(host, port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise ConfigError(f"cannot listen on {binding}: {exc.strerror or exc}") from exc
    return sockets


def _listen(host: str, port: int) -> list[stdlib_socket.socket]:
    infos = stdlib_socket.getaddrinfo(
        host or None, port, type=stdlib_socket.SOCK_STREAM, flags=stdlib_socket.AI_PASSIVE
    )
    sockets = []
    seen = set()
    for family, kind, proto, _, addr in infos:
        if addr in seen:
            continue
        seen.add(addr)
        sock = stdlib_socket.socket(family, kind, proto)
        try:
            sock.setsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_REUSEADDR, 1)
            if family == stdlib_socket.AF_INET6:
                sock.setsockopt(stdlib_socket.IPPROTO_IPV6, stdlib_socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(1024)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        sockets.append(sock)
    return sockets


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
