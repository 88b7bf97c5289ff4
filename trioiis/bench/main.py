"""``trioiis bench``'s run: the status before, the load, the status after, the report."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from . import plot, wasted
from .h1client import parser_name
from .options import BenchOptions, OptionError, options_from_args
from .processes import run_processes
from .runner import Bench, Tally, fetch_status, settled_status

SCHEMA = "trioiis-bench/2"
PROGRESS_INTERVAL = 0.25
#: Status figures reported as (before, after) pairs, so that leaks show.
GAUGES = ("requests_in_flight", "connections_open", "open_fds", "trio_tasks")
#: Status counters reported as the run's increase.
COUNTERS = (
    "requests",
    "cancelled_by_client",
    "requests_timed_out",
    "cancel_io_calls",
    "io_cancelled",
    "child_requests",
)


def run_cli(args: argparse.Namespace) -> int:
    """``trioiis bench`` from parsed arguments: 0 when it ran, 1 when every request failed or
    the error share passed ``--max-error-share``, 2 for a bad option or target."""
    try:
        options = options_from_args(args)
    except OptionError as exc:
        print(f"trioiis bench: {exc}", file=sys.stderr)
        return 2
    if options.plot_file and not plot.matplotlib_available():
        print(
            "trioiis bench: --plot needs matplotlib (pip install 'trioiis[plot]')",
            file=sys.stderr,
        )
        return 2
    report, tally = trio.run(run_with_tally, options)
    if not options.quiet:
        print_report(report, Console())
    if options.json_file:
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
        if options.json_file == "-":
            sys.stdout.write(text)
        else:
            Path(options.json_file).write_text(text, encoding="utf-8")
    if options.plot_file:
        plot.write_plot(report, tally, options.plot_file)
    status, reason = exit_status(report, options.max_error_share)
    if reason:
        print(f"trioiis bench: {reason}", file=sys.stderr)
    return status


def exit_status(report: dict[str, Any], max_error_share: float | None) -> tuple[int, str]:
    """1 and why when no request was sent, every request failed, or more than
    ``max_error_share`` of them did; else 0 and ``""``. (Abandoned requests are not failures.)"""
    requests = report["requests"]
    sent, errors = requests["sent"], requests["errors"]
    if not sent:
        return 1, "no request was sent"
    if errors and not requests["completed"] and not requests["aborted"]:
        return 1, f"every request failed ({errors} errors)"
    if max_error_share is not None and errors / sent > max_error_share:
        return 1, (
            f"{errors} of {sent} requests failed ({errors / sent:.1%}), "
            f"more than --max-error-share {max_error_share:g}"
        )
    return 0, ""


async def run(options: BenchOptions, *, console: Console | None = None) -> dict[str, Any]:
    """One whole run; returns the report (what ``--json`` writes).

    Cancellation: cancelling it closes every connection of the run (the server sees them as
    client disconnects) and raises; no partial report is returned."""
    report, _ = await run_with_tally(options, console=console)
    return report


def _phases(options: BenchOptions) -> tuple[BenchOptions | None, BenchOptions]:
    """The baseline phase (no aborts) and the measured one, when ``--server-pid`` measures
    wasted work; else no baseline and the whole run."""
    if options.server_pid is None or not options.abort_share or not options.baseline_share:
        return None, options
    share = options.baseline_share
    if options.requests is not None:
        first = max(options.processes, round(options.requests * share))
        if first >= options.requests:
            return None, options
        return (
            dataclasses.replace(options, requests=first, abort_share=0.0),
            dataclasses.replace(options, requests=options.requests - first),
        )
    assert options.duration is not None
    return (
        dataclasses.replace(options, duration=options.duration * share, abort_share=0.0),
        dataclasses.replace(options, duration=options.duration * (1 - share)),
    )


async def run_with_tally(
    options: BenchOptions, *, console: Console | None = None
) -> tuple[dict[str, Any], Tally]:
    """One whole run; returns the report and the client-side tally (for ``--plot``).

    Cancellation: as ``run``."""
    before = await fetch_status(options)
    console = None if options.quiet else console or Console(stderr=True)
    if options.server_pid is None:
        tally = await _run_phase(options, console)
        wasted_work = None
    else:
        tally, wasted_work = await _run_sampled(options, console)
    after = None
    note = None
    processes = 1 if before is None else int(before.get("processes", 1))
    if processes > 1:
        # Each fetch reaches whichever worker accepts it, and each worker counts only its
        # own share: a difference of two answers is no figure of the server's.
        note = (
            f"the status endpoint answers from one of {processes} worker processes, each "
            "with its own counters: no server figures"
        )
        before = None
    if before is not None:
        after = await settled_status(options, before, tally.aborted)
    report = build_report(options, tally, before, after, wasted_work)
    report["server_note"] = note
    return report, tally


async def _run_sampled(
    options: BenchOptions, console: Console | None
) -> tuple[Tally, dict[str, Any]]:
    assert options.server_pid is not None
    sampler = wasted.Sampler(options.server_pid)
    baseline_options, measured_options = _phases(options)
    async with trio.open_nursery() as nursery:
        await sampler.settle(options.settle)
        nursery.start_soon(sampler.run)
        baseline = None
        tally = Tally()
        if baseline_options is not None:
            start = sampler.cpu_s()
            first = await _run_phase(baseline_options, console)
            settled = await sampler.settle(options.settle)
            baseline = wasted.Phase(
                sampler.cpu_s() - start, first.completed, first.aborted, settled
            )
            tally.merge(first)
        start = sampler.cpu_s()
        second = await _run_phase(measured_options, console)
        settled = await sampler.settle(options.settle)
        measured = wasted.Phase(sampler.cpu_s() - start, second.completed, second.aborted, settled)
        nursery.cancel_scope.cancel()
    if baseline_options is None:
        tally = second
    else:
        elapsed = tally.elapsed + second.elapsed
        tally.merge(second)
        tally.elapsed = elapsed
    return tally, wasted.figures(sampler, baseline, measured)


async def _run_phase(options: BenchOptions, console: Console | None) -> Tally:
    if options.processes > 1:
        return await run_processes(options)
    bench = Bench(options)
    if console is None:
        return await bench.run()
    return await _with_progress(bench, console)


async def _with_progress(bench: Bench, console: Console) -> Tally:
    with Live(console=console, auto_refresh=False, transient=True) as live:
        async with trio.open_nursery() as nursery:

            async def show() -> None:
                last_time, last_done = bench.clock(), 0
                while True:
                    await trio.sleep(PROGRESS_INTERVAL)
                    now = bench.clock()
                    tally = bench.tally
                    done = tally.completed + tally.aborted + tally.error_count
                    rate = (done - last_done) / max(now - last_time, 1e-9)
                    last_time, last_done = now, done
                    live.update(Text(progress_line(bench, now, rate)), refresh=True)

            nursery.start_soon(show)
            tally = await bench.run()
            nursery.cancel_scope.cancel()
    return tally


def progress_line(bench: Bench, now: float, rate: float) -> str:
    options, tally = bench.options, bench.tally
    elapsed = now - bench.start
    if options.requests is not None:
        done = tally.completed + tally.aborted + tally.error_count
        where = f"{done}/{options.requests} requests"
    else:
        where = f"{min(elapsed, options.duration or 0):.1f}/{options.duration:g} s"
    return (
        f"{where}  {rate:,.0f} req/s  completed {tally.completed}  "
        f"aborted {tally.aborted}  errors {tally.error_count}"
    )


def build_report(
    options: BenchOptions,
    tally: Tally,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    wasted_work: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Every figure of a run, JSON-ready (the schema is documented in docs/bench.md)."""
    elapsed = max(tally.elapsed, 1e-9)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "options": {
            "url": options.target.url,
            "address": options.target.address,
            "protocol": "h2" if options.h2 else "http/1.1",
            "parser": "h2" if options.h2 else parser_name(options),
            "tls": options.target.tls,
            "connections": options.connections,
            "streams": options.streams if options.h2 else 1,
            "processes": options.processes,
            "duration_s": options.duration,
            "requests": options.requests,
            "rate": options.rate,
            "mode": "open-loop" if options.open_loop else "closed-loop",
            "method": options.method,
            "body_size": options.body_size,
            "abort_share": options.abort_share,
            "abort_after": options.abort_after.describe(),
            "abort_mode": options.abort_mode,
            "keep_alive": options.keep_alive,
            "timeout_s": options.timeout,
            "seed": options.seed,
            "server_pid": options.server_pid,
            "baseline_share": options.baseline_share if options.server_pid else None,
        },
        "elapsed_s": tally.elapsed,
        "hit_max_seconds": tally.hit_max_seconds,
        "requests": {
            "sent": tally.sent,
            "completed": tally.completed,
            "aborted": tally.aborted,
            "errors": tally.error_count,
            "cut_off": tally.cut_off,
            "backlog": tally.backlog,
            "abort_planned": tally.abort_planned,
            "abort_late": tally.abort_late,
        },
        "errors": dict(sorted(tally.errors.items())),
        "statuses": {str(code): n for code, n in sorted(tally.statuses.items())},
        "throughput": {
            "completed_per_s": tally.completed / elapsed,
            "sent_per_s": tally.sent / elapsed,
            "bytes_received": tally.bytes_received,
            "connections_opened": tally.connections_opened,
        },
        "latency": tally.latency.summary(),
        "service_time": tally.service.summary(),
        "server": None,
        "wasted_work": wasted_work,
    }
    if before is not None and after is not None:
        report["server"] = {
            "counters": {name: after[name] - before[name] for name in COUNTERS},
            "time_to_cancel": after["time_to_cancel"],
            "before": {name: before[name] for name in GAUGES},
            "after": {name: after[name] for name in GAUGES},
        }
    return report


def _ms(value: float) -> str:
    return f"{value:,.3f}"


def print_report(report: dict[str, Any], console: Console) -> None:
    options, requests = report["options"], report["requests"]
    streams = f" x {options['streams']} streams" if options["protocol"] == "h2" else ""
    processes = f", {options['processes']} processes" if options["processes"] > 1 else ""
    console.print(
        f"[bold]trioiis bench[/] {options['url']}  {options['protocol']}, {options['mode']}, "
        f"{options['connections']} connections{streams}{processes}, {report['elapsed_s']:.2f} s"
    )
    counts = Table(title="requests", title_justify="left")
    for name in ("sent", "completed", "aborted", "errors", "cut_off", "backlog"):
        counts.add_column(name.replace("_", " "), justify="right")
    counts.add_row(
        *(
            str(requests[n])
            for n in ("sent", "completed", "aborted", "errors", "cut_off", "backlog")
        )
    )
    console.print(counts)
    if report["errors"]:
        console.print("errors: " + ", ".join(f"{k} {v}" for k, v in report["errors"].items()))
    console.print(
        "statuses: " + (", ".join(f"{k}: {v}" for k, v in report["statuses"].items()) or "none")
    )
    throughput = report["throughput"]
    console.print(
        f"throughput: {throughput['completed_per_s']:,.1f} completed/s, "
        f"{throughput['sent_per_s']:,.1f} sent/s, "
        f"{throughput['connections_opened']} connections opened"
    )
    latency = Table(title="latency (ms)", title_justify="left")
    latency.add_column("")
    for name in ("count", "mean", "p50", "p90", "p99", "p99.9", "max"):
        latency.add_column(name, justify="right")
    for label, key in (("latency", "latency"), ("service time", "service_time")):
        figures = report[key]
        latency.add_row(
            label,
            str(figures["count"]),
            *(_ms(figures[f"{n}_ms"]) for n in ("mean", "p50", "p90", "p99", "p99_9", "max")),
        )
    console.print(latency)
    if report["wasted_work"] is not None:
        print_wasted_work(report["wasted_work"], console)
    server = report["server"]
    if server is None:
        note = report.get("server_note") or (
            "no trioiis status endpoint (load the 'status' module to see it)"
        )
        console.print(f"server: {note}")
        return
    table = Table(title="server (trioiis status)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in server["counters"].items():
        table.add_row(name.replace("_", " "), f"+{value}")
    ttc = server["time_to_cancel"]
    table.add_row(
        "time to cancel (ms)",
        f"n={ttc['count']} p50 {_ms(ttc['p50_ms'])} p99 {_ms(ttc['p99_ms'])} "
        f"max {_ms(ttc['max_ms'])}",
    )
    for name in GAUGES:
        table.add_row(
            name.replace("_", " ") + " (before → after)",
            f"{server['before'][name]} → {server['after'][name]}",
        )
    console.print(table)


def _cpu(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.3f}"


def print_wasted_work(figures: dict[str, Any], console: Console) -> None:
    """The ``--server-pid`` table: CPU per request, memory and descriptors."""
    table = Table(title=f"server process tree {figures['pid']} (/proc)", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("CPU ms per completed request", _cpu(figures["cpu_ms_per_completed"]))
    table.add_row("CPU ms per abandoned request", _cpu(figures["cpu_ms_per_abandoned"]))
    for name in ("baseline", "measured"):
        phase = figures[name]
        if phase is not None:
            table.add_row(
                f"{name} phase",
                f"{phase['cpu_ms']:,.0f} CPU ms, {phase['completed']} completed, "
                f"{phase['aborted']} aborted" + ("" if phase["settled"] else ", not settled"),
            )
    rss = figures["rss_bytes"]
    table.add_row(
        "RSS MiB (before / peak / after)",
        " / ".join(f"{rss[k] / 2**20:,.1f}" for k in ("before", "peak", "after")),
    )
    fds = figures["fds"]
    table.add_row(
        "open fds (before / peak / after)",
        " / ".join(str(fds[k]) for k in ("before", "peak", "after")),
    )
    console.print(table)
