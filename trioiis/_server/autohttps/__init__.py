"""Automatic HTTPS: certificates from any ACME CA (RFC 8555), obtained and renewed by the
server itself (docs/automatic-https.md).

* ``manager``: ``AutoHttps``, one per server: the SNI table, the per-host renewal tasks,
  the TLS-ALPN-01 answers and the ``acme_challenge`` module (HTTP-01 and the redirect).
* ``order``: one order with the ``acme`` library, in a thread (the ``acme`` extra).
* ``store``: the state folder shared by restarts and workers (files, fcntl locks).
* ``client_hello``: the server name and ALPN list of a peeked ClientHello.
"""

from __future__ import annotations

from .manager import AutoHttps, Domain, plan

__all__ = ["AutoHttps", "Domain", "plan"]
