"""What a self-hoster expects around the files: an app mounted at ``/api/*`` answers
``/api`` with a redirect to ``/api/`` (as nginx does for a ``location /api/``). Raw
sockets on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_proxy_origin import APPS, answer, head
from tests.helpers import raw_request, running_server
from trioiis.config import config_from_mapping


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
