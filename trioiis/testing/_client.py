"""The client's side of an in-memory exchange: did one complete response arrive?"""

from __future__ import annotations

import h11


def method_of(request: bytes) -> str:
    """The request's method (``GET`` when the bytes do not start with one)."""
    method = request.split(b" ", 1)[0]
    return method.decode("ascii") if method.isalpha() and method.isascii() else "GET"


def complete_response(raw: bytes, method: str = "GET") -> tuple[int, bytes] | None:
    """(status, body) if ``raw`` holds one complete, well-formed response to ``method``."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("Host", "x")]))
    try:
        conn.receive_data(raw)
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None
