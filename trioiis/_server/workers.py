"""``trioiis serve --workers N``: one supervisor, N worker processes sharing its listeners.

The supervisor opens the listening sockets once (or takes systemd's) and starts N copies of
the same ``trioiis serve`` command, which inherit the sockets (``pass_fds``,
``TRIOIIS_LISTEN_FDS``; the ``https_redirect`` ones in ``TRIOIIS_REDIRECT_FDS``) and a control
socket (``TRIOIIS_WORKER``). It never accepts a
connection itself. Every worker takes connections from the same kernel accept queue, so:

* a worker that stops (crash, SIGTERM) leaves the queue to the others: a connection not yet
  accepted waits for another worker instead of being reset. That is why the sockets are
  inherited rather than opened by each worker with ``SO_REUSEPORT``: with that option each
  process gets its own queue, and what waits in a dying worker's queue is lost.
* a worker that dies is started again after a back-off (0.1 s, doubling, at most 30 s;
  back to 0.1 s once a worker has run 30 s).
* SIGTERM or SIGINT: every worker gets SIGTERM and drains (``shutdown_grace``); a second
  signal is passed on too (the workers cancel what is left). Then the supervisor exits 0.
* SIGHUP: the configuration is read again; if it is invalid the error is logged and the
  workers keep running. Otherwise the workers are replaced one at a time: a new one starts
  and says it is ready (it is accepting), and only then the old one gets SIGTERM and
  finishes its requests. Bindings are not reopened: changing them needs a restart.
* The control socket tells each worker when the supervisor is gone (its end reads EOF,
  whatever killed the supervisor, SIGKILL included): the worker then shuts down gracefully.
  (``PR_SET_PDEATHSIG`` would be Linux only, and it fires when the *thread* that started the
  child exits, which with Trio's thread cache is not the supervisor's death.)

Workers are started in their own session, so a terminal's Ctrl-C reaches only the
supervisor, which passes it on once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from .._errors import ConfigError
from ..config import ServerConfig
from .activation import INHERITED_FDS_ENV, REDIRECT_FDS_ENV

__all__ = ["WORKER_ENV", "Supervisor", "SupervisorLink", "backoff"]

log = logging.getLogger("trioiis.workers")

#: Names the worker's end of its control socket (a descriptor number).
WORKER_ENV = "TRIOIIS_WORKER"
#: Seconds a new worker has to say it is ready during a reload.
READY_TIMEOUT = 60.0
BACKOFF_START = 0.1
BACKOFF_CAP = 30.0
#: A worker that ran this long resets its slot's back-off.
STABLE_AFTER = 30.0
#: Seconds beyond ``shutdown_grace`` before a worker that does not stop is killed.
KILL_MARGIN = 5.0


def backoff(failures: int, lived: float) -> tuple[float, int]:
    """``(seconds to wait, failures so far)`` before restarting a worker that ran ``lived``
    seconds, in a slot whose workers died ``failures`` times in a row before: 0.1 s,
    doubling, at most ``BACKOFF_CAP``; a worker that ran ``STABLE_AFTER`` starts again."""
    if lived >= STABLE_AFTER:
        failures = 0
    return min(BACKOFF_CAP, BACKOFF_START * 2 ** min(failures, 64)), failures + 1


@dataclass(eq=False)
class _Worker:
    slot: int
    process: trio.Process
    control: trio.socket.SocketType
    started: float
    ready: trio.Event = field(default_factory=trio.Event)
    exited: trio.Event = field(default_factory=trio.Event)
    retired: bool = False  # replaced by a reload or stopping: its exit is expected


class Supervisor:
    """Runs ``workers`` copies of ``command`` on ``sockets`` and the ``https_redirect``
    listeners ``redirect_sockets`` (see the module docstring).

    ``reload_config`` is called on SIGHUP and raises ``ConfigError`` for a configuration
    that must not be used; ``on_ready`` is called once, when the first workers are all
    ready. ``announce`` prints a line for people and tests (``trioiis worker PID ready``).
    """

    def __init__(
        self,
        *,
        command: Sequence[str],
        sockets: Sequence[socket.socket],
        redirect_sockets: Sequence[socket.socket] = (),
        workers: int,
        config: ServerConfig,
        reload_config: Callable[[], ServerConfig],
        on_ready: Callable[[], None] = lambda: None,
        announce: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        if workers < 1:
            raise ConfigError("--workers must be at least 1")
        self.command = list(command)
        self.sockets = list(sockets)
        self.redirect_sockets = list(redirect_sockets)
        self.count = workers
        self.config = config
        self.reload_config = reload_config
        self.on_ready = on_ready
        self.announce = announce
        self._slots: list[_Worker] = []
        self._failures = [0] * workers
        self._live: set[_Worker] = set()
        self._readiness = trio.Event()
        self._stopping = False
        self._reloading = False
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        """Supervise until SIGTERM or SIGINT and the workers' drain. The listening sockets
        are closed at the end.

        Cancellation: cancelling ``run`` kills every worker (SIGKILL) and waits for them.
        """
        try:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as sigs:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    try:
                        for slot in range(self.count):
                            self._slots.append(await self._spawn(slot))
                        nursery.start_soon(self._announce_when_ready)
                        async for signum in sigs:
                            self._on_signal(signum)
                    finally:
                        with trio.CancelScope(shield=True):
                            await self._kill_all()
        finally:
            for sock in (*self.sockets, *self.redirect_sockets):
                sock.close()

    def _on_signal(self, signum: int) -> None:
        assert self._nursery is not None
        if signum == signal.SIGHUP:
            if self._stopping or self._reloading:
                log.warning("SIGHUP ignored: %s", "stopping" if self._stopping else "reloading")
            else:
                self._reloading = True
                self._nursery.start_soon(self._reload)
        elif not self._stopping:
            self._stopping = True
            log.info("stopping: the workers drain their requests")
            self._nursery.start_soon(self._stop)
        else:
            log.info("stopping now: the workers cancel their requests")
            self._signal_all(signal.SIGTERM)

    # ------------------------------------------------------------ one worker

    async def _spawn(self, slot: int) -> _Worker:
        assert self._nursery is not None
        parent, child = socket.socketpair()
        try:
            env = dict(os.environ)
            env[WORKER_ENV] = str(child.fileno())
            env[INHERITED_FDS_ENV] = ",".join(str(s.fileno()) for s in self.sockets)
            # Always set, even empty: a worker never opens a listener of its own.
            env[REDIRECT_FDS_ENV] = ",".join(str(s.fileno()) for s in self.redirect_sockets)
            inherited = (*self.sockets, *self.redirect_sockets)
            process = await trio.lowlevel.open_process(
                self.command,
                env=env,
                pass_fds=(*(s.fileno() for s in inherited), child.fileno()),
                start_new_session=True,
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        worker = _Worker(slot, process, trio.socket.from_stdlib_socket(parent), trio.current_time())
        self._live.add(worker)
        self._nursery.start_soon(self._watch, worker)
        if self._stopping:  # started by a reload or a restart that raced the stop
            worker.retired = True
            with contextlib.suppress(OSError):
                process.send_signal(signal.SIGTERM)
        return worker

    async def _watch(self, worker: _Worker) -> None:
        """Until the worker exits; then start another unless its exit was expected."""
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_control, worker)
                await worker.process.wait()
                nursery.cancel_scope.cancel()
        finally:
            worker.control.close()
            if worker.process.returncode is not None:  # else run() still has to kill it
                self._live.discard(worker)
                worker.exited.set()
        pid, status = worker.process.pid, worker.process.returncode
        if worker.retired or self._stopping:
            log.info("worker %d exited (status %s)", pid, status)
            return
        lived = trio.current_time() - worker.started
        delay, self._failures[worker.slot] = backoff(self._failures[worker.slot], lived)
        log.warning(
            "worker %d exited (status %s) after %.1f s; starting another in %.1f s",
            pid,
            status,
            lived,
            delay,
        )
        await trio.sleep(delay)  # the back-off itself, not a wait for readiness
        if not self._replaces(worker):
            return  # stopping, or a reload already put a new worker in this slot
        self._slots[worker.slot] = await self._spawn(worker.slot)

    def _replaces(self, worker: _Worker) -> bool:
        """Whether a dead ``worker`` still needs a successor in its slot."""
        return not self._stopping and self._slots[worker.slot] is worker

    async def _read_control(self, worker: _Worker) -> None:
        seen = b""
        while True:
            try:
                data = await worker.control.recv(256)
            except OSError:
                return
            if not data:
                return
            seen = (seen + data)[-64:]
            if b"ready\n" in seen and not worker.ready.is_set():
                worker.ready.set()
                self.announce(f"trioiis worker {worker.process.pid} ready")
                self._readiness.set()
                self._readiness = trio.Event()

    # ------------------------------------------------------------ all of them

    async def _announce_when_ready(self) -> None:
        while True:
            changed = self._readiness
            if all(w.ready.is_set() for w in self._slots):
                break
            await changed.wait()
        self.on_ready()

    async def _reload(self) -> None:
        try:
            try:
                config = self.reload_config()
            except ConfigError as exc:
                log.error("reload refused, the workers keep running: %s", exc)
                self.announce(f"trioiis: reload refused: {exc}")
                return
            if config.bindings != self.config.bindings:
                log.warning("bindings changed: they take effect at the next restart")
            self.config = config
            for slot in range(self.count):
                if self._stopping:
                    return
                old, new = self._slots[slot], await self._spawn(slot)
                with trio.move_on_after(READY_TIMEOUT):
                    await _first(new.ready, new.exited)
                if not new.ready.is_set():
                    log.error("a new worker did not start: reload stopped, old workers kept")
                    self.announce("trioiis: reload failed: a new worker did not start")
                    new.retired = True
                    with contextlib.suppress(OSError):
                        new.process.kill()
                    return
                self._slots[slot] = new
                old.retired = True
                with contextlib.suppress(OSError):
                    old.process.send_signal(signal.SIGTERM)  # it drains, then exits
            pids = " ".join(str(w.process.pid) for w in self._slots)
            self.announce(f"trioiis reloaded: workers {pids}")
        finally:
            self._reloading = False

    async def _stop(self) -> None:
        assert self._nursery is not None
        for worker in self._live:
            worker.retired = True
        self._signal_all(signal.SIGTERM)
        with trio.move_on_after(self.config.shutdown_grace + KILL_MARGIN):
            for worker in list(self._live):
                await worker.exited.wait()
        self._nursery.cancel_scope.cancel()  # ends run(), which kills what is left

    async def _kill_all(self) -> None:
        for worker in list(self._live):
            worker.retired = True
            with contextlib.suppress(OSError):
                worker.process.kill()
        for worker in list(self._live):
            await worker.process.wait()

    def _signal_all(self, signum: int) -> None:
        for worker in list(self._live):
            with contextlib.suppress(OSError):
                worker.process.send_signal(signum)


async def _first(*events: trio.Event) -> None:
    """Until one of ``events`` is set."""
    async with trio.open_nursery() as nursery:
        for event in events:

            async def wait(event: trio.Event = event) -> None:
                await event.wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)


class SupervisorLink:
    """A worker's end of its control socket: it says "ready" through it, and sees the
    supervisor go (EOF) whatever killed it."""

    def __init__(self, fd: int) -> None:
        self._sock = socket.socket(fileno=fd)
        self._sock.set_inheritable(False)
        self._sock.setblocking(False)

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> SupervisorLink | None:
        """The link a supervisor gave this process (``TRIOIIS_WORKER``); None if none.

        Raises:
            ConfigError: the variable does not name a descriptor.
        """
        env = os.environ if environ is None else environ
        value = env.pop(WORKER_ENV, None)
        if value is None:
            return None
        if not value.isdigit():
            raise ConfigError(f"{WORKER_ENV}={value!r} is not a descriptor")
        try:
            return cls(int(value))
        except OSError as exc:
            raise ConfigError(f"{WORKER_ENV}={value}: {exc}") from exc

    def ready(self) -> None:
        """Tell the supervisor this worker accepts connections."""
        with contextlib.suppress(OSError):
            self._sock.send(b"ready\n")

    async def wait_gone(self) -> None:
        """Until the supervisor is gone (EOF or an error on the control socket).

        Cancellation: just stops waiting.
        """
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                if not self._sock.recv(256):
                    return
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return

    def close(self) -> None:
        self._sock.close()
