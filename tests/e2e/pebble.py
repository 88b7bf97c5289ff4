"""pebble (Let's Encrypt's test CA) and pebble-challtestsrv (its mock DNS) on loopback, for
the Automatic HTTPS tests: one fresh CA per test, whose validator connects to the ports the
test gives it (the server under test's cleartext and TLS sockets, opened first).

Readiness is each program's own start-up line, read from its output; nothing sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
import trio
import trustme

#: Seconds a program has to print its start-up line.
START_TIMEOUT = 20.0


def require_pebble() -> tuple[str, str]:
    """The two programs' paths; skips the test (with the reason) when they are missing."""
    pebble, challtestsrv = shutil.which("pebble"), shutil.which("pebble-challtestsrv")
    if pebble is None or challtestsrv is None:
        pytest.skip(
            "pebble and pebble-challtestsrv are not installed (Debian package `pebble`;"
            " .ci/run installs it when it can)"
        )
    return pebble, challtestsrv


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port free right now (for pebble's own listeners, which it opens itself)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_socket() -> socket.socket:
    """A listening socket on a loopback port, to hand to ``HttpServer(sockets=...)``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class Pebble:
    directory: str
    ca_bundle: Path  # what to trust for pebble's own HTTPS API
    management: str
    output: list[str]

    def root_pem(self) -> bytes:
        """The root pebble issues under (a new one at every start): trust it for the
        certificates the server serves."""
        context = ssl.create_default_context(cafile=str(self.ca_bundle))
        with urllib.request.urlopen(f"{self.management}/roots/0", context=context) as answer:
            return bytes(answer.read())


async def _wait_for_line(
    process: trio.Process, marker: str, output: list[str], nursery: trio.Nursery
) -> None:
    """Read ``process``'s output into ``output`` (in a background task) and return once a
    line containing ``marker`` came."""
    seen = trio.Event()
    assert process.stdout is not None
    stdout = process.stdout

    async def pump() -> None:
        buffer = b""
        async for chunk in stdout:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace")
                output.append(text)
                if marker in text:
                    seen.set()

    nursery.start_soon(pump)
    with trio.fail_after(START_TIMEOUT):
        await seen.wait()


@contextlib.asynccontextmanager
async def running_pebble(
    tmp_path: Path,
    *,
    http_port: int,
    tls_port: int,
    env: Mapping[str, str] | None = None,
    blocklist: tuple[str, ...] = (),
    validity: int | None = None,
) -> AsyncIterator[Pebble]:
    """pebble and its mock DNS (every name is 127.0.0.1), validating HTTP-01 on
    ``http_port`` and TLS-ALPN-01 on ``tls_port``; stopped on exit."""
    pebble, challtestsrv = require_pebble()
    folder = tmp_path / "pebble"
    folder.mkdir()
    api_ca = trustme.CA()
    api = api_ca.issue_cert("127.0.0.1", "localhost")
    api.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    api.private_key_pem.write_to_path(str(folder / "key.pem"))
    bundle = folder / "ca.pem"  # what signed pebble's API certificate
    listen, manage, dns = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    config: dict[str, object] = {
        "listenAddress": f"127.0.0.1:{listen}",
        "managementListenAddress": f"127.0.0.1:{manage}",
        "certificate": str(folder / "cert.pem"),
        "privateKey": str(folder / "key.pem"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": False,
        "domainBlocklist": list(blocklist),
    }
    if validity is not None:
        config["certificateValidityPeriod"] = validity
    (folder / "pebble.json").write_text(json.dumps({"pebble": config}))
    environment = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",
        **(env or {}),
    }
    output: list[str] = []
    async with trio.open_nursery() as nursery:
        dns_server = await trio.lowlevel.open_process(
            [
                challtestsrv,
                "-dns01",
                f"127.0.0.1:{dns}",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-management",
                f"127.0.0.1:{free_port()}",
                "-defaultIPv6",
                "",
                "-defaultIPv4",
                "127.0.0.1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        ca = None
        try:
            await _wait_for_line(dns_server, "Starting management server", output, nursery)
            ca = await trio.lowlevel.open_process(
                [pebble, "-config", str(folder / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=environment,
                cwd=folder,
            )
            await _wait_for_line(ca, "ACME directory available", output, nursery)
            api_ca.cert_pem.write_to_path(str(bundle))
            yield Pebble(
                f"https://127.0.0.1:{listen}/dir", bundle, f"https://127.0.0.1:{manage}", output
            )
        finally:
            for process in (ca, dns_server):
                if process is not None:
                    process.kill()
                    with trio.CancelScope(shield=True):
                        await process.wait()
            nursery.cancel_scope.cancel()
