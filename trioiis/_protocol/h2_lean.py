"""A lean ``h2`` connection: the same state machine in fewer bytes per connection.

An idle HTTP/2 connection is mostly ``h2``'s state, and ``h2`` builds its objects for a
client with a handful of connections, not a server holding thousands of idle ones. Each
change here keeps ``h2``'s behaviour and frees bytes it would hold for the connection's
life:

* **Settings.** ``h2`` keeps each setting's values (the current one, then those not yet
  acknowledged) in a ``collections.deque``, whose first block alone is about 700 bytes:
  ``compact_settings`` swaps them for ``_SettingValues`` lists (about 70 bytes). The server's
  own settings never change after its first SETTINGS frame, so every connection with the
  same limits shares one ``shared_local_settings`` object, which refuses any change.
* **HPACK tables.** The encoder's and decoder's dynamic tables are a deque each:
  ``compact_hpack`` gives them a ``_TableEntries`` list (a table holds at most a few dozen
  entries: inserting at the front of a list is as cheap).
* **Frame dispatch.** ``h2`` gives each connection a dict of its twelve bound frame
  handlers (about 1.4 KiB); ``LeanH2Connection`` looks the handler up per frame instead.
* **Configuration.** One configuration (``SERVER_CONFIG``) for every connection. ``h2``
  reads its options several times per frame, and each read of an ``H2Configuration``
  option is a descriptor call: ``SERVER_CONFIG``'s options are plain attributes, and its
  logger (``h2``'s default logs nothing) drops its calls in C.
* **HPACK's debug log.** ``hpack`` logs every integer and header it encodes or decodes
  (about twenty ``Logger.debug`` calls per request); ``quiet_hpack_logs``, run per
  connection, swaps its module loggers for one that drops the calls in C while nothing
  listens at DEBUG, and gives them back when something does.

Each relies on a name ``h2`` or ``hpack`` does not document (``Settings._settings``,
``HeaderTable.dynamic_entries``, ``H2Connection._frame_dispatch_table``, the option names of
``H2Configuration``, the module loggers ``hpack.hpack.log`` and ``hpack.table.log``):
pyproject.toml bounds both to the versions checked, and tests/e2e/test_http2_lean.py fails
first if one of them changes.

Not a public API.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from types import MethodType, ModuleType
from typing import Any, cast

import h2.config
import h2.connection
import h2.settings
import hpack.hpack
import hpack.table
from hyperframe.frame import Frame


class _Silent:
    """A logger that drops every call without a Python frame: ``"".format`` takes any
    arguments and returns ``""``. What ``h2``'s own ``DummyLogger`` does, in C."""

    __slots__ = ()
    debug: Callable[..., object] = "".format
    trace: Callable[..., object] = "".format


_SILENT = _Silent()


class _ServerConfiguration(h2.config.H2Configuration):
    """``H2Configuration`` whose options are plain attributes: the class attributes below
    hide the descriptors of ``H2Configuration`` (the same names), so ``__init__`` keeps each
    value in the instance and ``h2`` reads it without a call. Only ``h2`` reads it."""

    client_side = False
    validate_outbound_headers = False
    normalize_outbound_headers = False
    split_outbound_cookies = False
    validate_inbound_headers = False
    normalize_inbound_headers = False
    header_encoding = None


#: The configuration of every server-side connection (``h2`` only reads it).
SERVER_CONFIG = _ServerConfiguration(
    client_side=False,
    header_encoding=None,
    # h2_fields.request_head checks and normalizes a request's fields itself, in one pass.
    validate_inbound_headers=False,
    normalize_inbound_headers=False,
    # Http2Transport.send_head checks and normalizes a response's fields itself.
    validate_outbound_headers=False,
    normalize_outbound_headers=False,
    logger=_SILENT,  # type: ignore[arg-type]  # (h2 calls only debug and trace)
)

#: hpack's modules that log at DEBUG through a module global ``log``.
_HPACK_LOGGING: tuple[ModuleType, ...] = (hpack.hpack, hpack.table)


def quiet_hpack_logs() -> None:
    """Give hpack's modules a logger that drops calls (``_Silent``) while their own loggers
    would drop them anyway (not enabled for DEBUG), and their own loggers back when one is:
    logging configured at run time reaches the next connection."""
    for module in _HPACK_LOGGING:
        own = logging.getLogger(module.__name__)
        module.log = own if own.isEnabledFor(logging.DEBUG) else _SILENT  # type: ignore[attr-defined]


class _SettingValues(list[int]):
    """One setting's values in an ``h2.settings.Settings``: the current one first, then
    those sent and not yet acknowledged. ``h2`` reads them with ``[0]``, ``len``,
    ``append`` and ``popleft``."""

    __slots__ = ()

    def popleft(self) -> int:
        return self.pop(0)


def compact_settings(settings: h2.settings.Settings) -> None:
    """Swap the deques of ``settings`` for ``_SettingValues`` (values and order kept);
    again after ``h2`` adds a setting (a new setting gets a new deque)."""
    store = cast("dict[object, Iterable[int]]", settings._settings)
    for key, values in store.items():
        if type(values) is not _SettingValues:
            store[key] = _SettingValues(values)


class _SharedSettings(h2.settings.Settings):
    """Settings shared by many connections: each value a one-item tuple, and no change
    allowed (``h2`` changes its local settings only in ``update_settings``, which the
    server never calls; acknowledging them changes nothing when nothing is pending)."""

    def __init__(self, initial_values: dict[h2.settings.SettingCodes, int]) -> None:
        super().__init__(client=False, initial_values=initial_values)
        store = cast("dict[object, Iterable[int]]", self._settings)
        for key, values in store.items():
            store[key] = tuple(values)

    def __setitem__(self, key: h2.settings.SettingCodes | int, value: int) -> None:
        raise TypeError("shared HTTP/2 settings never change")

    def __delitem__(self, key: h2.settings.SettingCodes | int) -> None:
        raise TypeError("shared HTTP/2 settings never change")


_shared: dict[tuple[tuple[int, int], ...], _SharedSettings] = {}


def shared_local_settings(values: dict[h2.settings.SettingCodes, int]) -> h2.settings.Settings:
    """The server's settings with ``values``: one object for every connection asking for the
    same values (a server has one or two sets)."""
    key = tuple(sorted((int(code), value) for code, value in values.items()))
    settings = _shared.get(key)
    if settings is None:
        settings = _shared[key] = _SharedSettings(values)
    return settings


class _TableEntries(list[tuple[bytes, bytes]]):
    """An HPACK dynamic table's entries, newest first. ``hpack`` uses ``appendleft``,
    ``pop`` (the oldest), ``clear``, indexing, iteration and ``len``."""

    __slots__ = ()

    def appendleft(self, entry: tuple[bytes, bytes]) -> None:
        self.insert(0, entry)


def compact_hpack(machine: h2.connection.H2Connection) -> None:
    """Give the encoder's and decoder's dynamic tables a list (both still empty)."""
    for table in (machine.encoder.header_table, machine.decoder.header_table):
        table.dynamic_entries = _TableEntries(table.dynamic_entries)  # type: ignore[assignment]


def _handler_functions() -> dict[type[Frame], Callable[..., Any]]:
    """``h2``'s frame handlers, by frame class, as functions (read from a connection)."""
    table = h2.connection.H2Connection()._frame_dispatch_table
    return {
        frame_type: cast("MethodType", handler).__func__ for frame_type, handler in table.items()
    }


_HANDLERS: dict[type[Frame], Callable[..., Any]] = _handler_functions()


class _Dispatch:
    """One frame's lookup of its handler, bound to the connection it arrived on."""

    __slots__ = ("_machine",)

    def __init__(self, machine: h2.connection.H2Connection) -> None:
        self._machine = machine

    def __getitem__(self, frame_type: type[Frame]) -> Callable[..., Any]:
        return cast("Callable[..., Any]", _HANDLERS[frame_type].__get__(self._machine))


class LeanH2Connection(h2.connection.H2Connection):
    """``h2.connection.H2Connection`` without its per-connection dict of bound frame
    handlers: ``h2`` builds one in ``__init__`` (dropped here) and reads it once per frame
    received (a ``_Dispatch``, made per frame, answers instead)."""

    @property  # type: ignore[override]
    def _frame_dispatch_table(self) -> _Dispatch:
        return _Dispatch(self)

    @_frame_dispatch_table.setter
    def _frame_dispatch_table(self, table: object) -> None:
        pass  # h2's own table of bound methods: not kept
