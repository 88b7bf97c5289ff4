"""The event-loop watchdog: a module that blocks the loop is named in a warning, with its
stage and request, while it blocks, and counted. The blocking module waits on a
threading.Event that the warning itself sets, so the test never depends on timing."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

import trioiis
from tests.helpers import raw_request, register, running_server
from trioiis import ConfigError, HttpContext, Notification, ServerConfig, Status


class _Release(logging.Handler):
    def __init__(self, released: threading.Event) -> None:
        super().__init__()
        self.released = released
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.released.set()


async def test_a_blocked_loop_is_reported_with_module_and_stage(site: Path) -> None:
    released = threading.Event()

    class Blocker(trioiis.HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            if ctx.request.path == "/block":
                released.wait(30)  # blocks the event loop until the watchdog speaks
            return Status.CONTINUE

    handler = _Release(released)
    watchdog_log = logging.getLogger("trioiis.watchdog")
    watchdog_log.addHandler(handler)
    try:
        blocker = ("blocker", register(Blocker, Notification.BEGIN_REQUEST))
        async with running_server(blocker, root=site, watchdog_threshold=0.05) as srv:
            raw = await raw_request(
                srv.port, b"GET /block HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            counted = srv.server.counters.event_loop_blocked
    finally:
        watchdog_log.removeHandler(handler)
    assert raw.startswith(b"HTTP/1.1 404 ")  # the request went on once released
    assert released.is_set()
    assert counted == 1
    (message,) = handler.messages
    assert "event loop blocked for" in message
    assert "module 'blocker' in BEGIN_REQUEST of GET /block" in message


@pytest.mark.parametrize("value", [-1, float("nan"), "1"])
def test_threshold_must_be_a_non_negative_number(site: Path, value: Any) -> None:
    with pytest.raises(ConfigError, match="watchdog_threshold must be a non-negative number"):
        ServerConfig(root=site, watchdog_threshold=value)
