"""Errors a module can see, each carrying the HRESULT IIS would have returned.

```
HResultError(Exception)          .hresult = HRESULT_FROM_WIN32(code) -> 0x8007xxxx
├── NotSupportedError            ERROR_NOT_SUPPORTED (50): sync/foreign/re-run execute
├── StackOverflowError           ERROR_STACK_OVERFLOW (1001): 11th nested child request
├── InvalidHandleError           ERROR_INVALID_HANDLE (6): use of a context after its request ended
├── OperationAbortedError        ERROR_OPERATION_ABORTED (995): I/O cancelled by cancel_io
├── ConnectionInvalidError       ERROR_CONNECTION_INVALID (1229): the client is gone
├── ModuleFailedError            E_FAIL: a MAP_PATH/READ_ENTITY/custom handler raised (500)
└── RequestBodyError             ERROR_INVALID_DATA (13): the client's body is refused (400)
    └── BodyTooLargeError        ... past max_body_bytes (413)
    └── MalformedBodyError       ... broken chunked framing (400)
ConfigError(ValueError)          bad configuration or command line; the CLI prints one line, exit 2
```

Other failures IIS reports with a plain HRESULT (ERROR_HANDLE_EOF, ERROR_INVALID_INDEX,
ERROR_ALREADY_ASSIGNED, …) raise ``HResultError`` itself with that code.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._constants import (
    ERROR_CONNECTION_INVALID,
    ERROR_INVALID_DATA,
    ERROR_INVALID_HANDLE,
    ERROR_NOT_SUPPORTED,
    ERROR_OPERATION_ABORTED,
    ERROR_STACK_OVERFLOW,
    S_OK,
    win32_from_hresult,
)


def describe_exception(exc: BaseException) -> str:
    """``"ValueError: bad"`` (``"ValueError"`` when it has no message), on one line."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


@dataclass(frozen=True, slots=True)
class CompletionInfo:
    """The outcome of an asynchronous operation (IIS ``IHttpCompletionInfo``).

    Attributes:
        completion_bytes: bytes moved (read, written, produced by a child) before the
            operation ended, or the number given to ``post_completion``.
        completion_status: an HRESULT; 0 (``S_OK``) on success.
        data: for ``read_entity_body_async``, the bytes read (IIS fills the caller's buffer;
            Python hands them over here). Empty otherwise.
    """

    completion_bytes: int = 0
    completion_status: int = S_OK
    data: bytes = b""

    @property
    def ok(self) -> bool:
        """True when ``completion_status`` is ``S_OK``."""
        return self.completion_status == S_OK


class HResultError(Exception):
    """A failure with the HRESULT IIS would return for it."""

    default_hresult: int = 0x80004005  # E_FAIL

    def __init__(self, message: str = "", *, hresult: int | None = None) -> None:
        self.hresult: int = self.default_hresult if hresult is None else hresult
        super().__init__(message or f"HRESULT 0x{self.hresult:08X}")

    @property
    def win32_code(self) -> int:
        """The Win32 error code inside a ``0x8007xxxx`` HRESULT (else the HRESULT itself)."""
        return win32_from_hresult(self.hresult)


class NotSupportedError(HResultError):
    """The call is not supported in this form (sync execute, foreign clone, clone run twice)."""

    default_hresult = ERROR_NOT_SUPPORTED


class StackOverflowError(HResultError):
    """Starting the 11th nested child request."""

    default_hresult = ERROR_STACK_OVERFLOW


class InvalidHandleError(HResultError):
    """The context is no longer valid: its request ended or its connection is gone."""

    default_hresult = ERROR_INVALID_HANDLE


class OperationAbortedError(HResultError):
    """A pending I/O was cancelled by ``cancel_io()``; ``completion`` says what moved first."""

    default_hresult = ERROR_OPERATION_ABORTED

    def __init__(self, message: str = "", *, completion: CompletionInfo | None = None) -> None:
        super().__init__(message or "I/O operation cancelled by cancel_io()")
        self.completion: CompletionInfo = completion or CompletionInfo(0, ERROR_OPERATION_ABORTED)


class ConnectionInvalidError(HResultError):
    """The client's connection is gone (or broke) so the I/O cannot happen."""

    default_hresult = ERROR_CONNECTION_INVALID


class ModuleFailedError(HResultError):
    """A module's handler raised inside a notification this call raised (``map_path``,
    ``read_entity_body``, ``notify_custom_notification``). The request has failed already:
    its answer is a 500 (or an aborted connection once headers were sent), as for a handler
    that raised in any stage; let this propagate, the pipeline does not count it twice."""


class RequestBodyError(HResultError):
    """The client's request body cannot be read; ``status`` is the answer it gets (the
    connection is closed after it) unless the module handles the error itself."""

    default_hresult = ERROR_INVALID_DATA
    status = 400


class BodyTooLargeError(RequestBodyError):
    """The request body grew past the server's ``max_body_bytes`` (answered with 413)."""

    status = 413


class MalformedBodyError(RequestBodyError):
    """The request body's chunked framing is broken (answered with 400)."""


class ConfigError(ValueError):
    """Bad configuration or command line; the message is one line meant for a person."""
