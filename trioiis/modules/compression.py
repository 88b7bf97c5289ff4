"""compression: gzip and brotli response bodies, and precompressed ``file.br`` / ``file.gz``.

Why SEND_RESPONSE (priority FIRST, so it runs last of all SEND_RESPONSE handlers, which run
in reverse order) and not RELEASE_REQUEST_STATE: SEND_RESPONSE sees *every* response just
before its headers go out — a request finished early with FINISH_REQUEST skips
RELEASE_REQUEST_STATE, and custom_errors writes its pages at SEND_RESPONSE — and
``provider.headers_being_sent`` with the MORE_DATA flag says whether the whole body is in
the buffer (a final send) or the response is being streamed (left alone).

Dynamic compression of a buffered body happens when all of these hold:

* the client accepts ``br`` or ``gzip`` (``Accept-Encoding``, ``q=0`` refuses, ``*``
  counts; brotli wins a tie);
* the ``Content-Type`` is compressible: ``text/*``, JSON, JavaScript, XML, SVG, WebAssembly;
* the body is at least ``min_size`` bytes and all of it is in the buffer (this is the
  final send; a ``Content-Length``, if set, equals the buffer's length);
* the status is not 206 (never a range), 204, 304 or 1xx, there is no ``Content-Range``, no
  ``Content-Encoding`` already and no ``Cache-Control: no-transform``; not a HEAD request.

The body is then replaced by its compressed form with ``Content-Encoding``, a new
``Content-Length``, and an ``ETag`` that names the encoding (``"abc"`` → ``"abc-gz"`` /
``"abc-br"``, weak stays weak), so a cache never mixes representations. Any response of a
compressible type gets ``Vary: Accept-Encoding``, compressed or not.

**Precompressed files** (option ``precompressed``, default on): at MAP_PATH (priority LAST,
after any module that remaps), for a GET or HEAD of the request's own URL without ``Range``,
when the mapped file ``x.css`` has a sibling ``x.css.br`` (or ``.gz``) that the client
accepts, that is a regular file static_file would serve, and is not older than ``x.css``,
the physical path becomes the sibling. static_file serves it (validators, 304s, streaming
of large files); at SEND_RESPONSE the ``Content-Type`` is put back to the original's, and
``Content-Encoding``, the suffixed ``ETag`` and ``Vary`` are added.

Conditional requests: at BEGIN_REQUEST the ``-gz`` / ``-br`` suffix is taken off the tags of
``If-None-Match`` and ``If-Match`` so the modules behind compare their own tags; a 304 for a
tag the client sent with a suffix carries that tagged ETag back.

Options: ``min_size`` (default 1024), ``encodings`` (default ``["br", "gzip"]``, in order
of preference), ``precompressed`` (default true), ``gzip_level`` (1 to 9, default 6),
``brotli_quality`` (0 to 11, default 4).

Brotli needs the ``brotli`` package, ``pip install 'trioiis[compression]'``. Without it the
default ``encodings`` is ``["gzip"]``, and listing ``"br"`` is a configuration error that
names the extra.
"""

from __future__ import annotations

import functools
import gzip
import mimetypes
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import trio

try:
    import brotli  # type: ignore[import-untyped]
except ModuleNotFoundError:  # the `compression` extra: without it, gzip only
    brotli = None

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Priority, SendResponseFlags, Status

from ._options import check_keys, get_bool, get_int, get_str_list
from .static_file import FileAccess, content_type

# Returned on every request: module constants (an enum class attribute is looked up
# through EnumType.__getattr__'s slow hook in Python 3.11).
_CONTINUE = Status.CONTINUE


NAME = "compression"
MIN_SIZE = 1024
ENCODINGS = ("br", "gzip")
#: The configuration error for ``"br"`` without the ``brotli`` package.
BROTLI_MISSING = (
    f"{NAME}: encoding 'br' needs the brotli package: pip install 'trioiis[compression]'"
)
SUFFIX = {"br": "-br", "gzip": "-gz"}
EXTENSION = {"br": ".br", "gzip": ".gz"}
#: Bodies larger than this are compressed in a worker thread.
THREAD_THRESHOLD = 64 * 1024
_TAG_SUFFIX = re.compile(r'-(?:gz|br)"')
_CONDITIONAL = ("if-none-match", "if-match")
_NO_BODY = (204, 206, 304)


@functools.lru_cache(maxsize=256)  # asked of every response; a site has few types
def compressible(kind: str | None) -> bool:
    if not kind:
        return False
    kind = kind.split(";")[0].strip().lower()
    return (
        kind.startswith("text/")
        or "json" in kind
        or "javascript" in kind
        or kind.endswith("xml")
        or kind.endswith("+xml")
        or kind == "image/svg+xml"
        or kind == "application/wasm"
    )


def accepted(header: str | None, offered: tuple[str, ...]) -> list[str]:
    """The encodings of ``offered`` that ``Accept-Encoding`` allows, best first."""
    if not header:
        return []
    weights: dict[str, float] = {}
    for item in header.split(","):
        name, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name:
            weights[name.lower()] = q
    star = weights.get("*", 0.0)
    ranked = []
    for order, encoding in enumerate(offered):
        aliases = ("gzip", "x-gzip") if encoding == "gzip" else (encoding,)
        given = [weights[a] for a in aliases if a in weights]
        q = max(given) if given else star
        if q > 0:
            ranked.append((-q, order, encoding))
    return [encoding for _, _, encoding in sorted(ranked)]


def tagged(etag: str, encoding: str) -> str:
    """``"abc"`` → ``"abc-gz"``; weak tags stay weak; anything else unchanged."""
    if etag.endswith('"') and len(etag) >= 2:
        return etag[:-1] + SUFFIX[encoding] + '"'
    return etag


def add_vary(response: trioiis.HttpResponse) -> None:
    vary = response.get_header("vary")
    if vary is None:
        response.set_header("Vary", "Accept-Encoding")
        return
    names = {v.strip().lower() for v in vary.split(",")}
    if "accept-encoding" not in names and "*" not in names:
        response.set_header("Vary", "Accept-Encoding", replace=False)


def compress(data: bytes, encoding: str, settings: Settings) -> bytes:
    if encoding == "br":
        return bytes(brotli.compress(data, quality=settings.brotli_quality))
    return gzip.compress(data, compresslevel=settings.gzip_level, mtime=0)


class Settings:
    def __init__(self, options: Mapping[str, object]) -> None:
        check_keys(
            NAME,
            options,
            {"min_size", "encodings", "precompressed", "gzip_level", "brotli_quality"},
        )
        self.min_size = get_int(NAME, options, "min_size", MIN_SIZE)
        default = ENCODINGS if brotli is not None else ("gzip",)
        encodings = get_str_list(NAME, options, "encodings", list(default)) or []
        if any(e not in ENCODINGS for e in encodings) or len(set(encodings)) != len(encodings):
            raise ValueError(f'{NAME}: option \'encodings\' may list only "br" and "gzip"')
        if "br" in encodings and brotli is None:
            raise ValueError(BROTLI_MISSING)
        self.encodings = tuple(encodings)
        self.precompressed = get_bool(NAME, options, "precompressed", True)
        self.gzip_level = get_int(NAME, options, "gzip_level", 6)
        if not 1 <= self.gzip_level <= 9:
            raise ValueError(f"{NAME}: option 'gzip_level' must be 1 to 9")
        self.brotli_quality = get_int(NAME, options, "brotli_quality", 4)
        if not 0 <= self.brotli_quality <= 11:
            raise ValueError(f"{NAME}: option 'brotli_quality' must be 0 to 11")


def _siblings(original: Path, encodings: list[str]) -> list[tuple[str, Path]]:
    """``(encoding, path)`` of the precompressed regular files beside ``original``, in
    ``encodings`` order, that are not older than it (a stale one would serve old content)."""
    try:
        info = os.stat(original)
    except (OSError, ValueError):
        return []
    if not stat.S_ISREG(info.st_mode):
        return []
    found = []
    for encoding in encodings:
        sibling = original.with_name(original.name + EXTENSION[encoding])
        try:
            variant = os.stat(sibling)
        except (OSError, ValueError):
            continue
        if stat.S_ISREG(variant.st_mode) and variant.st_mtime_ns >= info.st_mtime_ns:
            found.append((encoding, sibling))
    return found


class _Found:
    """What one request told the module: kept in its ``module_context``, made only for a
    request that has something to keep (the module itself is shared by every request)."""

    __slots__ = ("client_tags", "precompressed")

    def __init__(self) -> None:
        self.client_tags = ""  # If-None-Match as the client sent it
        self.precompressed: tuple[str, Path] | None = None  # (encoding, original path)

    def cleanup_stored_context(self) -> None:
        pass


_NOTHING_FOUND = _Found()


def has_tagged_condition(ctx: HttpContext) -> bool:
    """BEGIN_REQUEST's condition: an ``If-None-Match`` or ``If-Match`` with a tag that names
    an encoding; the handler changes nothing in any other request."""
    request = ctx.request
    for name in _CONDITIONAL:
        value = request.get_header(name)
        if value is not None and _TAG_SUFFIX.search(value):
            return True
    return False


class CompressionModule(HttpModule):
    """Shared by every request (``SharedFactory``): a request's own findings are in its
    ``module_context`` under ``module_id``."""

    def __init__(self, settings: Settings, access: FileAccess, module_id: int) -> None:
        self.settings = settings
        self.access = access
        self.module_id = module_id

    def _found(self, ctx: HttpContext) -> _Found:
        """This request's findings (a shared empty one when there are none)."""
        found = ctx.module_context.get_module_context(self.module_id)
        return found if isinstance(found, _Found) else _NOTHING_FOUND

    def _keep(self, ctx: HttpContext) -> _Found:
        """This request's findings, made now if there are none yet."""
        found = ctx.module_context.get_module_context(self.module_id)
        if isinstance(found, _Found):
            return found
        found = _Found()
        ctx.module_context.set_module_context(found, self.module_id)
        return found

    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        request = ctx.request
        for name in _CONDITIONAL:
            value = request.get_header(name)
            if value is not None and _TAG_SUFFIX.search(value):
                if name == "if-none-match":
                    self._keep(ctx).client_tags = value
                request.set_header(name, _TAG_SUFFIX.sub('"', value))
        return _CONTINUE

    async def on_map_path(self, ctx: HttpContext, provider: trioiis.MapPathProvider) -> Status:
        request = ctx.request
        if (
            not self.settings.precompressed
            or self._found(ctx).precompressed is not None
            or request.method not in ("GET", "HEAD")
            or request.get_header("range") is not None
            or provider.url != request.raw_path
        ):
            return _CONTINUE
        encodings = accepted(request.get_header("accept-encoding"), self.settings.encodings)
        if not encodings:
            return _CONTINUE
        original = provider.physical_path
        # One worker-thread hop in the common case (no precompressed sibling); the safety
        # checks of static_file's lookup run only for a sibling that exists.
        for encoding, sibling in await trio.to_thread.run_sync(_siblings, original, encodings):
            found = await self.access.lookup(ctx, original)
            variant = await self.access.lookup(ctx, sibling)
            if (
                found is not None
                and variant is not None
                and stat.S_ISREG(found.info.st_mode)
                and stat.S_ISREG(variant.info.st_mode)
            ):
                provider.set_physical_path(sibling)
                self._keep(ctx).precompressed = (encoding, original)
                break
        return _CONTINUE

    async def on_send_response(
        self, ctx: HttpContext, provider: trioiis.SendResponseProvider
    ) -> Status:
        response = ctx.response
        if not provider.headers_being_sent or response.headers_sent:
            return _CONTINUE
        status = response.status
        etag = response.get_header("etag")
        found = self._found(ctx)
        if found.precompressed is not None and status in (200, 304):
            encoding, original = found.precompressed
            if status == 200:
                response.set_header("Content-Type", content_type(original))
                response.set_header("Content-Encoding", encoding)
            if etag is not None:
                response.set_header("ETag", tagged(etag, encoding))
            add_vary(response)
            return _CONTINUE
        if status == 304:
            if etag is not None:
                for encoding in self.settings.encodings:
                    candidate = tagged(etag, encoding)
                    if candidate != etag and candidate in found.client_tags:
                        response.set_header("ETag", candidate)
                        break
            # A 304 carries no Content-Type to judge by, but must vary like the 200 it
            # stands for (RFC 9110 §15.4.5); guess the type from the URL.
            guessed, _ = mimetypes.guess_type(ctx.request.path)
            if compressible(guessed) or etag != response.get_header("etag"):
                add_vary(response)
            return _CONTINUE
        if not compressible(response.get_header("content-type")):
            return _CONTINUE
        if response.get_header("content-encoding") is None:
            add_vary(response)
        if response.buffered_length < self.settings.min_size:
            return _CONTINUE  # too small to gain (checked first: it costs no lookup)
        if (
            status < 200
            or status in _NO_BODY
            or ctx.request.method == "HEAD"
            or provider.flags & SendResponseFlags.MORE_DATA
            or response.get_header("content-encoding") is not None
            or response.get_header("content-range") is not None
            or response.get_header("transfer-encoding") is not None
            or "no-transform" in (response.get_header("cache-control") or "").lower()
        ):
            return _CONTINUE
        body = response.buffered
        length = response.get_header("content-length")
        if len(body) < self.settings.min_size or (
            length is not None and length.strip() != str(len(body))
        ):
            return _CONTINUE
        encodings = accepted(ctx.request.get_header("accept-encoding"), self.settings.encodings)
        if not encodings:
            return _CONTINUE
        encoding = encodings[0]
        if len(body) > THREAD_THRESHOLD:
            packed = await trio.to_thread.run_sync(compress, body, encoding, self.settings)
        else:
            packed = compress(body, encoding, self.settings)
        response.clear_body()
        response.write(packed)
        response.set_header("Content-Encoding", encoding)
        response.set_header("Content-Length", str(len(packed)))
        if etag is not None:
            response.set_header("ETag", tagged(etag, encoding))
        return _CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    settings = Settings(info.options)
    if not settings.encodings:
        return
    notifications = Notification.BEGIN_REQUEST | Notification.SEND_RESPONSE
    if settings.precompressed:
        notifications |= Notification.MAP_PATH
    module = CompressionModule(settings, FileAccess(server), info.get_id())
    info.set_request_notifications(trioiis.SharedFactory(module), notifications)
    info.set_request_notification_condition(Notification.BEGIN_REQUEST, has_tagged_condition)
    info.set_priority_for_request_notification(Notification.SEND_RESPONSE, Priority.FIRST)
    info.set_priority_for_request_notification(Notification.MAP_PATH, Priority.LAST)
