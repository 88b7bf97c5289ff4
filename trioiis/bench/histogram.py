"""Latency recording: an HdrHistogram of microseconds, 1 µs to one hour, 3 significant digits."""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
#: The percentiles every report shows, by their JSON name.
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}


class LatencyHistogram:
    """Records durations in seconds; reports percentiles in milliseconds."""

    def __init__(self) -> None:
        self._histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    def record(self, seconds: float) -> None:
        micros = round(seconds * 1_000_000)
        self._histogram.record_value(min(max(micros, LOWEST_US), HIGHEST_US))

    @property
    def count(self) -> int:
        return int(self._histogram.get_total_count())

    def percentile_ms(self, percentile: float) -> float:
        if not self.count:
            return 0.0
        return float(self._histogram.get_value_at_percentile(percentile)) / 1000

    def summary(self) -> dict[str, Any]:
        """``count``, ``mean_ms``, ``p50_ms`` … ``p99_9_ms``, ``max_ms`` (zeros when empty)."""
        figures: dict[str, Any] = {"count": self.count}
        if not self.count:
            figures.update({f"{name}_ms": 0.0 for name in ("mean", *PERCENTILES, "max")})
            return figures
        figures["mean_ms"] = float(self._histogram.get_mean_value()) / 1000
        for name, percentile in PERCENTILES.items():
            figures[f"{name}_ms"] = self.percentile_ms(percentile)
        figures["max_ms"] = float(self._histogram.get_max_value()) / 1000
        return figures
