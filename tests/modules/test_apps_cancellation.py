"""The asgi and wsgi modules under ``trioiis.testing.check_cancellation_safety``: cancelled
at every checkpoint by a client disconnect, ``cancel_io()`` and shutdown, nothing of the
request is left (tasks, pending I/O, module instances) and the client sees a complete
response or a closed connection."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import pytest

import trioiis
from trioiis._context.mapping import HandlerMapping
from trioiis._pipeline.registration import RegisterModule
from trioiis.config import load_register_function
from trioiis.modules import BUILTIN_MODULES
from trioiis.testing import check_cancellation_safety

SAMPLES = "tests.e2e.app_samples"


def with_options(kind: str, options: Mapping[str, object]) -> RegisterModule:
    """The built-in module's ``register_module``, given ``options`` (the harness loads
    modules without options)."""
    register = load_register_function(BUILTIN_MODULES[kind])

    def register_module(
        version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        info.options = MappingProxyType(dict(options))
        register(version, info, server)

    return register_module


@pytest.mark.parametrize(
    ("request_bytes", "status", "body"),
    [
        (b"POST /c/body-size HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200, b"5"),
        (b"GET /c/headers HTTP/1.1\r\nHost: x\r\n\r\n", 201, b"hello"),
    ],
)
def test_asgi_module_is_cancellation_safe(request_bytes: bytes, status: int, body: bytes) -> None:
    options = {"app": f"{SAMPLES}:conformance", "root_path": "/c", "disconnect_grace": 0}
    outcome = check_cancellation_safety(
        ("asgi", with_options("asgi", options)),
        request_bytes,
        config={"handlers": (HandlerMapping("/c/*", ("asgi",)),)},
    )
    assert (outcome.status, outcome.body) == (status, body)


def test_wsgi_module_is_cancellation_safe() -> None:
    """The worker thread of a cancelled request is abandoned; the harness checks that no
    task of the request is left behind (the thread ends on its own)."""
    options = {"app": f"{SAMPLES}:flask_app", "root_path": "/shop"}
    outcome = check_cancellation_safety(
        ("wsgi", with_options("wsgi", options)),
        b"POST /shop/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        config={"handlers": (HandlerMapping("/shop/*", ("wsgi",)),)},
    )
    assert (outcome.status, outcome.body) == (200, b"HELLO")
