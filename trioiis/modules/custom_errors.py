"""custom_errors: error pages for responses of status 400 and up (SEND_RESPONSE, HIGH).

SEND_RESPONSE runs in reverse priority order, so HIGH puts this module after the modules of
lower priority (it sees their final word) and before compression (FIRST), which can then
compress the page.

When the response is about to send its headers, has a status >= 400 and a body that is empty
or was produced by trioiis itself (the one-line ``"404 Not Found\\n"`` text of the built-in
modules), the body is replaced with:

1. the file ``{status}.html`` (``404.html``, ``500.html``, …) in the ``error_pages`` folder
   (default: the site root; a relative folder is relative to the site root), if it exists,
   is a regular file and is at most ``MAX_PAGE`` bytes; else
2. a small built-in HTML page with the status and its standard reason phrase, nothing else:
   never a path, a module's reason text, an exception or a traceback.

Left alone: a status set with ``set_status(..., try_skip_custom_errors=True)``; a context run
with ``ExecuteFlags.DISABLE_CUSTOM_ERROR`` (``ctx.custom_errors_disabled``); a response whose
headers were already sent (a streamed response); a body a module wrote itself; a child run
with ``BUFFER_RESPONSE`` (its body goes into its parent's body, its status never reaches the
client). Headers other than the body's own (``Allow``, ``Content-Range``, ``Location``…) are
kept. A HEAD request gets the page's headers (type, length) without its body, as the GET.

Options: ``error_pages`` (a folder), ``mode`` (``"custom"``, the default, or ``"off"``).
"""

from __future__ import annotations

import html
import os
import re
import stat
from http import HTTPStatus
from pathlib import Path

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Priority, Status

from ._options import check_keys, get_str

NAME = "custom_errors"
MODES = ("custom", "off")
#: An error page file larger than this is not used (the built-in page is sent instead).
MAX_PAGE = 1 << 20
_TRIOIIS_BODY = re.compile(rb"\A(\d{3}) [^\r\n]*\n\Z")


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Client Error" if status < 500 else "Server Error"


#: The look of the server's own pages (as directory_listing's index pages).
PAGE_STYLE = (
    "body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }"
    " h1 { font-size: 1.6em; } p { color: #555; }"
)
_EXPLANATIONS = {
    4: "The request cannot be answered as it is.",
    5: "The server could not complete the request. The error has been logged.",
}


def builtin_page(status: int) -> bytes:
    """The server's own page for ``status``: its code and reason phrase and one generic
    sentence, styled as the server's other pages. Nothing from the request or the error."""
    title = html.escape(f"{status} {reason_phrase(status)}")
    explanation = _EXPLANATIONS.get(status // 100, "")
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n"
        f"<body>\n<h1>{title}</h1>\n<p>{explanation}</p>\n</body>\n</html>\n"
    ).encode()


def made_by_trioiis(response: trioiis.HttpResponse) -> bool:
    """True for an empty body or the one-line text body the built-in modules write."""
    body = response.buffered
    if not body:
        return True
    kind = (response.get_header("content-type") or "").split(";")[0].strip().lower()
    match = _TRIOIIS_BODY.match(body)
    return kind == "text/plain" and match is not None and int(match[1]) == response.status


def _read_page(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_PAGE:
            return None
        data = os.pread(fd, MAX_PAGE + 1, 0)
        return data if len(data) <= MAX_PAGE else None
    except OSError:
        return None
    finally:
        os.close(fd)


def _buffered_into_parent(ctx: HttpContext) -> bool:
    """True for a child whose output becomes part of an ancestor's body (BUFFER_RESPONSE):
    its status never reaches the client, so a page would only end up inside another body."""
    current: HttpContext | None = ctx
    while current is not None:
        if current.get_execute_flags() & trioiis.ExecuteFlags.BUFFER_RESPONSE:
            return True
        current = current.get_parent_context()
    return False


def may_be_an_error(ctx: HttpContext) -> bool:
    """SEND_RESPONSE's condition: only a response of status 400 and up can get a page."""
    return ctx.response.status >= 400


class CustomErrorsModule(HttpModule):
    def __init__(self, error_pages: str) -> None:
        self.error_pages = error_pages

    async def on_send_response(
        self, ctx: HttpContext, provider: trioiis.SendResponseProvider
    ) -> Status:
        response = ctx.response
        if (
            response.status < 400
            or not provider.headers_being_sent
            or response.headers_sent
            or response.headers_suppressed
            or ctx.custom_errors_disabled
            or _buffered_into_parent(ctx)
            or response.get_status().try_skip_custom_errors
            or not made_by_trioiis(response)
        ):
            return Status.CONTINUE
        status = response.status
        folder = ctx.site.root / self.error_pages  # an absolute folder replaces the root
        page = await trio.to_thread.run_sync(_read_page, folder / f"{status}.html")
        if page is None:
            page = builtin_page(status)
        response.clear_body()
        for name in ("Content-Length", "Content-Encoding", "ETag", "Last-Modified"):
            response.delete_header(name)
        response.set_header("Content-Type", "text/html; charset=utf-8")
        response.set_header("X-Content-Type-Options", "nosniff")
        response.write(page)
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    options = info.options
    check_keys(NAME, options, {"error_pages", "mode"})
    error_pages = get_str(NAME, options, "error_pages", ".")
    mode = get_str(NAME, options, "mode", "custom")
    if mode not in MODES:
        raise ValueError(f'{NAME}: option \'mode\' must be "custom" or "off", not {mode!r}')
    if "\0" in error_pages:
        raise ValueError(f"{NAME}: option 'error_pages' must be a folder path")
    if mode == "off":
        return
    info.set_request_notifications(
        trioiis.SharedFactory(CustomErrorsModule(error_pages)),
        Notification.SEND_RESPONSE,
    )
    info.set_request_notification_condition(Notification.SEND_RESPONSE, may_be_an_error)
    info.set_priority_for_request_notification(Notification.SEND_RESPONSE, Priority.HIGH)
