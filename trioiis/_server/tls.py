"""TLS for the server's bindings: contexts, certificates chosen by SNI, and plain HTTP
sent to a TLS port.

Profile: Mozilla's "intermediate" server configuration (TLS 1.2 and 1.3; for TLS 1.2 only
ECDHE/DHE key exchange with AEAD ciphers, AES-GCM and ChaCha20-Poly1305; no CBC suite, so
nothing for LUCKY13 or POODLE to work on). TLS 1.3 suites are OpenSSL's, all AEAD.

Every function here raises ``ConfigError`` with one line naming the file at fault, so that
``check-config`` and ``serve`` refuse a broken certificate the same way.
"""

from __future__ import annotations

import contextlib
import datetime
import socket as stdlib_socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import trio

from .._errors import ConfigError

__all__ = [
    "INTERMEDIATE_CIPHERS",
    "CertificateSummary",
    "answer_plain_http",
    "certificate_summary",
    "server_context",
    "sni_context",
]

#: Mozilla's "intermediate" TLS 1.2 cipher list (ssl-config.mozilla.org, guideline 5.7):
#: forward-secret key exchange and AEAD ciphers only.
INTERMEDIATE_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "DHE-RSA-AES128-GCM-SHA256",
        "DHE-RSA-AES256-GCM-SHA384",
        "DHE-RSA-CHACHA20-POLY1305",
    )
)

#: The record type byte a TLS connection starts with (a handshake record).
_TLS_HANDSHAKE = 0x16

#: What a plain-HTTP client on a TLS port gets, in clear text (then the connection closes).
_PLAIN_HTTP_ANSWER = (
    b"HTTP/1.1 400 Bad Request\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 53\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"This port speaks HTTPS: use an https:// URL instead.\n"
)


def server_context(cert: Path, key: Path, *, http2: bool = False) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key`` (PEM files): TLS 1.2 and 1.3, the
    intermediate cipher list, ALPN ``h2`` (with ``http2``) then ``http/1.1``.

    Raises:
        ConfigError: a file is missing, unreadable or not a matching certificate and key.
    """
    for name, path in (("certificate", cert), ("key", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot read TLS {name} {path}: {exc.strerror or exc}") from exc
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.set_alpn_protocols(["h2", "http/1.1"] if http2 else ["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        detail = " ".join(str(exc).split())
        raise ConfigError(
            f"TLS certificate {cert} and key {key} are not a matching PEM pair ({detail})"
        ) from exc
    return context


def sni_context(default: ssl.SSLContext, by_host: Mapping[str, ssl.SSLContext]) -> ssl.SSLContext:
    """``default``, answering each handshake with the context of the host the client names
    (SNI, any case); a client naming no host or another host gets ``default``'s certificate.
    """
    if not by_host:
        return default
    contexts = {host.lower().rstrip("."): context for host, context in by_host.items()}

    def choose(obj: ssl.SSLObject | ssl.SSLSocket, name: str | None, _: object) -> None:
        if name is not None:
            chosen = contexts.get(name.lower().rstrip("."))
            if chosen is not None:
                obj.context = chosen

    default.sni_callback = choose
    return default


@dataclass(frozen=True, slots=True)
class CertificateSummary:
    """What the start-up banner says of a certificate."""

    subject: str
    names: tuple[str, ...]
    not_after: datetime.datetime

    def describe(self, now: datetime.datetime | None = None) -> str:
        now = now or datetime.datetime.now(datetime.UTC)
        days = (self.not_after - now).days
        left = f"expired {-days} days ago" if days < 0 else f"{days} days left"
        names = f" for {', '.join(self.names)}" if self.names else ""
        return f"{self.subject}{names}, expires {self.not_after:%Y-%m-%d} ({left})"


def certificate_summary(cert: Path) -> CertificateSummary:
    """The subject, DNS/IP names and expiry of the first certificate in a PEM file.

    Raises:
        ConfigError: the file cannot be read or holds no PEM certificate.
    """
    from cryptography import x509  # only when a banner or check shows a certificate

    try:
        parsed = x509.load_pem_x509_certificate(Path(cert).read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read TLS certificate {cert}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"TLS certificate {cert} is not a PEM certificate") from exc
    names: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        alt = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*alt.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    subject = parsed.subject.rfc4514_string() or "(empty subject)"
    return CertificateSummary(subject, tuple(names), parsed.not_valid_after_utc)


async def answer_plain_http(stream: trio.SocketStream, timeout: float) -> bool:
    """Before a TLS handshake: if the client's first byte cannot start one (a plain-HTTP
    request on a TLS port), answer a clear-text 400 and return True (close it then).

    Peeks, so a real ClientHello stays in the socket for the handshake. A client that
    sends nothing within ``timeout`` is left to the handshake's own timeout.

    Cancellation: at the wait for the first byte (nothing is consumed) or while the
    answer is sent; every wait is bounded by ``timeout``.
    """
    first = b""
    with trio.move_on_after(timeout), contextlib.suppress(OSError):
        first = await stream.socket.recv(1, stdlib_socket.MSG_PEEK)
    if not first or first[0] == _TLS_HANDSHAKE:
        return False
    with (
        trio.move_on_after(timeout),
        contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
    ):
        await stream.send_all(_PLAIN_HTTP_ANSWER)
        await stream.send_eof()
        # Read what the client sent (bounded) so that closing does not reset the
        # connection before it has read the answer.
        for _ in range(16):
            if not await stream.receive_some(65536):
                break
    return True
