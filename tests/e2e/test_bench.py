"""``trioiis bench`` against a real trioiis server on 127.0.0.1 port 0, in one Trio run.

The server has the ``status`` module and a module whose ``/slow`` answer takes 300 ms, so
that every request the bench abandons (after 50 ms) is still running on the server: the
server must count each one as cancelled by its client and end with nothing in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import trioiis
from tests.helpers import running_server
from trioiis import cli
from trioiis.bench import options_from_args
from trioiis.bench.main import print_report, run
from trioiis.modules import status

SLOW = 0.3


class SlowModule(trioiis.HttpModule):
    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> trioiis.Status:
        if ctx.request.path != "/slow":
            return trioiis.Status.CONTINUE
        while ctx.request.remaining_entity_bytes:
            await ctx.request.read_entity_body(65536)
        await trio.sleep(SLOW)
        ctx.response.write(b"slow\n")
        return trioiis.Status.FINISH_REQUEST


def register_slow(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(SlowModule), trioiis.Notification.BEGIN_REQUEST
    )


def bench_options(port: int, *argv: str):
    args = cli._parser().parse_args(["bench", f"http://127.0.0.1:{port}/slow", *argv])
    return options_from_args(args)


@pytest.mark.parametrize(
    "mode",
    [
        ["--abort-mode", "fin"],
        ["--abort-mode", "rst"],
        ["--abort-mode", "mid-body", "--body-size", "4096", "--method", "POST"],
    ],
)
async def test_counts_add_up_and_the_server_cancels_every_abort(
    tmp_path: Path, mode: list[str]
) -> None:
    async with running_server(
        ("status", status.register_module),
        ("slow", register_slow),
        root=tmp_path,
        builtin_modules=False,
    ) as running:
        opts = bench_options(
            running.port, "--requests", "40", "--connections", "10", "--abort-share", "0.3",
            "--abort-after", "50", "--seed", "3", "--timeout", "5", "--quiet", *mode,
        )  # fmt: skip
        with trio.fail_after(15):
            report = await run(opts)
    requests = report["requests"]
    assert requests["sent"] == 40
    assert requests["completed"] + requests["aborted"] + requests["errors"] == 40
    assert requests["cut_off"] == requests["backlog"] == requests["errors"] == 0
    assert requests["aborted"] == requests["abort_planned"] > 0
    assert report["statuses"] == {"200": requests["completed"]}
    assert report["latency"]["count"] == requests["completed"]
    assert report["latency"]["p50_ms"] >= SLOW * 1000 * 0.9
    server = report["server"]
    assert server is not None
    assert server["counters"]["cancelled_by_client"] == requests["aborted"]
    assert server["counters"]["requests"] >= 40
    assert server["time_to_cancel"]["count"] == requests["aborted"]
    assert server["after"]["requests_in_flight"] == 0
    assert server["after"]["connections_open"] == 0


async def test_without_status_module_and_the_report_prints(tmp_path: Path) -> None:
    from rich.console import Console

    async with running_server(("slow", register_slow), root=tmp_path, builtin_modules=False) as r:
        opts = bench_options(r.port, "--requests", "5", "--connections", "5", "--quiet")
        with trio.fail_after(10):
            report = await run(opts)
    assert report["requests"]["completed"] == 5
    assert report["server"] is None
    console = Console(record=True, width=120)
    print_report(report, console)
    text = console.export_text()
    assert "completed" in text
    assert "no trioiis status endpoint" in text


async def test_status_endpoint(tmp_path: Path) -> None:
    async with (
        running_server(
            ("status", status.register_module), root=tmp_path, builtin_modules=False
        ) as running,
        running.client() as client,
    ):
        answer = await client.get("/_trioiis/status")
        assert answer.status_code == 200
        figures = answer.json()
        assert figures["server"] == "trioiis"
        assert figures["requests_in_flight"] == 0
        assert figures["connections_open"] == 0
        assert figures["open_fds"] > 0
        assert figures["trio_tasks"] > 0
        assert (await client.post("/_trioiis/status")).status_code == 405
        assert (await client.get("/_trioiis/status?last=0")).json()["time_to_cancel"]["count"] == 0


def test_status_module_refuses_remote_clients() -> None:
    assert status.is_loopback("127.0.0.1")
    assert status.is_loopback("::1")
    assert not status.is_loopback("192.0.2.1")
    assert status.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert status.percentile([], 0.99) == 0.0


class TinyModule(trioiis.HttpModule):
    async def on_begin_request(self, ctx: trioiis.HttpContext, provider: Any) -> trioiis.Status:
        if ctx.request.path == "/tiny-slow":
            await trio.sleep(0.05)
        ctx.response.write(b"tiny\n")
        return trioiis.Status.FINISH_REQUEST


def register_tiny(version: int, info: trioiis.ModuleRegistrationInfo, server: Any) -> None:
    info.set_request_notifications(
        trioiis.SimpleFactory(TinyModule), trioiis.Notification.BEGIN_REQUEST
    )


async def test_aborts_happen_at_the_requested_share(tmp_path: Path) -> None:
    """400 requests, a 30 % abort share: between 25 % and 35 % are abandoned, and every
    abandoned one was planned (the answer takes 50 ms, the abort comes after 1 ms)."""
    async with running_server(("tiny", register_tiny), root=tmp_path, builtin_modules=False) as r:
        args = cli._parser().parse_args(
            ["bench", f"http://127.0.0.1:{r.port}/tiny-slow",
             "--requests", "400", "--connections", "40", "--abort-share", "0.3",
             "--abort-after", "1", "--seed", "11", "--timeout", "5", "--quiet"]
        )  # fmt: skip
        with trio.fail_after(10):
            report = await run(options_from_args(args))
    requests = report["requests"]
    assert requests["sent"] == 400
    assert requests["completed"] + requests["aborted"] + requests["errors"] == 400
    assert requests["errors"] == 0
    assert requests["abort_late"] == 0
    assert requests["aborted"] == requests["abort_planned"]
    assert 0.25 <= requests["aborted"] / requests["sent"] <= 0.35
    assert report["statuses"] == {"200": requests["completed"]}
