"""``trioiis bench``: a Trio load generator for benchmarking cancellation, on any server.

Connections (Trio tasks on bare sockets; TLS through Trio's SSLStream) send requests to one
``http://`` or ``https://`` URL over HTTP/1.1 (responses parsed by llhttp through httptools
when installed, h11 otherwise) or HTTP/2 (``--h2``, the h2 library), closed-loop or
open-loop (``--rate``, latency from the scheduled time: coordinated omission corrected).
A share of the requests is abandoned on purpose (FIN, RST, mid-body, or RST_STREAM in
HTTP/2). ``--processes N`` spreads the load over N processes and merges their HdrHistograms
exactly. ``--server-pid`` measures the server's wasted work from /proc; a trioiis target's
status endpoint adds the server's own view (time to cancel, leaks).

Every loop is bounded by ``--duration`` or ``--requests`` (and ``--max-seconds``,
``--timeout``).

This package imports ``rich``, ``hdrhistogram`` and ``h2`` (the ``bench`` extra) only when a
run starts (``trioiis.bench.main.run_cli``), so that ``trioiis serve`` does not pay for them,
and ``trioiis bench`` says in one line which extra is missing.
"""

from __future__ import annotations

import importlib.util

from .options import BenchOptions, OptionError, add_arguments, options_from_args

__all__ = [
    "BenchOptions",
    "OptionError",
    "add_arguments",
    "missing_bench_extra",
    "options_from_args",
]


def missing_bench_extra(*, h2: bool = False) -> str | None:
    """A one-line message naming what ``trioiis bench`` needs and lacks, or None."""
    needed = {"hdrh": "hdrhistogram", "rich": "rich"}
    if h2:
        needed["h2"] = "h2"
    missing = [package for module, package in needed.items() if not _importable(module)]
    if not missing:
        return None
    return f"needs {', '.join(missing)}: pip install 'trioiis[bench]'"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:
        return False
