"""``trioiis bench`` units: arguments, the loopback check, histograms, open-loop latency.

The open-loop test runs the real scheduler and workers under Trio's MockClock with a fake
exchange that always takes 100 ms: latency counts from each request's *scheduled* time, so
a server slower than the rate shows as growing latency (coordinated omission corrected),
while the service time stays 100 ms.
"""

from __future__ import annotations

import argparse
import json

import pytest
import trio

from trioiis import cli
from trioiis.bench import OptionError, options_from_args
from trioiis.bench.histogram import LatencyHistogram
from trioiis.bench.main import build_report
from trioiis.bench.options import AbortDelay, is_loopback, parse_abort_after, parse_target
from trioiis.bench.runner import Bench, Plan


def loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


def parse(*argv: str) -> argparse.Namespace:
    return cli._parser().parse_args(["bench", *argv])


def options(*argv: str):
    return options_from_args(parse(*argv), resolve=loopback)


def test_defaults() -> None:
    opts = options("http://localhost:8080/x?y=1")
    assert opts.connections == 10
    assert opts.duration == 10.0
    assert opts.requests is None
    assert not opts.open_loop
    assert opts.method == "GET"
    assert opts.keep_alive
    assert opts.abort_mode == "fin"
    assert opts.target.target == "/x?y=1"
    assert opts.target.host_header == "localhost:8080"
    assert opts.target.address == "127.0.0.1"


def test_every_option() -> None:
    opts = options(
        "http://127.0.0.1:1/",
        "--connections", "3", "--requests", "50", "--rate", "200", "--method", "post",
        "--body-size", "10", "--abort-share", "0.25", "--abort-after", "exp:20",
        "--abort-mode", "mid-body", "--no-keep-alive", "--json", "out.json", "--quiet",
        "--seed", "7",
    )  # fmt: skip
    assert (opts.connections, opts.requests, opts.duration, opts.rate) == (3, 50, None, 200.0)
    assert (opts.method, opts.body_size, opts.abort_share) == ("POST", 10, 0.25)
    assert opts.abort_after == AbortDelay("exp", 0.02)
    assert (opts.abort_mode, opts.keep_alive, opts.json_file, opts.quiet) == (
        "mid-body", False, "out.json", True,
    )  # fmt: skip
    assert opts.open_loop


def test_duration_and_requests_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("http://127.0.0.1/", "--duration", "1", "--requests", "5")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--connections", "0"], "--connections"),
        (["--requests", "0"], "--requests"),
        (["--abort-share", "1.5"], "--abort-share"),
        (["--rate", "0"], "--rate"),
        (["--abort-mode", "mid-body"], "mid-body"),
        (["--abort-after", "soon"], "--abort-after"),
        (["--abort-after", "uniform:5:1"], "MAX"),
        (["--method", "GE T"], "--method"),
    ],
)
def test_bad_values(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        options("http://127.0.0.1/", *argv)


def test_abort_after_forms() -> None:
    assert parse_abort_after("12.5") == AbortDelay("fixed", 0.0125)
    assert parse_abort_after("uniform:1:3") == AbortDelay("uniform", 0.001, 0.003)
    assert parse_abort_after("exp:4") == AbortDelay("exp", 0.004)
    rng = __import__("random").Random(1)
    samples = [parse_abort_after("uniform:1:3").sample(rng) for _ in range(100)]
    assert all(0.001 <= s <= 0.003 for s in samples)


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.1", False),
        ("not an address", False),
    ],
)
def test_is_loopback(address: str, expected: bool) -> None:
    assert is_loopback(address) is expected


def test_refuses_non_loopback_targets() -> None:
    with pytest.raises(OptionError, match="not a loopback address"):
        parse_target("http://example.test/", lambda host, port: ["93.184.216.34"])
    with pytest.raises(OptionError, match="not a loopback address"):  # any one is enough
        parse_target("http://both.test/", lambda host, port: ["127.0.0.1", "10.1.1.1"])
    with pytest.raises(OptionError, match="only http://"):
        parse_target("https://127.0.0.1/", loopback)
    target = parse_target("http://[::1]:81/a", lambda host, port: ["::1"])
    assert (target.address, target.port, target.host_header) == ("::1", 81, "[::1]:81")


def test_cli_refuses_with_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "http://10.1.2.3:8080/", "--requests", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "not a loopback address" in err


def test_histogram_percentiles() -> None:
    histogram = LatencyHistogram()
    assert histogram.summary()["p99_ms"] == 0.0
    for ms in range(1, 1001):
        histogram.record(ms / 1000)
    figures = histogram.summary()
    assert figures["count"] == 1000
    assert figures["p50_ms"] == pytest.approx(500, rel=0.002)
    assert figures["p90_ms"] == pytest.approx(900, rel=0.002)
    assert figures["p99_ms"] == pytest.approx(990, rel=0.002)
    assert figures["p99_9_ms"] == pytest.approx(999, rel=0.002)
    assert figures["max_ms"] == pytest.approx(1000, rel=0.002)
    assert figures["mean_ms"] == pytest.approx(500.5, rel=0.002)


class FakeBench(Bench):
    """Every request takes exactly ``service`` seconds of (mock) time."""

    service_time = 0.1

    async def exchange(self, connection, plan: Plan) -> str | int:
        await trio.sleep(self.service_time)
        return 200


async def test_open_loop_latency_counts_from_the_schedule(autojump_clock: trio.abc.Clock) -> None:
    # 100 requests/s on one connection that can only do 10/s: request i is due at i*10 ms
    # and ends at (i+1)*100 ms, so its latency is 100 + 90*i ms.
    opts = options("http://127.0.0.1/", "--rate", "100", "--requests", "10", "-c", "1", "-q")
    tally = await FakeBench(opts).run()
    assert (tally.sent, tally.completed) == (10, 10)
    assert tally.latency.summary()["max_ms"] == pytest.approx(100 + 90 * 9, rel=0.002)
    assert tally.latency.percentile_ms(50) == pytest.approx(100 + 90 * 4, rel=0.002)
    service = tally.service.summary()
    assert service["p50_ms"] == service["max_ms"] == pytest.approx(100, rel=0.002)


async def test_closed_loop_latency_is_service_time(autojump_clock: trio.abc.Clock) -> None:
    opts = options("http://127.0.0.1/", "--requests", "10", "-c", "2", "-q")
    tally = await FakeBench(opts).run()
    assert (tally.sent, tally.completed, tally.cut_off) == (10, 10, 0)
    assert tally.latency.summary()["max_ms"] == pytest.approx(100, rel=0.002)
    assert tally.elapsed == pytest.approx(0.5)


async def test_open_loop_duration_leaves_a_backlog(autojump_clock: trio.abc.Clock) -> None:
    # 1 s at 100/s on one 10/s connection: about 10 done (the 11th starts at 0.99999… s
    # and is let finish), the rest of the 100 due but never started.
    opts = options("http://127.0.0.1/", "--rate", "100", "--duration", "1", "-c", "1", "-q")
    tally = await FakeBench(opts).run()
    assert tally.completed in (10, 11)
    assert tally.sent + tally.backlog == 100
    assert tally.sent == tally.completed + tally.aborted + tally.error_count + tally.cut_off


async def test_abort_share_and_report(autojump_clock: trio.abc.Clock) -> None:
    opts = options(
        "http://127.0.0.1/", "--requests", "1000", "-c", "4", "--abort-share", "0.3",
        "--seed", "1", "-q",
    )  # fmt: skip
    bench = FakeBench(opts)
    tally = await bench.run()
    assert 0.25 <= tally.abort_planned / 1000 <= 0.35
    report = build_report(opts, tally, None, None)
    json.dumps(report)  # JSON-ready
    assert report["schema"] == "trioiis-bench/1"
    assert report["requests"]["sent"] == 1000
    assert set(report["latency"]) == {
        "count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
    }  # fmt: skip
    assert report["server"] is None


class AbortingBench(FakeBench):
    """Like FakeBench, but a planned abort is abandoned after 10 ms of (mock) time."""

    async def exchange(self, connection, plan: Plan) -> str | int:
        if plan.abort_after is not None:
            await trio.sleep(0.01)
            return "aborted"
        return await super().exchange(connection, plan)


async def test_plot_writes_an_svg(autojump_clock: trio.abc.Clock, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from trioiis.bench import plot

    out = tmp_path / "run.svg"
    opts = options(
        "http://127.0.0.1/", "--requests", "200", "-c", "4", "--abort-share", "0.3",
        "--seed", "2", "-q", "--plot", str(out),
    )  # fmt: skip
    tally = await AbortingBench(opts).run()
    assert len(tally.completions) == tally.completed > 0
    assert len(tally.abort_times) == tally.aborted > 0
    data = plot.series(tally)
    assert len(data["t"]) == len(data["p50"]) == len(data["aborts_per_s"])
    assert sum(data["aborts_per_s"]) * tally.elapsed / len(data["t"]) == pytest.approx(
        tally.aborted
    )
    report = build_report(opts, tally, None, None)
    report["server"] = {"time_to_cancel": {"count": 3, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0}}
    plot.write_plot(report, tally, str(out))
    text = out.read_text()
    assert text.lstrip().startswith("<?xml")
    assert "<svg" in text


def test_without_plotting_the_timeline_is_not_kept() -> None:
    bench = Bench(options("http://127.0.0.1/", "--requests", "1", "-q"), clock=lambda: 0.0)
    bench.record(Plan(0, 0.0), 0.0, 200)
    bench.record(Plan(1, 0.0, 0.01), 0.0, "aborted")
    assert bench.tally.completions == bench.tally.abort_times == []


def test_plot_without_matplotlib_is_one_line_and_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    from trioiis.bench import plot

    monkeypatch.setattr(plot, "matplotlib_available", lambda: False)
    argv = ["bench", "http://127.0.0.1:9/", "--requests", "1", "--plot", str(tmp_path / "p.svg")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "matplotlib" in err
    assert not (tmp_path / "p.svg").exists()
