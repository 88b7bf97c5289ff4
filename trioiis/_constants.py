"""Numbers from the IIS native API (``httpserv.h``), under their snake_case / enum names.

Values are IIS's own, so a reader of the IIS reference can match them bit for bit.
"""

from __future__ import annotations

import enum
from typing import Final


class Notification(enum.IntFlag):
    """Request notifications (``RQ_*``), as passed to ``set_request_notifications``."""

    BEGIN_REQUEST = 0x00000001
    AUTHENTICATE_REQUEST = 0x00000002
    AUTHORIZE_REQUEST = 0x00000004
    RESOLVE_REQUEST_CACHE = 0x00000008
    MAP_REQUEST_HANDLER = 0x00000010
    ACQUIRE_REQUEST_STATE = 0x00000020
    PRE_EXECUTE_REQUEST_HANDLER = 0x00000040
    EXECUTE_REQUEST_HANDLER = 0x00000080
    RELEASE_REQUEST_STATE = 0x00000100
    UPDATE_REQUEST_CACHE = 0x00000200
    LOG_REQUEST = 0x00000400
    END_REQUEST = 0x00000800
    CUSTOM_NOTIFICATION = 0x10000000
    SEND_RESPONSE = 0x20000000
    READ_ENTITY = 0x40000000
    MAP_PATH = 0x80000000


#: The deterministic stages, in the order a request goes through them (spec table 1.2).
DETERMINISTIC_STAGES: Final[tuple[Notification, ...]] = (
    Notification.BEGIN_REQUEST,
    Notification.AUTHENTICATE_REQUEST,
    Notification.AUTHORIZE_REQUEST,
    Notification.RESOLVE_REQUEST_CACHE,
    Notification.MAP_REQUEST_HANDLER,
    Notification.ACQUIRE_REQUEST_STATE,
    Notification.PRE_EXECUTE_REQUEST_HANDLER,
    Notification.EXECUTE_REQUEST_HANDLER,
    Notification.RELEASE_REQUEST_STATE,
    Notification.UPDATE_REQUEST_CACHE,
    Notification.LOG_REQUEST,
    Notification.END_REQUEST,
)

#: Notifications that fire when something happens, any number of times, and have no post-event.
NON_DETERMINISTIC: Final[Notification] = (
    Notification.MAP_PATH
    | Notification.READ_ENTITY
    | Notification.SEND_RESPONSE
    | Notification.CUSTOM_NOTIFICATION
)


class GlobalNotification(enum.IntFlag):
    """Global notifications (``GL_*``). trioiis raises PRE_BEGIN_REQUEST (for every request,
    children included), APPLICATION_START (once, before the first connection is accepted),
    STOP_LISTENING (once, when shutdown starts draining) and APPLICATION_STOP (once, after the
    last connection ended); the others are accepted at registration and never raised
    (nothing here causes them)."""

    STOP_LISTENING = 0x00000002
    CACHE_CLEANUP = 0x00000004
    CACHE_OPERATION = 0x00000010
    HEALTH_CHECK = 0x00000020
    CONFIGURATION_CHANGE = 0x00000040
    FILE_CHANGE = 0x00000080
    PRE_BEGIN_REQUEST = 0x00000100
    APPLICATION_START = 0x00000200
    APPLICATION_RESOLVE_MODULES = 0x00000400
    APPLICATION_STOP = 0x00000800
    RSCA_QUERY = 0x00001000
    TRACE_EVENT = 0x00002000
    CUSTOM_NOTIFICATION = 0x00004000
    THREAD_CLEANUP = 0x00008000
    APPLICATION_PRELOAD = 0x00010000
    SUSPEND_PROCESS = 0x00020000


class GlobalStatus(enum.IntEnum):
    """What a global handler returns: CONTINUE to the next global module, or HANDLED."""

    CONTINUE = 0
    HANDLED = 1


class Status(enum.IntEnum):
    """What a handler returns (IIS ``REQUEST_NOTIFICATION_STATUS``). ``None`` means ``CONTINUE``."""

    CONTINUE = 0
    PENDING = 1
    FINISH_REQUEST = 2


class Priority(enum.IntEnum):
    """Priority aliases; a higher value runs earlier (later for SEND_RESPONSE)."""

    LAST = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    FIRST = 4


class CloneFlags(enum.IntFlag):
    """What ``clone_context`` copies into the child (``CLONE_FLAG_*``)."""

    BASICS = 0x01
    HEADERS = 0x02
    ENTITY = 0x04
    NO_PRECONDITION = 0x08
    NO_DAV = 0x10
    SERVER_VARIABLE = 0x40


class ExecuteFlags(enum.IntFlag):
    """How ``execute_request`` runs a child (``EXECUTE_FLAG_*``)."""

    NO_HEADERS = 0x01
    IGNORE_CURRENT_INTERCEPTOR = 0x02
    IGNORE_APPPOOL = 0x04
    DISABLE_CUSTOM_ERROR = 0x08
    SAME_URL = 0x10
    BUFFER_RESPONSE = 0x20
    HTTP_CACHE_ELIGIBLE = 0x40


class SendResponseFlags(enum.IntFlag):
    """``HTTP_SEND_RESPONSE_FLAG_*`` seen by SEND_RESPONSE handlers."""

    DISCONNECT = 0x1
    MORE_DATA = 0x2
    BUFFER_DATA = 0x4
    ENABLE_NAGLING = 0x8


def hresult_from_win32(code: int) -> int:
    """``HRESULT_FROM_WIN32``: 0 stays 0, a Win32 code becomes ``0x8007xxxx``."""
    return code if code <= 0 else (code & 0xFFFF) | 0x80070000


def win32_from_hresult(hresult: int, *, otherwise: int | None = None) -> int:
    """The Win32 code inside a ``0x8007xxxx`` HRESULT; for any other HRESULT, ``otherwise``
    (None: the HRESULT itself)."""
    if hresult >> 16 == 0x8007:
        return hresult & 0xFFFF
    return hresult if otherwise is None else otherwise


S_OK: Final = 0
E_FAIL: Final = 0x80004005
ERROR_INVALID_HANDLE: Final = hresult_from_win32(6)
ERROR_NOT_ENOUGH_MEMORY: Final = hresult_from_win32(8)
ERROR_INVALID_DATA: Final = hresult_from_win32(13)
ERROR_HANDLE_EOF: Final = hresult_from_win32(38)
ERROR_NOT_SUPPORTED: Final = hresult_from_win32(50)
ERROR_ALREADY_ASSIGNED: Final = hresult_from_win32(85)
ERROR_INVALID_PARAMETER: Final = hresult_from_win32(87)
ERROR_ALREADY_EXISTS: Final = hresult_from_win32(183)
ERROR_ARITHMETIC_OVERFLOW: Final = hresult_from_win32(534)
ERROR_OPERATION_ABORTED: Final = hresult_from_win32(995)
ERROR_STACK_OVERFLOW: Final = hresult_from_win32(1001)
ERROR_NOT_FOUND: Final = hresult_from_win32(1168)
ERROR_CONNECTION_INVALID: Final = hresult_from_win32(1229)
ERROR_SERVER_SHUTDOWN_IN_PROGRESS: Final = hresult_from_win32(1255)
ERROR_INVALID_INDEX: Final = hresult_from_win32(1413)

#: IIS major version passed to ``register_module`` (trioiis implements the IIS 10 pipeline).
SERVER_VERSION: Final = 10
#: Nested child requests allowed under one root (levels 1..10 run, the 11th is refused).
MAX_CHILD_DEPTH: Final = 10
#: Chunks one response may hold (IIS documents 65535).
MAX_RESPONSE_CHUNKS: Final = 65535
