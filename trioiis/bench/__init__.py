"""``trioiis bench``: a Trio load generator for benchmarking cancellation.

N connections (Trio tasks, raw sockets, h11 on the client side) send requests to one URL,
closed-loop (each connection sends its next request when the last one ends) or open-loop
(``--rate``: requests scheduled at fixed intervals, latency measured from the scheduled time,
which corrects coordinated omission). A share of the requests is abandoned after a delay —
closed with FIN, reset with RST, or closed in the middle of sending the body. Latencies go
to an HdrHistogram. When the target is a trioiis server with the ``status`` module, its
counters are read before and after the run, so that server-side time-to-cancel and leaks
(in-flight requests, fds, tasks) show.

Only loopback targets are accepted. Every loop is bounded by ``--duration`` or
``--requests`` (and ``--max-seconds``, ``--timeout``).

This package imports ``rich`` and ``hdrhistogram`` only when a run starts
(``trioiis.bench.main.run_cli``), so that ``trioiis serve`` does not pay for them.
"""

from __future__ import annotations

from .options import BenchOptions, OptionError, add_arguments, options_from_args

__all__ = ["BenchOptions", "OptionError", "add_arguments", "options_from_args"]
