"""Listening sockets handed to the process instead of opened by it.

* systemd socket activation: ``LISTEN_PID`` (this process's id) and ``LISTEN_FDS`` (how
  many) say that descriptors 3, 4, … are listening sockets (``sd_listen_fds(3)``).
* A ``trioiis serve --workers N`` supervisor passes its sockets to each worker, naming their
  descriptors in ``TRIOIIS_LISTEN_FDS`` (``"5,6"``), and those of the ``https_redirect``
  bindings in ``TRIOIIS_REDIRECT_FDS``.

Either way the sockets are shared with other processes: the kernel keeps one accept queue
per socket, which every process holding it takes from.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, MutableMapping

from .._errors import ConfigError

__all__ = [
    "INHERITED_FDS_ENV",
    "REDIRECT_FDS_ENV",
    "ActivationError",
    "SD_LISTEN_FDS_START",
    "inherited_redirect_sockets",
    "inherited_sockets",
    "systemd_sockets",
]

SD_LISTEN_FDS_START = 3
INHERITED_FDS_ENV = "TRIOIIS_LISTEN_FDS"
REDIRECT_FDS_ENV = "TRIOIIS_REDIRECT_FDS"


class ActivationError(ConfigError):
    """The environment names descriptors that are not listening stream sockets."""


def systemd_sockets(
    environ: MutableMapping[str, str] | None = None,
) -> list[socket.socket] | None:
    """The sockets systemd passed to this process; None when it passed none.

    The variables are removed from the environment (as ``sd_listen_fds(1)`` does), so that
    processes started from here do not take the descriptors for theirs.

    Raises:
        ActivationError: the variables are malformed or a descriptor is not a listening
            stream socket.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    if pid is None or count is None:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    if not pid.isdigit() or int(pid) != os.getpid():
        return None  # meant for another process (our parent's, typically)
    if not count.isdigit() or int(count) < 1:
        raise ActivationError(f"LISTEN_FDS={count!r} is not a positive number")
    return _adopt(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(count)), "LISTEN_FDS")


def inherited_sockets(
    environ: MutableMapping[str, str] | None = None,
) -> list[socket.socket] | None:
    """The sockets a ``--workers`` supervisor passed for the bindings
    (``TRIOIIS_LISTEN_FDS``); None when there are none.

    Raises:
        ActivationError: the variable is empty, malformed or names something else.
    """
    return _inherited(environ, INHERITED_FDS_ENV, may_be_empty=False)


def inherited_redirect_sockets(
    environ: MutableMapping[str, str] | None = None,
) -> list[socket.socket] | None:
    """The ``https_redirect`` sockets a ``--workers`` supervisor passed
    (``TRIOIIS_REDIRECT_FDS``, always set by it, empty when it has none: the worker then
    opens none of its own); None outside a supervisor.

    Raises:
        ActivationError: the variable is malformed or names something else.
    """
    return _inherited(environ, REDIRECT_FDS_ENV, may_be_empty=True)


def _inherited(
    environ: MutableMapping[str, str] | None, variable: str, *, may_be_empty: bool
) -> list[socket.socket] | None:
    env = os.environ if environ is None else environ
    value = env.pop(variable, None)
    if value is None:
        return None
    if not value and may_be_empty:
        return []
    numbers = value.split(",")
    if not value or not all(n.isdigit() for n in numbers):
        raise ActivationError(f"{variable}={value!r} is not a list of descriptors")
    return _adopt((int(n) for n in numbers), variable)


def _adopt(fds: Iterable[int], source: str) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        for fd in fds:
            try:
                sock = socket.socket(fileno=fd)
            except OSError as exc:
                raise ActivationError(f"{source}: descriptor {fd} is not a socket ({exc})") from exc
            sockets.append(sock)
            listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            if sock.type != socket.SOCK_STREAM or not listening:
                raise ActivationError(f"{source}: descriptor {fd} is not a listening TCP socket")
            sock.set_inheritable(False)  # a module's subprocess does not get it
    except BaseException:
        for sock in sockets:
            sock.detach()  # not ours to close: leave the descriptors as they were
        raise
    return sockets
