"""request_filtering: refuse requests before any other module sees them (BEGIN_REQUEST, FIRST).

Like IIS request filtering, each refusal is a 4xx with an IIS sub-status (``get_status()``
reports it, and so does a log that records it), a short text body (which custom_errors may
replace with an error page), and ``Status.FINISH_REQUEST``:

==============================  =========  ===============================================
check (option)                  answer     IIS equivalent
==============================  =========  ===============================================
``Content-Length`` > max_body   413.1      413.1 / 404.13 content length too large
path longer than max_url        414.14     404.14 URL too long
query longer than max_query     404.15     404.15 query string too long
method not in ``verbs``         405.6      404.6 verb denied (``Allow`` lists ``verbs``)
extension in deny_extensions    404.7      404.7 file extension denied
segment in deny_segments        404.8      404.8 hidden segment
==============================  =========  ===============================================

Checks run in that order; the first that fails answers. Extensions and segments are compared
case-insensitively on the percent-decoded path. A chunked body has no length to check here:
``Limits.max_body_bytes`` bounds it while it is read. A 413 also closes the connection (the
body it refused is not read).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Priority, Status

from ._options import check_keys, get_int, get_str_list

NAME = "request_filtering"
OPTIONS = {"max_body", "max_url", "max_query", "verbs", "deny_extensions", "deny_segments"}
MAX_BODY = 30_000_000
MAX_URL = 4096
MAX_QUERY = 2048


class RequestFilteringModule(HttpModule):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        settings, request = self.settings, ctx.request
        length = request.get_header("content-length")
        if length is not None and length.strip().isdigit() and int(length) > settings.max_body:
            ctx.response.set_need_disconnect()
            return refuse(ctx, 413, 1)
        if len(request.raw_path) > settings.max_url:
            return refuse(ctx, 414, 14)
        if len(request.query) > settings.max_query:
            return refuse(ctx, 404, 15)
        if settings.verbs is not None and request.method not in settings.verbs:
            refuse(ctx, 405, 6)
            ctx.response.set_header("Allow", ", ".join(settings.verbs))
            return Status.FINISH_REQUEST
        if not settings.deny_extensions and not settings.deny_segments:
            return Status.CONTINUE  # (the default: no path to split)
        segments = [s.casefold() for s in request.path.split("/") if s]
        if segments and settings.deny_extensions:
            extension = os.path.splitext(segments[-1])[1]
            if extension and extension in settings.deny_extensions:
                return refuse(ctx, 404, 7)
        if settings.deny_segments and any(s in settings.deny_segments for s in segments):
            return refuse(ctx, 404, 8)
        return Status.CONTINUE


def refuse(ctx: HttpContext, status: int, sub_status: int) -> Status:
    """A short text answer with the IIS sub-status; finishes the request."""
    response = ctx.response
    response.clear()
    response.set_status(status, "", sub_status)
    response.set_header("Content-Type", "text/plain; charset=utf-8")
    response.write(f"{status} {response.reason}\n")
    return Status.FINISH_REQUEST


class Settings:
    """The checked options."""

    def __init__(self, options: Mapping[str, object]) -> None:
        check_keys(NAME, options, OPTIONS)
        self.max_body = get_int(NAME, options, "max_body", MAX_BODY)
        self.max_url = get_int(NAME, options, "max_url", MAX_URL)
        self.max_query = get_int(NAME, options, "max_query", MAX_QUERY)
        verbs = get_str_list(NAME, options, "verbs", None)
        self.verbs = None if verbs is None else tuple(v.upper() for v in verbs)
        if self.verbs is not None and not self.verbs:
            raise ValueError(f"{NAME}: option 'verbs' must name at least one method")
        extensions = get_str_list(NAME, options, "deny_extensions", []) or []
        self.deny_extensions = frozenset(
            (e if e.startswith(".") else f".{e}").casefold() for e in extensions
        )
        segments = get_str_list(NAME, options, "deny_segments", []) or []
        if any("/" in s for s in segments):
            raise ValueError(f"{NAME}: option 'deny_segments' names segments, without '/'")
        self.deny_segments = frozenset(s.casefold() for s in segments)


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    settings = Settings(info.options)
    info.set_request_notifications(
        trioiis.SimpleFactory(functools.partial(RequestFilteringModule, settings)),
        Notification.BEGIN_REQUEST,
    )
    info.set_priority_for_request_notification(Notification.BEGIN_REQUEST, Priority.FIRST)
