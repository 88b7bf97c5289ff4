"""``trioiis bench`` units: arguments, targets, exact histograms and their merging, response
parsing, exit statuses, wasted-work arithmetic, the comparison of runs, open-loop latency.

The open-loop test runs the real scheduler and workers under Trio's MockClock with a fake
exchange that always takes 100 ms: latency counts from each request's *scheduled* time, so
a server slower than the rate shows as growing latency (coordinated omission corrected),
while the service time stays 100 ms.
"""

from __future__ import annotations

import argparse
import itertools
import json

import pytest
import trio
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from trioiis import cli
from trioiis.bench import OptionError, compare, options_from_args, processes, wasted
from trioiis.bench.h1client import H11Reader, LlhttpReader, ProtocolFailure
from trioiis.bench.histogram import LatencyHistogram
from trioiis.bench.main import build_report, exit_status
from trioiis.bench.options import AbortDelay, parse_abort_after, parse_target
from trioiis.bench.runner import Bench, Slot, Tally


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


def test_any_address_or_name_and_https() -> None:
    target = parse_target("http://example.test/a?b=1", lambda host, port: ["93.184.216.34"])
    assert (target.address, target.port, target.target, target.tls) == (
        "93.184.216.34", 80, "/a?b=1", False,
    )  # fmt: skip
    target = parse_target("https://example.test:8443/", lambda host, port: ["2001:db8::1"])
    assert (target.address, target.port, target.tls, target.scheme) == (
        "2001:db8::1", 8443, True, "https",
    )  # fmt: skip
    assert target.host_header == "example.test:8443"
    assert parse_target("https://example.test/", loopback).port == 443
    target = parse_target("http://[::1]:81/a", lambda host, port: ["::1"])
    assert (target.address, target.port, target.host_header) == ("::1", 81, "[::1]:81")
    assert target.host == "::1"
    with pytest.raises(OptionError, match="only http:// and https://"):
        parse_target("ftp://127.0.0.1/", loopback)
    with pytest.raises(OptionError, match="cannot resolve"):
        parse_target("http://nowhere.invalid/", lambda host, port: [])


def test_names_resolve_for_real() -> None:
    assert parse_target("http://localhost:1/").address in ("127.0.0.1", "::1")


def test_cli_refuses_with_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["bench", "http://127.0.0.1:8080/", "--abort-mode", "rst-stream"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "rst-stream needs --h2" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--h2", "--abort-mode", "fin"], "with --h2 use rst-stream"),
        (["--streams", "0"], "--streams"),
        (["--processes", "0"], "--processes"),
        (["--processes", "11"], "must not exceed --connections"),
        (["-c", "4", "-p", "3", "-n", "2"], "must not exceed --requests"),
        (["--baseline-share", "1"], "--baseline-share"),
        (["--max-error-share", "2"], "--max-error-share"),
        (["--insecure"], "are for https://"),
        (["--ca-bundle", "/no/such/file.pem"], "no such file"),
        (["--server-pid", "999999999"], "no such process"),
    ],
)
def test_bad_new_values(argv: list[str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        options("http://127.0.0.1/", *argv)


def test_h2_defaults_to_rst_stream_and_counts_streams() -> None:
    opts = options("http://127.0.0.1/", "--h2", "-c", "3", "--streams", "7")
    assert (opts.h2, opts.abort_mode, opts.concurrency) == (True, "rst-stream", 21)
    assert options("http://127.0.0.1/", "-c", "3").concurrency == 3


def test_missing_extra_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import trioiis.bench

    monkeypatch.setattr(trioiis.bench, "_importable", lambda module: module != "hdrh")
    assert trioiis.bench.missing_bench_extra() == (
        "needs hdrhistogram: pip install 'trioiis[bench]'"
    )
    assert cli.main(["bench", "http://127.0.0.1:9/", "-n", "1"]) == 2
    err = capsys.readouterr().err
    assert err == "trioiis bench: needs hdrhistogram: pip install 'trioiis[bench]'\n"
    monkeypatch.setattr(trioiis.bench, "_importable", lambda module: module != "h2")
    assert trioiis.bench.missing_bench_extra() is None
    assert "h2" in (trioiis.bench.missing_bench_extra(h2=True) or "")


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

    async def exchange(self, slot: Slot) -> str | int:
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
    assert report["schema"] == "trioiis-bench/2"
    assert report["requests"]["sent"] == 1000
    assert set(report["latency"]) == {
        "count", "mean_ms", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
    }  # fmt: skip
    assert report["server"] is None


class AbortingBench(FakeBench):
    """Like FakeBench, but a planned abort is abandoned after 10 ms of (mock) time."""

    async def exchange(self, slot: Slot) -> str | int:
        if slot.abort_after is not None:
            await trio.sleep(0.01)
            return "aborted"
        return await super().exchange(slot)


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
    slot = Slot()
    bench.record(slot, 0.0, 200)
    slot.abort_after = 0.01
    bench.record(slot, 0.0, "aborted")
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


# ---------------------------------------------------------------------- exact histograms

MICROS = st.integers(min_value=0, max_value=4_000_000_000)


def direct(values: list[int]) -> HdrHistogram:
    histogram = HdrHistogram(1, 3_600_000_000, 3)
    for micros in values:
        histogram.record_value(min(max(micros, 1), 3_600_000_000))
    return histogram


@given(st.lists(MICROS, max_size=200))
@settings(max_examples=40, deadline=None)
def test_bucketed_recording_is_the_hdrhistogram_of_every_value(values: list[int]) -> None:
    histogram = LatencyHistogram()
    for micros in values:
        histogram.record(micros / 1_000_000 + 1e-10)  # the float of exactly `micros` µs
    expected = direct(values)
    assert histogram.count == expected.get_total_count()
    assert histogram.encode() == expected.encode()
    assert histogram.mean_micros() == pytest.approx(expected.get_mean_value(), rel=1e-12)


@given(st.lists(st.lists(MICROS, max_size=60), min_size=1, max_size=4))
@settings(max_examples=30, deadline=None)
def test_merged_histograms_are_the_histogram_of_all_values(parts: list[list[int]]) -> None:
    merged = LatencyHistogram()
    for part in parts:
        histogram = LatencyHistogram()
        for micros in part:
            histogram.record(micros / 1_000_000 + 1e-10)
        merged.merge(LatencyHistogram.decode(histogram.encode()))  # across a pipe
    everything = direct([micros for part in parts for micros in part])
    assert merged.encode() == everything.encode()
    for percentile in (50, 90, 99, 99.9, 100):
        assert merged.percentile_ms(percentile) == (
            everything.get_value_at_percentile(percentile) / 1000
        )


def test_tallies_cross_a_pipe_and_add_up() -> None:
    first, second = Tally(sent=5, completed=3, aborted=1), Tally(sent=4, completed=4)
    first.errors["reset"] = 1
    second.errors["reset"] = 0
    first.statuses[200], second.statuses[200], second.statuses[503] = 3, 3, 1
    first.latency.record(0.002)
    second.latency.record(0.004)
    first.elapsed, second.elapsed = 1.5, 2.0
    merged = Tally.from_wire(json.loads(json.dumps(first.to_wire())))
    merged.merge(Tally.from_wire(json.loads(json.dumps(second.to_wire()))))
    assert (merged.sent, merged.completed, merged.aborted, merged.error_count) == (9, 7, 1, 1)
    assert merged.statuses == {200: 6, 503: 1}
    assert merged.latency.count == 2
    assert merged.latency.summary()["max_ms"] == pytest.approx(4, rel=0.002)
    assert merged.elapsed == 2.0


@given(
    connections=st.integers(1, 200),
    parts=st.integers(1, 8),
    requests=st.none() | st.integers(1, 10_000),
    rate=st.none() | st.floats(1, 1e5),
)
def test_processes_split_the_load_exactly(
    connections: int, parts: int, requests: int | None, rate: float | None
) -> None:
    argv = ["http://127.0.0.1/", "-c", str(max(connections, parts)), "--seed", "3"]
    if requests is not None:
        argv += ["-n", str(max(requests, parts))]
    if rate is not None:
        argv += ["--rate", str(rate)]
    opts = options(*argv)
    shares = processes.split(opts, parts)
    assert sum(share.connections for share in shares) == opts.connections
    assert all(share.connections >= 1 for share in shares)
    if requests is not None:
        assert sum(share.requests or 0 for share in shares) == opts.requests
    if rate is not None:
        assert sum(share.rate or 0 for share in shares) == pytest.approx(rate)
    assert len({share.seed for share in shares}) == parts
    assert all(share.status_path is None and share.server_pid is None for share in shares)


# ---------------------------------------------------------------------- response parsing

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
    b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n",
    b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
]


@given(st.sampled_from(RESPONSES), st.lists(st.integers(0, 120), max_size=6))
def test_llhttp_and_h11_read_a_response_cut_anywhere_alike(
    response: bytes, cuts: list[int]
) -> None:
    points = sorted({min(cut, len(response)) for cut in cuts} | {0, len(response)})
    chunks = [response[a:b] for a, b in itertools.pairwise(points)]
    outcomes = []
    for reader in (LlhttpReader(), H11Reader()):
        complete = [reader.feed(memoryview(chunk)) for chunk in chunks]
        assert complete[-1]
        assert not any(complete[:-1])
        outcomes.append((reader.finish(), reader.keep_alive))
    status = int(response.split()[1])
    assert outcomes[0] == outcomes[1] == (status, b"close" not in response)


def test_readers_are_reused_for_the_next_response() -> None:
    for reader in (LlhttpReader(), H11Reader()):
        for response in (RESPONSES[0], RESPONSES[1], RESPONSES[0]):
            assert reader.feed(response)
            assert reader.finish() == int(response.split()[1])


def test_readers_refuse_garbage() -> None:
    for reader in (LlhttpReader(), H11Reader()):
        with pytest.raises(ProtocolFailure):
            reader.feed(b"NOT HTTP AT ALL\r\n\r\n")


# ---------------------------------------------------------------------- exit status


def report_with(sent: int, completed: int, aborted: int, errors: int) -> dict:
    return {
        "requests": {"sent": sent, "completed": completed, "aborted": aborted, "errors": errors}
    }


@pytest.mark.parametrize(
    ("counts", "max_share", "status", "why"),
    [
        ((10, 10, 0, 0), None, 0, ""),
        ((10, 0, 0, 10), None, 1, "every request failed"),
        ((10, 0, 3, 7), None, 0, ""),  # abandoning is not failing
        ((0, 0, 0, 0), None, 1, "no request was sent"),
        ((10, 8, 0, 2), 0.1, 1, "more than --max-error-share 0.1"),
        ((10, 9, 0, 1), 0.1, 0, ""),
        ((10, 9, 0, 1), None, 0, ""),
    ],
)
def test_exit_status(counts: tuple[int, ...], max_share: float | None, status: int, why: str):
    got_status, reason = exit_status(report_with(*counts), max_share)
    assert got_status == status
    assert why in reason
    assert bool(reason) == bool(why)


# ---------------------------------------------------------------------- wasted work


def sampler(cpu_before: float, cpu_after: float) -> wasted.Sampler:
    from trioiis.bench.procstat import Usage

    s = wasted.Sampler(pid=1)
    s.before = Usage(cpu_before, 10 << 20, 12, 1)
    s.latest = Usage(cpu_after, 11 << 20, 13, 1)
    s.peak = {"rss_bytes": 20 << 20, "fds": 40}
    return s


def test_wasted_work_arithmetic() -> None:
    # Baseline: 100 completed for 0.5 s of CPU -> 5 ms each. Measured: 70 completed and 30
    # abandoned for 0.65 s: 0.35 s for the completed ones, 0.3 s / 30 = 10 ms per abandoned.
    figures = wasted.figures(
        sampler(1.0, 2.0),
        wasted.Phase(0.5, 100, 0, True),
        wasted.Phase(0.65, 70, 30, True),
    )
    assert figures["cpu_ms_per_completed"] == pytest.approx(5.0)
    assert figures["cpu_ms_per_abandoned"] == pytest.approx(10.0)
    assert figures["rss_bytes"] == {"before": 10 << 20, "peak": 20 << 20, "after": 11 << 20}
    assert figures["fds"] == {"before": 12, "peak": 40, "after": 13}
    # Without aborts there is no baseline: all the CPU goes to the completed requests.
    alone = wasted.figures(sampler(0, 1), None, wasted.Phase(0.2, 100, 0, True))
    assert alone["cpu_ms_per_completed"] == pytest.approx(2.0)
    assert alone["cpu_ms_per_abandoned"] is None


def test_phases_split_the_run() -> None:
    from trioiis.bench.main import _phases

    opts = options("http://127.0.0.1/", "-n", "1000", "--abort-share", "0.3", "--server-pid", "1")
    baseline, measured = _phases(opts)
    assert baseline is not None
    assert (baseline.requests, baseline.abort_share) == (200, 0.0)
    assert (measured.requests, measured.abort_share) == (800, 0.3)
    timed = options("http://127.0.0.1/", "-d", "10", "--abort-share", "0.3", "--server-pid", "1")
    baseline, measured = _phases(timed)
    assert baseline is not None
    assert (baseline.duration, measured.duration) == (pytest.approx(2), pytest.approx(8))
    assert _phases(options("http://127.0.0.1/", "-n", "9", "--server-pid", "1"))[0] is None


def test_procstat_sees_this_process_tree() -> None:
    import os
    import subprocess
    import sys

    from trioiis.bench import procstat

    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    try:
        assert child.pid in procstat.tree(os.getpid())
        usage = procstat.sample(os.getpid())
        assert usage is not None
        assert usage.processes >= 2
        assert usage.rss_bytes > 0
        assert usage.fds >= 3
    finally:
        child.communicate(b"")
    assert procstat.sample(child.pid) is None


# ---------------------------------------------------------------------- compare


def run_report(rate: float, p50: float, per_abandoned: float | None) -> dict:
    return {
        "schema": "trioiis-bench/2",
        "requests": {"sent": 100, "completed": 90, "aborted": 10, "errors": 0},
        "throughput": {"completed_per_s": rate},
        "latency": {"p50_ms": p50, "p90_ms": 2 * p50, "p99_ms": 3 * p50, "p99_9_ms": 4 * p50},
        "wasted_work": None
        if per_abandoned is None
        else {
            "cpu_ms_per_completed": 1.0,
            "cpu_ms_per_abandoned": per_abandoned,
            "rss_bytes": {"before": 0, "peak": 2**20, "after": 0},
        },
    }


def test_compare_ratios() -> None:
    rows = {row["metric"]: row for row in compare.comparison(
        [run_report(1000, 2.0, 0.5), run_report(500, 4.0, 2.0), run_report(2000, 1.0, None)]
    )}  # fmt: skip
    assert rows["completed/s"]["ratios"] == [1.0, 0.5, 2.0]
    assert rows["latency p50 ms"]["ratios"] == [1.0, 2.0, 0.5]
    assert rows["CPU ms / abandoned"]["ratios"] == [1.0, 4.0, None]
    assert rows["error share"]["ratios"] == [None, None, None]  # 0 is no base for a ratio


def test_compare_plot_legend_covers_no_data(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    labels = ["trioiis", "hypercorn", "uvicorn"]
    rows = compare.comparison(
        [run_report(1000, 2.0, 0.5), run_report(500, 4.0, 2.0), run_report(2000, 1.0, 1.0)]
    )
    figure = compare.draw(labels, rows)
    figure.canvas.draw()
    axes = figure.axes[0]
    legend = axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == labels
    assert not legend.get_window_extent().overlaps(axes.get_window_extent())
    out = tmp_path / "compare.svg"
    compare.write_plot(labels, rows, str(out))
    assert "<svg" in out.read_text()


def test_compare_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(run_report(1000, 2.0, 0.5)))
    b.write_text(json.dumps(run_report(1500, 1.0, 0.25)))
    assert cli.main(["bench", "compare", str(a), str(b), "--json", "-"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["labels"] == ["a", "b"]
    assert result["rows"][0]["ratios"] == [1.0, 1.5]
    (tmp_path / "bad.json").write_text("{}")
    assert cli.main(["bench", "compare", str(a), str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
