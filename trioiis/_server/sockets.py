"""The two ends of a stdlib socket as ``(host, port)``, the shape the server, its logs and
the CLI's banner use. A socket that has no IP address (a Unix socket) gives its path, or
``""``, with port 0."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["peername", "sockname"]


class _Socket(Protocol):
    """A stdlib socket or a Trio one."""

    def getsockname(self) -> Any: ...

    def getpeername(self) -> Any: ...


def sockname(sock: _Socket) -> tuple[str, int]:
    """The local address: the bound one of a listener, ours on an accepted connection."""
    return _address(sock.getsockname())


def peername(sock: _Socket) -> tuple[str, int]:
    """The remote address of a connection; ``("", 0)`` once the peer is gone."""
    try:
        return _address(sock.getpeername())
    except OSError:
        return ("", 0)


def _address(name: object) -> tuple[str, int]:
    if isinstance(name, tuple):
        return (str(name[0]), int(name[1]))
    return (str(name), 0)
