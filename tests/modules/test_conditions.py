"""The built-in modules' notification conditions never skip a handler that would have acted.

``custom_errors`` (SEND_RESPONSE) and ``compression`` (BEGIN_REQUEST) tell the pipeline when
their handler can do something (``set_request_notification_condition``); elsewhere it is not
called. hypothesis draws requests and answers, and each is served twice, in memory, by the
default modules: as shipped, and with every condition taken away (every handler called). The
two responses must be the same, and the request the answering module saw too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.helpers import register, running_server
from trioiis import HttpContext, HttpModule, Notification, Status

TAGS = st.sampled_from(['"abc"', '"abc-gz"', 'W/"abc-br"', '"a-gz", "b"', "*", '"x-gz"y', ""])
STATUSES = st.sampled_from([200, 204, 206, 304, 400, 403, 404, 416, 500, 503, 999])
BODIES = st.sampled_from([b"", b"hello\n", b"404 Not Found\n", b"x" * 2000])
TYPES = st.sampled_from([None, "text/plain", "text/html", "application/octet-stream"])


class Answer(HttpModule):
    """Answers every request at BEGIN_REQUEST (after compression's handler, before
    custom_errors' and compression's SEND_RESPONSE) as the test header ``x-answer`` says,
    and echoes the conditional headers it saw."""

    async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
        request, response = ctx.request, ctx.response
        status, body, kind, skip = request.get_header("x-answer").split("|")  # type: ignore[union-attr]
        response.set_status(int(status), try_skip_custom_errors=skip == "skip")
        for name in ("if-none-match", "if-match"):
            response.set_header(f"x-seen-{name}", repr(request.get_header(name)))
        if kind:
            response.set_header("Content-Type", kind)
        if body:
            response.write(bytes.fromhex(body))
        return Status.FINISH_REQUEST


async def serve(site: Path, headers: dict[str, str], method: str, conditions: bool) -> Any:
    async with running_server(
        ("answer", register(Answer, Notification.BEGIN_REQUEST)),
        root=site,
        transport="memory",
    ) as srv:
        if not conditions:
            srv.server.pipeline._conditions.clear()
        else:
            assert srv.server.pipeline._conditions  # (the built-ins do state some)
        async with srv.client() as client:
            response = await client.request(method, "/answer", headers=headers)
    return response.status_code, sorted(response.headers.items()), response.content


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD"]),
    status=STATUSES,
    body=BODIES,
    kind=TYPES,
    skip=st.booleans(),
    if_none_match=TAGS,
    if_match=TAGS,
    accept=st.sampled_from([None, "gzip", "br, gzip", "identity"]),
)
def test_conditions_skip_only_handlers_that_would_do_nothing(
    tmp_path_factory: Any,
    method: str,
    status: int,
    body: bytes,
    kind: str | None,
    skip: bool,
    if_none_match: str,
    if_match: str,
    accept: str | None,
) -> None:
    site = tmp_path_factory.mktemp("site")
    answer = f"{status}|{body.hex()}|{kind or ''}|{'skip' if skip else ''}"
    headers = {"x-answer": answer}
    if if_none_match:
        headers["If-None-Match"] = if_none_match
    if if_match:
        headers["If-Match"] = if_match
    if accept is not None:
        headers["Accept-Encoding"] = accept
    shipped = trio.run(serve, site, headers, method, True)
    every_handler = trio.run(serve, site, headers, method, False)
    assert shipped == every_handler
