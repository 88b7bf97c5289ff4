"""Docs that are generated from, or checked against, the code.

* docs/pipeline.md holds a diagram rendered by docs/gen_pipeline.py from a real server's
  compiled pipeline table; it must be what the script renders now.
* docs/iis-map.md maps every IIS member to a trioiis name: every backquoted name in a
  ``trioiis`` column must resolve to a real attribute (of a class, or of a live instance for
  attributes set in ``__init__``), and every other cell there says "not provided, because".
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import trio

import trioiis
from trioiis import (
    CloneFlags,
    ExecuteFlags,
    GlobalNotification,
    GlobalStatus,
    Notification,
    Priority,
    SendResponseFlags,
    Status,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
MAP = DOCS / "iis-map.md"


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_pipeline", DOCS / "gen_pipeline.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_pipeline_diagram_is_current() -> None:
    gen = _load_generator()
    current = gen.PAGE.read_text(encoding="utf-8")
    assert current == gen.page_with(current, gen.render()), (
        f"docs/pipeline.md is stale; refresh it with: {gen.REFRESH}"
    )


def test_pipeline_diagram_shows_every_stage() -> None:
    text = (DOCS / "pipeline.md").read_text(encoding="utf-8")
    for bit in Notification:
        assert bit.name in text, bit


# ------------------------------------------------------------------ the IIS map


def _map_rows() -> list[tuple[int, str, str]]:
    """(line, IIS cell, trioiis cell) of every row of a table whose 2nd column is trioiis."""
    rows = []
    in_table = False
    for number, line in enumerate(MAP.read_text(encoding="utf-8").splitlines(), 1):
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[1] == "trioiis":
            in_table = True
            continue
        if in_table and not set(line) <= set("|-: "):
            rows.append((number, cells[0], cells[1]))
    return rows


@pytest.fixture(scope="module")
def samples() -> dict[str, Any]:
    """Live objects, for attributes that exist only on instances (set in ``__init__``)."""
    seen: dict[str, Any] = {}

    class Capture(trioiis.HttpModule):
        async def on_begin_request(
            self, ctx: trioiis.HttpContext, provider: trioiis.EventProvider
        ) -> trioiis.Status:
            seen["ctx"] = ctx
            ctx.response.write("captured")
            return Status.FINISH_REQUEST

    def register(
        server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_request_notifications(trioiis.SimpleFactory(Capture), Notification.BEGIN_REQUEST)

    server = trioiis.HttpServer(trioiis.ServerConfig(root=ROOT, bindings=["127.0.0.1:0"]))
    server.register_module("capture", register)

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                [(host, port)] = await nursery.start(server.serve)
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"http://{host}:{port}/")
                assert response.text == "captured"
                await server.shutdown(grace=1.0)

    trio.run(main)
    ctx = seen["ctx"]
    instances: list[object] = [
        ctx,
        ctx.request,
        ctx.response,
        ctx.connection,
        ctx.site,
        server,
        trioiis.ModuleRegistrationInfo("sample"),
        trioiis.EventProvider(),
        trioiis.AuthenticationProvider(),
        trioiis.MapHandlerProvider("*"),
        trioiis.MapPathProvider("/", ROOT),
        trioiis.ReadEntityProvider(b""),
        trioiis.SendResponseProvider(SendResponseFlags(0), True),
        trioiis.CustomNotificationProvider(),
        trioiis.HttpUser("user"),
        trioiis.CompletionInfo(),
        trioiis.OperationAbortedError(),
        trioiis.ServerConfig(),
    ]
    by_class: dict[str, Any] = {type(obj).__name__: obj for obj in instances}
    by_class["ctx"] = ctx
    return by_class


def _attribute(obj: Any, name: str) -> Any:
    """``obj.name`` without running properties (a property of an ended request may raise)."""
    value = inspect.getattr_static(obj, name)
    if isinstance(value, property) or hasattr(value, "__get__"):
        try:
            return getattr(obj, name)
        except trioiis.HResultError:
            return value
    return value


def _resolve(expression: str, samples: dict[str, Any]) -> None:
    """Raise AttributeError unless ``expression`` (``ctx.cancel_io()``,
    ``HttpRequest.read_entity_body``, ``Notification.BEGIN_REQUEST``) names something real."""
    dotted = re.sub(r"\(.*?\)", "", expression).removeprefix("trioiis.")
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", dotted):
        raise AttributeError(f"not a dotted name: {expression!r}")
    first, *rest = dotted.split(".")
    if first in samples:
        obj = samples[first]
    elif hasattr(trioiis, first) and first in trioiis.__all__:
        obj = getattr(trioiis, first)
        # A class: look on a live instance for what __init__ sets, else on the class.
        if isinstance(obj, type) and obj.__name__ in samples and rest:
            try:
                inspect.getattr_static(obj, rest[0])
            except AttributeError:
                obj = samples[obj.__name__]
    else:
        raise AttributeError(f"{first!r} is not public trioiis API")
    for part in rest:
        obj = _attribute(obj, part)


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_iis_map_names_resolve(samples: dict[str, Any]) -> None:
    rows = _map_rows()
    assert len(rows) > 150, "the IIS map tables were not found"
    problems = []
    for line, iis, cell in rows:
        names = _names(cell)
        if not cell.startswith("not provided, because") and not names:
            problems.append(f"iis-map.md:{line}: {iis}: neither a name nor 'not provided, because'")
        for name in names:
            try:
                _resolve(name, samples)
            except AttributeError as exc:
                problems.append(f"iis-map.md:{line}: {iis}: `{name}` does not resolve ({exc})")
    assert not problems, "\n".join(problems)


def test_iis_map_covers_every_constant_and_handler() -> None:
    mapped = {name for _, _, cell in _map_rows() for name in _names(cell)}
    enums = (
        Notification,
        GlobalNotification,
        Status,
        GlobalStatus,
        Priority,
        CloneFlags,
        ExecuteFlags,
        SendResponseFlags,
    )
    missing = [
        f"{enum.__name__}.{member.name}"
        for enum in enums
        for member in enum
        if f"{enum.__name__}.{member.name}" not in mapped
    ]
    handlers = [
        f"HttpModule.{name}"
        for name in vars(trioiis.HttpModule)
        if name.startswith("on_") or name == "dispose"
    ]
    missing += [name for name in handlers if name not in mapped]
    assert not missing, f"docs/iis-map.md does not map: {missing}"


def test_resolver_rejects_what_does_not_exist(samples: dict[str, Any]) -> None:
    for wrong in ("ctx.no_such_method()", "HttpRequest.nope", "Notification.NOPE", "Nope"):
        with pytest.raises(AttributeError):
            _resolve(wrong, samples)


# ------------------------------------------------------------------ operations


def test_operations_defaults_are_the_code_defaults() -> None:
    """Every default in the limits table of operations.md is the one in the code."""
    defaults = {f.name: f.default for f in dataclasses.fields(trioiis.Limits)}
    defaults |= {
        f.name: f.default
        for f in dataclasses.fields(trioiis.ServerConfig)
        if f.default is not dataclasses.MISSING
    }
    text = (DOCS / "operations.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\|\s*`(\w+)`\s*\|\s*`([^`]*)`\s*\|", text, re.M)
    assert len(rows) >= 15
    for name, shown in rows:
        assert name in defaults, f"operations.md names {name!r}, which is no setting"
        assert shown == repr(defaults[name]), (
            f"operations.md: {name} default is `{shown}`, the code says {defaults[name]!r}"
        )
