"""What every report says about a request is what happened to it: the cases an audit found
reported wrong, each over real loopback sockets (the scenarios and helpers are
``test_outcomes.py``'s)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_outcomes import logged, open_raw, reset, said_by_all, scenario
from trioiis import Outcome


async def test_a_request_cut_before_its_status_line_is_499_in_every_report(
    tmp_path: Path,
) -> None:
    """No status line reached the client: the access log says 499, and so must the
    counters by status (status module, metrics) and the trace, not the 200 the response
    object still holds."""

    async def client(port: int) -> bytes:
        sock = await open_raw(port)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
        reset(sock)
        return b""

    reports, _ = await scenario(tmp_path, "/upload", client)
    said_by_all(reports, Outcome.CANCELLED_BY_CLIENT)
    assert logged(reports.log[0]) == (499, 0)
    assert reports.status["responses_by_status"] == {"499": 1}
    assert [t["status"] for t in reports.traces] == [499]
