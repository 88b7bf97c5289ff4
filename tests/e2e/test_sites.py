"""Virtual hosts: ``[[sites]]`` chosen by the request's Host (any case, port stripped);
unknown hosts get the default site (the first marked ``default``, else the top-level root)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trioiis
from tests.helpers import raw_request, register, running_server, statuses_in
from trioiis import Notification, Status
from trioiis.config import SiteConfig, load_config


def make_sites(tmp_path: Path) -> dict[str, Path]:
    roots = {}
    for name in ("main", "blog", "shop"):
        root = tmp_path / name
        root.mkdir()
        (root / "index.html").write_text(f"<p>{name}</p>\n")
        (root / "page.txt").write_text(f"{name} page\n")
        roots[name] = root
    (roots["blog"] / "only-blog.txt").write_text("blog only\n")
    return roots


class SiteProbe(trioiis.HttpModule):
    """``/site`` answers with the request's site id, name and INSTANCE_ID."""

    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> Status:
        if ctx.request.path != "/site":
            return Status.CONTINUE
        ctx.response.write(
            f"{ctx.site.id} {ctx.site.name} {ctx.get_server_variable('INSTANCE_ID')}".encode()
        )
        return Status.FINISH_REQUEST


PROBE = ("probe", register(SiteProbe, Notification.BEGIN_REQUEST))


async def test_two_sites_by_host_name_serve_different_files(tmp_path: Path) -> None:
    roots = make_sites(tmp_path)
    sites = (
        SiteConfig(name="blog", root=roots["blog"], hosts=("blog.example.test",)),
        SiteConfig(name="shop", root=roots["shop"], hosts=("shop.example.test", "Www.Shop.Test")),
    )
    server = running_server(PROBE, root=roots["main"], sites=sites)
    async with server as srv, srv.client() as client:
        blog = await client.get("/page.txt", headers={"Host": "blog.example.test"})
        shop = await client.get("/", headers={"Host": "shop.example.test"})
        shop_alias = await client.get("/page.txt", headers={"Host": "WWW.shop.test"})
        blog_only = await client.get("/only-blog.txt", headers={"Host": "blog.example.test"})
        not_in_shop = await client.get("/only-blog.txt", headers={"Host": "shop.example.test"})
        blog_site = await client.get("/site", headers={"Host": "blog.example.test"})
        unknown = await client.get("/page.txt", headers={"Host": "other.test"})
        unknown_site = await client.get("/site", headers={"Host": "other.test"})
    assert blog.text == "blog page\n"
    assert shop.text == "<p>shop</p>\n"
    assert shop_alias.text == "shop page\n"
    assert blog_only.text == "blog only\n"
    assert not_in_shop.status_code == 404
    assert blog_site.text == "2 blog 2"
    assert unknown.text == "main page\n"  # no default site: the top-level root
    assert unknown_site.text == "1 default 1"


async def test_unknown_host_gets_the_site_marked_default(tmp_path: Path) -> None:
    roots = make_sites(tmp_path)
    sites = (
        SiteConfig(name="blog", root=roots["blog"], hosts=("blog.example.test",)),
        SiteConfig(name="shop", root=roots["shop"], default=True),
    )
    async with running_server(root=roots["main"], sites=sites) as srv, srv.client() as client:
        unknown = await client.get("/page.txt", headers={"Host": "nobody.test"})
        by_ip = await client.get("/page.txt")  # Host: 127.0.0.1:PORT
        blog = await client.get("/page.txt", headers={"Host": "blog.example.test"})
    assert unknown.text == "shop page\n"
    assert by_ip.text == "shop page\n"
    assert blog.text == "blog page\n"


async def test_host_with_a_port_and_absolute_form_match(tmp_path: Path) -> None:
    roots = make_sites(tmp_path)
    sites = (SiteConfig(name="blog", root=roots["blog"], hosts=("blog.example.test",)),)
    async with running_server(root=roots["main"], sites=sites) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /page.txt HTTP/1.1\r\nHost: Blog.Example.Test:8080\r\n\r\n"
            b"GET /page.txt HTTP/1.1\r\nHost: blog.example.test.\r\n\r\n"
            b"GET http://blog.example.test:81/page.txt HTTP/1.1\r\nHost: blog.example.test\r\n\r\n"
            b"GET /page.txt HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
        )
    assert statuses_in(raw) == [200, 200, 200, 200]
    assert raw.count(b"blog page\n") == 3
    assert raw.endswith(b"main page\n")


async def test_sites_from_a_toml_file(tmp_path: Path) -> None:
    make_sites(tmp_path)
    (tmp_path / "site.toml").write_text(
        'root = "main"\n'
        'bindings = ["127.0.0.1:0"]\n'
        "[[sites]]\n"
        'name = "blog"\n'
        'root = "blog"\n'
        'hosts = ["blog.example.test"]\n'
    )
    config = load_config(tmp_path / "site.toml")
    assert config.sites == (
        SiteConfig(name="blog", root=tmp_path / "blog", hosts=("blog.example.test",)),
    )
    server = running_server(root=config.root, sites=config.sites)
    async with server as srv, srv.client() as client:
        blog = await client.get("/page.txt", headers={"Host": "blog.example.test"})
        main = await client.get("/page.txt")
    assert (blog.text, main.text) == ("blog page\n", "main page\n")
