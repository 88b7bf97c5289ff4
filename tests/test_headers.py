"""Unit tests for ``trioiis._context.headers.Headers`` (IIS header semantics, injection refused)."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioiis._constants import ERROR_INVALID_PARAMETER
from trioiis._context.headers import Headers
from trioiis._errors import HResultError

# A few base names, drawn in random letter case: every operation must ignore case.
BASE_NAMES = ("x-a", "x-b", "content-type", "set-cookie")


@st.composite
def names(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from(BASE_NAMES))
    upper = draw(st.lists(st.booleans(), min_size=len(base), max_size=len(base)))
    return "".join(c.upper() if u else c for c, u in zip(base, upper, strict=True))


# Values a module may legitimately set: printable Latin-1, inner spaces and tabs allowed.
values = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=12,
)

operations = st.lists(
    st.one_of(
        st.tuples(st.just("set"), names(), values, st.booleans()),
        st.tuples(st.just("add"), names(), values, st.just(False)),
        st.tuples(st.just("delete"), names(), st.just(""), st.just(False)),
    ),
    max_size=30,
)


@given(operations)
def test_set_get_delete_match_a_dict_model(ops: list[tuple[str, str, str, bool]]) -> None:
    headers = Headers()
    # Model: lower-case name -> the list of field values (one per field line).
    model: dict[str, list[str]] = {}
    for op, name, value, replace in ops:
        key = name.lower()
        stored = value.strip(" \t")
        if op == "set":
            headers.set(name, value, replace=replace)
            if replace or key not in model:
                model[key] = [stored]
            else:
                model[key] = [", ".join([*model[key], stored])]
        elif op == "add":
            headers.add(name, value)
            model.setdefault(key, []).append(stored)
        else:
            headers.delete(name)
            model.pop(key, None)
        for base in BASE_NAMES:
            for probe in (base, base.upper(), base.title()):
                expected = model.get(base)
                assert headers.get(probe) == (", ".join(expected) if expected else None)
                assert headers.get_all(probe) == (expected or [])
                assert (probe in headers) == (base in model)
        assert len(headers) == sum(len(v) for v in model.values())
        assert sorted(n.lower() for n, _ in headers) == sorted(
            k for k, vs in model.items() for _ in vs
        )


def test_set_replace_false_appends_to_every_value_of_a_repeated_field() -> None:
    headers = Headers([("X-A", "a"), ("Other", "o"), ("x-a", "b")])
    headers.set("x-A", "v", replace=False)
    assert headers.get("X-A") == "a, b, v"
    # One field now, at the place of the first one; the other field keeps its place.
    assert list(headers) == [("X-A", "a, b, v"), ("Other", "o")]


def test_set_replace_true_overwrites_and_delete_of_absent_is_fine() -> None:
    headers = Headers([("X-A", "old")])
    headers.set("X-A", "v")
    assert headers.get("x-a") == "v"
    headers.delete("X-Never-There")
    headers.delete("X-A")
    assert headers.get("X-A") is None
    assert len(headers) == 0


@pytest.mark.parametrize(
    "value",
    [
        "a\r\nSet-Cookie: evil=1",
        "a\nInjected: 1",
        "a\rb",
        "\r\n\r\nHTTP/1.1 200 OK",
        "a\0b",
        "a\x0bb",
        "a\x0cb",
        "euro \u20ac",
    ],
)
def test_value_that_would_split_or_break_the_header_is_refused(value: str) -> None:
    headers = Headers([("X-A", "kept")])
    for call in (
        lambda: headers.set("X-A", value),
        lambda: headers.set("X-A", value, replace=False),
        lambda: headers.add("X-A", value),
        lambda: headers.set("X-New", value),
    ):
        with pytest.raises(HResultError) as info:
            call()
        assert info.value.hresult == ERROR_INVALID_PARAMETER
    assert list(headers) == [("X-A", "kept")]


@pytest.mark.parametrize(
    "name", ["", "X-A\r\nInjected", "X-A: 1", "X A", "X-A\n", "Na\0me", "X(", "caf\u00e9"]
)
def test_bad_field_name_is_refused(name: str) -> None:
    headers = Headers()
    for call in (lambda: headers.set(name, "v"), lambda: headers.add(name, "v")):
        with pytest.raises(HResultError) as info:
            call()
        assert info.value.hresult == ERROR_INVALID_PARAMETER
    assert len(headers) == 0


def test_none_name_or_value_is_refused_not_crashing() -> None:
    headers = Headers()
    for name, value in ((None, "v"), ("X-A", None)):
        with pytest.raises(HResultError) as info:
            headers.set(name, value)  # type: ignore[arg-type]
        assert info.value.hresult == ERROR_INVALID_PARAMETER


@given(name=st.text(max_size=8), value=st.text(max_size=12))
def test_whatever_is_accepted_can_be_sent_by_h11(name: str, value: str) -> None:
    headers = Headers()
    try:
        headers.set(name, value)
    except HResultError as exc:
        hresult: int | None = exc.hresult
    else:
        hresult = None
    if hresult is not None:
        assert hresult == ERROR_INVALID_PARAMETER
        assert len(headers) == 0
        return
    raw = headers.raw()
    assert not any(b"\r" in n + v or b"\n" in n + v for n, v in raw)
    # h11 validates names and values when building the event: it must not refuse.
    h11.Response(status_code=200, headers=raw)


def test_a_remembered_value_cannot_be_impersonated_by_a_str_subclass() -> None:
    """Values found sendable are remembered; a str subclass that compares and hashes equal
    to one of them is still checked itself (it could hold a line break)."""
    headers = Headers()
    headers.set("Vary", "Accept-Encoding")  # now remembered

    class Sly(str):
        def __eq__(self, other: object) -> bool:
            return True

        def __hash__(self) -> int:
            return hash("Accept-Encoding")

    with pytest.raises(HResultError):
        headers.set("Vary", Sly("x\r\nSet-Cookie: a=b"))
    assert headers.get("vary") == "Accept-Encoding"
