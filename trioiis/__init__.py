"""trioiis: an HTTP/1.1 server on Trio and h11 with the IIS integrated request pipeline.

Everything public is re-exported here; nothing else in the package is a contract.
"""

from __future__ import annotations

import contextlib

from .config import Binding as Binding
from .config import ModuleSpec as ModuleSpec
from .config import ServerConfig as ServerConfig
from .config import SiteConfig as SiteConfig
from .config import load_config as load_config
from .constants import MAX_CHILD_DEPTH as MAX_CHILD_DEPTH
from .constants import SERVER_VERSION as SERVER_VERSION
from .constants import CloneFlags as CloneFlags
from .constants import ExecuteFlags as ExecuteFlags
from .constants import GlobalNotification as GlobalNotification
from .constants import GlobalStatus as GlobalStatus
from .constants import Notification as Notification
from .constants import Priority as Priority
from .constants import SendResponseFlags as SendResponseFlags
from .constants import Status as Status
from .context import HttpConnection as HttpConnection
from .context import HttpContext as HttpContext
from .context import ModuleContextContainer as ModuleContextContainer
from .context import Site as Site
from .context import StoredContext as StoredContext
from .counters import ServerCounters as ServerCounters
from .errors import BodyTooLargeError as BodyTooLargeError
from .errors import CompletionInfo as CompletionInfo
from .errors import ConfigError as ConfigError
from .errors import ConnectionInvalidError as ConnectionInvalidError
from .errors import HResultError as HResultError
from .errors import InvalidHandleError as InvalidHandleError
from .errors import MalformedBodyError as MalformedBodyError
from .errors import ModuleFailedError as ModuleFailedError
from .errors import NotSupportedError as NotSupportedError
from .errors import OperationAbortedError as OperationAbortedError
from .errors import RequestBodyError as RequestBodyError
from .errors import StackOverflowError as StackOverflowError
from .headers import Headers as Headers
from .http1 import Limits as Limits
from .lifecycle import Outcome as Outcome
from .lifecycle import RequestState as RequestState
from .mapping import HandlerMapping as HandlerMapping
from .pipeline import Pipeline as Pipeline
from .providers import AuthenticationProvider as AuthenticationProvider
from .providers import CustomNotificationProvider as CustomNotificationProvider
from .providers import EventProvider as EventProvider
from .providers import HttpUser as HttpUser
from .providers import MapHandlerProvider as MapHandlerProvider
from .providers import MapPathProvider as MapPathProvider
from .providers import ReadEntityProvider as ReadEntityProvider
from .providers import SendResponseProvider as SendResponseProvider
from .registration import ApplicationProvider as ApplicationProvider
from .registration import GlobalModule as GlobalModule
from .registration import GlobalProvider as GlobalProvider
from .registration import GlobalServer as GlobalServer
from .registration import HttpModule as HttpModule
from .registration import ModuleAllocator as ModuleAllocator
from .registration import ModuleFactory as ModuleFactory
from .registration import ModuleRegistrationInfo as ModuleRegistrationInfo
from .registration import RegisterModule as RegisterModule
from .registration import SimpleFactory as SimpleFactory
from .request import HttpRequest as HttpRequest
from .response import HttpResponse as HttpResponse
from .response import StatusInfo as StatusInfo
from .server import HttpServer as HttpServer
from .websocket import CloseStatus as CloseStatus
from .websocket import WebSocketClosedError as WebSocketClosedError
from .websocket import WebSocketContext as WebSocketContext
from .websocket import WebSocketFragment as WebSocketFragment
from .websocket import WebSocketHandshakeError as WebSocketHandshakeError
from .websocket import WebSocketLimits as WebSocketLimits
from .websocket import accept_websocket as accept_websocket
from .websocket import is_websocket_request as is_websocket_request

__version__ = "0.1.0"

__all__ = [
    "MAX_CHILD_DEPTH",
    "SERVER_VERSION",
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
    "Pipeline",
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
    "accept_websocket",
    "is_websocket_request",
    "load_config",
]


def _fixup_module_metadata() -> None:
    # Tracebacks and docs say trioiis.HttpContext, not trioiis.context.HttpContext.
    for name in __all__:
        obj = globals()[name]
        if getattr(obj, "__module__", "").startswith("trioiis."):
            with contextlib.suppress(AttributeError, TypeError):
                obj.__module__ = "trioiis"


_fixup_module_metadata()
del _fixup_module_metadata
