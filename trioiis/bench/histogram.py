"""Latency recording: an HdrHistogram of microseconds, 1 µs to one hour, 3 significant digits.

Histograms of several processes merge exactly (``merge``): HdrHistogram adds bucket counts,
so the merged percentiles are those of all the recorded values together, not an average of
per-process percentiles. ``encode`` / ``decode`` carry one across a pipe (HdrHistogram's
compressed, base64 wire format).

Recording is the load generator's hot path, and HdrHistogram's ``record_value`` (pure Python)
costs several microseconds. ``record`` instead rounds the value down to the lowest value of
its HdrHistogram bucket (with 3 significant digits a bucket spans ``2**k`` microseconds for
values of ``11 + k`` bits, and every value below 2048 has its own) and counts it in a dict;
the counts go into the HdrHistogram before anything reads it. A value and its rounded-down
twin fall in the same bucket, so the result is the HdrHistogram that recording each value
would have made, and the dict holds at most one key per bucket (23 552).
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3
#: The percentiles every report shows, by their JSON name.
PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99_9": 99.9}
#: Values (µs) below this have a bucket of their own: ``2 * 10**SIGNIFICANT_DIGITS`` rounded
#: up to a power of two, HdrHistogram's sub-bucket count.
EXACT_BITS = 11
EXACT_BELOW = 1 << EXACT_BITS


class LatencyHistogram:
    """Records durations in seconds; reports percentiles in milliseconds."""

    __slots__ = ("_histogram", "_pending")

    def __init__(self, histogram: Any = None) -> None:
        self._histogram = histogram or HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        #: Bucket's lowest value (µs) -> values recorded since the last flush.
        self._pending: dict[int, int] = {}

    def record(self, seconds: float) -> None:
        micros = int(seconds * 1_000_000)
        if micros >= EXACT_BELOW:
            if micros > HIGHEST_US:
                micros = HIGHEST_US
            shift = micros.bit_length() - EXACT_BITS
            micros = micros >> shift << shift
        elif micros < LOWEST_US:
            micros = LOWEST_US
        pending = self._pending
        pending[micros] = pending.get(micros, 0) + 1

    def _flush(self) -> Any:
        if self._pending:
            record = self._histogram.record_value
            for micros, count in self._pending.items():
                record(micros, count)
            self._pending.clear()
        return self._histogram

    @property
    def count(self) -> int:
        return int(self._flush().get_total_count())

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value recorded in ``other`` to this histogram (exact)."""
        self._flush().add(other._flush())

    def encode(self) -> bytes:
        return bytes(self._flush().encode())

    @classmethod
    def decode(cls, encoded: bytes) -> LatencyHistogram:
        return cls(HdrHistogram.decode(encoded))

    def mean_micros(self) -> float:
        """HdrHistogram's mean (each value taken as the middle of its bucket), computed from
        the non-empty buckets only: HdrHistogram's own ``get_mean_value`` walks every bucket
        up to the largest value, in Python, and takes seconds after a busy run."""
        histogram = self._flush()
        if not histogram.total_count:
            return 0.0
        value_at = histogram.get_value_from_index
        lowest, highest = (
            histogram.get_lowest_equivalent_value,
            histogram.get_highest_equivalent_value,
        )
        total = 0
        for index, count in enumerate(histogram.counts[: histogram.counts_len]):
            if count:
                value = value_at(index)
                low = lowest(value)
                total += count * (low + ((highest(value) - low + 1) >> 1))
        return total / float(histogram.total_count)

    def percentile_ms(self, percentile: float) -> float:
        if not self.count:
            return 0.0
        return float(self._flush().get_value_at_percentile(percentile)) / 1000

    def summary(self) -> dict[str, Any]:
        """``count``, ``mean_ms``, ``p50_ms`` … ``p99_9_ms``, ``max_ms`` (zeros when empty)."""
        figures: dict[str, Any] = {"count": self.count}
        if not self.count:
            figures.update({f"{name}_ms": 0.0 for name in ("mean", *PERCENTILES, "max")})
            return figures
        figures["mean_ms"] = self.mean_micros() / 1000
        for name, percentile in PERCENTILES.items():
            figures[f"{name}_ms"] = self.percentile_ms(percentile)
        figures["max_ms"] = float(self._histogram.get_max_value()) / 1000
        return figures
