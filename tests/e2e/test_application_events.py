"""GL_APPLICATION_START and GL_APPLICATION_STOP: once each, around every connection, with a
nursery that outlives the connections; a failing start is a one-line ``ConfigError``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

import trioiis
from tests.helpers import running_server
from trioiis import ApplicationProvider, GlobalModule, GlobalNotification, GlobalStatus

BOTH = GlobalNotification.APPLICATION_START | GlobalNotification.APPLICATION_STOP


class Recorder(GlobalModule):
    def __init__(self, name: str, log: list[str], status: GlobalStatus | None = None) -> None:
        self.name = name
        self.log = log
        self.status = status

    async def background(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            self.log.append(f"{self.name}: background cancelled")

    async def on_global_application_start(self, provider: ApplicationProvider) -> GlobalStatus:
        self.log.append(f"{self.name}: start")
        provider.nursery.start_soon(self.background)
        return self.status or GlobalStatus.CONTINUE

    async def on_global_application_stop(self, provider: ApplicationProvider) -> GlobalStatus:
        self.log.append(f"{self.name}: stop")
        return GlobalStatus.CONTINUE


def global_module(module: GlobalModule) -> tuple[str, Any]:
    def register_module(
        version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.set_global_notifications(module, BOTH)

    return getattr(module, "name", "global"), register_module


async def test_application_start_and_stop_wrap_every_connection(site: Path) -> None:
    log: list[str] = []
    first, second = Recorder("first", log), Recorder("second", log)
    modules = global_module(first), global_module(second)
    async with running_server(*modules, root=site) as srv, srv.client() as client:
        log.append(f"request: {(await client.get('/')).status_code}")
    assert log[:5] == [
        "first: start",
        "second: start",
        "request: 200",
        "first: stop",
        "second: stop",
    ]
    # Then the application nursery is cancelled: what the modules left in it ends (the two
    # tasks in any order).
    assert sorted(log[5:]) == ["first: background cancelled", "second: background cancelled"]


async def test_handled_start_stops_the_later_modules(site: Path) -> None:
    log: list[str] = []
    first = Recorder("first", log, GlobalStatus.HANDLED)
    second = Recorder("second", log)
    async with running_server(global_module(first), global_module(second), root=site):
        pass
    assert "second: start" not in log
    assert "first: start" in log


async def test_failing_start_is_a_config_error_and_nothing_is_served() -> None:
    class Broken(GlobalModule):
        async def on_global_application_start(self, provider: ApplicationProvider) -> GlobalStatus:
            raise RuntimeError("no database\nat all")

    server = trioiis.HttpServer(trioiis.ServerConfig(bindings=("127.0.0.1:0",)))
    name, register = global_module(Broken())
    server.register_module(name, register)
    with trio.fail_after(10), pytest.raises(trioiis.ConfigError) as caught:
        await server.serve()
    assert str(caught.value) == "module 'global' failed to start: RuntimeError: no database at all"
