"""``trioiis.testing``: prove a module is cancellation-safe (also a pytest plugin).

* ``check_cancellation_safety(module, request, invariants=...)`` cancels the request at every
  checkpoint it reaches, three ways (client disconnect, ``cancel_io()``, server shutdown),
  and checks that nothing leaks: tasks (system tasks too), threads, file descriptors, a
  swallowed ``trio.Cancelled``, pending I/O, undisposed modules, a missing log entry.
* ``MemoryServer``: the server over in-memory streams, for fast tests without sockets.
* ``MemoryTransport``: one request's transport seam in memory, for
  ``HttpServer.serve_in_memory`` (back-pressure, a client that leaves, no HTTP at all).
* The pytest plugin (``trioiis.testing.plugin``, registered through the ``pytest11`` entry
  point; needs pytest, pytest-trio and httpx: ``pip install 'trioiis[testing]'``):
  fixtures ``trioiis_server``, ``trioiis_client`` and ``trioiis_memory``, configured with
  ``@pytest.mark.trioiis(...)``.
* ``trioiis.testing.strategies``: hypothesis strategies ``requests()``,
  ``hostile_requests()`` and ``cancel_schedules()`` (needs hypothesis).

This package itself needs nothing beyond trioiis's own dependencies.
"""

from __future__ import annotations

from .._protocol.memory_transport import MemoryTransport as MemoryTransport
from ._harness import MODES as MODES
from ._harness import CancellationSafetyError as CancellationSafetyError
from ._harness import Injection as Injection
from ._harness import Mode as Mode
from ._harness import Outcome as Outcome
from ._harness import check_cancellation_safety as check_cancellation_safety
from ._memory import MemoryResponse as MemoryResponse
from ._memory import MemoryServer as MemoryServer
from ._memory import RunningServer as RunningServer

__all__ = [
    "MODES",
    "CancellationSafetyError",
    "Injection",
    "MemoryResponse",
    "MemoryServer",
    "MemoryTransport",
    "Mode",
    "Outcome",
    "RunningServer",
    "check_cancellation_safety",
]
