"""Virtual hosts: which site serves a request, by its ``Host`` (IIS site bindings by host
header). The top-level ``root`` is site 1; ``[[sites]]`` are numbered from 2 in order."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .._context.connection import Site
from ..config import SiteConfig


class SiteTable:
    """The server's sites, looked up by host name (any case, port stripped)."""

    def __init__(self, root: Path, sites: Sequence[SiteConfig]) -> None:
        self.top = Site(1, "default", root)
        self._by_host: dict[str, Site] = {}
        self._default = self.top
        for number, config in enumerate(sites, 2):
            site = Site(number, config.name, config.root)
            self._by_host.update(dict.fromkeys(config.hosts, site))
            if config.default and self._default is self.top:
                self._default = site

    def site_for(self, headers: Sequence[tuple[bytes, bytes]]) -> Site:
        """The site whose hosts hold the request's ``Host`` field (lower-case names; an
        absolute-form target's authority is its Host by now), else the default site."""
        if not self._by_host:
            return self._default
        for name, value in headers:
            if name == b"host":
                return self._by_host.get(host_name(value.decode("latin-1")), self._default)
        return self._default


def host_name(authority: str) -> str:
    """``"Example.test:8443"`` → ``"example.test"``; ``"[::1]:80"`` → ``"[::1]"``."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        end = authority.find("]")
        return authority[: end + 1] if end > 0 else authority
    return authority.partition(":")[0].rstrip(".")
