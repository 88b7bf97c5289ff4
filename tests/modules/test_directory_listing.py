"""directory_listing over real sockets: off by default, answers only where default_document
found nothing, escapes names, encodes links, sorts folders first, hides what static_file
hides."""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import pytest

from tests.helpers import running_server
from tests.modules.rawhttp import fetch
from trioiis import HandlerMapping
from trioiis.modules import directory_listing
from trioiis.modules.directory_listing import human_size
from trioiis.testing import check_cancellation_safety

LISTING = ("directory_listing", directory_listing.register_module)
MTIME = 1_577_934_245  # 2020-01-02 03:04:05 UTC
ODD_NAMES = ['<b>&"quoted"\'.txt', "a b.txt", "#hash?.txt", "héllo wörld.txt", "100%.txt"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "outside.txt").write_text("outside")
    site = tmp_path / "site"
    site.mkdir()
    files = site / "files"
    files.mkdir()
    (files / "beta.txt").write_bytes(b"b" * 1234)
    (files / "Alpha.txt").write_bytes(b"a" * 5)
    (files / "zeta").mkdir()
    (files / "Omega").mkdir()
    (files / ".env").write_text("secret")
    (files / ".git").mkdir()
    (files / "__pycache__").mkdir()
    (files / "inside-link.txt").symlink_to(files / "beta.txt")
    (files / "outside-link.txt").symlink_to(tmp_path / "outside.txt")
    (files / "broken-link.txt").symlink_to(files / "missing.txt")
    (files / "hidden-link.txt").symlink_to(files / ".env")
    os.mkfifo(files / "fifo")
    for name in ODD_NAMES:
        (files / name).write_text(name)
    for path in files.iterdir():
        os.utime(path, (MTIME, MTIME), follow_symlinks=False)
    (site / "withindex").mkdir()
    (site / "withindex" / "index.html").write_text("<p>the index</p>")
    (site / "<script>").mkdir()
    (site / "top.txt").write_text("top")
    return site


def names_in(page: str) -> list[str]:
    """Link texts of the listing's rows, in order."""
    return [html.unescape(text) for text in re.findall(r'<a href="[^"]*">([^<]*)</a>', page)]


def hrefs_in(page: str) -> list[str]:
    return [html.unescape(href) for href in re.findall(r'<a href="([^"]*)">', page)]


async def test_off_by_default_a_folder_without_index_is_403(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get("/files/")
    assert response.status_code == 403
    assert "beta.txt" not in response.text


async def test_listing_sorted_folders_first_without_hidden_entries(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        # identity: the compression module (a default) would gzip the listing otherwise
        response = await client.get("/files/", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert int(response.headers["content-length"]) == len(response.content)
    names = names_in(response.text)
    assert names[0] == "../"
    folders = ["Omega/", "zeta/"]
    files = sorted(["Alpha.txt", "beta.txt", "inside-link.txt", *ODD_NAMES], key=str.casefold)
    assert names[1:] == folders + files
    for hidden in (".env", ".git", "__pycache__", "outside-link", "broken-link", "hidden-link"):
        assert hidden not in response.text
    assert "fifo" not in response.text
    assert "<title>Index of /files/</title>" in response.text


async def test_listing_shows_sizes_and_dates(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        page = (await client.get("/files/")).text
    row = re.search(r'<tr><td><a href="beta.txt">beta.txt</a></td>(.*?)</tr>', page)
    assert row is not None
    assert '<span title="1234 bytes">1.2 KiB</span>' in row.group(1)
    assert "2020-01-02 03:04:05 UTC" in row.group(1)
    assert 'datetime="2020-01-02T03:04:05+00:00"' in row.group(1)
    folder = re.search(r'<tr><td><a href="zeta/">zeta/</a></td>(.*?)</tr>', page)
    assert folder is not None
    assert ">-<" in folder.group(1)


async def test_names_are_escaped_and_links_encoded_and_they_work(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        page = (await client.get("/files/")).text
        assert "<b>" not in page
        assert html.escape('<b>&"quoted"\'.txt') in page
        hrefs = hrefs_in(page)
        assert "a%20b.txt" in hrefs
        assert "%23hash%3F.txt" in hrefs
        assert "h%C3%A9llo%20w%C3%B6rld.txt" in hrefs
        assert "100%25.txt" in hrefs
        assert "%3Cb%3E%26%22quoted%22%27.txt" in hrefs
        for href, name in zip(hrefs[1:], names_in(page)[1:], strict=True):
            response = await client.get(f"/files/{href}")
            if name.endswith("/"):
                assert response.status_code == 200  # the folder's own listing
                assert f"Index of /files/{name}" in response.text
            else:
                assert response.status_code == 200
                assert response.content == (root / "files" / name).read_bytes()


async def test_title_is_escaped(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv:
        response = await fetch(srv.port, "/%3Cscript%3E/")
    assert response.status == 200
    assert b"<title>Index of /&lt;script&gt;/</title>" in response.body
    assert b"<script>" not in response.body


async def test_root_listing_has_no_parent_link(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        page = (await client.get("/")).text
    names = names_in(page)
    assert "../" not in names
    assert names == ["<script>/", "files/", "withindex/", "top.txt"]


async def test_a_default_document_wins_over_the_listing(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        response = await client.get("/withindex/")
    assert (response.status_code, response.text) == (200, "<p>the index</p>")


async def test_folder_without_slash_redirects(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv:
        response = await fetch(srv.port, "/files?x=1")
    assert response.status == 301
    assert response.headers["location"].endswith("/files/?x=1")


async def test_head_and_other_methods(root: Path) -> None:
    async with running_server(LISTING, root=root) as srv:
        get = await fetch(srv.port, "/files/")
        head = await fetch(srv.port, "/files/", method="HEAD")
        post = await fetch(srv.port, "/files/", method="POST")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == get.headers["content-length"]
    assert post.status == 405
    assert post.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "target", ["/files/.git/", "/files/__pycache__/", "/%2e%2e/", "/files/%2e%2e/%2e%2e/"]
)
async def test_hidden_and_escaping_folders_are_not_listed(root: Path, target: str) -> None:
    async with running_server(LISTING, root=root) as srv:
        response = await fetch(srv.port, target)
    assert response.status in (400, 404)
    assert b"Index of" not in response.body


async def test_works_in_a_mapping_without_default_document(root: Path) -> None:
    mapping = HandlerMapping("/files/*", ("static_file", "directory_listing"))
    async with running_server(LISTING, root=root, handlers=(mapping,)) as srv:
        listing = await fetch(srv.port, "/files/")
        file = await fetch(srv.port, "/files/beta.txt")
    assert listing.status == 200
    assert b"beta.txt" in listing.body
    assert file.body == b"b" * 1234


def test_listing_is_cancellation_safe(root: Path) -> None:
    outcome = check_cancellation_safety(
        LISTING, "GET /files/ HTTP/1.1\r\nHost: x\r\n\r\n", root=root
    )
    assert outcome.status == 200
    assert b"beta.txt" in outcome.body


@pytest.mark.parametrize(
    ("query", "files"),
    [
        ("", ["Alpha.txt", "beta.txt"]),
        ("?sort=size", ["Alpha.txt", "beta.txt"]),
        ("?sort=size&order=desc", ["beta.txt", "Alpha.txt"]),
        ("?sort=name&order=desc", ["beta.txt", "Alpha.txt"]),
        ("?sort=modified&order=desc", ["Alpha.txt", "beta.txt"]),
        ("?sort=bogus", ["Alpha.txt", "beta.txt"]),
    ],
)
async def test_listing_sorts_by_the_column_asked_folders_first(
    root: Path, query: str, files: list[str]
) -> None:
    files_folder = root / "files"
    os.utime(files_folder / "beta.txt", (1_000_000_000, 1_000_000_000))  # the older one
    os.utime(files_folder / "Alpha.txt", (1_600_000_000, 1_600_000_000))
    async with running_server(LISTING, root=root) as srv, srv.client() as client:
        page = (await client.get("/files/" + query)).text
    links = re.findall(r'<td><a href="([^"]+)">', page)
    assert links[0] == "../"
    assert sorted(links[1:3]) == ["Omega/", "zeta/"]  # folders stay first
    assert [link for link in links if link in ("Alpha.txt", "beta.txt")] == files
    assert '<a class="sort" href="?sort=size&amp;order=' in page


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"), (15 << 20, "15 MiB")],
)
def test_human_size(size: int, shown: str) -> None:
    assert human_size(size) == shown
