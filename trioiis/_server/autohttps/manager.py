"""``AutoHttps``: every ACME host's certificate, obtained, stored, chosen by SNI, renewed.

* At start (``tls_context``): each host gets its stored certificate when there is one, else
  a self-signed placeholder (``placeholders/NAME.pem``), so HTTPS answers from the first
  connection on; the real certificate replaces it as soon as the CA issues it.
* One task per host (``run``): order when there is no certificate or it is two thirds
  through its lifetime, then sleep until the next renewal. A new certificate becomes a new
  ``SSLContext`` in the table the SNI callback reads: handshakes from then on get it,
  connections already open keep theirs (nothing is restarted or dropped).
* A failure is logged (``trioiis.acme``, one line: host, CA, the CA's reason, when the next
  try is) and retried after a back-off: ``BACKOFF_START`` s, doubling up to ``BACKOFF_CAP``.
  Meanwhile the host keeps its placeholder (or its old certificate, while valid) on the TLS
  bindings and is served in plain HTTP on the cleartext ones.
* Orders run in a worker thread (the ``acme`` library blocks). Cancellation (shutdown):
  the thread is abandoned (``abandon_on_cancel``) and told to stop at its next step; an HTTP
  request in flight to the CA finishes within its timeout, and the host's lock is released
  when the thread ends. Nothing half-written is ever read: files are replaced whole.
"""

from __future__ import annotations

import datetime
import functools
import logging
import re
import socket as stdlib_socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from ..._constants import Notification, Priority, Status
from ..._context.context import HttpContext
from ..._context.providers import EventProvider
from ..._errors import ConfigError
from ..._pipeline.registration import (
    GlobalServer,
    HttpModule,
    ModuleAllocator,
    ModuleRegistrationInfo,
)
from ...config import DEFAULT_ACME_STATE_DIR, ServerConfig
from ..tls import server_context
from .client_hello import parse_client_hello
from .store import StateDir, StoredCertificate

__all__ = [
    "ACME_TLS_ALPN",
    "BACKOFF_CAP",
    "BACKOFF_START",
    "CHALLENGE_PATH",
    "AutoHttps",
    "Domain",
    "plan",
]

log = logging.getLogger("trioiis.acme")

#: Seconds before the first retry after a failed order; doubled after each failure.
BACKOFF_START = 60.0
#: The longest wait between two tries.
BACKOFF_CAP = 6 * 3600.0
#: The path prefix HTTP-01 answers live under (RFC 8555 §8.3).
CHALLENGE_PATH = "/.well-known/acme-challenge/"
#: The ALPN protocol of a TLS-ALPN-01 validation (RFC 8737).
ACME_TLS_ALPN = b"acme-tls/1"
_PEEK = 16384
#: The longest a renewal task sleeps before it looks at the wall clock again (seconds).
_RECHECK = 3600.0
_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")


@dataclass(frozen=True, slots=True)
class Domain:
    """A host name to certify, and the challenge that proves it is ours."""

    name: str
    challenge: str


def plan(config: ServerConfig) -> list[Domain]:
    """The hosts ``config`` wants certificates for: with top-level ``acme``, every site's
    hosts and ``acme_domains``; else the hosts of each site with ``acme`` and
    ``acme_domains``. The challenge: the site's ``acme_challenge``, the top-level one, else
    HTTP-01."""
    default = config.acme_challenge or "http-01"
    chosen: dict[str, str] = {}
    for site in config.sites:
        if config.acme or site.acme:
            for host in site.hosts:
                chosen.setdefault(host, site.acme_challenge or default)
    for name in config.acme_domains:
        chosen.setdefault(name, default)
    return [Domain(name, kind) for name, kind in chosen.items()]


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _import_acme() -> None:
    try:
        import acme.client  # noqa: F401
        import josepy  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            f"acme needs the acme library ({exc.name} is missing): pip install 'trioiis[acme]'"
        ) from exc


class AutoHttps:
    """Certificates for ``plan(config)``'s hosts (see the module docstring)."""

    def __init__(self, config: ServerConfig) -> None:
        _import_acme()
        from .order import AcmeSettings

        self.domains = plan(config)
        for domain in self.domains:
            if not _NAME.fullmatch(domain.name):
                raise ConfigError(f"acme: {domain.name!r} is not a DNS name a CA can certify")
        self.settings = AcmeSettings(
            config.acme_directory, config.acme_email, config.acme_ca_bundle
        )
        self.store = StateDir(config.acme_state_dir or Path(DEFAULT_ACME_STATE_DIR))
        self._http2 = config.http2
        self._contexts: dict[str, ssl.SSLContext] = {}
        #: The CA-issued certificate each host serves now (absent: its placeholder).
        self.issued: dict[str, StoredCertificate] = {}
        #: The port of the first TLS binding (``https://`` redirects go there).
        self.https_port: int | None = None
        self._changed = trio.Event()
        self._names = {d.name for d in self.domains}

    # ------------------------------------------------------------ TLS
    def tls_context(self, fallback: ssl.SSLContext | None) -> ssl.SSLContext:
        """The context the TLS bindings handshake with: each ACME host's current
        certificate by SNI, and ``fallback`` (the ``tls_cert`` one, whose own SNI choice
        still applies) or else the first host's for other names.

        Blocking (reads and may write the state folder): call before serving.

        Raises:
            ConfigError: the state folder cannot be written.
        """
        try:
            for domain in self.domains:
                stored = self.store.stored(domain.name)
                if stored is not None and not stored.expired(_utcnow()):
                    self._contexts[domain.name] = self._context(stored.path)
                    self.issued[domain.name] = stored
                    log.info(
                        "acme: %s: using the stored certificate (valid until %s, renewal at %s)",
                        domain.name,
                        f"{stored.not_after:%Y-%m-%d %H:%M:%S}",
                        f"{stored.renew_at:%Y-%m-%d %H:%M:%S}",
                    )
                else:
                    placeholder = self.store.placeholder(domain.name)
                    self._contexts[domain.name] = self._context(placeholder)
        except OSError as exc:
            raise ConfigError(
                f"acme_state_dir {self.store.root} cannot be written: {exc.strerror or exc}"
            ) from exc
        front = fallback or self._contexts[self.domains[0].name]
        previous = front.sni_callback
        contexts = self._contexts
        # Without tls_cert, a client naming no ACME host gets the first one's current
        # certificate (its placeholder, then whatever the CA issued last).
        default = None if fallback is not None else self.domains[0].name

        def choose(
            obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext
        ) -> None:
            chosen = contexts.get(name.lower().rstrip(".")) if name is not None else None
            if chosen is None and default is not None:
                chosen = contexts[default]
            if chosen is not None:
                obj.context = chosen
            elif previous is not None:
                previous(obj, name, ctx)  # type: ignore[arg-type]  # as ssl calls it

        front.sni_callback = choose
        return front

    def _context(self, pem: Path) -> ssl.SSLContext:
        return server_context(pem, pem, http2=self._http2)

    async def answer_tls_alpn(self, stream: trio.SocketStream, timeout: float) -> bool:
        """Before a TLS handshake: if the client offers only-for-validation ALPN
        ``acme-tls/1``, answer it with the pending TLS-ALPN-01 certificate of the host it
        names, then close (True). Any other client: False, nothing consumed (peeked).

        Cancellation: at the peek or the handshake, each bounded by ``timeout``.
        """
        data = b""
        with trio.move_on_after(timeout):
            try:
                data = await stream.socket.recv(_PEEK, stdlib_socket.MSG_PEEK)
            except OSError:
                return False
        hello = parse_client_hello(data)
        if hello is None or ACME_TLS_ALPN not in hello.alpn:
            return False
        name = hello.server_name
        try:
            if name is None or name not in self._names:
                raise FileNotFoundError(name)
            path = self.store.tls_alpn01_path(name)
            context = await trio.to_thread.run_sync(_challenge_context, path)
        except (OSError, ssl.SSLError):
            log.debug("acme: a TLS-ALPN-01 handshake for %s, but no challenge is pending", name)
            await trio.aclose_forcefully(stream)
            return True
        tls = trio.SSLStream(stream, context, server_side=True)
        with trio.move_on_after(timeout):
            try:
                await tls.do_handshake()
                log.debug("acme: %s: answered a TLS-ALPN-01 validation", name)
            except trio.BrokenResourceError:
                pass
        await trio.aclose_forcefully(tls)
        return True

    # ------------------------------------------------------------ HTTP
    def register_module(
        self, server_version: int, info: ModuleRegistrationInfo, server: GlobalServer
    ) -> None:
        """The built-in ``acme_challenge`` module: HTTP-01 answers under
        ``/.well-known/acme-challenge/``, and a redirect to ``https://`` for the other
        cleartext requests to a host that has its certificate."""
        info.set_request_notifications(_ChallengeFactory(self), Notification.BEGIN_REQUEST)
        # Registered before request_filtering and at its priority: it runs first, so a
        # filtering rule can never block a CA's validation.
        info.set_priority_for_request_notification(Notification.BEGIN_REQUEST, Priority.FIRST)

    def redirect_port(self, host: str) -> int | None:
        """The HTTPS port to send a cleartext request for ``host`` to, or None to serve it."""
        if self.https_port is None or host not in self.issued:
            return None
        return self.https_port

    # ------------------------------------------------------------ obtaining
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep every host certified until cancelled (see the module docstring).

        Cancellation: every host's task stops at once; an order in flight is abandoned
        (its thread told to stop at its next step, its lock released when it ends).
        """
        async with trio.open_nursery() as nursery:
            for domain in self.domains:
                nursery.start_soon(self._keep, domain, name=f"trioiis acme {domain.name}")
            task_status.started()

    async def wait_changed(self) -> None:
        """Return at the next certificate installed (for tests and tools).

        Cancellation: just stops waiting."""
        await self._changed.wait()

    async def _keep(self, domain: Domain) -> None:
        backoff = BACKOFF_START
        while True:
            current = self.issued.get(domain.name)
            if current is not None and not current.due(_utcnow()):
                # At most an hour at a time: Trio's clock stops while the machine sleeps,
                # the wall clock that dates certificates does not.
                wait = (current.renew_at - _utcnow()).total_seconds()
                await trio.sleep(min(wait, _RECHECK))
                continue
            what = "renewing" if current is not None else "ordering"
            log.info(
                "acme: %s: %s a certificate from %s (%s)",
                domain.name, what, self.settings.directory, domain.challenge,
            )  # fmt: skip
            started = time.monotonic()
            try:
                stored, ordered = await self._obtain(domain)
            except Exception as exc:
                from .order import OrderError

                reason = str(exc) if isinstance(exc, OrderError) else repr(exc)
                log.debug("acme: %s: the order's traceback", domain.name, exc_info=exc)
                serving = "its old certificate" if current is not None else "a placeholder"
                log.error(
                    "acme: %s: no certificate from %s: %s; HTTPS serves %s, plain HTTP"
                    " serves the site; next try in %d s",
                    domain.name, self.settings.directory, reason, serving, backoff,
                )  # fmt: skip
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_CAP)
                continue
            backoff = BACKOFF_START
            await self._install(domain.name, stored)
            how = (
                f"issued in {time.monotonic() - started:.2f} s"
                if ordered
                else "stored by another process"
            )
            log.info(
                "acme: %s: certificate %s, valid until %s, renewal at %s",
                domain.name, how, f"{stored.not_after:%Y-%m-%d %H:%M:%S}",
                f"{stored.renew_at:%Y-%m-%d %H:%M:%S}",
            )  # fmt: skip

    async def _obtain(self, domain: Domain) -> tuple[StoredCertificate, bool]:
        from .order import obtain

        stop = threading.Event()
        job = functools.partial(
            obtain, self.settings, self.store, domain.name, domain.challenge, stop
        )
        try:
            return await trio.to_thread.run_sync(job, abandon_on_cancel=True)
        finally:
            stop.set()  # an abandoned order stops at its next step

    async def _install(self, name: str, stored: StoredCertificate) -> None:
        context = await trio.to_thread.run_sync(self._context, stored.path)
        self._contexts[name] = context  # new handshakes only: open connections keep theirs
        self.issued[name] = stored
        self._changed.set()
        self._changed = trio.Event()


def _challenge_context(path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ACME_TLS_ALPN.decode()])
    context.load_cert_chain(path)
    return context


class _ChallengeModule(HttpModule):
    def __init__(self, auto: AutoHttps) -> None:
        self.auto = auto

    async def on_begin_request(self, ctx: HttpContext, provider: EventProvider) -> Status:
        request = ctx.request
        path = request.raw_path
        if path.startswith(CHALLENGE_PATH):
            token = path[len(CHALLENGE_PATH) :]
            answer = None
            file = self.auto.store.http01_path(token)
            if file is not None:
                try:
                    answer = await trio.Path(file).read_bytes()
                except OSError:
                    answer = None
            response = ctx.response
            response.clear()
            if answer is None:
                response.set_status(404, "Not Found")
                response.set_header("Content-Type", "text/plain; charset=utf-8")
                response.write(b"no such ACME challenge\n")
            else:
                response.set_status(200, "OK")
                response.set_header("Content-Type", "application/octet-stream")
                response.write(answer)
            return Status.FINISH_REQUEST
        if ctx.get_server_variable("HTTPS") == "on":
            return Status.CONTINUE
        host = (request.get_header("host") or "").strip().lower()
        name = host.rpartition(":")[0] if re.fullmatch(r".*:\d+", host) else host
        port = self.auto.redirect_port(name.rstrip("."))
        if port is None:
            return Status.CONTINUE
        suffix = "" if port == 443 else f":{port}"
        ctx.response.clear()
        ctx.response.redirect(f"https://{name}{suffix}{request.raw_path}", include_query=True)
        ctx.response.set_status(301, "Moved Permanently")
        return Status.FINISH_REQUEST


class _ChallengeFactory:
    def __init__(self, auto: AutoHttps) -> None:
        self.auto = auto

    def get_http_module(self, allocator: ModuleAllocator) -> HttpModule:
        return _ChallengeModule(self.auto)

    def terminate(self) -> None:
        pass
