"""redirect over real sockets: exact and prefix rules, statuses, Location, options, safety."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.helpers import builtin, running_server
from tests.modules.rawhttp import fetch
from trioiis.modules import DEFAULT_MODULES, redirect
from trioiis.testing import check_cancellation_safety

RULES = [
    {"from": "/old.html", "to": "/new.html"},
    {"from": "/moved", "to": "/new.html", "status": 302},
    {"from": "/temp", "to": "/new.html", "status": 307},
    {"from": "/docs", "to": "/manual/", "status": 308, "prefix": True},
    {"from": "/out/", "to": "https://example.com/", "prefix": True},
    {"from": "/root/", "to": "/", "prefix": True},
]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "new.html").write_text("<p>new</p>")
    (tmp_path / "old.html").write_text("<p>old</p>")
    return tmp_path


def serve(root: Path, rules: list[dict[str, Any]] = RULES) -> Any:
    return running_server(builtin("redirect", {"rules": rules}), root=root)


def test_redirect_is_not_a_default_module() -> None:
    assert "redirect" not in DEFAULT_MODULES


async def test_exact_rule_is_301_with_absolute_location_and_empty_body(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/old.html?x=1")
    assert response.status == 301
    assert response.headers["location"] == "http://127.0.0.1/new.html"  # exact: no query
    assert response.headers["content-length"] == "0"
    assert response.body == b""


async def test_exact_rule_does_not_match_below_it(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/old.html/x")
        other = await fetch(srv.port, "/moved/x")
    assert response.status == 404
    assert other.status == 404


@pytest.mark.parametrize(("path", "status"), [("/moved", 302), ("/temp", 307), ("/docs", 308)])
async def test_configured_status_is_used(root: Path, path: str, status: int) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, path)
    assert response.status == status
    assert response.headers["location"].startswith("http://127.0.0.1/")


async def test_prefix_rule_keeps_the_rest_of_the_path_and_the_query(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/docs/a/b.html?q=1&r=%20")
        bare = await fetch(srv.port, "/docs")
    assert response.status == 308
    assert response.headers["location"] == "http://127.0.0.1/manual/a/b.html?q=1&r=%20"
    assert bare.headers["location"] == "http://127.0.0.1/manual/"


async def test_prefix_rule_matches_whole_segments_only(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/docsx/a")
    assert response.status == 404


async def test_prefix_rule_to_another_host(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/out/path?a=b")
    assert response.status == 301
    assert response.headers["location"] == "https://example.com/path?a=b"


async def test_prefix_rule_never_forms_a_network_path(root: Path) -> None:
    async with serve(root) as srv:
        response = await fetch(srv.port, "/root//evil.example/x")
    assert response.headers["location"] == "http://127.0.0.1/evil.example/x"


async def test_location_uses_the_request_host(root: Path) -> None:
    async with serve(root) as srv, srv.client() as client:
        response = await client.get("/old.html", headers={"Host": "www.example.org:8080"})
    assert response.status_code == 301
    assert response.headers["location"] == "http://www.example.org:8080/new.html"


async def test_unmatched_requests_are_served(root: Path) -> None:
    async with serve(root) as srv, srv.client() as client:
        response = await client.get("/new.html")
    assert response.status_code == 200
    assert response.text == "<p>new</p>"


async def test_first_matching_rule_wins(root: Path) -> None:
    rules = [{"from": "/a", "to": "/first", "prefix": True}, {"from": "/a/b", "to": "/second"}]
    async with serve(root, rules) as srv:
        response = await fetch(srv.port, "/a/b")
    assert response.headers["location"] == "http://127.0.0.1/first/b"


def test_no_rules_subscribes_to_nothing() -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig(builtin_modules=False))
    info = server.register_module("redirect", redirect.register_module)
    assert info.factory is None
    assert int(info.notifications) == 0


def test_redirect_loads_from_a_config_file(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(
        '[[modules]]\nname = "redirect"\n'
        'options = { rules = [{ from = "/a", to = "/b", status = 302 }] }\n'
    )
    config = trioiis.load_config(tmp_path / "site.toml")
    server = trioiis.HttpServer(config)
    assert "redirect" in server.pipeline.order_for(trioiis.Notification.BEGIN_REQUEST)


@pytest.mark.parametrize(
    "options",
    [
        {"rule": []},
        {"rules": {"from": "/a", "to": "/b"}},
        {"rules": [{"from": "a", "to": "/b"}]},
        {"rules": [{"from": "/a"}]},
        {"rules": [{"from": "/a", "to": "/b", "status": 303}]},
        {"rules": [{"from": "/a", "to": "/b", "status": "301"}]},
        {"rules": [{"from": "/a", "to": "/b", "prefix": "yes"}]},
        {"rules": [{"from": "/a", "to": "/b", "code": 301}]},
        {"rules": [{"from": "/a", "to": "/b\r\nX: y"}]},
    ],
)
def test_bad_options_are_a_config_error(options: dict[str, Any]) -> None:
    server = trioiis.HttpServer(trioiis.ServerConfig(builtin_modules=False))
    with pytest.raises(trioiis.ConfigError) as info:
        server.register_module("redirect", redirect.register_module, options)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ["/docs/a?b=c", "/new.html"])
def test_redirect_is_cancellation_safe(root: Path, target: str) -> None:
    def register_module(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
        info.options = {"rules": RULES}
        redirect.register_module(version, info, server)

    outcome = check_cancellation_safety(
        ("redirect", register_module), f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n", root=root
    )
    assert outcome.status in (200, 308)
