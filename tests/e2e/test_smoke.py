from __future__ import annotations

from pathlib import Path

from tests.helpers import raw_request, running_server, statuses_in


async def test_static_file_served_over_real_socket(site: Path) -> None:
    async with running_server(root=site) as srv, srv.client() as client:
        response = await client.get("/hello.txt")
        assert response.status_code == 200
        assert response.text == "hello\n"
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert response.headers["server"] == "trioiis"
        assert "date" in response.headers


async def test_pipelined_requests_answered_in_order(site: Path) -> None:
    async with running_server(root=site) as srv:
        raw = await raw_request(
            srv.port,
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /dir/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    assert statuses_in(raw) == [200, 404, 200]
    assert raw.index(b"hello\n") < raw.index(b"404") < raw.index(b"<h1>dir</h1>")
