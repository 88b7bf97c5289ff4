"""Access-log lines: one per request, in the format the operator chose.

Formats (``ServerConfig.access_log_format``):

* ``combined`` (default; nginx's ``combined`` plus time taken and outcome)::

      127.0.0.1 - - [22/Nov/2026:01:02:03 +0000] "GET /a HTTP/1.1" 200 512 "-" "c" 1ms completed b

* ``common``: the Common Log Format plus time taken and outcome (no referer, user agent).
* ``w3c``: IIS's W3C extended format, with its ``#Software``/``#Version``/``#Fields`` header
  written first (UTC date and time, ``sc-substatus``, ``sc-win32-status``, ``time-taken`` ms).
* ``json``: one JSON object a line, every field named.

Every format ends with (or, in W3C's ``s-sitename`` and JSON's ``site``, names) the site
that served the request: its ``[[sites]]`` name, ``default`` for the top-level root, ``-``
for a refused head.

The outcome is the request's ``Outcome`` (``trioiis/_lifecycle.py``): ``completed``,
``cancelled_by_client``, ``timed_out``, ``aborted_by_server`` or ``failed``; or ``refused``
for a head the server refused before any module ran (method and URL are then ``-``). The
status is the one the client got; when no status line was sent it is 499 (the client left
first) or 444 (the server closed without a response), as nginx logs them. The byte count is
the response-body bytes handed to the kernel, also for a response cut short.

A WebSocket is one request whose line is written when the socket ends: its status is 101,
its byte count the bytes sent after the 101, and the line adds the bytes received and the
close code (``ws_in=… ws_close=…`` in ``combined`` and ``common``; ``bytes_received`` and
``ws_close`` in ``json``; ``w3c`` keeps its fixed fields).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Final, Literal

Format = Literal["combined", "common", "w3c", "json"]
FORMATS: Final[tuple[str, ...]] = ("combined", "common", "w3c", "json")

W3C_FIELDS: Final = (
    "date time s-sitename s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip "
    "cs(User-Agent) cs(Referer) sc-status sc-substatus sc-win32-status sc-bytes time-taken "
    "x-outcome"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """What is known about one finished request."""

    started: float  # time.time() at the start
    taken: float  # seconds
    remote: str
    local: str
    port: int
    user: str | None
    method: str
    url: str
    http_version: str
    status: int
    sub_status: int
    win32_status: int
    bytes_sent: int
    referer: str | None
    user_agent: str | None
    outcome: str
    site: str = "-"  # the site's name (``[[sites]]``), ``default`` for the top-level root
    #: A WebSocket's bytes received after the 101 and its close code (None otherwise).
    bytes_received: int | None = None
    close_code: int | None = None


def header(fmt: Format) -> str | None:
    """Lines to write once at the top of a new log file (W3C only)."""
    if fmt != "w3c":
        return None
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return f"#Software: trioiis\n#Version: 1.0\n#Date: {now}\n#Fields: {W3C_FIELDS}"


def _clean(value: str) -> str:
    """Control characters escaped: a log line is always exactly one line (no injection)."""
    if value.isprintable():
        return value
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in value)


def _quoted(value: str | None) -> str:
    if not value:
        return '"-"'
    return '"' + _clean(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _w3c(value: str | None) -> str:
    # W3C fields are space-separated: spaces become +, empty is -.
    return _clean(value).replace(" ", "+") if value else "-"


def format_entry(entry: Entry, fmt: Format) -> str:
    """One log line for ``entry`` (no newline)."""
    if fmt == "json":
        websocket = (
            {}
            if entry.close_code is None
            else {"bytes_received": entry.bytes_received, "ws_close": entry.close_code}
        )
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(entry.started)),
                "remote": entry.remote,
                "user": entry.user,
                "method": entry.method,
                "url": entry.url,
                "http_version": entry.http_version,
                "status": entry.status,
                "sub_status": entry.sub_status,
                "bytes": entry.bytes_sent,
                "referer": entry.referer,
                "user_agent": entry.user_agent,
                "time_taken_ms": round(entry.taken * 1000, 3),
                "outcome": entry.outcome,
                "site": entry.site,
                **websocket,
            },
            separators=(",", ":"),
        )
    if fmt == "w3c":
        stem, _, query = entry.url.partition("?")
        return " ".join(
            (
                time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(entry.started)),
                _w3c(entry.site),
                entry.local or "-",
                entry.method,
                _w3c(stem),
                _w3c(query),
                str(entry.port),
                _w3c(entry.user),
                entry.remote or "-",
                _w3c(entry.user_agent),
                _w3c(entry.referer),
                str(entry.status),
                str(entry.sub_status),
                str(entry.win32_status),
                str(entry.bytes_sent),
                str(round(entry.taken * 1000)),
                entry.outcome,
            )
        )
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(entry.started))
    line = '{} - {} [{}] "{} {} HTTP/{}" {} {}'.format(
        entry.remote or "-",
        entry.user or "-",
        stamp,
        entry.method,
        _clean(entry.url),
        entry.http_version,
        entry.status,
        entry.bytes_sent,
    )
    if fmt == "combined":
        line += f" {_quoted(entry.referer)} {_quoted(entry.user_agent)}"
    line = f"{line} {entry.taken * 1000:.1f}ms {entry.outcome}"
    if entry.close_code is not None:
        line += f" ws_in={entry.bytes_received} ws_close={entry.close_code}"
    return f"{line} {_w3c(entry.site)}"
