"""The ``--trace-when`` rule language: which finished requests get a trace file.

A rule is a boolean expression over one finished request (with its child requests)::

    status>=500 or cancelled or time>1s
    (status==404 and sub_status==7) or not (time<250ms)
    status>=400 and status<500 and not status==404

Grammar (keywords and field names are case-insensitive)::

    rule        := or_expr
    or_expr     := and_expr ("or" and_expr)*
    and_expr    := not_expr ("and" not_expr)*
    not_expr    := "not" not_expr | atom
    atom        := "(" or_expr ")" | comparison | flag | "true" | "false"
    comparison  := field op value
    field       := "status" | "sub_status" | "time" | "bytes"
    op          := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    value       := integer                for status, sub_status, bytes
                 | number ["ms" | "s"]    for time (a bare number is seconds)
    flag        := "cancelled"     the client left before its response was complete
                 | "timed_out"     request_timeout cancelled it
                 | "aborted"       the server cut it (send_timeout, a minimum rate,
                                   shutdown past its grace, reset_connection())
                 | "failed"        a module raised
                 | "io_cancelled"  cancel_io() aborted at least one pending I/O in its tree

``status`` and ``sub_status`` are the final response status and IIS sub-status, ``time``
the seconds the request took, ``bytes`` the body bytes it produced. A mistake is a
``TraceRuleError`` (a ``ConfigError``) that names the position, e.g.
``trace rule 'status>=x': expected a number at position 8``.

The parser is sans-IO and pure: ``parse_rule(text)`` returns a ``TraceRule`` whose
``matches(facts)`` evaluates it on a ``RequestFacts``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from .._errors import ConfigError


class TraceRuleError(ConfigError):
    """A rule that does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, text: str, message: str, position: int) -> None:
        super().__init__(f"trace rule {text!r}: {message} at position {position}")
        self.position = position


@dataclass(slots=True, kw_only=True)  # not frozen: built once per traced request, cheaply
class RequestFacts:
    """What a rule can ask about one finished request."""

    status: int
    sub_status: int = 0
    time: float = 0.0
    bytes: int = 0
    cancelled: bool = False
    timed_out: bool = False
    aborted: bool = False
    failed: bool = False
    io_cancelled: bool = False


Predicate = Callable[[RequestFacts], bool]

FIELDS: Final = ("status", "sub_status", "time", "bytes")
FLAGS: Final = ("cancelled", "timed_out", "aborted", "failed", "io_cancelled")
_OPS: Final[dict[str, Callable[[float, float], bool]]] = {
    "==": lambda a, b: a == b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?(?:ms|s)?(?![A-Za-z0-9_.]))
  | (?P<bad>\d[A-Za-z0-9_.]*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>==|!=|<=|>=|<|>|=)
  | (?P<paren>[()])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, word, op, paren, end
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise TraceRuleError(text, f"unexpected {text[position]!r}", position)
        kind = match.lastgroup
        assert kind is not None
        if kind == "bad":
            raise TraceRuleError(
                text, f"{match.group()!r} is not a number (write 500, 250ms or 1.5s)", position
            )
        if kind != "space":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


@dataclass(frozen=True, slots=True)
class TraceRule:
    """A parsed rule: ``matches(facts)``; ``text`` is what it was parsed from."""

    text: str
    _predicate: Predicate

    def matches(self, facts: RequestFacts) -> bool:
        return self._predicate(facts)


def parse_rule(text: str) -> TraceRule:
    """Parse a ``--trace-when`` rule.

    Raises:
        TraceRuleError: the rule is empty or malformed; the message names the position.
    """
    if not isinstance(text, str):
        raise ConfigError(f"trace_when must be a string, not {type(text).__name__}")
    parser = _Parser(text, _tokens(text))
    if parser.peek().kind == "end":
        raise TraceRuleError(text, "the rule is empty", 0)
    predicate = parser.or_expr()
    last = parser.peek()
    if last.kind != "end":
        raise TraceRuleError(
            text, f"expected 'and', 'or' or the end, not {last.text!r}", last.position
        )
    return TraceRule(text, predicate)


class _Parser:
    """Recursive descent over the token list, building closures (evaluated per request)."""

    def __init__(self, text: str, tokens: list[_Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0

    def peek(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def fail(self, message: str, token: _Token) -> TraceRuleError:
        found = "the end of the rule" if token.kind == "end" else repr(token.text)
        return TraceRuleError(self.text, f"{message}, found {found}", token.position)

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token.kind == "word" and token.text.lower() == word:
            self.index += 1
            return True
        return False

    def or_expr(self) -> Predicate:
        terms = [self.and_expr()]
        while self.keyword("or"):
            terms.append(self.and_expr())
        if len(terms) == 1:
            return terms[0]
        return lambda facts: any(term(facts) for term in terms)

    def and_expr(self) -> Predicate:
        terms = [self.not_expr()]
        while self.keyword("and"):
            terms.append(self.not_expr())
        if len(terms) == 1:
            return terms[0]
        return lambda facts: all(term(facts) for term in terms)

    def not_expr(self) -> Predicate:
        if self.keyword("not"):
            inner = self.not_expr()
            return lambda facts: not inner(facts)
        return self.atom()

    def atom(self) -> Predicate:
        token = self.take()
        if token.kind == "paren" and token.text == "(":
            inner = self.or_expr()
            close = self.take()
            if close.kind != "paren" or close.text != ")":
                raise self.fail("expected ')'", close)
            return inner
        if token.kind != "word":
            raise self.fail("expected a field, a flag, 'not' or '('", token)
        word = token.text.lower()
        if word in ("true", "false"):
            value = word == "true"
            return lambda facts: value
        if word in FLAGS:
            return lambda facts: bool(getattr(facts, word))
        if word not in FIELDS:
            known = ", ".join((*FIELDS, *FLAGS))
            raise self.fail(f"unknown name (known: {known})", token)
        op = self.take()
        if op.kind != "op":
            raise self.fail(f"expected a comparison (==, !=, <, <=, >, >=) after {word!r}", op)
        compare = _OPS[op.text]
        number = self.take()
        if number.kind != "number":
            raise self.fail("expected a number", number)
        limit = _value(self.text, word, number)
        return lambda facts: compare(getattr(facts, word), limit)


def _value(text: str, field: str, token: _Token) -> float:
    raw = token.text
    if field == "time":
        if raw.endswith("ms"):
            return float(raw[:-2]) / 1000
        return float(raw.removesuffix("s"))
    if not raw.isdigit():
        raise TraceRuleError(text, f"{field} takes a whole number, not {raw!r}", token.position)
    return int(raw)
