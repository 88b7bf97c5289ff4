"""The server's access log: one line per request when it ends, one per refused head and one
per answer of an ``https_redirect`` binding, to
the ``trioiis.access`` logger and to the ``access_log`` file (reopened on SIGUSR1).

What a line says is what happened to the request: the status the client got, the body bytes
the transport handed over (``body_bytes_sent``), the request's ``Outcome``. The formats are
``trioiis._observability.accesslog``'s.
"""

from __future__ import annotations

import logging
import time

from .._constants import win32_from_hresult
from .._context import websocket
from .._context.connection import HttpConnection
from .._context.context import HttpContext
from .._context.sending import reported_status
from .._observability.accesslog import Entry, Format, format_entry, header
from .._observability.logfiles import LogFile
from .https_redirect import Answer

access_log = logging.getLogger("trioiis.access")


class AccessLog:
    """Where access-log lines go: the ``trioiis.access`` logger and, with a ``target``
    (``"-"`` or a path), a ``LogFile``."""

    def __init__(self, target: str | None, fmt: Format) -> None:
        self._target = target
        self._format = fmt
        self._file: LogFile | None = None

    def open(self) -> None:
        """Open the file (its folder is made when missing).

        Raises:
            ConfigError: the file cannot be opened.
        """
        if self._target is None:
            return
        self._file = LogFile(self._target, "access log")
        self._write_header()

    def reopen(self) -> None:
        """Open the file again (after a log rotator renamed it).

        Raises:
            ConfigError: the new file cannot be opened; lines keep going to the old one.
        """
        if self._file is not None:
            self._file.reopen()
            self._write_header()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _write_header(self) -> None:
        top = header(self._format)
        if top is not None and self._file is not None and self._file.is_new:
            self._file.write_line(top)  # W3C: the #Fields line comes first

    def _wanted(self) -> bool:
        return self._file is not None or access_log.hasHandlers()

    def write(self, ctx: HttpContext, started: float) -> None:
        """The line of a request that ended (``started``: its ``time.time()``)."""
        if not self._wanted():
            return  # nobody reads it: do not pay for formatting
        request, response = ctx.request, ctx.response
        outcome = ctx.lifecycle.outcome
        transport = ctx._wire.transport
        ws = transport if isinstance(transport, websocket.WebSocketTransport) else None
        self._line(
            Entry(
                started=started,
                taken=time.time() - started,
                remote=request.remote_address[0],
                local=request.local_address[0],
                port=request.local_address[1],
                user=ctx.user.name if ctx.user else None,
                method=request.method,
                url=request.url,
                http_version=request.http_version,
                status=reported_status(ctx, outcome),
                sub_status=response.sub_status,
                win32_status=win32_from_hresult(response.get_status().hresult, otherwise=0),
                bytes_sent=transport.body_bytes_sent,
                referer=request.get_header("referer"),
                user_agent=request.get_header("user-agent"),
                outcome=outcome,
                site=ctx.site.name,
                bytes_received=None if ws is None else ws.bytes_received,
                close_code=None if ws is None else ws.websocket.close_code,
            )
        )

    def write_refused(
        self, connection: HttpConnection, status: int, http_version: str = "1.1"
    ) -> None:
        """The line of a head refused before any module ran (method and URL ``-``)."""
        if not self._wanted():
            return
        remote, local = connection.remote_address, connection.local_address
        self._line(
            Entry(
                started=time.time(),
                taken=0.0,
                remote=remote[0],
                local=local[0],
                port=local[1],
                user=None,
                method="-",
                url="-",
                http_version=http_version,
                status=status,
                sub_status=0,
                win32_status=0,
                bytes_sent=0,
                referer=None,
                user_agent=None,
                outcome="refused",
                site="-",
            )
        )

    def write_redirect(self, answer: Answer) -> None:
        """The line of a request an ``https_redirect`` binding answered (site ``-``)."""
        if not self._wanted():
            return
        self._line(
            Entry(
                started=answer.started,
                taken=answer.taken,
                remote=answer.remote[0],
                local=answer.local[0],
                port=answer.local[1],
                user=None,
                method=answer.method,
                url=answer.target,
                http_version=answer.http_version,
                status=answer.status,
                sub_status=0,
                win32_status=0,
                bytes_sent=0,
                referer=None,
                user_agent=answer.user_agent,
                outcome=answer.outcome,
                site="-",
            )
        )

    def _line(self, entry: Entry) -> None:
        line = format_entry(entry, self._format)
        access_log.info(line)
        if self._file is not None:
            self._file.write_line(line)
