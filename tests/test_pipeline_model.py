"""Property test: the order of handler calls matches a plain model of the pipeline rules.

Hypothesis draws a set of modules (random event and post-event masks, random priorities,
random statuses: CONTINUE, None or FINISH_REQUEST per handler) and a handler mapping; each
example serves one request through the real server and pipeline, in memory
(``serve_in_memory`` over a ``MemoryTransport``: the order of calls does not depend on the
wire, and the socket path runs the same in tests/e2e/test_pipeline_spec.py), and compares
the recorded calls with ``expected_calls``, which restates DESIGN.md's rules without
looking at pipeline.py:

* stages in table order; for each stage the event, then its post-event;
* within one (post-)notification: FIRST, HIGH, MEDIUM (default), LOW, LAST, ties in
  registration order; the post-event priority defaults to the event's; SEND_RESPONSE runs
  the whole order backwards;
* EXECUTE_REQUEST_HANDLER goes only to the handler mapping's modules, in the mapping's
  order (its post-event goes to every subscriber);
* FINISH_REQUEST skips every remaining module and stage up to the sending of the response;
  SEND_RESPONSE (once, for the final send) still runs — a FINISH_REQUEST there stops the
  rest of SEND_RESPONSE — and LOG_REQUEST, END_REQUEST and their post-events always run for
  every subscriber (project decision: nothing is left to skip once the response is sent).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import trio
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

import trioiis
from trioiis import (
    HandlerMapping,
    HttpServer,
    ModuleRegistrationInfo,
    Priority,
    ServerConfig,
    Status,
)
from trioiis import Notification as N
from trioiis._constants import DETERMINISTIC_STAGES
from trioiis._lifecycle import Outcome
from trioiis._protocol.memory_transport import MemoryResponse, MemoryTransport

PRIORITY_ORDER = (Priority.FIRST, Priority.HIGH, Priority.MEDIUM, Priority.LOW, Priority.LAST)
EVENT_BITS = (*DETERMINISTIC_STAGES, N.SEND_RESPONSE)
STATUSES = (Status.CONTINUE, None, Status.FINISH_REQUEST)
_NONE = N(0)


def method_name(bit: N, post: bool) -> str:
    base = "on_" + str(bit.name).lower()
    return base.replace("on_", "on_post_", 1) if post else base


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    events: frozenset[N]
    posts: frozenset[N]
    priorities: tuple[tuple[N, Priority], ...]  # set for some of ``events``
    post_priorities: tuple[tuple[N, Priority], ...]  # set for some of ``posts``
    statuses: tuple[tuple[str, Status | None], ...]  # method name -> what it returns

    def priority(self, bit: N, post: bool) -> Priority:
        event = dict(self.priorities).get(bit, Priority.MEDIUM)
        return dict(self.post_priorities).get(bit, event) if post else event

    def status(self, method: str) -> Status | None:
        return dict(self.statuses).get(method, Status.CONTINUE)


@dataclass(frozen=True)
class Case:
    modules: tuple[ModuleSpec, ...]
    mapping: tuple[str, ...]  # EXECUTE_REQUEST_HANDLER modules, in this order


#: The strategies a case is drawn from, made once: building strategies per draw (a
#: ``sampled_from`` of this module's bits, a ``dictionaries``) cost more than serving.
_EVENT_MASK = st.integers(min_value=0, max_value=2 ** len(EVENT_BITS) - 1)
_POST_MASK = st.integers(min_value=0, max_value=2 ** len(DETERMINISTIC_STAGES) - 1)
#: A priority set for one (post-)event, or None: the default.
_PRIORITY = st.none() | st.sampled_from(Priority)
#: Up to 3 handlers that return something else than CONTINUE: (which, what), ``which``
#: taken modulo the module's handlers (a later pick of the same handler wins).
_STATUS_PICKS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=63), st.sampled_from(STATUSES)), max_size=3
)
_MODULE_COUNT = st.integers(min_value=1, max_value=5)
_ORDERS = {n: st.permutations(range(n)) for n in range(1, 6)}
_PREFIX = {n: st.integers(min_value=0, max_value=n) for n in range(1, 6)}


def _bits(mask: int, bits: tuple[N, ...]) -> frozenset[N]:
    return frozenset(bit for i, bit in enumerate(bits) if mask >> i & 1)


def draw_module_spec(draw: st.DrawFn, name: str) -> ModuleSpec:
    """Random event and post-event masks, priorities for some of them, statuses for up to
    three handlers."""
    events = _bits(draw(_EVENT_MASK), EVENT_BITS)
    posts = _bits(draw(_POST_MASK), DETERMINISTIC_STAGES)
    priorities = {bit: draw(_PRIORITY) for bit in sorted(events)}
    post_priorities = {bit: draw(_PRIORITY) for bit in sorted(posts)}
    methods = sorted(
        [method_name(b, False) for b in events] + [method_name(b, True) for b in posts]
    )
    statuses: dict[str, Status | None] = {}
    if methods:
        statuses = {methods[i % len(methods)]: status for i, status in draw(_STATUS_PICKS)}
    return ModuleSpec(
        name=name,
        events=events,
        posts=posts,
        priorities=tuple((b, p) for b, p in priorities.items() if p is not None),
        post_priorities=tuple((b, p) for b, p in post_priorities.items() if p is not None),
        statuses=tuple(sorted(statuses.items())),
    )


def draw_mapping(draw: st.DrawFn, names: list[str]) -> tuple[str, ...]:
    """Some of ``names``, in a random order: the handler mapping."""
    order = draw(_ORDERS[len(names)])
    return tuple(names[i] for i in order[: draw(_PREFIX[len(names)])])


@st.composite
def cases(draw: st.DrawFn) -> Case:
    count = draw(_MODULE_COUNT)
    modules = [draw_module_spec(draw, f"m{i}") for i in range(count)]
    return Case(tuple(modules), draw_mapping(draw, [m.name for m in modules]))


def subscribers(case: Case, bit: N, post: bool) -> list[ModuleSpec]:
    """Who gets (bit, post), in order: priority buckets, registration order inside each."""
    order = [
        spec
        for priority in PRIORITY_ORDER
        for spec in case.modules
        if bit in (spec.posts if post else spec.events) and spec.priority(bit, post) == priority
    ]
    return order[::-1] if bit is N.SEND_RESPONSE else order


def expected_calls(case: Case) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    by_name = {spec.name: spec for spec in case.modules}

    def deliver(specs: list[ModuleSpec], bit: N, post: bool, *, may_stop: bool) -> bool:
        method = method_name(bit, post)
        for spec in specs:
            calls.append((spec.name, method))
            if may_stop and spec.status(method) is Status.FINISH_REQUEST:
                return True
        return False

    finished = False
    for bit in DETERMINISTIC_STAGES[:10]:
        for post in (False, True):
            if finished:
                break
            if bit is N.EXECUTE_REQUEST_HANDLER and not post:
                specs = [by_name[n] for n in case.mapping if bit in by_name[n].events]
            else:
                specs = subscribers(case, bit, post)
            finished = deliver(specs, bit, post, may_stop=True)
    deliver(subscribers(case, N.SEND_RESPONSE, False), N.SEND_RESPONSE, False, may_stop=True)
    for bit in DETERMINISTIC_STAGES[10:]:
        for post in (False, True):
            deliver(subscribers(case, bit, post), bit, post, may_stop=False)
    return calls


def module_class(spec: ModuleSpec, calls: list[tuple[str, str]]) -> type[trioiis.HttpModule]:
    def make(method: str) -> Any:
        async def handler(self: Any, ctx: trioiis.HttpContext, provider: Any) -> Status | None:
            calls.append((spec.name, method))
            return spec.status(method)

        return handler

    methods = {method_name(b, False): make(method_name(b, False)) for b in spec.events}
    methods |= {method_name(b, True): make(method_name(b, True)) for b in spec.posts}
    return type(spec.name, (trioiis.HttpModule,), methods)


def registration(spec: ModuleSpec, calls: list[tuple[str, str]]) -> Any:
    def register_module(
        server_version: int, info: ModuleRegistrationInfo, server: trioiis.GlobalServer
    ) -> None:
        events = N(sum(int(b) for b in spec.events))
        posts = N(sum(int(b) for b in spec.posts))
        info.set_request_notifications(
            trioiis.SimpleFactory(module_class(spec, calls)), events, posts
        )
        for bit, priority in spec.priorities:
            info.set_priority_for_request_notification(bit, priority)
        for bit, priority in spec.post_priorities:
            info.set_priority_for_post_request_notification(bit, priority)

    return register_module


async def serve_one(case: Case, calls: list[tuple[str, str]]) -> MemoryResponse:
    """One GET through a fresh server running ``case``'s modules, in memory and in this task
    (``serve`` is not started: the order of calls needs no listener, and the server's own
    life is tested over both transports in tests/e2e/test_pipeline_spec.py)."""
    server = HttpServer(
        ServerConfig(builtin_modules=False, handlers=(HandlerMapping("*", case.mapping),))
    )
    for spec in case.modules:
        server.register_module(spec.name, registration(spec, calls))
    transport = MemoryTransport()
    try:
        with trio.fail_after(10):
            outcome = await server.serve_in_memory(
                transport, method="GET", target="/", headers=[(b"Host", b"model")]
            )
    finally:
        server.pipeline.terminate()
    assert outcome is Outcome.COMPLETED
    return transport.response


def served_ok(response: MemoryResponse) -> bool:
    """One whole 200 response reached the client."""
    return response.status == 200 and response.complete


def _spec(name: str, events: N, posts: N = _NONE, **statuses: Status | None) -> ModuleSpec:
    return ModuleSpec(
        name=name,
        events=frozenset(events),
        posts=frozenset(posts),
        priorities=(),
        post_priorities=(),
        statuses=tuple(sorted(statuses.items())),
    )


_TAIL = N.LOG_REQUEST | N.END_REQUEST
#: FINISH_REQUEST from SEND_RESPONSE: the rest of SEND_RESPONSE is skipped, the tail is not.
FINISH_IN_SEND = Case(
    (
        _spec("a", N.SEND_RESPONSE | _TAIL, _TAIL),
        _spec("b", N.SEND_RESPONSE | _TAIL, _TAIL, on_send_response=Status.FINISH_REQUEST),
    ),
    (),
)
#: FINISH_REQUEST from LOG_REQUEST stops nothing: b still logs, both still end.
FINISH_IN_LOG = Case(
    (
        _spec("a", _TAIL, _TAIL, on_log_request=Status.FINISH_REQUEST),
        _spec("b", _TAIL, _TAIL),
    ),
    (),
)
#: FINISH_REQUEST from the handler mapping's first module: the second one is skipped.
FINISH_IN_EXECUTE = Case(
    (
        _spec("a", N.EXECUTE_REQUEST_HANDLER | N.RELEASE_REQUEST_STATE | _TAIL),
        _spec("b", N.EXECUTE_REQUEST_HANDLER, on_execute_request_handler=Status.FINISH_REQUEST),
    ),
    ("b", "a"),
)


@example(FINISH_IN_SEND)
@example(FINISH_IN_LOG)
@example(FINISH_IN_EXECUTE)
@settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(cases())
def test_pipeline_call_order_matches_the_model(case: Case) -> None:
    calls: list[tuple[str, str]] = []
    assert served_ok(trio.run(serve_one, case, calls))
    assert calls == expected_calls(case)


def test_model_sanity_one_module_everything() -> None:
    """The model itself: one module on every stage sees the 24 deterministic calls plus
    SEND_RESPONSE between UPDATE_REQUEST_CACHE's post-event and LOG_REQUEST."""
    spec = ModuleSpec(
        name="m",
        events=frozenset(EVENT_BITS),
        posts=frozenset(DETERMINISTIC_STAGES),
        priorities=(),
        post_priorities=(),
        statuses=(),
    )
    names = [m for _, m in expected_calls(Case((spec,), ("m",)))]
    assert len(names) == 25
    assert names[:2] == ["on_begin_request", "on_post_begin_request"]
    assert names[19:22] == ["on_post_update_request_cache", "on_send_response", "on_log_request"]


class PipelineMachine(RuleBasedStateMachine):
    """Rule-based: load modules one by one (random masks, priorities and statuses), change
    the handler mapping, and serve a request at any point; every request's calls must match
    the model for the modules loaded so far."""

    def __init__(self) -> None:
        super().__init__()
        self.modules: list[ModuleSpec] = []
        self.mapping: tuple[str, ...] = ()

    @precondition(lambda self: len(self.modules) < 5)
    @rule(data=st.data())
    def load_module(self, data: st.DataObject) -> None:
        self.modules.append(draw_module_spec(data.draw, f"m{len(self.modules)}"))

    @precondition(lambda self: bool(self.modules))
    @rule(data=st.data())
    def map_handlers(self, data: st.DataObject) -> None:
        self.mapping = draw_mapping(data.draw, [m.name for m in self.modules])

    @rule()
    def serve_a_request(self) -> None:
        case = Case(tuple(self.modules), self.mapping)
        calls: list[tuple[str, str]] = []
        assert served_ok(trio.run(serve_one, case, calls))
        assert calls == expected_calls(case)


PipelineMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_pipeline_machine = PipelineMachine.TestCase
