"""static_file over real sockets: methods, types, validators, preconditions, ranges, streaming,
the traversal corpus, hidden and denied segments, symlinks, and cancellation safety."""

from __future__ import annotations

import email.utils
import os
import random
from pathlib import Path

import httpx
import pytest

from tests.helpers import raw_request, running_server, statuses_in
from tests.modules.rawhttp import fetch, parse_multipart
from trioiis.modules import static_file
from trioiis.modules.static_file import CHUNK, parse_ranges
from trioiis.testing import check_cancellation_safety

SECRET = b"TOP-SECRET-7f3a9c"
SMALL = bytes(range(256)) * 40  # 10 KiB: read in the same thread hop as the stat
LARGE = random.Random(1).randbytes(2 * CHUNK + 12_345)  # streamed in CHUNK pieces
MTIME = 1_600_000_000  # 2020-09-13 12:26:40 UTC


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """tmp/secret.txt outside the root; tmp/site with files, hidden things and symlinks."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    site = tmp_path / "site"
    site.mkdir()
    (site / "hello.txt").write_text("hello\n")
    (site / "small.bin").write_bytes(SMALL)
    (site / "large.bin").write_bytes(LARGE)
    (site / "empty.txt").write_bytes(b"")
    (site / "sub").mkdir()
    (site / "sub" / "page.html").write_text("<p>page</p>")
    (site / ".env").write_bytes(SECRET)
    (site / ".hidden.txt").write_bytes(SECRET)
    (site / "sub" / ".hidden").mkdir()
    (site / "sub" / ".hidden" / "x.txt").write_bytes(SECRET)
    (site / ".git").mkdir()
    (site / ".git" / "config").write_bytes(SECRET)
    (site / "__pycache__").mkdir()
    (site / "__pycache__" / "m.pyc").write_bytes(SECRET)
    (site / "private").mkdir()
    (site / "private" / "x.txt").write_bytes(SECRET)
    (site / ".well-known").mkdir()
    (site / ".well-known" / "security.txt").write_text("Contact: mailto:a@example.com\n")
    (site / "out.txt").symlink_to(tmp_path / "secret.txt")
    (site / "outdir").symlink_to(tmp_path / "outside", target_is_directory=True)
    (site / "alias.txt").symlink_to(site / "hello.txt")
    (site / "alias-env.txt").symlink_to(site / ".env")
    for path in (site / "hello.txt", site / "small.bin", site / "large.bin"):
        os.utime(path, (MTIME, MTIME))
    return site


# ---------------------------------------------------------------- methods and headers


async def test_get_sends_the_file_with_validators(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get("/hello.txt")
    assert response.status_code == 200
    assert response.content == b"hello\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "6"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == "Sun, 13 Sep 2020 12:26:40 GMT"
    etag = response.headers["etag"]
    assert etag.startswith('"')  # strong
    assert etag.endswith('"')


async def test_head_sends_the_headers_and_no_body(root: Path) -> None:
    async with running_server(root=root) as srv:
        get = await fetch(srv.port, "/large.bin")
        head = await fetch(srv.port, "/large.bin", method="HEAD")
    assert head.status == 200
    assert head.body == b""
    assert head.headers["content-length"] == str(len(LARGE))
    for name in ("etag", "last-modified", "content-type", "accept-ranges"):
        assert head.headers[name] == get.headers[name]
    assert get.body == LARGE


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_get_405_with_allow(root: Path, method: str) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.request(method, "/hello.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert SECRET not in response.content


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("mod.mjs", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("logo.svg", "image/svg+xml; charset=utf-8"),
        ("code.wasm", "application/wasm"),
        ("data.json", "application/json; charset=utf-8"),
        ("photo.webp", "image/webp"),
        ("photo.avif", "image/avif"),
        ("font.woff2", "font/woff2"),
        ("PAGE.HTML", "text/html; charset=utf-8"),
        ("notes.txt", "text/plain; charset=utf-8"),
        ("picture.png", "image/png"),
        ("archive.tar.gz", "application/gzip"),
        ("blob.unknownext", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
    ],
)
async def test_mime_types(root: Path, name: str, expected: str) -> None:
    (root / name).write_bytes(b"x")
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get(f"/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == expected


async def test_the_type_comes_from_the_requested_name_not_a_link_target(root: Path) -> None:
    (root / "script.js").write_text("let x = 1;")
    (root / "script-as-text.txt").symlink_to(root / "script.js")
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get("/script-as-text.txt")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "let x = 1;"


async def test_a_fifo_is_never_opened(root: Path) -> None:
    os.mkfifo(root / "pipe")
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, "/pipe")  # would hang if the server opened it
    assert response.status == 404


async def test_empty_file(root: Path) -> None:
    async with running_server(root=root) as srv:
        plain = await fetch(srv.port, "/empty.txt")
        ranged = await fetch(srv.port, "/empty.txt", headers={"Range": "bytes=0-"})
    assert (plain.status, plain.headers["content-length"], plain.body) == (200, "0", b"")
    assert (ranged.status, ranged.body) == (200, b"")  # an empty file has no ranges


# ---------------------------------------------------------------- preconditions


async def validators(client: httpx.AsyncClient, path: str = "/hello.txt") -> tuple[str, str]:
    response = await client.get(path)
    return response.headers["etag"], response.headers["last-modified"]


EARLIER = email.utils.formatdate(MTIME - 3600, usegmt=True)
LATER = email.utils.formatdate(MTIME + 3600, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        # If-None-Match (weak comparison)
        ({"If-None-Match": "{etag}"}, 304),
        ({"If-None-Match": "W/{etag}"}, 304),
        ({"If-None-Match": '"nope", {etag}'}, 304),
        ({"If-None-Match": "*"}, 304),
        ({"If-None-Match": '"nope"'}, 200),
        # If-Modified-Since
        ({"If-Modified-Since": "{modified}"}, 304),
        ({"If-Modified-Since": LATER}, 304),
        ({"If-Modified-Since": EARLIER}, 200),
        ({"If-Modified-Since": "not a date"}, 200),
        # If-None-Match wins over If-Modified-Since, both ways
        ({"If-None-Match": '"nope"', "If-Modified-Since": LATER}, 200),
        ({"If-None-Match": "{etag}", "If-Modified-Since": EARLIER}, 304),
        # If-Match (strong comparison)
        ({"If-Match": "{etag}"}, 200),
        ({"If-Match": '"nope", {etag}'}, 200),
        ({"If-Match": "*"}, 200),
        ({"If-Match": '"nope"'}, 412),
        ({"If-Match": "W/{etag}"}, 412),
        # If-Unmodified-Since
        ({"If-Unmodified-Since": "{modified}"}, 200),
        ({"If-Unmodified-Since": LATER}, 200),
        ({"If-Unmodified-Since": EARLIER}, 412),
        ({"If-Unmodified-Since": "garbage"}, 200),
        # If-Match wins over If-Unmodified-Since; 412 wins over 304
        ({"If-Match": "{etag}", "If-Unmodified-Since": EARLIER}, 200),
        ({"If-Match": '"nope"', "If-None-Match": "{etag}"}, 412),
    ],
)
async def test_preconditions(root: Path, headers: dict[str, str], status: int) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        etag, modified = await validators(client)
        filled = {k: v.format(etag=etag, modified=modified) for k, v in headers.items()}
        response = await client.get("/hello.txt", headers=filled)
        head = await client.head("/hello.txt", headers=filled)
    assert response.status_code == status
    assert head.status_code == status
    if status == 200:
        assert response.content == b"hello\n"
    elif status == 304:
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["last-modified"] == modified
        assert "content-length" not in response.headers
    else:
        assert b"hello" not in response.content


async def test_304_and_206_keep_the_connection_well_framed(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        etag, _ = await validators(client)
        pipelined = (
            f"GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n"
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=99-\r\n\r\n"
            'GET /hello.txt HTTP/1.1\r\nHost: x\r\nIf-Match: "x"\r\n\r\n'
            "GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        raw = await raw_request(srv.port, pipelined.encode())
    assert statuses_in(raw) == [304, 206, 416, 412, 200]
    assert raw.endswith(b"\r\n\r\nhello\n")


# ---------------------------------------------------------------- ranges


@pytest.fixture(params=["small.bin", "large.bin"])
def ranged(request: pytest.FixtureRequest) -> tuple[str, bytes]:
    """A file served from memory and one streamed from disk: every range case runs on both."""
    name = request.param
    return f"/{name}", SMALL if name == "small.bin" else LARGE


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, None),
        ("bytes=-5", -5, None),
        ("bytes=-99999999", 0, None),  # suffix longer than the file: all of it
        ("bytes=5-99999999999999999999999", 5, None),  # end past the file: clamped
        ("bytes=0-0", 0, 0),
        ("BYTES = 3 - 7", 3, 7),  # unit case-insensitive, whitespace tolerated
        ("bytes=0-1,99999999-", 0, 1),  # one satisfiable range of two: a plain 206
        ("bytes=262140-262150", 262140, 262150),  # across a CHUNK boundary
    ],
)
async def test_single_range(
    root: Path, ranged: tuple[str, bytes], spec: str, first: int, last: int | None
) -> None:
    path, data = ranged
    size = len(data)
    start = first if first >= 0 else size + first
    end = size - 1 if last is None else last
    if start >= size:
        pytest.skip("range past the small file")
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get(path, headers={"Range": spec})
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes {start}-{end}/{size}"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.content == data[start : end + 1]


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=0-1,5-6,-3",
        "bytes=-3,0-1",  # kept in the order asked
        "bytes=100-199, 300-, 0-0",
        "bytes=0-0,2-2,4-4,6-6,8-8,10-10,12-12,14-14,16-16,18-18,20-20,22-22,24-24,26-26,28-28,30-30",
    ],
)
async def test_multiple_ranges_are_multipart(
    root: Path, ranged: tuple[str, bytes], spec: str
) -> None:
    path, data = ranged
    size = len(data)
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get(path, headers={"Range": spec})
    assert response.status_code == 206
    assert "content-range" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    parts = parse_multipart(response.content, response.headers["content-type"])
    wanted = []
    for item in spec.partition("=")[2].split(","):
        a, _, b = item.strip().partition("-")
        if not a:
            wanted.append((size - int(b), size - 1))
        else:
            wanted.append((int(a), int(b) if b else size - 1))
    assert len(parts) == len(wanted)
    for (headers, body), (first, last) in zip(parts, wanted, strict=True):
        assert headers["content-type"] == "application/octet-stream"
        assert headers["content-range"] == f"bytes {first}-{last}/{size}"
        assert body == data[first : last + 1]


async def test_multipart_boundary_is_random(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        kinds = {
            (await client.get("/small.bin", headers={"Range": "bytes=0-1,3-4"})).headers[
                "content-type"
            ]
            for _ in range(3)
        }
    assert len(kinds) == 3


@pytest.mark.parametrize(
    "spec", ["bytes={size}-", "bytes={size}-{size}", "bytes=-0", "bytes=-0,{size}-"]
)
async def test_unsatisfiable_range_is_416(root: Path, ranged: tuple[str, bytes], spec: str) -> None:
    path, data = ranged
    size = len(data)
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get(path, headers={"Range": spec.format(size=size)})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{size}"
    assert data[:64] not in response.content


@pytest.mark.parametrize(
    "spec",
    [
        "bytes=9-5",  # last before first: invalid, so ignored
        "items=0-1",  # another unit
        "bytes=abc",
        "bytes=1-x",
        "bytes=",
        "bytes=--1",
        "bytes=0-1,a-b",
        "0-1",
        "bytes=0-10,5-15",  # overlapping
        "bytes=0-,0-",  # overlapping (the classic abuse: the whole file twice)
        "bytes=-100,0-",  # overlapping
        ",".join(["bytes=0-0"] + [f"{2 * i}-{2 * i}" for i in range(1, 17)]),  # 17 ranges
    ],
)
async def test_ignored_range_sends_the_whole_file(
    root: Path, ranged: tuple[str, bytes], spec: str
) -> None:
    path, data = ranged
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get(path, headers={"Range": spec})
    assert response.status_code == 200
    assert "content-range" not in response.headers
    assert response.content == data


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        ("{etag}", 206),
        ('"other"', 200),
        ("W/{etag}", 200),  # If-Range needs a strong match
        ("{modified}", 206),
        (EARLIER, 200),
        (LATER, 200),  # only the exact Last-Modified date matches
        ("not a date", 200),
    ],
)
async def test_if_range(root: Path, ranged: tuple[str, bytes], if_range: str, status: int) -> None:
    path, data = ranged
    async with running_server(root=root) as srv, srv.client() as client:
        etag, modified = await validators(client, path)
        value = if_range.format(etag=etag, modified=modified)
        response = await client.get(path, headers={"Range": "bytes=1-4", "If-Range": value})
    assert response.status_code == status
    assert response.content == (data[1:5] if status == 206 else data)


async def test_range_is_ignored_on_head_and_after_a_304(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        etag, _ = await validators(client)
        head = await client.head("/hello.txt", headers={"Range": "bytes=0-1"})
        cached = await client.get(
            "/hello.txt", headers={"Range": "bytes=0-1", "If-None-Match": etag}
        )
    assert head.status_code == 200
    assert head.headers["content-length"] == "6"
    assert "content-range" not in head.headers
    assert cached.status_code == 304


def test_parse_ranges_unit() -> None:
    assert parse_ranges("bytes=0-4", 10) == [(0, 4)]
    assert parse_ranges("bytes=-4", 10) == [(6, 9)]
    assert parse_ranges("bytes=8-", 10) == [(8, 9)]
    assert parse_ranges("bytes=0-1, ,3-4", 10) == [(0, 1), (3, 4)]  # empty elements allowed
    assert parse_ranges("bytes=10-", 10) == []
    assert parse_ranges("bytes=-0", 10) == []
    assert parse_ranges("bytes=0-1,1-2", 10) is None  # overlap
    assert parse_ranges("bytes=0-1,2-3", 10) == [(0, 1), (2, 3)]  # adjacent is fine
    assert parse_ranges("bytes=0-4", 0) is None
    assert parse_ranges("bytes=\u0660-\u0664", 10) is None  # Arabic-Indic digits: not here
    assert parse_ranges("bytes=" + "9" * 5000 + "-", 10) == []
    assert parse_ranges("bytes=0-" + "9" * 5000, 10) == [(0, 9)]


# ---------------------------------------------------------------- streaming


async def test_a_3_mib_file_is_streamed_whole_and_by_range(root: Path) -> None:
    data = random.Random(3).randbytes(3 * 1024 * 1024)
    (root / "three.bin").write_bytes(data)
    middle = (1_000_000, 2_200_000)
    async with running_server(root=root) as srv, srv.client() as client:
        whole = await client.get("/three.bin")
        part = await client.get("/three.bin", headers={"Range": f"bytes={middle[0]}-{middle[1]}"})
        multi = await client.get(
            "/three.bin", headers={"Range": "bytes=100-300000,1500000-1800000,-70000"}
        )
        async with client.stream("GET", "/three.bin") as streamed:
            pieces = [piece async for piece in streamed.aiter_raw()]
    assert whole.status_code == 200
    assert whole.content == data
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes {middle[0]}-{middle[1]}/{len(data)}"
    assert part.content == data[middle[0] : middle[1] + 1]
    parts = parse_multipart(multi.content, multi.headers["content-type"])
    assert [body for _, body in parts] == [
        data[100:300001],
        data[1500000:1800001],
        data[-70000:],
    ]
    assert b"".join(pieces) == data
    assert len(pieces) > 1  # it arrived over time, not as one block


# ---------------------------------------------------------------- no escape from the root

#: Each must be 400 or 404 and never show the secret (outside the root, or hidden inside it).
TRAVERSAL_CORPUS = [
    "/../secret.txt",
    "/../../secret.txt",
    "/sub/../../secret.txt",
    "/./../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/.%2e/secret.txt",
    "/%2e./secret.txt",
    "/..%2fsecret.txt",
    "/..%2Fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/sub%2f..%2f..%2fsecret.txt",
    "/%2f..%2fsecret.txt",
    "/%252e%252e/secret.txt",  # double encoding: decoded once, a literal "%2e%2e" folder
    "/%252e%252e%252fsecret.txt",
    "/..%252fsecret.txt",
    "/%25%32%65%25%32%65/secret.txt",
    "/..\\secret.txt",
    "/..%5csecret.txt",
    "/..%5Csecret.txt",
    "/%5c..%5csecret.txt",
    "/hello.txt%00",
    "/..%00/secret.txt",
    "/.env%00.txt",
    "/%c0%ae%c0%ae/secret.txt",  # overlong UTF-8 "."
    "/..%c0%afsecret.txt",  # overlong UTF-8 "/"
    "/..%c1%9csecret.txt",  # overlong UTF-8 "\"
    "/%e0%80%ae%e0%80%ae/secret.txt",  # 3-byte overlong "."
    "/..%e0%80%afsecret.txt",
    "/%f0%80%80%ae%f0%80%80%ae/secret.txt",  # 4-byte overlong "."
    "/%ff%fe/secret.txt",
    "/%u002e%u002e/secret.txt",  # IIS %u encoding is not decoded: a literal name
    "/..;/secret.txt",
    "/.../secret.txt",
    "/..../secret.txt",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc/passwd",
    "http://127.0.0.1/../secret.txt",  # absolute-form
    "http://127.0.0.1/%2e%2e/secret.txt",
    "/out.txt",  # symlink to a file outside the root
    "/outdir/secret.txt",  # symlink to a folder outside the root
    "/alias-env.txt",  # symlink inside the root to a hidden file
    "/.env",
    "/.ENV",
    "/%2eenv",
    "/.hidden.txt",
    "/sub/.hidden/x.txt",
    "/sub/%2ehidden/x.txt",
    "/.git/config",
    "/.GIT/config",
    "/%2egit/config",
    "/__pycache__/m.pyc",
    "/__PYCACHE__/m.pyc",
]


@pytest.mark.parametrize("target", TRAVERSAL_CORPUS)
async def test_traversal_corpus_never_leaves_the_root(root: Path, target: str) -> None:
    assert len(TRAVERSAL_CORPUS) >= 20
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, target)
        head = await fetch(srv.port, target, method="HEAD")
    assert response.status in (400, 404), response.raw[:300]
    assert head.status in (400, 404)
    assert SECRET not in response.raw


async def test_absolute_filesystem_path_in_the_url_stays_under_the_root(root: Path) -> None:
    secret = (root.parent / "secret.txt").resolve()
    encoded = str(secret).replace("/", "%2f")
    async with running_server(root=root) as srv:
        for target in (f"/{encoded}", f"/{secret}", f"//{secret}"):
            response = await fetch(srv.port, target)
            assert response.status in (400, 404)
            assert SECRET not in response.raw


@pytest.mark.parametrize(
    ("target", "body"),
    [
        ("/alias.txt", b"hello\n"),  # symlink inside the root
        ("/.well-known/security.txt", b"Contact: mailto:a@example.com\n"),
        ("//hello.txt", b"hello\n"),
        ("/./hello.txt", b"hello\n"),
        ("/sub/%2e/page.html", b"<p>page</p>"),
        ("/hell%6f.txt", b"hello\n"),
    ],
)
async def test_harmless_forms_are_served(root: Path, target: str, body: bytes) -> None:
    async with running_server(root=root) as srv:
        response = await fetch(srv.port, target)
    assert (response.status, response.body) == (200, body)


async def test_symlinks_out_of_the_root_only_when_allowed(root: Path) -> None:
    async with running_server(root=root, allow_symlinks_outside_root=True) as srv:
        file_link = await fetch(srv.port, "/out.txt")
        folder_link = await fetch(srv.port, "/outdir/secret.txt")
        escape = await fetch(srv.port, "/%2e%2e/secret.txt")
    assert (file_link.status, file_link.body) == (200, SECRET)
    assert (folder_link.status, folder_link.body) == (200, SECRET)
    assert escape.status == 400  # the option is about symlinks, not about ".."


async def test_denied_segments_are_configurable(root: Path) -> None:
    async with running_server(root=root, denied_segments=("Private",)) as srv:
        private = await fetch(srv.port, "/private/x.txt")
        pycache = await fetch(srv.port, "/__pycache__/m.pyc")
        dotfile = await fetch(srv.port, "/.env")
    assert private.status == 404  # case-insensitive
    assert SECRET not in private.raw
    assert pycache.status == 200  # no longer denied
    assert dotfile.status == 404  # hidden files stay hidden


async def test_two_servers_in_one_process_keep_their_own_file_settings(root: Path) -> None:
    """Settings and cached files are per server: what one server denies, follows out of
    the root or has cached changes nothing for another in the same process."""
    (root / "private" / "index.html").write_bytes(b"private index")
    async with (
        running_server(root=root, denied_segments=("private",)) as strict,
        running_server(root=root, allow_symlinks_outside_root=True) as lenient,
    ):
        # The lenient server serves (and caches) the symlinked secret first...
        assert (await fetch(lenient.port, "/out.txt")).body == SECRET
        assert (await fetch(lenient.port, "/out.txt")).body == SECRET
        assert (await fetch(lenient.port, "/private/x.txt")).status == 200
        assert (await fetch(lenient.port, "/private/")).body == b"private index"
        assert (await fetch(lenient.port, "/__pycache__/m.pyc")).status == 404  # the default
        # ...which the strict server, on the same root, still refuses.
        assert (await fetch(strict.port, "/out.txt")).status == 404
        assert (await fetch(strict.port, "/private/x.txt")).status == 404
        assert (await fetch(strict.port, "/private/")).status == 404  # default_document too
        assert (await fetch(strict.port, "/__pycache__/m.pyc")).status == 200  # not denied


# ---------------------------------------------------------------- cancellation safety


def test_range_request_is_cancellation_safe(root: Path) -> None:
    outcome = check_cancellation_safety(
        [],
        f"GET /large.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=100-{CHUNK + 500}\r\n\r\n",
        root=root,
    )
    assert outcome.status == 206
    assert outcome.body == LARGE[100 : CHUNK + 501]


def test_multi_range_request_is_cancellation_safe(root: Path) -> None:
    outcome = check_cancellation_safety(
        [],
        "GET /large.bin HTTP/1.1\r\nHost: x\r\n"
        f"Range: bytes=0-9,{CHUNK - 5}-{CHUNK + 5},-7\r\n\r\n",
        root=root,
    )
    assert outcome.status == 206
    assert LARGE[CHUNK - 5 : CHUNK + 6] in outcome.body
    assert outcome.body.count(b"Content-Range: bytes") == 3


def test_small_file_range_is_cancellation_safe(root: Path) -> None:
    outcome = check_cancellation_safety(
        [], "GET /small.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,4-5\r\n\r\n", root=root
    )
    assert outcome.status == 206


async def test_small_file_cache_never_serves_a_changed_file(tmp_path: Path) -> None:
    page = tmp_path / "cached.txt"
    page.write_text("first")
    async with running_server(root=tmp_path) as srv, srv.client() as client:
        assert (await client.get("/cached.txt")).text == "first"
        assert (await client.get("/cached.txt")).text == "first"  # from the cache
        page.write_text("again")  # same size, new content and times
        assert (await client.get("/cached.txt")).text == "again"
        replacement = tmp_path / "new.txt"
        replacement.write_text("other")
        replacement.replace(page)  # a new file (inode) under the old name
        assert (await client.get("/cached.txt")).text == "other"
        page.unlink()
        assert (await client.get("/cached.txt")).status_code == 404


async def test_large_file_cached_by_stat_never_serves_a_changed_file(tmp_path: Path) -> None:
    """Large files are cached as their stat only, and opened on the event loop when the
    stat still matches: a change, a replacement or a removal is seen at once."""
    page = tmp_path / "large.bin"
    page.write_bytes(LARGE)
    changed = bytes(reversed(LARGE))
    async with running_server(root=tmp_path) as srv, srv.client() as client:
        assert (await client.get("/large.bin")).content == LARGE
        assert (await client.get("/large.bin")).content == LARGE  # stat from the cache
        page.write_bytes(changed)  # same size, new content and times
        assert (await client.get("/large.bin")).content == changed
        replacement = tmp_path / "new.bin"
        replacement.write_bytes(LARGE[:1000] + changed[1000:])
        replacement.replace(page)  # a new file (inode) under the old name
        assert (await client.get("/large.bin")).content == LARGE[:1000] + changed[1000:]
        page.unlink()
        assert (await client.get("/large.bin")).status_code == 404


def test_file_cache_is_bounded_by_entries_and_bytes(tmp_path: Path) -> None:
    keys = []
    for name in "abc":
        path = tmp_path / f"{name}.bin"
        path.write_bytes(b"x" * 10)
        keys.append((str(tmp_path), str(path)))
    by_entries = static_file._SmallFileCache(max_entries=2)
    by_bytes = static_file._SmallFileCache(max_bytes=25)
    for cache in (by_entries, by_bytes):
        for key in keys:
            cache.put(key, static_file.Found(os.stat(key[1]), b"x" * 10))
        assert cache.get(keys[0]) is None  # the oldest (a) was dropped
        assert cache.get(keys[1]) is not None
        assert cache.get(keys[2]) is not None
