"""static_file: serve files from the site root (EXECUTE_REQUEST_HANDLER, ``*`` mapping).

What it does, in the order it does it:

1. **Maps the URL** through ``await ctx.map_path()`` (MAP_PATH modules may remap it). A URL
   that cannot be mapped safely — ``..`` (plain or ``%2e%2e``), an encoded ``/`` that would
   form one, a backslash, NUL, bytes that are not UTF-8 (overlong forms included) — is 400.
   ``%252e`` is decoded once only, so it names a file called ``%2e``: 404.
2. **Looks the file up** (``FileAccess.lookup``): a segment starting with "." (except those
   in ``ALLOWED_HIDDEN_SEGMENTS``) or in the server's ``denied_segments`` (case-insensitive,
   like IIS request filtering's hidden segments) is 404, before and after symlinks are
   resolved. A path that resolves outside the root (a symlink pointing out) is 404 unless the
   server's ``allow_symlinks_outside_root`` is set. Only regular files are served; a folder is
   left to default_document and directory_listing (``CONTINUE``).
3. **GET and HEAD only** (else 405 with ``Allow``). ``Content-Type`` from the file name
   (``charset=utf-8`` for text), a strong ``ETag``, ``Last-Modified``, ``Accept-Ranges: bytes``.
4. **Preconditions** (RFC 9110 §13.2.2): ``If-Match`` / ``If-Unmodified-Since`` → 412;
   ``If-None-Match`` (wins over ``If-Modified-Since``) → 304.
5. **Ranges** (GET only): one range → 206 with ``Content-Range``; several → 206
   ``multipart/byteranges`` with a random boundary; none satisfiable → 416 with
   ``Content-Range: bytes */size``. ``If-Range`` (an ETag, or the exact Last-Modified date)
   that does not match → 200 with the whole file. A malformed header, more than
   ``MAX_RANGES`` ranges or overlapping ranges → 200 with the whole file.
6. **Sends the bytes.** A file up to ``CHUNK`` bytes is read in the same worker-thread hop as
   the ``stat`` (and may stay in the module's file cache with its bytes); a larger one is
   opened with ``trio.open_file`` and sent with ``response.transmit_file``: zero-copy
   ``os.sendfile`` on a plain socket, ``CHUNK``-sized worker-thread reads under TLS, so
   memory stays bounded. A larger file stays in the cache as its ``stat`` only: the next GET
   revalidates it with one ``stat``, opens it and checks with ``fstat`` on the event loop
   thread, with no thread hop.

Cancellation: a cancel stops between pieces and the file is closed (shielded). A
``cancel_io()`` that aborts a flush ends the response with a reset connection (a partial body
cannot be framed); a file that shrinks while it is sent does the same.
"""

from __future__ import annotations

import dataclasses
import email.utils
import functools
import itertools
import mimetypes
import os
import re
import secrets
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import trio

import trioiis
from trioiis import (
    ERROR_HANDLE_EOF,
    HttpContext,
    HttpModule,
    Notification,
    Status,
    absolute_url,
    memoize_short,
)

from ._options import check_keys
from ._static_rules import CacheRule, FallbackRule, cache_rules, fallback_rules, first_match

CHUNK = 256 * 1024
#: Segments starting with "." that are served all the same (RFC 8615 well-known URIs).
ALLOWED_HIDDEN_SEGMENTS: frozenset[str] = frozenset({".well-known"})
#: More ranges than this in one ``Range`` header: the whole file is sent instead (200).
MAX_RANGES = 16
#: Small files kept in memory after a GET by one module of one server (each ``FileAccess``
#: has its own cache), at most this many bytes in all (0: no cache). A cached file is
#: revalidated on every request with one ``stat`` (inode, size, times) on the event loop
#: thread instead of a worker-thread hop: a changed file is never served stale.
CACHE_BYTES = 32 * 1024 * 1024
#: Files kept in that cache at most; a larger file is kept as its ``stat`` only (like nginx's
#: ``open_file_cache``), so that serving it again costs no worker-thread hop either.
CACHE_ENTRIES = 4096

#: Types for suffixes that ``mimetypes`` (which reads the system's tables) may get wrong or miss.
DEFAULT_TYPES: dict[str, str] = {
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".xml": "application/xml",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".pdf": "application/pdf",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".ico": "image/vnd.microsoft.icon",
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".mp3": "audio/mpeg",
}
#: A compressed file is served as what it is, not as what it contains (no Content-Encoding).
_ENCODING_TYPES = {
    "gzip": "application/gzip",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "br": "application/x-brotli",
    "compress": "application/x-compress",
}
_TEXT_TYPES = {
    "application/javascript",
    "application/json",
    "application/manifest+json",
    "application/xml",
    "image/svg+xml",
}
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')


class StaticFileModule(HttpModule):
    """Serves files; ``cache`` and ``fallback`` rules come from the module's options
    (``trioiis.modules._static_rules``)."""

    def __init__(
        self,
        access: FileAccess,
        cache: tuple[CacheRule, ...] = (),
        fallback: tuple[FallbackRule, ...] = (),
    ) -> None:
        self.access = access
        self.cache = cache
        self.fallback = fallback

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        try:
            path = await ctx.map_path(ctx.request.raw_path)
        except trioiis.ModuleFailedError:
            raise  # a MAP_PATH module failed: the request answers 500
        except trioiis.HResultError:
            return send_error(ctx, 400)
        if ctx.response.headers_sent:
            return Status.FINISH_REQUEST  # a child request (run by MAP_PATH) already answered
        found = await self.access.lookup(ctx, path, read_small=ctx.request.method == "GET")
        if found is None:
            return await self._fall_back(ctx)
        if stat.S_ISDIR(found.info.st_mode):
            return Status.CONTINUE  # default_document / directory_listing decide
        if ctx.request.raw_path.endswith("/") or not stat.S_ISREG(found.info.st_mode):
            return send_error(ctx, 404)  # /file.txt/ names a folder; FIFOs, devices: never
        return await self._serve(ctx, ctx.request.path, path, found)

    async def _serve(self, ctx: HttpContext, url_path: str, path: Path, found: Found) -> Status:
        if self.cache:
            rule = first_match(self.cache, url_path)
            if rule is not None:
                for name, value in rule.headers(time.time()):
                    ctx.response.set_header(name, value)
        return await serve_file(ctx, path, found)

    async def _fall_back(self, ctx: HttpContext) -> Status:
        """No such file: a matching ``fallback`` rule's document (200), else 404."""
        request = ctx.request
        rule = first_match(self.fallback, request.path) if self.fallback else None
        if rule is None or request.method not in ("GET", "HEAD"):
            return send_error(ctx, 404)
        try:
            path = await ctx.map_path(rule.document)
        except trioiis.HResultError:
            return send_error(ctx, 404)
        found = await self.access.lookup(ctx, path, read_small=request.method == "GET")
        if found is None or not stat.S_ISREG(found.info.st_mode):
            return send_error(ctx, 404)
        return await self._serve(ctx, rule.document, path, found)


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    """Options: ``cache`` and ``fallback`` rules (see ``trioiis.modules._static_rules``)."""
    name = info.get_name()
    check_keys(name, info.options, {"cache", "fallback"})
    factory = functools.partial(
        StaticFileModule,
        FileAccess(server),
        cache_rules(name, info.options),
        fallback_rules(name, info.options),
    )
    info.set_request_notifications(
        trioiis.SimpleFactory(factory), Notification.EXECUTE_REQUEST_HANDLER
    )


def send_error(ctx: HttpContext, status: int) -> Status:
    """Set an error status with a short text body and finish the request."""
    response = ctx.response
    response.clear()
    response.set_status(status)
    response.set_header("Content-Type", "text/plain; charset=utf-8")
    response.write(f"{status} {response.reason}\n")
    return Status.FINISH_REQUEST


def method_not_allowed(ctx: HttpContext) -> Status:
    """405 with ``Allow: GET, HEAD``; finishes the request."""
    send_error(ctx, 405)
    ctx.response.set_header("Allow", "GET, HEAD")
    return Status.FINISH_REQUEST


@dataclass(frozen=True, slots=True)
class Found:
    """A file (or folder) inside the site: its ``stat``, for small files its bytes, and the
    path with symlinks resolved (what is opened)."""

    info: os.stat_result
    data: bytes | None = None
    real_path: Path | None = None
    cached: bool = False  # from the cache: just revalidated by stat


class FileAccess:
    """What the built-in file modules of one server may serve, read from its settings
    (``GlobalServer.denied_segments``, ``allow_symlinks_outside_root``), with their cache of
    small files. Each module registration makes its own, so two servers in one process never
    share settings or cached bytes."""

    __slots__ = ("_cache", "_denied", "allow_symlinks_outside_root")

    def __init__(self, server: trioiis.GlobalServer) -> None:
        self._denied = frozenset(segment.casefold() for segment in server.denied_segments)
        self.allow_symlinks_outside_root = server.allow_symlinks_outside_root
        self._cache = _SmallFileCache()

    def refused_segment(self, segment: str) -> bool:
        """True for a path segment never served: hidden (".x") or denied."""
        if segment.startswith(".") and segment not in ALLOWED_HIDDEN_SEGMENTS:
            return True
        return segment.casefold() in self._denied

    def _refused(self, parts: Iterable[str]) -> bool:
        return any(self.refused_segment(part) for part in parts)

    async def lookup(
        self, ctx: HttpContext, path: Path, *, read_small: bool = False
    ) -> Found | None:
        """``path`` if it may be served, else None.

        None when a segment below the root is hidden or denied (before or after resolving
        symlinks), when it does not exist, or when it resolves outside the site root (unless
        ``allow_symlinks_outside_root``). One worker-thread hop does the resolve, the
        ``stat`` and, with ``read_small``, the read of a regular file up to ``CHUNK`` bytes
        (thread hops, not the syscalls, dominate the cost of serving a small file).

        Cancellation: a checkpoint. A cancel while the worker thread runs abandons its
        result (the thread finishes on its own; nothing is cached); ``cancel_io()`` does not
        touch it.
        """
        root = ctx.site.root
        # None when a MAP_PATH module moved it: only its resolved place is checked.
        relative = _parts_below(root, path)
        if relative is not None and self._refused(relative):
            return None
        allow_outside = self.allow_symlinks_outside_root and relative is not None
        key = (str(root), str(path))
        if read_small:
            cached = self._cache.get(key)
            if cached is not None:
                await trio.lowlevel.checkpoint()
                return cached

        def check() -> Found | None:
            try:
                real_root = root.resolve(strict=True)
                real = path.resolve(strict=True)
                try:
                    inside = real.relative_to(real_root)
                except ValueError:
                    if not allow_outside:
                        return None
                else:
                    if self._refused(inside.parts):
                        return None
                info = real.stat()
                if read_small and stat.S_ISREG(info.st_mode) and info.st_size <= CHUNK:
                    fd = _open_regular(real)
                    try:
                        opened = os.fstat(fd)
                        data = os.pread(fd, CHUNK + 1, 0)
                    finally:
                        os.close(fd)
                    if len(data) == opened.st_size:
                        return Found(opened, data, real)
                return Found(info, None, real)
            except (OSError, ValueError):
                return None

        found = await trio.to_thread.run_sync(check)
        if read_small and found is not None and stat.S_ISREG(found.info.st_mode):
            self._cache.put(key, found)
        return found


@memoize_short  # pathlib's relative_to costs more than a small file's stat
def _parts_below(root: Path, path: Path) -> tuple[str, ...] | None:
    """``path``'s segments below ``root``, or None when it is not below it."""
    try:
        return path.relative_to(root).parts
    except ValueError:
        return None


def _signature(info: os.stat_result) -> tuple[int, ...]:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


class _SmallFileCache:
    """LRU of files' ``Found`` (small ones with their bytes), bounded by ``max_bytes`` and
    ``max_entries`` and checked by ``stat``."""

    def __init__(self, max_bytes: int = CACHE_BYTES, max_entries: int = CACHE_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._items: dict[tuple[str, str], Found] = {}
        self._bytes = 0

    def get(self, key: tuple[str, str]) -> Found | None:
        found = self._items.get(key)
        if found is None:
            return None
        try:
            # The file, not the name: a replaced or edited file (or a symlink now pointing
            # elsewhere) has another signature, and is looked up again in full.
            current = os.stat(key[1])
        except OSError:
            current = None
        if current is None or _signature(current) != _signature(found.info):
            self._drop(key)
            return None
        self._items[key] = self._items.pop(key)  # most recently used last
        return found

    def put(self, key: tuple[str, str], found: Found) -> None:
        size = len(found.data or b"")
        if size > self.max_bytes or self.max_entries < 1:
            return
        self._drop(key)
        self._items[key] = dataclasses.replace(found, cached=True)
        self._bytes += size
        while (self._bytes > self.max_bytes or len(self._items) > self.max_entries) and self._items:
            self._drop(next(iter(self._items)))

    def _drop(self, key: tuple[str, str]) -> None:
        found = self._items.pop(key, None)
        if found is not None:
            self._bytes -= len(found.data or b"")


def _open_regular(path: Path | str, flags: int = os.O_RDONLY) -> int:
    """Open ``path`` without blocking on a FIFO; OSError if it is not a regular file."""
    fd = os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def content_type(path: Path | str) -> str:
    """The ``Content-Type`` for a file name: ``DEFAULT_TYPES``, then ``mimetypes``, then
    ``application/octet-stream``; ``; charset=utf-8`` for text types."""
    return _content_type(path.name if isinstance(path, Path) else path)


@functools.lru_cache(maxsize=1024)  # mimetypes' guess costs more than the rest of a 304
def _content_type(name: str) -> str:
    suffix = os.path.splitext(name)[1].lower()
    kind = DEFAULT_TYPES.get(suffix)
    if kind is None:
        guessed, encoding = mimetypes.guess_type(name, strict=False)
        kind = _ENCODING_TYPES.get(encoding or "") or guessed or "application/octet-stream"
    if kind.startswith("text/") or kind in _TEXT_TYPES or kind.endswith(("+json", "+xml")):
        kind += "; charset=utf-8"
    return kind


def entity_tag(info: os.stat_result) -> str:
    """A strong ETag from the modification time (ns) and the size."""
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def _last_modified(info: os.stat_result) -> int:
    """Modification time in whole seconds, never later than now (RFC 9110 §8.8.2.1)."""
    return int(min(info.st_mtime, time.time()))


@functools.lru_cache(maxsize=256)  # the same few files' dates, formatted once each
def _http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _parse_date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _tags(header: str) -> list[tuple[bool, str]]:
    """``(weak, opaque-tag)`` pairs of an ETag list header."""
    return [(bool(weak), tag) for weak, tag in _ENTITY_TAG.findall(header)]


def precondition_status(request: trioiis.HttpRequest, etag: str, modified: int) -> int | None:
    """412 or 304 when the request's preconditions say so (RFC 9110 §13.2.2), else None."""
    get = request.get_header
    if_match = get("if-match")
    if if_match is not None:
        if if_match.strip() != "*" and not any(
            not weak and tag == etag for weak, tag in _tags(if_match)
        ):
            return 412  # If-Match uses the strong comparison
    else:
        since = _parse_date(get("if-unmodified-since"))
        if since is not None and modified > since:
            return 412
    if_none_match = get("if-none-match")
    if if_none_match is not None:
        if if_none_match.strip() == "*" or any(tag == etag for _, tag in _tags(if_none_match)):
            return 304  # If-None-Match uses the weak comparison
        return None  # and wins over If-Modified-Since
    since = _parse_date(get("if-modified-since"))
    if since is not None and modified <= since:
        return 304
    return None


def _number(text: str) -> int | None:
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    return int(text) if len(text) <= 18 else 1 << 62  # huge is as good as infinite


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a ``Range`` header as ``(first, last)`` (inclusive).

    None means "ignore the header and send the whole file": another unit, a malformed
    header, more than ``MAX_RANGES`` ranges, or ranges that overlap (a known abuse). An
    empty list means nothing is satisfiable (416). An empty file has no ranges: None.
    """
    unit, equals, spec = header.partition("=")
    if size == 0 or not equals or unit.strip().lower() != "bytes":
        return None
    items = [item for item in (part.strip() for part in spec.split(",")) if item]
    if not items or len(items) > MAX_RANGES:
        return None
    ranges = []
    for item in items:
        first_text, dash, last_text = item.partition("-")
        if not dash:
            return None
        if not first_text.strip():  # suffix: the last N bytes
            length = _number(last_text)
            if length is None:
                return None
            if length > 0 and size > 0:
                ranges.append((max(0, size - length), size - 1))
            continue
        first = _number(first_text)
        last = _number(last_text) if last_text.strip() else size - 1
        if first is None or last is None or (last_text.strip() and last < first):
            return None
        if first < size:
            ranges.append((first, min(last, size - 1)))
    ordered = sorted(ranges)
    if any(b[0] <= a[1] for a, b in itertools.pairwise(ordered)):
        return None
    return ranges


def if_range_matches(value: str, etag: str, modified: int) -> bool:
    """``If-Range``: an ETag must match strongly; a date must equal Last-Modified exactly."""
    value = value.strip()
    if value.startswith(('"', "W/")):
        return value == etag
    since = _parse_date(value)
    return since is not None and int(since) == modified


async def serve_file(ctx: HttpContext, path: Path, found: Found) -> Status:
    """Answer a GET or HEAD with the file (200, 206, 304, 412 or 416), streaming large ones.

    Cancellation: a cancel stops between pieces and the file is closed (shielded);
    ``cancel_io()`` aborting a flush resets the connection (the body cannot be completed).
    """
    request = ctx.request
    if request.method not in ("GET", "HEAD"):
        return method_not_allowed(ctx)
    real = found.real_path or path
    if request.method == "HEAD" or found.data is not None:
        return await _answer(ctx, path, found.info, found.data, None)
    if found.cached:
        # Just revalidated by stat: open it here too (no thread hop), and check that the
        # file opened is the one that was stat'ed.
        try:
            fd = _open_regular(real)
        except OSError:
            return send_error(ctx, 404)
        try:
            info = os.fstat(fd)
            if _signature(info) == _signature(found.info):
                return await _answer(ctx, path, info, None, _Descriptor(fd))
        finally:
            os.close(fd)
    # Open first and take the validators from the open file: what is sent is what they say.
    opened: list[os.stat_result] = []

    def opener(name: str, flags: int) -> int:  # runs in the worker thread that opens
        fd = _open_regular(name, flags)
        opened.append(os.fstat(fd))
        return fd

    try:
        file = await trio.open_file(real, "rb", opener=opener)
    except OSError:
        return send_error(ctx, 404)  # gone, or replaced by something that is not a file
    async with file:
        return await _answer(ctx, path, opened[0] if opened else found.info, None, file)


class _File(Protocol):
    """What ``_stream`` needs of ``trio.open_file``'s result."""

    def fileno(self) -> int: ...


@dataclass(frozen=True, slots=True)
class _Descriptor:
    """A file descriptor opened (and closed) by ``serve_file`` itself."""

    fd: int

    def fileno(self) -> int:
        return self.fd


async def _answer(
    ctx: HttpContext, path: Path, info: os.stat_result, data: bytes | None, file: _File | None
) -> Status:
    """The answer for ``info``; ``path`` (as requested, not resolved) names the type."""
    request, response = ctx.request, ctx.response
    etag = entity_tag(info)
    modified = _last_modified(info)
    size = info.st_size
    kind = content_type(path)
    response.set_header("ETag", etag)
    response.set_header("Last-Modified", _http_date(modified))
    status = precondition_status(request, etag, modified)
    if status == 412:
        send_error(ctx, 412)
        return Status.FINISH_REQUEST
    if status == 304:
        response.set_status(304)
        ctx.set_request_handled()
        return Status.CONTINUE
    response.set_header("Accept-Ranges", "bytes")
    response.set_header("X-Content-Type-Options", "nosniff")
    ranges = None
    range_header = request.get_header("range")
    if range_header is not None and request.method == "GET":
        if_range = request.get_header("if-range")
        if if_range is None or if_range_matches(if_range, etag, modified):
            ranges = parse_ranges(range_header, size)
    if ranges is not None and not ranges:
        send_error(ctx, 416)
        response.set_header("Content-Range", f"bytes */{size}")
        return Status.FINISH_REQUEST
    ctx.set_request_handled()
    # What to send: (bytes written before the piece, first byte, length) each, then a tail.
    pieces: list[tuple[bytes, int, int]]
    tail = b""
    if ranges is None:
        pieces = [(b"", 0, size)]
        response.set_header("Content-Type", kind)
    elif len(ranges) == 1:
        first, last = ranges[0]
        pieces = [(b"", first, last - first + 1)]
        response.set_status(206)
        response.set_header("Content-Type", kind)
        response.set_header("Content-Range", f"bytes {first}-{last}/{size}")
    else:
        boundary = secrets.token_hex(16)
        pieces = []
        for i, (first, last) in enumerate(ranges):
            part = (
                ("\r\n" if i else "")
                + f"--{boundary}\r\nContent-Type: {kind}\r\n"
                + f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n"
            )
            pieces.append((part.encode("latin-1"), first, last - first + 1))
        tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
        response.set_status(206)
        response.set_header("Content-Type", f"multipart/byteranges; boundary={boundary}")
    length = sum(len(head) + n for head, _, n in pieces) + len(tail)
    response.set_header("Content-Length", str(length))
    if request.method == "HEAD" or length == 0:
        return Status.CONTINUE
    if data is not None:  # already in memory: no thread hop at all
        for head, first, n in pieces:
            response.write(head + data[first : first + n])
        if tail:
            response.write(tail)
        return Status.CONTINUE
    assert file is not None
    return await _stream(ctx, file, pieces, tail)


async def _stream(
    ctx: HttpContext, file: _File, pieces: list[tuple[bytes, int, int]], tail: bytes
) -> Status:
    """Send each piece with ``transmit_file``: zero-copy (``os.sendfile``) on a plain socket,
    worker-thread reads elsewhere. A file that shrank after its length was sent, or a
    ``cancel_io()``, ends the response with a reset connection (it cannot be completed).
    """
    response = ctx.response
    fd = file.fileno()
    try:
        for head, first, n in pieces:
            if head:
                response.write(head)
            await response.transmit_file(fd, first, n)
        if tail:
            response.write(tail)
    except trioiis.OperationAbortedError:
        response.reset_connection()  # cancel_io(): the rest of the body will never come
        return Status.FINISH_REQUEST
    except trioiis.ConnectionInvalidError:
        return Status.FINISH_REQUEST  # the client is gone; the request is being cancelled
    except trioiis.HResultError as exc:
        if exc.hresult != ERROR_HANDLE_EOF:
            raise
        response.reset_connection()  # the file shrank after its length was sent
        return Status.FINISH_REQUEST
    return Status.CONTINUE


async def find_folder(ctx: HttpContext, access: FileAccess) -> tuple[Path, Found] | Status | None:
    """The folder the request's URL names, for default_document and directory_listing.

    Returns:
        ``(path, found)`` for a folder URL ending in ``/``; ``Status.FINISH_REQUEST`` after
        answering ``/dir`` with a 301 to ``/dir/``; None when the URL names no folder.

    Cancellation: as ``FileAccess.lookup`` and ``ctx.map_path`` (a pending MAP_PATH
    handler's wait is aborted by ``cancel_io()`` with ``OperationAbortedError``).
    """
    request, response = ctx.request, ctx.response
    try:
        folder = await ctx.map_path(request.raw_path)
    except trioiis.ModuleFailedError:
        raise  # a MAP_PATH module failed: the request answers 500
    except trioiis.HResultError:
        return None
    found = await access.lookup(ctx, folder)
    if found is None or not stat.S_ISDIR(found.info.st_mode):
        return None
    if not request.raw_path.endswith("/"):
        query = f"?{request.query}" if request.query else ""
        response.clear()
        # Absolute, on the scheme and host the client used (a trusted proxy's word).
        response.redirect(absolute_url(ctx, request.raw_path + "/" + query))
        response.set_status(301)
        return Status.FINISH_REQUEST
    return folder, found
