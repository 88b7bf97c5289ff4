"""``trioiis bench compare A.json B.json ...``: runs side by side, as ratios to the first.

Each file is a report written by ``trioiis bench --json``. The table shows each figure of
each run and its ratio to the first run's (throughput, latency percentiles, error share and,
when the runs had ``--server-pid``, the wasted work). ``--plot FILE`` draws those ratios in
one chart (matplotlib only), its legend outside the axes so that it covers no bar.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .plot import matplotlib_available


@dataclass(frozen=True)
class Metric:
    name: str
    read: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool


def _wasted(key: str) -> Callable[[dict[str, Any]], float | None]:
    def read(report: dict[str, Any]) -> float | None:
        figures = report.get("wasted_work")
        return None if figures is None else figures[key]

    return read


def _peak_rss(report: dict[str, Any]) -> float | None:
    figures = report.get("wasted_work")
    return None if figures is None else figures["rss_bytes"]["peak"] / 2**20


def _error_share(report: dict[str, Any]) -> float | None:
    sent = report["requests"]["sent"]
    return report["requests"]["errors"] / sent if sent else None


METRICS = (
    Metric("completed/s", lambda r: r["throughput"]["completed_per_s"], True),
    Metric("latency p50 ms", lambda r: r["latency"]["p50_ms"], False),
    Metric("latency p90 ms", lambda r: r["latency"]["p90_ms"], False),
    Metric("latency p99 ms", lambda r: r["latency"]["p99_ms"], False),
    Metric("latency p99.9 ms", lambda r: r["latency"]["p99_9_ms"], False),
    Metric("error share", _error_share, False),
    Metric("CPU ms / completed", _wasted("cpu_ms_per_completed"), False),
    Metric("CPU ms / abandoned", _wasted("cpu_ms_per_abandoned"), False),
    Metric("peak RSS MiB", _peak_rss, False),
)


def ratio(value: float | None, first: float | None) -> float | None:
    """``value / first``; None when either is missing or ``first`` is 0."""
    if value is None or first is None or first == 0:
        return None
    return value / first


def comparison(reports: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per metric that at least one run has: its values and ratios to the first."""
    rows = []
    for metric in METRICS:
        values = [metric.read(report) for report in reports]
        if all(value is None for value in values):
            continue
        rows.append(
            {
                "metric": metric.name,
                "higher_is_better": metric.higher_is_better,
                "values": values,
                "ratios": [ratio(value, values[0]) for value in values],
            }
        )
    return rows


def _shown(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"


def print_table(labels: Sequence[str], rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ratios to {labels[0]}", title_justify="left")
    table.add_column("figure")
    for label in labels:
        table.add_column(label, justify="right")
    for row in rows:
        cells = [_shown(row["values"][0])]
        for value, share in zip(row["values"][1:], row["ratios"][1:], strict=True):
            cells.append(f"{_shown(value)} ({'n/a' if share is None else f'{share:.2f}x'})")
        table.add_row(row["metric"], *cells)
    Console().print(table)


def draw(labels: Sequence[str], rows: list[dict[str, Any]]) -> Any:
    """The comparison chart (a matplotlib Figure): for each figure that has a ratio, a bar
    per run with its ratio to the first run (log scale, 1 marked); the legend to the right of
    the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in rows if any(r is not None for r in row["ratios"])]
    figure, axes = plt.subplots(figsize=(9, 4.5))
    count = len(labels)
    width = 0.8 / count
    for index, label in enumerate(labels):
        xs = [m + (index - (count - 1) / 2) * width for m in range(len(rows))]
        heights = [row["ratios"][index] for row in rows]
        axes.bar(
            xs,
            [math.nan if h is None else h for h in heights],
            width=width * 0.95,
            label=label,
        )
    axes.set_yscale("log")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(rows)))
    axes.set_xticklabels([row["metric"] for row in rows], rotation=30, ha="right", fontsize=8)
    axes.set_ylabel(f"ratio to {labels[0]} (log)")
    axes.grid(axis="y", alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="run")
    figure.tight_layout()
    return figure


def write_plot(labels: Sequence[str], rows: list[dict[str, Any]], path: str) -> None:
    import matplotlib
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "trioiis-bench"}):
        figure = draw(labels, rows)
        figure.savefig(path, bbox_inches="tight")
        plt.close(figure)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trioiis bench compare", description=__doc__.splitlines()[0]
    )
    parser.add_argument("reports", nargs="+", metavar="REPORT.json")
    parser.add_argument("--plot", metavar="FILE", help="chart of the ratios (needs matplotlib)")
    parser.add_argument("--json", metavar="FILE", help="write the comparison ('-': stdout)")
    return parser


def main(argv: Sequence[str]) -> int:
    """``trioiis bench compare``: 0, or 2 for an unreadable report or a missing matplotlib."""
    args = _parser().parse_args(list(argv))
    if args.plot and not matplotlib_available():
        print(
            "trioiis bench compare: --plot needs matplotlib (pip install 'trioiis[plot]')",
            file=sys.stderr,
        )
        return 2
    reports = []
    for name in args.reports:
        try:
            report = json.loads(Path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"trioiis bench compare: {name}: {exc}", file=sys.stderr)
            return 2
        if not isinstance(report, dict) or not str(report.get("schema", "")).startswith(
            "trioiis-bench/"
        ):
            print(f"trioiis bench compare: {name}: not a trioiis bench report", file=sys.stderr)
            return 2
        reports.append(report)
    labels = [Path(name).stem for name in args.reports]
    rows = comparison(reports)
    if args.json:
        text = json.dumps({"labels": labels, "rows": rows}, indent=2) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            Path(args.json).write_text(text, encoding="utf-8")
    if args.json != "-":
        print_table(labels, rows)
    if args.plot:
        write_plot(labels, rows, args.plot)
    return 0
