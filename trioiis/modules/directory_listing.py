"""directory_listing: an HTML index of a folder that has no default document.

Off by default: load it to turn it on, under the name ``directory_listing`` (the default
``*`` handler mapping already names it, after static_file and default_document)::

    server.register_module("directory_listing", directory_listing.register_module)

or ``--module trioiis.modules.directory_listing:register_module`` on the command line.

It answers only a folder URL that default_document left unanswered (its 403.14, "listing
denied"), or that no module answered at all when default_document is not in the mapping;
``/dir`` → 301 to ``/dir/`` then too. GET and HEAD only (405 otherwise).

The page lists folders first, then files, each sorted by name (case-insensitively), with the
size in human units (``1.2 KiB``; the exact bytes in its ``title``) and the modification
time (UTC). The column headings sort it: ``?sort=name|size|modified&order=asc|desc``
(folders stay first; an unknown value means the default, name ascending). Names are HTML-
escaped and links are percent-encoded. Entries static_file would refuse are left out: hidden
and denied segments, names that are not UTF-8, and symlinks that lead out of the site root
(unless the server's ``allow_symlinks_outside_root``) or nowhere. At most ``MAX_ENTRIES`` are
listed.
"""

from __future__ import annotations

import functools
import html
import os
import stat
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import trio

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

from .static_file import FileAccess, find_folder, method_not_allowed, send_error

#: A folder with more entries than this lists the first ones (in sorted order) and says so.
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    is_dir: bool
    size: int
    modified: float


class DirectoryListingModule(HttpModule):
    def __init__(self, access: FileAccess) -> None:
        self.access = access

    async def on_execute_request_handler(
        self, ctx: HttpContext, provider: trioiis.EventProvider
    ) -> Status:
        request, response = ctx.request, ctx.response
        if response.headers_sent:
            return Status.FINISH_REQUEST
        if not _unanswered(ctx):
            return Status.CONTINUE
        located = await find_folder(ctx, self.access)
        if located is None:
            return Status.CONTINUE
        if isinstance(located, Status):
            return located
        folder, found = located
        if request.method not in ("GET", "HEAD"):
            return method_not_allowed(ctx)
        real = found.real_path or folder
        try:
            entries, truncated = await trio.to_thread.run_sync(
                _read_folder, real, ctx.site.root, self.access
            )
        except OSError:
            return send_error(ctx, 404)  # it went away, or we may not read it
        key, descending = sort_order(request.query)
        entries = sort_entries(entries, key, descending)
        page = render(request.path, entries, truncated=truncated, key=key, descending=descending)
        page_bytes = page.encode()
        response.clear_body()  # default_document's 403.14 text
        response.set_status(200)
        response.set_header("Content-Type", "text/html; charset=utf-8")
        response.set_header("Content-Length", str(len(page_bytes)))
        response.set_header("Cache-Control", "no-cache")
        response.set_header("X-Content-Type-Options", "nosniff")
        if request.method == "GET":
            response.write(page_bytes)
        ctx.set_request_handled()
        return Status.CONTINUE


def _unanswered(ctx: HttpContext) -> bool:
    """default_document's 403.14, or a response nobody has touched yet."""
    response = ctx.response
    if response.status == 403 and response.sub_status == 14:
        return True
    return response.status == 200 and not response.buffered


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(functools.partial(DirectoryListingModule, FileAccess(server))),
        Notification.EXECUTE_REQUEST_HANDLER,
    )


def _read_folder(folder: Path, root: Path, access: FileAccess) -> tuple[list[Entry], bool]:
    """The folder's entries that static_file would serve, sorted (runs in a worker thread)."""
    real_root = root.resolve(strict=True)
    entries = []
    with os.scandir(folder) as scan:
        for item in scan:
            name = item.name
            if access.refused_segment(name) or not _is_utf8(name):
                continue
            try:
                if item.is_symlink():
                    target = Path(item.path).resolve(strict=True)
                    try:
                        inside = target.relative_to(real_root)
                    except ValueError:
                        if not access.allow_symlinks_outside_root:
                            continue
                    else:
                        if any(access.refused_segment(part) for part in inside.parts):
                            continue
                info = item.stat()
            except (OSError, RuntimeError):
                continue  # a broken or looping link, or gone since scandir saw it
            is_dir = stat.S_ISDIR(info.st_mode)
            if not is_dir and not stat.S_ISREG(info.st_mode):
                continue  # FIFOs, sockets, devices: static_file never serves them
            entries.append(Entry(name, is_dir, info.st_size, info.st_mtime))
    entries.sort(key=lambda e: (not e.is_dir, e.name.casefold(), e.name))
    return entries[:MAX_ENTRIES], len(entries) > MAX_ENTRIES


def _is_utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes came in as lone surrogates
        return False
    return True


def _when(entry: Entry) -> str:
    try:
        when = datetime.fromtimestamp(entry.modified, UTC)
    except (OverflowError, OSError, ValueError):
        return "-"
    return (
        f'<time datetime="{when.isoformat(timespec="seconds")}">{when:%Y-%m-%d %H:%M:%S} UTC</time>'
    )


SORT_KEYS = ("name", "size", "modified")


def sort_order(query: str) -> tuple[str, bool]:
    """``(key, descending)`` from ``sort=`` and ``order=`` in the query string."""
    params = urllib.parse.parse_qs(query, max_num_fields=8)
    key = params.get("sort", ["name"])[0]
    return (key if key in SORT_KEYS else "name"), params.get("order", ["asc"])[0] == "desc"


def sort_entries(entries: list[Entry], key: str, descending: bool) -> list[Entry]:
    """Folders first, then files; each group by ``key`` (then name), reversed if asked."""

    def by(entry: Entry) -> tuple[object, str]:
        name = entry.name.casefold()
        if key == "size":
            return (entry.size if not entry.is_dir else 0, name)
        if key == "modified":
            return (entry.modified, name)
        return (name, entry.name)

    folders = sorted((e for e in entries if e.is_dir), key=by, reverse=descending)
    files = sorted((e for e in entries if not e.is_dir), key=by, reverse=descending)
    return folders + files


def human_size(size: int) -> str:
    """``999 B``, ``1.2 KiB``, ``15 MiB``, ``3.4 GiB`` (powers of 1024)."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"


def _heading(label: str, column: str, key: str, descending: bool) -> str:
    order = "asc" if column != key or descending else "desc"
    arrow = (" ▼" if descending else " ▲") if column == key else ""
    return f'<th><a class="sort" href="?sort={column}&amp;order={order}">{label}{arrow}</a></th>'


def render(
    url_path: str,
    entries: list[Entry],
    *,
    truncated: bool = False,
    key: str = "name",
    descending: bool = False,
) -> str:
    """The HTML page for ``url_path`` (the decoded URL path of the folder), its entries in
    the order given; ``key`` and ``descending`` mark the sorted column."""
    title = html.escape(f"Index of {url_path}")
    rows = []
    if url_path != "/":
        rows.append('<tr><td><a href="../">../</a></td><td></td><td></td></tr>')
    for entry in entries:
        slash = "/" if entry.is_dir else ""
        href = html.escape(quote(entry.name, safe="") + slash)
        size = (
            "-"
            if entry.is_dir
            else f'<span title="{entry.size} bytes">{human_size(entry.size)}</span>'
        )
        rows.append(
            f'<tr><td><a href="{href}">{html.escape(entry.name)}{slash}</a></td>'
            f'<td class="size">{size}</td><td>{_when(entry)}</td></tr>'
        )
    headings = "".join(
        _heading(label, column, key, descending)
        for label, column in (("Name", "name"), ("Size", "size"), ("Modified", "modified"))
    )
    more = f"<p>Only the first {len(entries)} entries are listed.</p>\n" if truncated else ""
    body = "\n".join(rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
th, td {{ padding: 0.2em 1em; text-align: left; }}
th a {{ color: inherit; }}
td.size {{ text-align: right; font-variant-numeric: tabular-nums; }}
</style>
</head>
<body>
<h1>{title}</h1>
<table>
<thead><tr>{headings}</tr></thead>
<tbody>
{body}
</tbody>
</table>
{more}</body>
</html>
"""
