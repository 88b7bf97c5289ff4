"""trioiis: an HTTP/1.1, HTTP/2 and WebSocket server on Trio with the IIS integrated request
pipeline.

Everything public is re-exported here, as trio does; nothing else in the package is a contract
except the public modules ``trioiis.config``, ``trioiis.cli``, ``trioiis.modules``,
``trioiis.testing`` and ``trioiis.bench``.

The tree is the architecture. Each private subpackage is a layer and may import only the layers
below it (the import-linter contracts in pyproject.toml hold it, annotations included):

==========================  ===============================================================
``_server/``                sockets, TLS, bindings, workers, shutdown; builds a pipeline and
                            runs each request the drivers parse through it
``config.py``               the configuration (TOML, CLI, code) and the built-in module table
``_pipeline/``              the IIS integrated pipeline: notifications, module registration,
                            child requests, tracing hooks
``_context/``               one request: ``HttpContext``, request, response, the send path,
                            server variables, WebSockets; what modules touch
``_protocol/``              the wire: HTTP/1.1, HTTP/2 and in-memory drivers, each giving
                            every request a ``Transport`` (the seam); PROXY, Forwarded
``_observability/``         counters, failed-request traces, access-log lines, log files
``_lifecycle.py``, ...      the vocabulary every layer speaks: states and outcomes
                            (``_lifecycle``), errors (``_errors``), IIS constants
                            (``_constants``), bounded memoization (``_memo``)
==========================  ===============================================================

Above them sit ``modules/`` (the built-in modules, written against this public API only, as a
third-party module would be), ``bench/``, ``cli.py`` and ``testing/``.
"""

from __future__ import annotations

import contextlib

from ._constants import E_FAIL as E_FAIL
from ._constants import ERROR_ALREADY_ASSIGNED as ERROR_ALREADY_ASSIGNED
from ._constants import ERROR_ALREADY_EXISTS as ERROR_ALREADY_EXISTS
from ._constants import ERROR_ARITHMETIC_OVERFLOW as ERROR_ARITHMETIC_OVERFLOW
from ._constants import ERROR_CONNECTION_INVALID as ERROR_CONNECTION_INVALID
from ._constants import ERROR_HANDLE_EOF as ERROR_HANDLE_EOF
from ._constants import ERROR_INVALID_DATA as ERROR_INVALID_DATA
from ._constants import ERROR_INVALID_HANDLE as ERROR_INVALID_HANDLE
from ._constants import ERROR_INVALID_INDEX as ERROR_INVALID_INDEX
from ._constants import ERROR_INVALID_PARAMETER as ERROR_INVALID_PARAMETER
from ._constants import ERROR_NOT_ENOUGH_MEMORY as ERROR_NOT_ENOUGH_MEMORY
from ._constants import ERROR_NOT_FOUND as ERROR_NOT_FOUND
from ._constants import ERROR_NOT_SUPPORTED as ERROR_NOT_SUPPORTED
from ._constants import ERROR_OPERATION_ABORTED as ERROR_OPERATION_ABORTED
from ._constants import ERROR_SERVER_SHUTDOWN_IN_PROGRESS as ERROR_SERVER_SHUTDOWN_IN_PROGRESS
from ._constants import ERROR_STACK_OVERFLOW as ERROR_STACK_OVERFLOW
from ._constants import MAX_CHILD_DEPTH as MAX_CHILD_DEPTH
from ._constants import S_OK as S_OK
from ._constants import SERVER_VERSION as SERVER_VERSION
from ._constants import CloneFlags as CloneFlags
from ._constants import ExecuteFlags as ExecuteFlags
from ._constants import GlobalNotification as GlobalNotification
from ._constants import GlobalStatus as GlobalStatus
from ._constants import Notification as Notification
from ._constants import Priority as Priority
from ._constants import SendResponseFlags as SendResponseFlags
from ._constants import Status as Status
from ._constants import hresult_from_win32 as hresult_from_win32
from ._context.connection import HttpConnection as HttpConnection
from ._context.connection import ModuleContextContainer as ModuleContextContainer
from ._context.connection import Site as Site
from ._context.connection import StoredContext as StoredContext
from ._context.context import HttpContext as HttpContext
from ._context.headers import Headers as Headers
from ._context.mapping import HandlerMapping as HandlerMapping
from ._context.origin import absolute_url as absolute_url
from ._context.origin import is_local_request as is_local_request
from ._context.origin import request_scheme as request_scheme
from ._context.providers import AuthenticationProvider as AuthenticationProvider
from ._context.providers import CustomNotificationProvider as CustomNotificationProvider
from ._context.providers import EventProvider as EventProvider
from ._context.providers import HttpUser as HttpUser
from ._context.providers import MapHandlerProvider as MapHandlerProvider
from ._context.providers import MapPathProvider as MapPathProvider
from ._context.providers import ReadEntityProvider as ReadEntityProvider
from ._context.providers import SendResponseProvider as SendResponseProvider
from ._context.request import HttpRequest as HttpRequest
from ._context.response import HttpResponse as HttpResponse
from ._context.response import StatusInfo as StatusInfo
from ._context.websocket import CloseStatus as CloseStatus
from ._context.websocket import WebSocketClosedError as WebSocketClosedError
from ._context.websocket import WebSocketContext as WebSocketContext
from ._context.websocket import WebSocketFragment as WebSocketFragment
from ._context.websocket import WebSocketHandshakeError as WebSocketHandshakeError
from ._context.websocket import WebSocketLimits as WebSocketLimits
from ._context.websocket import accept_websocket as accept_websocket
from ._context.websocket import is_websocket_request as is_websocket_request
from ._errors import BodyTooLargeError as BodyTooLargeError
from ._errors import CompletionInfo as CompletionInfo
from ._errors import ConfigError as ConfigError
from ._errors import ConnectionInvalidError as ConnectionInvalidError
from ._errors import HResultError as HResultError
from ._errors import InvalidHandleError as InvalidHandleError
from ._errors import MalformedBodyError as MalformedBodyError
from ._errors import ModuleFailedError as ModuleFailedError
from ._errors import NotSupportedError as NotSupportedError
from ._errors import OperationAbortedError as OperationAbortedError
from ._errors import RequestBodyError as RequestBodyError
from ._errors import StackOverflowError as StackOverflowError
from ._lifecycle import Outcome as Outcome
from ._lifecycle import RequestState as RequestState
from ._memo import memoize_short as memoize_short
from ._observability.counters import Histogram as Histogram
from ._observability.counters import ServerCounters as ServerCounters
from ._pipeline.registration import ApplicationProvider as ApplicationProvider
from ._pipeline.registration import GlobalModule as GlobalModule
from ._pipeline.registration import GlobalProvider as GlobalProvider
from ._pipeline.registration import GlobalServer as GlobalServer
from ._pipeline.registration import HttpModule as HttpModule
from ._pipeline.registration import ModuleAllocator as ModuleAllocator
from ._pipeline.registration import ModuleFactory as ModuleFactory
from ._pipeline.registration import ModuleRegistrationInfo as ModuleRegistrationInfo
from ._pipeline.registration import RegisterModule as RegisterModule
from ._pipeline.registration import SimpleFactory as SimpleFactory
from ._protocol.http1 import Limits as Limits
from ._server.server import HttpServer as HttpServer
from .config import Binding as Binding
from .config import ModuleSpec as ModuleSpec
from .config import ServerConfig as ServerConfig
from .config import SiteConfig as SiteConfig
from .config import load_config as load_config

__version__ = "0.1.0"

__all__ = [
    "ERROR_ALREADY_ASSIGNED",
    "ERROR_ALREADY_EXISTS",
    "ERROR_ARITHMETIC_OVERFLOW",
    "ERROR_CONNECTION_INVALID",
    "ERROR_HANDLE_EOF",
    "ERROR_INVALID_DATA",
    "ERROR_INVALID_HANDLE",
    "ERROR_INVALID_INDEX",
    "ERROR_INVALID_PARAMETER",
    "ERROR_NOT_ENOUGH_MEMORY",
    "ERROR_NOT_FOUND",
    "ERROR_NOT_SUPPORTED",
    "ERROR_OPERATION_ABORTED",
    "ERROR_SERVER_SHUTDOWN_IN_PROGRESS",
    "ERROR_STACK_OVERFLOW",
    "E_FAIL",
    "MAX_CHILD_DEPTH",
    "SERVER_VERSION",
    "S_OK",
    "ApplicationProvider",
    "AuthenticationProvider",
    "Binding",
    "BodyTooLargeError",
    "CloneFlags",
    "CloseStatus",
    "CompletionInfo",
    "ConfigError",
    "ConnectionInvalidError",
    "CustomNotificationProvider",
    "EventProvider",
    "ExecuteFlags",
    "GlobalModule",
    "GlobalNotification",
    "GlobalProvider",
    "GlobalServer",
    "GlobalStatus",
    "HResultError",
    "HandlerMapping",
    "Headers",
    "Histogram",
    "HttpConnection",
    "HttpContext",
    "HttpModule",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "HttpUser",
    "InvalidHandleError",
    "Limits",
    "MalformedBodyError",
    "MapHandlerProvider",
    "MapPathProvider",
    "ModuleAllocator",
    "ModuleContextContainer",
    "ModuleFactory",
    "ModuleFailedError",
    "ModuleRegistrationInfo",
    "ModuleSpec",
    "NotSupportedError",
    "Notification",
    "OperationAbortedError",
    "Outcome",
    "Priority",
    "ReadEntityProvider",
    "RegisterModule",
    "RequestBodyError",
    "RequestState",
    "SendResponseFlags",
    "SendResponseProvider",
    "ServerConfig",
    "ServerCounters",
    "SimpleFactory",
    "Site",
    "SiteConfig",
    "StackOverflowError",
    "Status",
    "StatusInfo",
    "StoredContext",
    "WebSocketClosedError",
    "WebSocketContext",
    "WebSocketFragment",
    "WebSocketHandshakeError",
    "WebSocketLimits",
    "absolute_url",
    "accept_websocket",
    "hresult_from_win32",
    "is_local_request",
    "is_websocket_request",
    "load_config",
    "memoize_short",
    "request_scheme",
]


def _fixup_module_metadata() -> None:
    # Tracebacks and docs say trioiis.HttpContext, not trioiis._context.context.HttpContext.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("trioiis."):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = "trioiis"


_fixup_module_metadata()
del _fixup_module_metadata
