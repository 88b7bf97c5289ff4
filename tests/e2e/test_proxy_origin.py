"""Behind a trusted proxy, the scheme and host the client used (``X-Forwarded-Proto``,
``X-Forwarded-Host``, ``Forwarded: proto=…;host=…``) are what redirects, server variables,
the ASGI scope and the WSGI environ show; from an untrusted peer they are ignored. Raw
sockets on 127.0.0.1, the proxy played by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.helpers import raw_request, register, running_server
from trioiis import HttpContext, Notification, Status
from trioiis.config import config_from_mapping


class Variables(trioiis.HttpModule):
    """``/vars``: HTTPS SERVER_NAME SERVER_PORT."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        if ctx.request.path != "/vars":
            return Status.CONTINUE
        names = ("HTTPS", "SERVER_NAME", "SERVER_PORT")
        ctx.response.write(" ".join(ctx.get_server_variable(n) for n in names).encode())
        return Status.FINISH_REQUEST


VARIABLES = ("vars", register(Variables, Notification.BEGIN_REQUEST))

APPS = """
async def asgi_app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = f"{scope['scheme']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    text = f"{environ['wsgi.url_scheme']} {environ['SERVER_NAME']} {environ['SERVER_PORT']}"
    return [text.encode()]
"""


def head(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: backend:8000", *headers, "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def answer(raw: bytes) -> tuple[int, dict[str, str], str]:
    top, _, body = raw.partition(b"\r\n\r\n")
    status_line, *fields = top.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return int(status_line.split()[1]), headers, body.decode()


@pytest.mark.parametrize(
    ("sent", "location"),
    [
        (("X-Forwarded-Proto: https",), "https://backend:8000/dir/"),
        (
            ("X-Forwarded-Proto: https", "X-Forwarded-Host: www.example.test"),
            "https://www.example.test/dir/",
        ),
        (
            ('Forwarded: for=203.0.113.9;proto=https;host="www.example.test"',),
            "https://www.example.test/dir/",
        ),
        # The element of the client's hop counts, not the one a trusted proxy added.
        (
            ("Forwarded: for=203.0.113.9;proto=https;host=a.test, for=127.0.0.1;proto=http",),
            "https://a.test/dir/",
        ),
        (("X-Forwarded-Proto: gopher",), "http://backend:8000/dir/"),  # not a scheme
        (("X-Forwarded-Host: bad host/x",), "http://backend:8000/dir/"),  # not a host
        ((), "http://backend:8000/dir/"),
    ],
)
async def test_folder_redirect_uses_the_trusted_scheme_and_host(
    site: Path, sent: tuple[str, ...], location: str
) -> None:
    async with running_server(root=site, trusted_proxies=("127.0.0.1",)) as srv:
        status, headers, _ = answer(await raw_request(srv.port, head("/dir", *sent)))
    assert (status, headers["location"]) == (301, location)


async def test_an_untrusted_peer_cannot_change_scheme_or_host(site: Path) -> None:
    forged = ("X-Forwarded-Proto: https", "Forwarded: proto=https;host=evil.test")
    async with running_server(VARIABLES, root=site, trusted_proxies=("10.0.0.0/8",)) as srv:
        _, headers, _ = answer(await raw_request(srv.port, head("/dir", *forged)))
        _, _, variables = answer(await raw_request(srv.port, head("/vars", *forged)))
    assert headers["location"] == "http://backend:8000/dir/"
    assert variables.startswith("off backend ")


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (("X-Forwarded-Proto: https",), "on backend 443"),
        (
            ("X-Forwarded-Proto: https", "X-Forwarded-Host: www.example.test:8443"),
            "on www.example.test 8443",
        ),
        (
            ("Forwarded: for=203.0.113.9;proto=http;host=www.example.test",),
            "off www.example.test 80",
        ),
    ],
)
async def test_server_variables_follow_the_proxy(
    site: Path, sent: tuple[str, ...], expected: str
) -> None:
    async with running_server(VARIABLES, root=site, trusted_proxies=("127.0.0.1",)) as srv:
        _, _, body = answer(await raw_request(srv.port, head("/vars", *sent)))
    assert body == expected


async def test_asgi_scheme_and_wsgi_url_scheme_follow_the_proxy(site: Path, tmp_path: Path) -> None:
    (tmp_path / "proxied_apps.py").write_text(APPS)
    apps = config_from_mapping(
        {
            "handlers": [
                {"path": "/a/*", "asgi": "proxied_apps.py:asgi_app"},
                {"path": "/w/*", "wsgi": "proxied_apps.py:wsgi_app"},
            ]
        },
        base=tmp_path,
    )
    proxied = ("X-Forwarded-Proto: https", "X-Forwarded-Host: www.example.test")
    async with running_server(
        root=site, trusted_proxies=("127.0.0.1",), handlers=apps.handlers, modules=apps.modules
    ) as srv:
        asgi = answer(await raw_request(srv.port, head("/a/x", *proxied)))[2]
        wsgi = answer(await raw_request(srv.port, head("/w/x", *proxied)))[2]
        asgi_direct = answer(await raw_request(srv.port, head("/a/x")))[2]
    assert asgi == "https"
    assert wsgi == "https www.example.test 443"
    assert asgi_direct == "http"


class Redirector(trioiis.HttpModule):
    """``/go``: a module's relative ``response.redirect("/there")``."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        if ctx.request.path != "/go":
            return Status.CONTINUE
        ctx.response.redirect("/there")
        return Status.FINISH_REQUEST


async def test_a_modules_relative_redirect_uses_the_trusted_scheme(site: Path) -> None:
    redirector = ("redirector", register(Redirector, Notification.BEGIN_REQUEST))
    async with running_server(redirector, root=site, trusted_proxies=("127.0.0.1",)) as srv:
        _, proxied, _ = answer(await raw_request(srv.port, head("/go", "X-Forwarded-Proto: https")))
        _, direct, _ = answer(await raw_request(srv.port, head("/go")))
    assert proxied["location"] == "https://backend:8000/there"
    assert direct["location"] == "http://backend:8000/there"
