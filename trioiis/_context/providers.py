"""Event providers: the second argument of every notification handler (IIS ``I*Provider``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .._constants import ERROR_INVALID_PARAMETER, S_OK, SendResponseFlags
from .._errors import HResultError


@dataclass(frozen=True, slots=True)
class HttpUser:
    """An authenticated user (IIS ``IHttpUser``, the parts that mean something here)."""

    name: str
    authentication_type: str = ""
    roles: frozenset[str] = frozenset()

    def is_in_role(self, role: str) -> bool:
        return role in self.roles


class EventProvider:
    """Passed to every deterministic notification and post-notification."""

    # A class default, not an ``__init__``: a provider is made for every stage a module
    # runs in, and a class without ``__init__`` is several times cheaper to make.
    error_status: int = S_OK

    def set_error_status(self, hresult: int) -> None:
        """Record why the module failed (shown in traces); does not change the flow."""
        self.error_status = hresult


class AuthenticationProvider(EventProvider):
    """AUTHENTICATE_REQUEST: ``set_user`` authenticates the request at once."""

    def __init__(self) -> None:
        self.user: HttpUser | None = None

    def set_user(self, user: HttpUser | None) -> None:
        self.user = user


class MapHandlerProvider(EventProvider):
    """MAP_REQUEST_HANDLER: ``set_handler`` picks another handler mapping by name."""

    def __init__(self, handler: str) -> None:
        self.handler = handler

    def set_handler(self, name: str) -> None:
        self.handler = name


class MapPathProvider(EventProvider):
    """MAP_PATH: the URL being mapped and its physical path, which a handler may change."""

    def __init__(self, url: str, physical_path: Path) -> None:
        self.url = url
        self.physical_path = physical_path

    def set_physical_path(self, path: Path | str) -> None:
        if not str(path):
            raise HResultError("empty physical path", hresult=ERROR_INVALID_PARAMETER)
        self.physical_path = Path(path)


class ReadEntityProvider(EventProvider):
    """READ_ENTITY: the chunk just read (maybe empty), which a handler may replace."""

    def __init__(self, entity: bytes) -> None:
        self.entity = entity

    def get_entity(self) -> bytes:
        return self.entity

    def set_entity(self, data: bytes) -> None:
        self.entity = bytes(data)


class SendResponseProvider(EventProvider):
    """SEND_RESPONSE: about to send; ``headers_being_sent`` is False after the first send."""

    def __init__(self, flags: SendResponseFlags, headers_being_sent: bool) -> None:
        self.flags = flags
        self.headers_being_sent = headers_being_sent

    def get_flags(self) -> SendResponseFlags:
        return self.flags

    def set_flags(self, flags: SendResponseFlags) -> None:
        self.flags = SendResponseFlags(flags)


class CustomNotificationProvider(EventProvider):
    """Subclass this to raise your own notification with ``ctx.notify_custom_notification``."""

    notification_type: str = "custom"

    def query_notification_type(self) -> str:
        return self.notification_type
