"""The ``--trace-when`` rule language: parse, evaluate, and say where a mistake is."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioiis._errors import ConfigError
from trioiis._observability.trace_rules import (
    FIELDS,
    FLAGS,
    RequestFacts,
    TraceRuleError,
    parse_rule,
)
from trioiis.config import ServerConfig

OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}

facts_strategy = st.builds(
    RequestFacts,
    status=st.sampled_from([200, 204, 304, 404, 499, 500, 503]),
    sub_status=st.integers(0, 20),
    time=st.sampled_from([0.0, 0.001, 0.25, 0.999, 1.0, 1.5, 30.0]),
    bytes=st.integers(0, 5000),
    cancelled=st.booleans(),
    timed_out=st.booleans(),
    failed=st.booleans(),
    io_cancelled=st.booleans(),
)


@st.composite
def comparison(draw: st.DrawFn) -> tuple[Any, ...]:
    field = draw(st.sampled_from(FIELDS))
    op = draw(st.sampled_from(sorted(OPS)))
    if field == "time":
        millis = draw(st.integers(0, 40_000))
        unit = draw(st.sampled_from(["ms", "s", ""]))
        text = str(millis) + "ms" if unit == "ms" else f"{millis / 1000:g}{unit}"
        if "e" in text:  # %g wrote an exponent: say it in milliseconds instead
            text = f"{millis}ms"
        return ("cmp", field, op, millis / 1000, text)
    value = draw(st.integers(0, 600))
    return ("cmp", field, op, value, str(value))


leaves = st.one_of(
    st.tuples(st.just("flag"), st.sampled_from(FLAGS)),
    st.tuples(st.just("const"), st.booleans()),
    comparison(),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.tuples(st.just("not"), inner),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=12,
)


def render(node: tuple[Any, ...], upper: bool, space: str) -> str:
    kind = node[0]
    word = str.upper if upper else str.lower
    if kind == "flag":
        return word(node[1])
    if kind == "const":
        return word("true" if node[1] else "false")
    if kind == "cmp":
        return f"{word(node[1])}{space}{node[2]}{space}{node[4]}"
    if kind == "not":
        return f"{word('not')} {render(node[1], upper, space)}"
    joined = f" {word(kind)} ".join(render(child, upper, space) for child in node[1])
    return f"({space}{joined}{space})"


def evaluate(node: tuple[Any, ...], facts: RequestFacts) -> bool:
    kind = node[0]
    if kind == "flag":
        return bool(getattr(facts, node[1]))
    if kind == "const":
        return bool(node[1])
    if kind == "cmp":
        return OPS[node[2]](getattr(facts, node[1]), node[3])
    if kind == "not":
        return not evaluate(node[1], facts)
    results = [evaluate(child, facts) for child in node[1]]
    return all(results) if kind == "and" else any(results)


@given(rules, st.booleans(), st.sampled_from(["", " ", "  "]), st.lists(facts_strategy, max_size=5))
def test_rule_evaluates_like_the_expression_it_says(
    node: tuple[Any, ...], upper: bool, space: str, many: list[RequestFacts]
) -> None:
    rule = parse_rule(render(node, upper, space))
    for facts in many:
        assert rule.matches(facts) == evaluate(node, facts)


@given(st.text(alphabet="statusimeorndcl_<>=!() 0123456789.xyz\t", max_size=40))
def test_any_text_parses_or_names_a_position_in_it(text: str) -> None:
    error: TraceRuleError | None = None
    try:
        parse_rule(text)
    except TraceRuleError as exc:
        error = exc
    if error is not None:
        assert 0 <= error.position <= len(text)
        assert f"at position {error.position}" in str(error)
        assert "\n" not in str(error)


def test_and_binds_tighter_than_or_and_not_tighter_than_and() -> None:
    loose = parse_rule("cancelled or failed and timed_out")
    assert loose.matches(RequestFacts(status=200, cancelled=True))
    negated = parse_rule("not cancelled and failed")
    assert not negated.matches(RequestFacts(status=200, cancelled=False, failed=False))
    assert negated.matches(RequestFacts(status=200, cancelled=False, failed=True))


def test_the_documented_rule() -> None:
    rule = parse_rule("status>=500 or cancelled or time>1s")
    assert rule.matches(RequestFacts(status=503))
    assert rule.matches(RequestFacts(status=200, cancelled=True))
    assert rule.matches(RequestFacts(status=200, time=1.001))
    assert not rule.matches(RequestFacts(status=404, time=1.0))
    assert parse_rule("time >= 250ms").matches(RequestFacts(status=200, time=0.25))


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 0, "empty"),
        ("status>=x", 8, "expected a number"),
        ("status>=5xx", 8, "not a number"),
        ("(status>1", 9, "expected ')'"),
        ("stats>1", 0, "unknown name"),
        ("status 500", 7, "expected a comparison"),
        ("status>1 cancelled", 9, "expected 'and', 'or' or the end"),
        ("status>=1.5", 8, "whole number"),
        ("cancelled and", 13, "the end of the rule"),
        ("cancelled & failed", 10, "unexpected '&'"),
    ],
)
def test_mistakes_name_their_position(text: str, position: int, words: str) -> None:
    with pytest.raises(TraceRuleError, match=re.escape(words)) as caught:
        parse_rule(text)
    assert caught.value.position == position
    assert isinstance(caught.value, ConfigError)


def test_config_refuses_a_bad_rule_at_once() -> None:
    with pytest.raises(ConfigError, match="position 6"):
        ServerConfig(trace_when="status")
    with pytest.raises(ConfigError, match="trace_max_files"):
        ServerConfig(trace_max_files=0)
