"""``trioiis.testing``: prove a module is cancellation-safe (also a pytest plugin).

* ``check_cancellation_safety(module, request, invariants=...)`` cancels the request at every
  checkpoint it reaches, three ways (client disconnect, ``cancel_io()``, server shutdown),
  and checks that nothing leaks.
* Fixtures (registered through the ``pytest11`` entry point): ``trioiis_server``,
  ``trioiis_client`` and ``trioiis_memory``, configured with ``@pytest.mark.trioiis(...)``.
* ``trioiis.testing.strategies``: hypothesis strategies ``requests()``,
  ``hostile_requests()`` and ``cancel_schedules()`` (needs hypothesis).
"""

from __future__ import annotations

from ._harness import MODES as MODES
from ._harness import CancellationSafetyError as CancellationSafetyError
from ._harness import Mode as Mode
from ._harness import Outcome as Outcome
from ._harness import check_cancellation_safety as check_cancellation_safety
from ._plugin import MemoryResponse as MemoryResponse
from ._plugin import MemoryServer as MemoryServer
from ._plugin import RunningServer as RunningServer
from ._plugin import pytest_configure as pytest_configure
from ._plugin import trioiis_client as trioiis_client
from ._plugin import trioiis_memory as trioiis_memory
from ._plugin import trioiis_server as trioiis_server

__all__ = [
    "MODES",
    "CancellationSafetyError",
    "MemoryResponse",
    "MemoryServer",
    "Mode",
    "Outcome",
    "RunningServer",
    "check_cancellation_safety",
    "pytest_configure",
    "trioiis_client",
    "trioiis_memory",
    "trioiis_server",
]
