"""``--plot FILE``: an SVG of a run, drawn with matplotlib (the optional ``bench`` extra).

Top: latency p50/p90/p99 of the requests completed in each time slice of the run. Bottom:
aborts per second in each slice, with the server's time-to-cancel (p50, p99, max, from the
trioiis status endpoint) written in the legend when the target has one.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

from .runner import Tally

#: Time slices of the run (fewer when there are few completed requests).
SLICES = 40


def matplotlib_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _percentile(ordered: list[float], share: float) -> float:
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def series(tally: Tally, slices: int = SLICES) -> dict[str, list[float]]:
    """Per time slice: its middle (s), latency p50/p90/p99 (ms; NaN if empty), aborts/s."""
    elapsed = max(tally.elapsed, 1e-9)
    slices = max(1, min(slices, len(tally.completions) // 5 or 1))
    width = elapsed / slices
    latencies: list[list[float]] = [[] for _ in range(slices)]
    aborts = [0] * slices
    for at, latency in tally.completions:
        latencies[min(int(at / width), slices - 1)].append(latency * 1000)
    for at in tally.abort_times:
        aborts[min(int(at / width), slices - 1)] += 1
    out: dict[str, list[float]] = {"t": [], "p50": [], "p90": [], "p99": [], "aborts_per_s": []}
    for index in range(slices):
        ordered = sorted(latencies[index])
        out["t"].append((index + 0.5) * width)
        for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
            out[name].append(_percentile(ordered, share) if ordered else math.nan)
        out["aborts_per_s"].append(aborts[index] / width)
    return out


def write_plot(report: dict[str, Any], tally: Tally, path: str) -> None:
    """Write the SVG plot of a run to ``path`` (matplotlib must be importable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "trioiis-bench"}):
        _draw(plt, report, tally, path)


def _draw(plt: Any, report: dict[str, Any], tally: Tally, path: str) -> None:
    data = series(tally)
    options = report["options"]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True)
    figure.suptitle(
        f"trioiis bench {options['url']} — {options['mode']}, {options['connections']} connections",
        fontsize=10,
    )
    for name, style in (("p50", "-"), ("p90", "--"), ("p99", ":")):
        top.plot(data["t"], data[name], style, label=name)
    top.set_ylabel("latency (ms)")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right", fontsize=8)
    top.grid(alpha=0.3)
    width = data["t"][0] * 2 if data["t"] else 1.0
    label = f"aborts/s ({report['requests']['aborted']} aborted, mode {options['abort_mode']})"
    bottom.bar(data["t"], data["aborts_per_s"], width=width * 0.9, color="tab:red", label=label)
    server = report.get("server")
    if server is not None and server["time_to_cancel"]["count"]:
        ttc = server["time_to_cancel"]
        bottom.plot(
            [],
            [],
            " ",
            label=(
                f"server time to cancel: n={ttc['count']}, p50 {ttc['p50_ms']:.2f} ms, "
                f"p99 {ttc['p99_ms']:.2f} ms, max {ttc['max_ms']:.2f} ms"
            ),
        )
    bottom.set_ylabel("aborts per second")
    bottom.set_xlabel("seconds since the start")
    bottom.legend(loc="upper right", fontsize=8)
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="svg")
    plt.close(figure)
