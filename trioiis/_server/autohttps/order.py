"""One certificate order, start to finish, with the ``acme`` library (RFC 8555): blocking
HTTP calls, so it runs in a thread (``trio.to_thread``); ``stop`` asks it to give up between
two steps (a step itself, one HTTP request, is bounded by the network timeout).
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import requests
from acme import challenges, client, crypto_util, messages
from acme import errors as acme_errors
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from josepy.b64 import b64encode
from josepy.jwk import JWK, JWKRSA

from ..._constants import SERVER_VERSION
from .store import StateDir, StoredCertificate

__all__ = ["AcmeSettings", "OrderError", "OrderStopped", "obtain"]

#: Seconds one HTTP request to the CA may take.
NETWORK_TIMEOUT = 30
#: Seconds the CA has to validate the challenges and issue the certificate.
ORDER_DEADLINE = 90.0


@dataclass(frozen=True, slots=True)
class AcmeSettings:
    """Where the CA is and who the account is (``acme_*`` in the configuration)."""

    directory: str
    email: str | None = None
    ca_bundle: Path | None = None


class OrderError(Exception):
    """The CA refused or failed the order; the message says why, on one line."""


class OrderStopped(Exception):
    """``stop`` was set: the order was given up (shutdown)."""


class _TlsAlpn01Response(challenges.KeyAuthorizationChallengeResponse):
    """The (empty) answer to a tls-alpn-01 challenge: the library parses that challenge
    type but no longer ships its response class."""

    typ = "tls-alpn-01"


_SOCKET_ERROR = re.compile(r"\[Errno -?\d+\][^'\"()]+")
_TLS_ERROR = re.compile(r"\[SSL[^\]]*\][^'\"()]+")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    """Why the order failed, as the CA said it."""
    if isinstance(exc, acme_errors.ValidationError):
        problems = []
        for authzr in exc.failed_authzrs:
            for challb in authzr.body.challenges:
                if challb.error is not None:
                    problems.append(f"{_kind(challb)}: {challb.error}")
        return _one_line("; ".join(problems) or "the CA could not validate the challenge")
    if isinstance(exc, acme_errors.TimeoutError):
        return "the CA did not finish the order in time"
    if isinstance(exc, requests.exceptions.RequestException):
        # requests wraps urllib3's wrapping of the socket's error: keep the socket's words.
        text = str(exc)
        found = _SOCKET_ERROR.search(text) or _TLS_ERROR.search(text)
        return f"cannot reach the CA: {found.group(0).strip() if found else _one_line(text)}"
    return _one_line(exc) or type(exc).__name__


def _checkpoint(stop: threading.Event) -> None:
    if stop.is_set():
        raise OrderStopped


def _account(settings: AcmeSettings, store: StateDir) -> client.ClientV2:
    key = serialization.load_pem_private_key(store.account_key_pem(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise OrderError(f"{store.root / 'account-key.pem'} is not an RSA key")
    net = client.ClientNetwork(
        JWKRSA(key=key), user_agent=f"trioiis/{SERVER_VERSION}", timeout=NETWORK_TIMEOUT
    )
    if settings.ca_bundle is not None:
        # requests takes a CA bundle's path where the library's annotation says bool.
        net.verify_ssl = cast("bool", str(settings.ca_bundle))
    directory = client.ClientV2.get_directory(settings.directory, net)
    acme = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(
        email=settings.email, terms_of_service_agreed=True
    )
    try:
        acme.new_account(registration)
    except acme_errors.ConflictError as exc:  # the key has an account already
        existing = messages.RegistrationResource(uri=exc.location, body=messages.Registration())
        acme.query_registration(existing)
    return acme


def _kind(challb: messages.ChallengeBody) -> str:
    """A challenge's type, also for those the library does not know (tls-alpn-01)."""
    typ: object = challb.chall.typ
    if isinstance(typ, str):
        return typ
    jobj: dict[str, Any] = getattr(challb.chall, "jobj", {})
    return str(jobj.get("type", "unknown"))


def _challenge(authzr: messages.AuthorizationResource, kind: str) -> messages.ChallengeBody:
    for challb in authzr.body.challenges:
        if _kind(challb) == kind:
            return challb
    offered = ", ".join(_kind(c) for c in authzr.body.challenges) or "none"
    raise OrderError(f"the CA offers no {kind} challenge (offered: {offered})")


def _answer(
    acme: client.ClientV2,
    store: StateDir,
    name: str,
    challb: messages.ChallengeBody,
    published: contextlib.ExitStack,
) -> None:
    """Publish the answer to ``challb`` (until ``published`` closes), then tell the CA."""
    key = acme.net.key
    if not isinstance(key, JWK):
        raise OrderError("the ACME client has no account key")
    if isinstance(challb.chall, challenges.HTTP01):
        response, validation = challb.chall.response_and_validation(key)
        published.enter_context(store.http01(challb.chall.encode("token"), validation))
    else:  # tls-alpn-01: the library hands it over as an unrecognized challenge
        jobj: dict[str, Any] = getattr(challb.chall, "jobj", {})
        token = jobj.get("token")
        if not isinstance(token, str):
            raise OrderError("the CA's tls-alpn-01 challenge has no token")
        thumbprint = b64encode(key.thumbprint()).decode()
        key_authorization = f"{token}.{thumbprint}"
        published.enter_context(store.tls_alpn01(name, key_authorization))
        response = _TlsAlpn01Response(key_authorization=key_authorization)
    acme.answer_challenge(challb, response)


def _order(
    settings: AcmeSettings, store: StateDir, name: str, kind: str, stop: threading.Event
) -> StoredCertificate:
    """One order, from the account to the stored certificate."""
    _checkpoint(stop)
    acme = _account(settings, store)
    _checkpoint(stop)
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    order = acme.new_order(crypto_util.make_csr(key_pem, [name]))
    with contextlib.ExitStack() as published:
        for authzr in order.authorizations:
            if authzr.body.status != messages.STATUS_VALID:
                _answer(acme, store, name, _challenge(authzr, kind), published)
        _checkpoint(stop)
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=ORDER_DEADLINE)
        order = acme.poll_and_finalize(order, deadline)
    return store.store(name, key_pem, order.fullchain_pem.encode("ascii"))


def obtain(
    settings: AcmeSettings, store: StateDir, name: str, kind: str, stop: threading.Event
) -> tuple[StoredCertificate, bool]:
    """A certificate for ``name`` through challenge ``kind``: ``(certificate, ordered)``.

    Holds NAME's lock throughout, so two processes never order it at once; the second one
    finds the first one's certificate stored and returns it with ``ordered`` False.

    A CA may refuse any request's nonce (``badNonce``, RFC 8555 §6.5): the library sends
    such a request again once, and an order that still meets one starts over once.

    Raises:
        OrderError: the CA refused the order or the validation failed, or it cannot be
            reached; the message is one line.
        OrderStopped: ``stop`` was set.
    """
    try:
        with store.lock(name, stop):
            current = store.stored(name)
            if current is not None and not current.due(datetime.datetime.now(datetime.UTC)):
                return current, False
            try:
                return _order(settings, store, name, kind, stop), True
            except messages.Error as exc:
                if exc.code != "badNonce":
                    raise
            return _order(settings, store, name, kind, stop), True
    except InterruptedError:
        raise OrderStopped from None
    except (OrderError, OrderStopped):
        raise
    except Exception as exc:  # the library's and requests' errors, one line each
        raise OrderError(_describe(exc)) from exc
