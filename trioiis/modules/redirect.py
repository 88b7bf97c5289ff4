"""redirect: configured redirect rules, answered at BEGIN_REQUEST (not loaded by default).

``rules`` is an array of tables, tried in order; the first that matches answers::

    [[modules]]
    name = "redirect"
    options = { rules = [
        { from = "/old.html", to = "/new.html" },                       # exact, 301
        { from = "/blog", to = "https://blog.example.com", status = 308, prefix = true },
    ] }

* ``from`` is a path starting with ``/``, compared with the request's path as sent (not
  decoded). An exact rule matches that path only and redirects to ``to`` as written (the
  query is not carried over). A ``prefix`` rule matches the path and everything below it
  (``/blog`` matches ``/blog``, ``/blog/`` and ``/blog/x``, not ``/blogger``) and keeps the
  rest of the path and the query: ``/blog/a?b=1`` → ``https://blog.example.com/a?b=1``.
* ``status`` is 301 (the default), 302, 307 or 308. ``Location`` is absolute (a relative
  ``to`` is resolved against the request's host, as ``HttpResponse.redirect`` does) and the
  body is empty.

With no rules the module subscribes to nothing and costs nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

import trioiis
from trioiis import HttpContext, HttpModule, Notification, Status

from ._options import check_keys

NAME = "redirect"
STATUSES = (301, 302, 307, 308)
RULE_KEYS = {"from", "to", "status", "prefix"}


@dataclass(frozen=True, slots=True)
class Rule:
    source: str
    target: str
    status: int = 301
    prefix: bool = False

    def location(self, path: str) -> str | None:
        """Where ``path`` goes, or None when this rule does not match it."""
        if path == self.source:
            return self.target
        if not self.prefix:
            return None
        base = self.source.rstrip("/")
        if not path.startswith(base + "/"):
            return None
        rest = path[len(base) :].lstrip("/")
        # One "/" between them whatever their ends, so "//host" can never be formed.
        return f"{self.target.rstrip('/')}/{rest}"


def parse_rules(options: Mapping[str, object]) -> tuple[Rule, ...]:
    check_keys(NAME, options, {"rules"})
    raw = options.get("rules", [])
    if not isinstance(raw, list | tuple):
        raise ValueError(f"{NAME}: option 'rules' must be an array of tables")
    rules = []
    for i, item in enumerate(raw):
        where = f"{NAME}: rules[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where} must be a table")
        unknown = sorted(set(item) - RULE_KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        source, target = item.get("from"), item.get("to")
        status, prefix = item.get("status", 301), item.get("prefix", False)
        if not isinstance(source, str) or not source.startswith("/"):
            raise ValueError(f"{where}: 'from' must be a path starting with '/'")
        if not isinstance(target, str) or not target.strip():
            raise ValueError(f"{where}: 'to' must be a non-empty string")
        if any(c in target for c in "\r\n\0"):
            raise ValueError(f"{where}: 'to' must not contain control characters")
        if type(status) is not int or status not in STATUSES:
            raise ValueError(f"{where}: 'status' must be one of 301, 302, 307, 308")
        if not isinstance(prefix, bool):
            raise ValueError(f"{where}: 'prefix' must be true or false")
        rules.append(Rule(source, target, status, prefix))
    return tuple(rules)


class RedirectModule(HttpModule):
    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = rules

    async def on_begin_request(self, ctx: HttpContext, provider: trioiis.EventProvider) -> Status:
        request, response = ctx.request, ctx.response
        path = request.raw_path
        for rule in self.rules:
            location = rule.location(path)
            if location is None:
                continue
            response.clear()
            response.redirect(location, include_query=rule.prefix)
            response.set_status(rule.status)
            return Status.FINISH_REQUEST
        return Status.CONTINUE


def register_module(
    server_version: int, info: trioiis.ModuleRegistrationInfo, server: trioiis.GlobalServer
) -> None:
    rules = parse_rules(info.options)
    if rules:
        info.set_request_notifications(
            trioiis.SimpleFactory(functools.partial(RedirectModule, rules)),
            Notification.BEGIN_REQUEST,
        )
