"""The HTTP→HTTPS redirect binding (``https_redirect``): a plain-HTTP listener that
answers every request with ``301 Moved Permanently`` to the same path and query on
``https://`` (the request's host, the TLS binding's port), then closes the connection.

It runs no modules: it is a doorman, not a site. h11 parses each request head, within
``timeout`` seconds; a head h11 refuses gets a 400. Each answer (or the client leaving before
it went out) is handed to the caller as an ``Answer``, for the access log and the counters; a
connection that closes or times out before a whole head says nothing.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import h11
import trio

from .sockets import peername, sockname

__all__ = ["Answer", "redirect_location", "serve_https_redirect"]

#: Seconds a client has to send its request head.
_HEAD_TIMEOUT = 10.0
_MAX_HEAD = 16 * 1024


def redirect_location(host: str, target: str, https_port: int) -> str:
    """``https://HOST[:PORT]TARGET``: ``host`` without its port, ``https_port`` written
    unless it is 443. A target that is not a path (``*``, absolute-form) becomes ``/``."""
    host = host.strip()
    if host.startswith("["):
        name = host[: host.find("]") + 1] if "]" in host else host
    else:
        name = host.partition(":")[0]
    port = "" if https_port == 443 else f":{https_port}"
    path = target if target.startswith("/") else "/"
    return f"https://{name}{port}{path}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Answer:
    """What a redirect binding did with one request head."""

    started: float  # time.time() when the connection was accepted
    taken: float  # seconds from then to the answer handed to the kernel (or the failure)
    remote: tuple[str, int]
    local: tuple[str, int]
    method: str  # "-" for a head h11 refused
    target: str  # "-" for a head h11 refused
    http_version: str
    user_agent: str | None
    #: 301, or 400 for a head h11 refused; 499 when the client left before it went out.
    status: int
    #: ``completed``, ``refused`` (the 400) or ``cancelled_by_client`` (the 499).
    outcome: str


async def _answer(stream: trio.SocketStream, https_port: int, fallback_host: str) -> Answer | None:
    started = time.time()
    remote, local = peername(stream.socket), sockname(stream.socket)
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD)
    response: h11.Response
    method = target = "-"
    http_version, user_agent, outcome = "1.1", None, "refused"
    try:
        with trio.fail_after(_HEAD_TIMEOUT):
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                    continue
                break
        if not isinstance(event, h11.Request):
            return None
        headers = dict(event.headers)
        host = headers.get(b"host", b"").decode("latin-1") or fallback_host
        method, target = event.method.decode("ascii"), event.target.decode("latin-1")
        http_version, outcome = event.http_version.decode("ascii"), "completed"
        user_agent = headers[b"user-agent"].decode("latin-1") if b"user-agent" in headers else None
        response = h11.Response(
            status_code=301,
            headers=[
                ("Location", redirect_location(host, target, https_port)),
                ("Content-Length", "0"),
                ("Connection", "close"),
            ],
        )
    except h11.RemoteProtocolError:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # to be allowed an answer
        conn.next_event()
        response = h11.Response(
            status_code=400, headers=[("Content-Length", "0"), ("Connection", "close")]
        )
    except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        return None
    status = response.status_code
    try:
        await stream.send_all(conn.send(response) + conn.send(h11.EndOfMessage()))
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        status, outcome = 499, "cancelled_by_client"
    return Answer(
        started=started,
        taken=time.time() - started,
        remote=remote,
        local=local,
        method=method,
        target=target,
        http_version=http_version,
        user_agent=user_agent,
        status=status,
        outcome=outcome,
    )


async def _connection(
    stream: trio.SocketStream,
    https_port: int,
    fallback_host: str,
    on_answer: Callable[[Answer], None],
) -> None:
    async with stream:
        answer = await _answer(stream, https_port, fallback_host)
        if answer is None:
            return
        on_answer(answer)
        if answer.outcome == "cancelled_by_client":
            return
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            with trio.move_on_after(1.0):  # let the answer arrive before the close
                await stream.send_eof()
                while await stream.receive_some(65536):
                    pass


async def serve_https_redirect(
    sockets: Sequence[socket.socket],
    https_port: int,
    on_answer: Callable[[Answer], None],
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on the listening ``sockets`` (the ``https_redirect`` bindings, opened by the
    caller or inherited from a supervisor) and redirect every request to ``https_port``,
    calling ``on_answer`` with what was done for each; the ``(host, port)`` pairs go to
    ``task_status.started``. The sockets are closed when this returns.

    Cancellation: stops listening and closes every connection at once.
    """
    listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
    bound = [sockname(listener.socket) for listener in listeners]
    fallback = bound[0][0] if bound else "localhost"

    async def handle(stream: trio.SocketStream) -> None:
        await _connection(stream, https_port, fallback, on_answer)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, handle, listeners)
            task_status.started(bound)
    finally:
        for listener in listeners:
            listener.socket.close()
