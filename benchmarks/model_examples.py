"""Examples per second of the pipeline model test (tests/test_pipeline_model.py), before and
after the in-memory tier, side by side in one run.

Serving alone: the same cases (drawn once, fixed seed, outside the timing) served over a
socket (the test's ``serve_one`` before: ``running_server`` on 127.0.0.1:0 and a raw
request) and in memory (its ``serve_one`` now); each example is one ``trio.run`` with a
fresh server, as in the test. Also timed, to show where an example's time goes: an empty
``trio.run``, and one that only builds the server and compiles its pipeline.

The whole test: hypothesis drawing and serving ``--examples`` examples, with the test's
strategies and ``serve_one`` of revision ``--before`` (read with ``git show``) and of the
working tree.

    .venv/bin/python benchmarks/model_examples.py --cases 300 --examples 200 --rounds 3
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trio
from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import test_pipeline_model as model
from tests.helpers import raw_request, running_server, statuses_in
from trioiis import HandlerMapping, HttpServer, ServerConfig

Serve = Callable[[model.Case, list[tuple[str, str]]], Awaitable[Any]]


async def serve_over_a_socket(case: model.Case, calls: list[tuple[str, str]]) -> bytes:
    """The model test's ``serve_one`` before the in-memory tier."""
    with trio.fail_after(10):
        async with running_server(
            *((spec.name, model.registration(spec, calls)) for spec in case.modules),
            builtin_modules=False,
            handlers=(HandlerMapping("*", case.mapping),),
        ) as srv:
            return await raw_request(
                srv.port, b"GET / HTTP/1.1\r\nHost: model\r\nConnection: close\r\n\r\n"
            )


async def nothing(case: model.Case, calls: list[tuple[str, str]]) -> None:
    """An empty ``trio.run``: the floor of any example."""


async def build_only(case: model.Case, calls: list[tuple[str, str]]) -> None:
    """Build the server and compile its pipeline, serve nothing."""
    server = HttpServer(
        ServerConfig(builtin_modules=False, handlers=(HandlerMapping("*", case.mapping),))
    )
    for spec in case.modules:
        server.register_module(spec.name, model.registration(spec, calls))
    server.pipeline.terminate()


def load_test_module(revision: str) -> types.ModuleType:
    """tests/test_pipeline_model.py as it was at ``revision``."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(
        ["git", "show", f"{revision}:tests/test_pipeline_model.py"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"test_pipeline_model_{revision}")
    sys.modules[module.__name__] = module  # (dataclasses look their module up)
    exec(compile(source, f"{revision}:tests/test_pipeline_model.py", "exec"), module.__dict__)
    return module


def whole_test(
    test_module: Any, check: Callable[[Any], bool], examples: int
) -> tuple[float, float]:
    """Examples per second (wall, CPU) of the model test's body under hypothesis."""
    count = 0

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(test_module.cases())
    def test(case: Any) -> None:
        nonlocal count
        count += 1
        calls: list[tuple[str, str]] = []
        assert check(trio.run(test_module.serve_one, case, calls))
        assert calls == test_module.expected_calls(case)

    started, cpu = time.perf_counter(), time.process_time()
    test()
    return count / (time.perf_counter() - started), count / (time.process_time() - cpu)


def draw_cases(count: int) -> list[model.Case]:
    cases: list[model.Case] = []

    @seed(19)
    @settings(
        max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(model.cases())
    def collect(case: model.Case) -> None:
        cases.append(case)

    collect()
    return cases[-count:]


def run(
    cases: list[model.Case], serve: Serve, check: Callable[[Any], bool] | None
) -> tuple[float, float]:
    """Examples per second of wall time and of this process's CPU time (user + system: on
    a shared machine, closer to what an idle one would do); every served example is
    checked against the model."""
    started, cpu = time.perf_counter(), time.process_time()
    for case in cases:
        calls: list[tuple[str, str]] = []
        result = trio.run(serve, case, calls)
        if check is not None:
            assert check(result), result
            assert calls == model.expected_calls(case)
    return (
        len(cases) / (time.perf_counter() - started),
        len(cases) / (time.process_time() - cpu),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--before", default="827b518", help="the revision before the tier")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # "module ... will not run there" for random mappings
    cases = draw_cases(args.cases)
    ways: list[tuple[str, Serve, Callable[[Any], bool] | None]] = [
        ("socket", serve_over_a_socket, lambda raw: statuses_in(raw) == [200]),
        ("memory", model.serve_one, model.served_ok),
        ("empty trio.run", nothing, None),
        ("build the server only", build_only, None),
    ]
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in ways}
    for _ in range(args.rounds):
        for name, serve, check in ways:
            results[name].append(run(cases, serve, check))
    print(f"{len(cases)} cases, {args.rounds} rounds: examples/s of wall time (of CPU time)")
    for name, rates in results.items():
        print(f"  {name:24}" + "".join(f"  {wall:5.0f} ({cpu:5.0f})" for wall, cpu in rates))
    ratios = [
        (m[0] / s[0], m[1] / s[1])
        for m, s in zip(results["memory"], results["socket"], strict=True)
    ]
    print(f"  {'memory / socket':24}" + "".join(f"  {w:5.2f} ({c:5.2f})" for w, c in ratios))

    before = load_test_module(args.before)
    tests: list[tuple[str, Any, Callable[[Any], bool]]] = [
        (f"test at {args.before}", before, lambda raw: statuses_in(raw) == [200]),
        ("test now", model, model.served_ok),
    ]
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in tests}
    for _ in range(args.rounds):
        for name, test_module, check in tests:
            runs[name].append(whole_test(test_module, check, args.examples))
    print(f"the whole test, {args.examples} examples: examples/s of wall time (of CPU time)")
    for name, rates in runs.items():
        print(f"  {name:24}" + "".join(f"  {wall:5.0f} ({cpu:5.0f})" for wall, cpu in rates))


if __name__ == "__main__":
    main()
