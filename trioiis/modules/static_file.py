"""static_file: serve files from the site root (EXECUTE_REQUEST_HANDLER, ``*`` mapping).

Every URL is resolved through ``await ctx.map_path()``, so MAP_PATH modules can remap it.
GET and HEAD only; ``Content-Type`` from the file name (``charset=utf-8`` for text), a strong
``ETag`` and ``Last-Modified``, ``If-None-Match``/``If-Modified-Since`` → 304. Hidden files
(a segment starting with ".") and paths that leave the root (``..``, encoded or not,
symlinks pointing outside) → 404. Large files are streamed in 256 KiB pieces; file reads
run in a worker thread so they never block the event loop.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

CHUNK = 256 * 1024
_TEXT_TYPES = {"application/javascript", "application/json", "application/xml", "image/svg+xml"}


class StaticFileModule(HttpModule):
    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        try:
            path = await ctx.map_path(ctx.request.raw_path)
        except trioiis.HResultError:
            return send_error(ctx, 400)
        if ctx.response.headers_sent:
            return Status.FINISH_REQUEST  # a child request (run by MAP_PATH) already answered
        found = await lookup(ctx, path, read_small=ctx.request.method == "GET")
        if found is None:
            return send_error(ctx, 404)
        if stat.S_ISDIR(found.info.st_mode):
            return Status.CONTINUE  # default_document / directory_listing decide
        if ctx.request.raw_path.endswith("/"):
            return send_error(ctx, 404)  # /file.txt/ names a folder that does not exist
        return await serve_file(ctx, path, found)


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(StaticFileModule), Notification.EXECUTE_REQUEST_HANDLER
    )


def send_error(ctx: HttpContext, status: int) -> Status:
    """Set an error status with a short text body and finish the request."""
    response = ctx.response
    response.clear()
    response.set_status(status)
    response.set_header("Content-Type", "text/plain; charset=utf-8")
    response.write(f"{status} {response.reason}\n")
    return Status.FINISH_REQUEST


@dataclass(frozen=True, slots=True)
class Found:
    """A file (or folder) inside the site: its ``stat`` and, for small files, its bytes."""

    info: os.stat_result
    data: bytes | None = None


async def lookup(ctx: HttpContext, path: Path, *, read_small: bool = False) -> Found | None:
    """``path`` if it is inside the site root (symlinks resolved) and not hidden, else None.

    One worker-thread hop does the resolve, the ``stat`` and, with ``read_small``, the read
    of a regular file up to ``CHUNK`` bytes (thread hops, not the syscalls, dominate the cost
    of serving a small file).
    """
    root = ctx.site.root
    try:
        relative = path.relative_to(root)
    except ValueError:
        relative = None
    if relative is not None and any(part.startswith(".") for part in relative.parts):
        return None

    def check() -> Found | None:
        try:
            real = path.resolve(strict=True)
            real.relative_to(root.resolve())
            info = real.stat()
            if read_small and stat.S_ISREG(info.st_mode) and info.st_size <= CHUNK:
                with open(real, "rb") as file:
                    data = file.read(CHUNK + 1)
                if len(data) == info.st_size:
                    return Found(info, data)
            return Found(info)
        except (OSError, ValueError):
            return None

    return await trio.to_thread.run_sync(check)


def content_type(path: Path) -> str:
    kind, _ = mimetypes.guess_type(path.name)
    kind = kind or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES:
        kind += "; charset=utf-8"
    return kind


async def serve_file(ctx: HttpContext, path: Path, found: Found) -> Status:
    """Answer with the file's contents (or 304), streaming large files.

    Cancellation: each piece is read in a thread and written with ``flush``; a cancel or
    ``cancel_io`` stops between pieces and the file is closed.
    """
    request, response = ctx.request, ctx.response
    info = found.info
    if request.method not in ("GET", "HEAD"):
        send_error(ctx, 405)
        response.set_header("Allow", "GET, HEAD")
        return Status.FINISH_REQUEST
    etag = f'"{info.st_mtime_ns:x}-{info.st_size:x}"'
    modified = email.utils.formatdate(info.st_mtime, usegmt=True)
    response.set_header("Content-Type", content_type(path))
    response.set_header("ETag", etag)
    response.set_header("Last-Modified", modified)
    if not_modified(
        request.get_header("if-none-match"), request.get_header("if-modified-since"), etag, info
    ):
        response.set_status(304)
        response.delete_header("Content-Type")
        ctx.set_request_handled()
        return Status.CONTINUE
    size = info.st_size
    response.set_header("Content-Length", str(size))
    ctx.set_request_handled()
    if request.method == "HEAD" or size == 0:
        return Status.CONTINUE
    if found.data is not None:
        response.write(found.data)
        return Status.CONTINUE
    if size <= CHUNK:
        response.write(await trio.to_thread.run_sync(path.read_bytes))
        return Status.CONTINUE
    async with await trio.open_file(path, "rb") as file:
        while data := await file.read(CHUNK):
            response.write(data)
            await response.flush(more_data=True)
    return Status.CONTINUE


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, etag: str, info: os.stat_result
) -> bool:
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if if_modified_since is not None:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError, IndexError):
            return False
        return int(info.st_mtime) <= since
    return False
