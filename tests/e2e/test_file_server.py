"""What a self-hoster expects of a file server: an app mounted at ``/api/*`` answers
``/api`` with a redirect to ``/api/`` (as nginx does for a ``location /api/``);
``Cache-Control``/``Expires`` per path pattern; a single-page app's fallback document
(``try_files``); the server's own 500 page looking like its other pages. Raw sockets on
127.0.0.1."""

from __future__ import annotations

import datetime
import email.utils
import re
from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.e2e.test_proxy_origin import APPS, answer, head
from tests.helpers import raw_request, register, running_server
from trioiis import ConfigError, HttpServer, Notification, ServerConfig, Status
from trioiis.config import ModuleSpec, config_from_mapping
from trioiis.modules import BUILTIN_MODULES, directory_listing


@pytest.mark.parametrize("kind", ["asgi", "wsgi"])
async def test_an_apps_mount_point_redirects_to_its_root(
    site: Path, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "mounted_apps.py").write_text(APPS)
    apps = config_from_mapping(
        {"handlers": [{"path": "/api/*", kind: f"mounted_apps.py:{kind}_app"}]}, base=tmp_path
    )
    async with running_server(root=site, handlers=apps.handlers, modules=apps.modules) as srv:
        get = answer(await raw_request(srv.port, head("/api?x=1")))
        post = answer(
            await raw_request(
                srv.port,
                b"POST /api HTTP/1.1\r\nHost: backend:8000\r\nContent-Length: 0\r\n"
                b"Connection: close\r\n\r\n",
            )
        )
        inside = answer(await raw_request(srv.port, head("/api/")))
        other = answer(await raw_request(srv.port, head("/apiary")))
    assert (get[0], get[1]["location"]) == (301, "http://backend:8000/api/?x=1")
    assert (post[0], post[1]["location"]) == (308, "http://backend:8000/api/")
    assert inside[0] == 200  # the app itself
    assert other[0] == 404  # not the mount point: the files


def test_the_mount_point_mapping_follows_the_apps(tmp_path: Path) -> None:
    config = config_from_mapping(
        {"handlers": [{"path": "/api/*", "asgi": "a.py:app"}, {"path": "*", "asgi": "b.py:app"}]}
    )
    assert [m.path for m in config.handlers] == ["/api/*", "/api", "*"]


def static_file_with(**options: object) -> ModuleSpec:
    """static_file with options: a [[modules]] entry of that name replaces the default."""
    return ModuleSpec(name="static_file", target=BUILTIN_MODULES["static_file"], options=options)


async def test_cache_control_and_expires_per_path_pattern(site: Path) -> None:
    (site / "assets").mkdir()
    (site / "assets" / "app.js").write_text("js\n")
    static = static_file_with(
        cache=[
            {"path": "/assets/*", "max_age": 31_536_000, "immutable": True},
            {"path": "*.html", "max_age": 0},
        ]
    )
    async with running_server(root=site, modules=(static,)) as srv:
        asset = answer(await raw_request(srv.port, head("/assets/app.js")))
        page = answer(await raw_request(srv.port, head("/index.html")))
        plain = answer(await raw_request(srv.port, head("/hello.txt")))
        missing = answer(await raw_request(srv.port, head("/assets/gone.js")))
        etag = asset[1]["etag"]
        revalidated = answer(
            await raw_request(srv.port, head("/assets/app.js", f"If-None-Match: {etag}"))
        )
    assert asset[1]["cache-control"] == "public, max-age=31536000, immutable"
    expires = email.utils.parsedate_to_datetime(asset[1]["expires"])
    ahead = expires - datetime.datetime.now(datetime.UTC)
    assert datetime.timedelta(days=364) < ahead <= datetime.timedelta(days=366)
    assert page[1]["cache-control"] == "no-cache"
    assert "cache-control" not in plain[1]
    assert missing[0] == 404
    assert "cache-control" not in missing[1]
    assert revalidated[0] == 304
    assert revalidated[1]["cache-control"] == "public, max-age=31536000, immutable"


async def test_spa_fallback_serves_the_document_for_unknown_paths(site: Path) -> None:
    (site / "app").mkdir()
    (site / "app" / "index.html").write_text("<div id=app></div>\n")
    (site / "app" / "main.js").write_text("main\n")
    static = static_file_with(fallback=[{"path": "/app/*", "document": "/app/index.html"}])
    async with running_server(root=site, modules=(static,)) as srv:
        route = answer(await raw_request(srv.port, head("/app/users/42?tab=1")))
        real = answer(await raw_request(srv.port, head("/app/main.js")))
        outside = answer(await raw_request(srv.port, head("/elsewhere/users")))
    assert (route[0], route[2]) == (200, "<div id=app></div>\n")
    assert route[1]["content-type"].startswith("text/html")
    assert (real[0], real[2]) == (200, "main\n")
    assert outside[0] == 404


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"cache": [{"path": "*", "max_age": -1}]}, "max_age must be whole seconds"),
        ({"cache": [{"max_age": 1}]}, "needs a path pattern"),
        ({"fallback": [{"path": "*", "document": "index.html"}]}, "must be a URL path"),
        ({"cach": []}, "unknown option(s) cach"),
    ],
)
def test_bad_static_file_options_are_config_errors(
    site: Path, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        HttpServer(ServerConfig(root=site, modules=(static_file_with(**options),)))


class Fails(trioiis.HttpModule):
    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> Status:
        if ctx.request.path == "/boom":
            raise RuntimeError("secret detail /etc/passwd")
        return Status.CONTINUE


async def test_the_builtin_500_page_is_styled_like_the_others_and_tells_nothing(
    site: Path,
) -> None:
    fails = ("fails", register(Fails, Notification.BEGIN_REQUEST))
    listing = ("directory_listing", directory_listing.register_module)
    (site / "empty").mkdir()
    async with running_server(fails, listing, root=site) as srv:
        boom = answer(await raw_request(srv.port, head("/boom")))
        index = answer(await raw_request(srv.port, head("/empty/")))
    status, headers, page = boom
    assert status == 500
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "<h1>500 Internal Server Error</h1>" in page
    assert "The error has been logged." in page
    assert "font-family: system-ui, sans-serif; margin: 2em;" in page
    assert "font-family: system-ui, sans-serif; margin: 2em;" in index[2]  # the same look
    assert "secret" not in page
    assert "RuntimeError" not in page
