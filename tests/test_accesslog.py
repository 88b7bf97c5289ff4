"""Access-log line formats."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trioiis._observability.accesslog import (
    FORMATS,
    W3C_FIELDS,
    Entry,
    Format,
    format_entry,
    header,
)

ENTRY = Entry(
    started=1_790_000_000.0,
    taken=0.0125,
    remote="127.0.0.1",
    local="127.0.0.1",
    port=8080,
    user=None,
    method="GET",
    url="/a b?x=1",
    http_version="1.1",
    status=404,
    sub_status=8,
    win32_status=0,
    bytes_sent=512,
    referer='https://ref.example/"q"',
    user_agent="curl/8.0",
    outcome="ok",
    site="blog",
)


def test_combined_line_has_quoted_referer_and_agent() -> None:
    line = format_entry(ENTRY, "combined")
    assert line.startswith("127.0.0.1 - - [")
    assert '"GET /a b?x=1 HTTP/1.1" 404 512 "https://ref.example/\\"q\\"" "curl/8.0"' in line
    assert line.endswith("12.5ms ok blog")  # the site's name ends every line


def test_common_line_has_no_referer() -> None:
    line = format_entry(ENTRY, "common")
    assert "curl" not in line
    assert line.endswith('"GET /a b?x=1 HTTP/1.1" 404 512 12.5ms ok blog')


def test_w3c_line_matches_its_fields_header() -> None:
    top = header("w3c")
    assert top is not None
    assert top.splitlines()[-1] == f"#Fields: {W3C_FIELDS}"
    fields = format_entry(ENTRY, "w3c").split(" ")
    names = W3C_FIELDS.split(" ")
    # date and time are two fields; every value is one token (spaces become +).
    assert len(fields) == len(names)
    record = dict(zip(names, fields, strict=True))
    assert record["cs-uri-stem"] == "/a+b"
    assert record["cs-uri-query"] == "x=1"
    assert (record["sc-status"], record["sc-substatus"], record["time-taken"]) == ("404", "8", "12")
    assert record["cs-username"] == "-"
    assert record["s-sitename"] == "blog"


def test_json_line_names_every_field() -> None:
    record = json.loads(format_entry(ENTRY, "json"))
    assert record["status"] == 404
    assert record["sub_status"] == 8
    assert record["time_taken_ms"] == 12.5
    assert record["user"] is None
    assert record["site"] == "blog"
    assert header("json") is None


@pytest.mark.parametrize("fmt", FORMATS)
@given(url=st.text(max_size=40), agent=st.one_of(st.none(), st.text(max_size=40)))
def test_every_format_is_exactly_one_line(fmt: Format, url: str, agent: str | None) -> None:
    line = format_entry(replace(ENTRY, url=url, user_agent=agent), fmt)
    assert len(line.splitlines()) == 1
    assert line.isprintable()
