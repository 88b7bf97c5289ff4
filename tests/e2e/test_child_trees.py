"""hypothesis: random trees of buffered child requests (width, depth up to 12, some failing,
some cancelled by release) against a model of what runs, what each completion says, what
the client receives, and that nothing of the tree outlives the root request."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

import trioiis
from tests.helpers import all_tasks, register, running_server
from trioiis import CloneFlags, ExecuteFlags, HttpContext, HttpModule, Notification, Status
from trioiis._constants import E_FAIL, ERROR_OPERATION_ABORTED, MAX_CHILD_DEPTH, S_OK


@dataclass
class Node:
    id: str
    kind: str  # "ok", "fail" (raises), "hang" (never ends; the parent releases it)
    children: list[Node] = field(default_factory=list)


@st.composite
def trees(draw: st.DrawFn) -> Node:
    ids = itertools.count()
    deep = draw(st.booleans())  # a spine 12 levels deep, to meet the depth guard

    def build(depth: int, kind: str, spine: bool) -> Node:
        node = Node(f"n{next(ids)}", kind)
        if kind == "ok" and depth < 12:
            if spine:
                node.children.append(build(depth + 1, "ok", spine=True))
            width = draw(st.integers(0, 3 if depth < 2 else 1))
            for _ in range(width):
                child_kind = draw(st.sampled_from(["ok", "ok", "ok", "fail", "hang"]))
                node.children.append(build(depth + 1, child_kind, spine=False))
        return node

    return build(0, "ok", spine=deep)


def expected(node: Node, depth: int, ran: list[str], statuses: dict[str, int]) -> str:
    """The model: what the node contributes to its parent's buffer."""
    ran.append(node.id)
    if node.kind == "fail":
        statuses[node.id] = E_FAIL
        return ""
    if node.kind == "hang":
        statuses[node.id] = ERROR_OPERATION_ABORTED
        return ""
    out = f"<{node.id}"
    for child in node.children:
        if depth + 1 > MAX_CHILD_DEPTH:
            out += "!"
        else:
            out += expected(child, depth + 1, ran, statuses)
    statuses[node.id] = S_OK
    return out + f"{node.id}>"


async def scenario(site: Path, root: Node) -> None:
    nodes: dict[str, Node] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        nodes[node.id] = node
        stack.extend(node.children)
    started = {node_id: trio.Event() for node_id in nodes}
    ran: list[str] = []
    statuses: dict[str, int] = {}
    contexts: list[HttpContext] = []

    class Tree(HttpModule):
        async def on_begin_request(self, ctx: HttpContext, provider: Any) -> Status:
            contexts.append(ctx)
            node = nodes[ctx.get_server_variable("NODE")] if ctx.depth else root
            ran.append(node.id)
            started[node.id].set()
            if node.kind == "fail":
                raise RuntimeError(f"{node.id} fails")
            if node.kind == "hang":
                await trio.sleep_forever()
            ctx.response.write(f"<{node.id}")
            for spec in node.children:
                child = ctx.clone_context(CloneFlags.BASICS)
                child.set_server_variable("NODE", spec.id)
                if spec.kind == "hang":

                    async def release(child: HttpContext = child, spec: Node = spec) -> None:
                        await started[spec.id].wait()
                        child.release_cloned_context()

                    ctx.start_soon(release)
                try:
                    info = await ctx.run_child(child, ExecuteFlags.BUFFER_RESPONSE)
                except trioiis.StackOverflowError:
                    ctx.response.write("!")
                    continue
                statuses[spec.id] = info.completion_status
            ctx.response.write(f"{node.id}>")
            statuses[node.id] = S_OK
            return Status.FINISH_REQUEST

    model_ran: list[str] = []
    model_statuses: dict[str, int] = {}
    want = expected(root, 0, model_ran, model_statuses)
    tree = ("tree", register(Tree, Notification.BEGIN_REQUEST))
    async with running_server(tree, root=site) as srv, srv.client() as client:
        with trio.fail_after(20):
            response = await client.get("/")
            await trio.testing.wait_all_tasks_blocked()
        assert response.status_code == 200
        assert response.text == want
        assert sorted(ran) == sorted(model_ran)
        assert statuses == model_statuses
        for ctx in contexts:
            assert ctx.lifecycle.ended
            assert ctx.pending_io_count == 0
            assert not ctx._task_scopes
        assert "release" not in set(all_tasks())
        assert srv.server.counters.requests_in_flight == 0


@settings(max_examples=60, deadline=None)
@given(root=trees())
def test_random_child_trees_match_the_model(tmp_path_factory: Any, root: Node) -> None:
    trio.run(scenario, tmp_path_factory.mktemp("site"), root)
