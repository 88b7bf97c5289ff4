"""compression over real sockets: gzip and brotli, Accept-Encoding with q=0, Vary, ETags,
precompressed files, what is never compressed, options, and cancellation safety."""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path
from typing import Any

import brotli
import pytest

import trioiis
from tests.helpers import builtin, register, running_server
from tests.modules.rawhttp import fetch
from trioiis import HttpContext, HttpModule, Notification, Status
from trioiis.modules import DEFAULT_MODULES, compression
from trioiis.modules.compression import accepted
from trioiis.modules.static_file import CHUNK
from trioiis.testing import check_cancellation_safety

TEXT = ("All work and no play makes Jack a dull boy.\n" * 200).encode()  # 8.8 KB
CSS = b"body { color: red; }\n" * 300
MTIME = 1_600_000_000


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "page.html").write_bytes(TEXT)
    (tmp_path / "tiny.txt").write_bytes(b"tiny\n")
    (tmp_path / "image.png").write_bytes(b"\x89PNG" + bytes(5000))
    (tmp_path / "big.txt").write_bytes(TEXT * (2 * CHUNK // len(TEXT) + 1))  # streamed
    (tmp_path / "data.json").write_bytes(b'{"k": "%s"}' % (b"v" * 100_000))  # a thread hop
    (tmp_path / "style.css").write_bytes(CSS)
    (tmp_path / "style.css.br").write_bytes(brotli.compress(CSS))
    (tmp_path / "style.css.gz").write_bytes(gzip.compress(CSS))
    (tmp_path / "stale.js").write_bytes(CSS)
    (tmp_path / "stale.js.gz").write_bytes(gzip.compress(b"old"))
    os.utime(tmp_path / "stale.js.gz", (MTIME, MTIME))
    return tmp_path


def get(port: int, target: str, encoding: str | None, **headers: str) -> Any:
    if encoding is not None:
        headers["Accept-Encoding"] = encoding
    return fetch(port, target, headers={k.replace("_", "-"): v for k, v in headers.items()})


def test_compression_is_a_default_module() -> None:
    assert "compression" in DEFAULT_MODULES


@pytest.mark.parametrize(
    ("header", "want"),
    [
        (None, []),
        ("gzip", ["gzip"]),
        ("gzip, br", ["br", "gzip"]),
        ("br;q=0, gzip", ["gzip"]),
        ("gzip;q=0.5, br;q=0.4", ["gzip", "br"]),
        ("*", ["br", "gzip"]),
        ("*, gzip;q=0", ["br"]),
        ("x-gzip", ["gzip"]),
        ("identity", []),
        ("gzip;q=bogus", []),
    ],
)
def test_accept_encoding_parsing(header: str | None, want: list[str]) -> None:
    assert accepted(header, ("br", "gzip")) == want


async def test_gzip_when_the_client_accepts_only_gzip(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/page.html", "gzip")
        plain = await get(srv.port, "/page.html", None)
    assert response.status == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["content-length"] == str(len(response.body))
    assert gzip.decompress(response.body) == TEXT
    assert response.headers["etag"] == plain.headers["etag"][:-1] + '-gz"'
    assert "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain.body == TEXT


async def test_large_buffered_body_is_compressed_in_a_worker_thread(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/data.json", "gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(response.body) == (root / "data.json").read_bytes()


async def test_brotli_is_preferred(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/page.html", "gzip, deflate, br")
    assert response.headers["content-encoding"] == "br"
    assert brotli.decompress(response.body) == TEXT
    assert response.headers["etag"].endswith('-br"')


async def test_q_zero_is_honoured(root: Path) -> None:
    async with running_server(root=root) as srv:
        no_br = await get(srv.port, "/page.html", "br;q=0, gzip")
        nothing = await get(srv.port, "/page.html", "gzip;q=0, br;q=0")
    assert no_br.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in nothing.headers
    assert nothing.body == TEXT
    assert nothing.headers["vary"] == "Accept-Encoding"


async def test_httpx_decodes_what_it_gets(root: Path) -> None:
    async with running_server(root=root) as srv, srv.client() as client:
        response = await client.get("/page.html")
    assert response.headers["content-encoding"] in ("br", "gzip")
    assert response.content == TEXT


async def test_tiny_bodies_are_not_compressed(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/tiny.txt", "gzip, br")
    assert "content-encoding" not in response.headers
    assert response.body == b"tiny\n"
    assert response.headers["vary"] == "Accept-Encoding"


async def test_min_size_option(root: Path) -> None:
    async with running_server(
        builtin("static_file"),
        builtin("compression", {"min_size": 0, "encodings": ["gzip"]}),
        root=root,
        builtin_modules=False,
    ) as srv:
        response = await get(srv.port, "/tiny.txt", "br, gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(response.body) == b"tiny\n"


async def test_incompressible_types_are_left_alone(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/image.png", "gzip, br")
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert len(response.body) == 5004


async def test_ranges_are_never_compressed(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/page.html", "gzip, br", Range="bytes=0-1999")
    assert response.status == 206
    assert "content-encoding" not in response.headers
    assert response.body == TEXT[:2000]


async def test_head_is_not_compressed(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await fetch(
            srv.port, "/page.html", method="HEAD", headers={"Accept-Encoding": "gzip"}
        )
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"


async def test_streamed_responses_are_left_alone(root: Path) -> None:
    size = (root / "big.txt").stat().st_size
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/big.txt", "gzip, br")
    assert "content-encoding" not in response.headers
    assert response.headers["content-length"] == str(size)
    assert len(response.body) == size


def encoded_already() -> tuple[str, Any]:
    class Encoded(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.raw_path != "/encoded":
                return Status.CONTINUE
            ctx.response.set_header("Content-Type", "text/plain")
            ctx.response.set_header("Content-Encoding", "gzip")
            ctx.response.write(gzip.compress(TEXT))
            return Status.FINISH_REQUEST

    return "encoded", register(Encoded, Notification.BEGIN_REQUEST)


async def test_a_body_with_content_encoding_is_not_compressed_again(root: Path) -> None:
    async with running_server(encoded_already(), root=root) as srv:
        response = await get(srv.port, "/encoded", "br, gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert gzip.decompress(response.body) == TEXT


async def test_error_pages_are_compressed_too(root: Path) -> None:
    (root / "404.html").write_bytes(TEXT)
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/missing", "gzip")
    assert response.status == 404
    assert gzip.decompress(response.body) == TEXT


async def test_precompressed_brotli_file_is_served(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/style.css", "gzip, br")
        plain = await get(srv.port, "/style.css", None)
    assert response.status == 200
    assert response.body == (root / "style.css.br").read_bytes()
    assert response.headers["content-encoding"] == "br"
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.headers["vary"] == "Accept-Encoding"
    assert response.headers["etag"].endswith('-br"')
    assert response.headers["etag"] != plain.headers["etag"]
    assert brotli.decompress(response.body) == CSS


async def test_precompressed_gzip_file_when_only_gzip_is_accepted(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/style.css", "gzip")
    assert response.body == (root / "style.css.gz").read_bytes()
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["etag"].endswith('-gz"')


async def test_precompressed_symlink_out_of_the_root_is_not_served(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "outside.br").write_bytes(b"SECRET-OUTSIDE")
    (site / "app.js").write_bytes(CSS)
    (site / "app.js.br").symlink_to(tmp_path / "outside.br")
    async with running_server(root=site) as srv:
        response = await get(srv.port, "/app.js", "br")
    assert b"SECRET-OUTSIDE" not in response.body
    assert brotli.decompress(response.body) == CSS  # compressed on the fly instead


async def test_stale_precompressed_file_is_ignored(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/stale.js", "gzip")
    assert gzip.decompress(response.body) == CSS  # compressed now, not the old .gz


async def test_range_request_gets_the_identity_file(root: Path) -> None:
    async with running_server(root=root) as srv:
        response = await get(srv.port, "/style.css", "br", Range="bytes=0-9")
    assert response.status == 206
    assert response.body == CSS[:10]
    assert "content-encoding" not in response.headers


@pytest.mark.parametrize(("path", "encoding"), [("/page.html", "gzip"), ("/style.css", "br")])
async def test_if_none_match_with_the_encoded_etag_is_304(
    root: Path, path: str, encoding: str
) -> None:
    async with running_server(root=root) as srv:
        first = await get(srv.port, path, encoding)
        etag = first.headers["etag"]
        again = await get(srv.port, path, encoding, If_None_Match=etag)
    assert again.status == 304
    assert again.headers["etag"] == etag
    assert again.headers["vary"] == "Accept-Encoding"
    assert again.body == b""


@pytest.mark.parametrize(
    "options",
    [
        {"min_size": -1},
        {"min_size": "1k"},
        {"encodings": ["deflate"]},
        {"encodings": ["gzip", "gzip"]},
        {"encodings": "gzip"},
        {"precompressed": "yes"},
        {"gzip_level": 10},
        {"brotli_quality": 12},
        {"level": 1},
    ],
)
def test_bad_options_are_a_config_error(options: dict[str, Any]) -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig(builtin_modules=False))
    with pytest.raises(trioiis.ConfigError) as info:
        server.register_module("compression", compression.register_module, options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("target", "encoding"),
    [
        ("/page.html", "gzip"),
        ("/page.html", "br"),
        ("/data.json", "br"),
        ("/style.css", "br"),
        ("/missing", "gzip"),
    ],
)
def test_compression_is_cancellation_safe(root: Path, target: str, encoding: str) -> None:
    outcome = check_cancellation_safety(
        [],
        f"GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {encoding}\r\n\r\n",
        root=root,
    )
    assert outcome.status in (200, 404)


async def test_a_304_for_a_compressible_file_varies_on_accept_encoding(tmp_path: Path) -> None:
    (tmp_path / "page.txt").write_text("text " * 1000)
    async with running_server(root=tmp_path) as srv, srv.client() as client:
        first = await client.get("/page.txt", headers={"Accept-Encoding": "identity"})
        again = await client.get(
            "/page.txt",
            headers={"Accept-Encoding": "identity", "If-None-Match": first.headers["etag"]},
        )
    assert again.status_code == 304
    assert again.headers["vary"] == "Accept-Encoding"


def test_without_brotli_the_default_is_gzip_and_br_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The brotli package comes with ``trioiis[compression]``; a server without it still
    compresses (gzip), and asking for brotli says what to install."""
    monkeypatch.setattr(compression, "brotli", None)
    assert compression.Settings({}).encodings == ("gzip",)
    with pytest.raises(ValueError, match=re.escape("pip install 'trioiis[compression]'")):
        compression.Settings({"encodings": ["br", "gzip"]})


def test_without_brotli_loading_the_module_for_br_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(compression, "brotli", None)
    server = trioiis.HttpServer(trioiis.ServerConfig(bindings=("127.0.0.1:0",)))
    with pytest.raises(trioiis.ConfigError, match=re.escape("trioiis[compression]")):
        server.register_module("br", compression.register_module, {"encodings": ["br"]})
