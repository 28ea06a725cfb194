"""Validation of a workflow at publish: the schema, the graph, and what the nodes refer to.

Every refusal is a ServiceError whose message names the node (or edge, or trigger) and the
reason — "node wait1 (wait): …" — and whose field is its place in the JSON.
"""
from __future__ import annotations

import json

from pydantic import ValidationError
from sqlalchemy import Connection, select

from altkraft_onprem.audience import fields as field_service
from altkraft_onprem.audience import segment_conditions
from altkraft_onprem.audience import segments as segment_service
from altkraft_onprem.audience.models import STANDARD_FIELDS, lists, normalise_email, segments
from altkraft_onprem.campaigns.models import campaigns
from altkraft_onprem.errors import NotFound, ServiceError
from altkraft_onprem.messages.service import require_sendable

from . import split_winner
from .definition import BRANCHES, WorkflowDefinition, backfill_possible
from .workflow_models import workflows


def _node_label(raw: dict, index: int) -> str:
    try:
        node = raw["graph"]["nodes"][index]
        return f"node {node.get('id', index)} ({node.get('type', '?')})"
    except (KeyError, IndexError, TypeError, AttributeError):
        return f"node {index}"


def parse(raw) -> WorkflowDefinition:
    """The schema check; the first error names the node when it is inside one."""
    try:
        return WorkflowDefinition.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        loc = list(error["loc"])
        where = ".".join(str(p) for p in loc)
        if loc[:2] == ["graph", "nodes"] and len(loc) > 2 and isinstance(loc[2], int):
            label = _node_label(raw, loc[2])
            if error["type"] == "union_tag_invalid":
                kind = error.get("ctx", {}).get("tag", "?")
                raise ServiceError("%(label)s: unknown node type %(kind)s", where, label=label, kind=repr(kind)) from None
            rest = ".".join(str(p) for p in loc[4:]) or "config"
            raise ServiceError("%(label)s: %(rest)s: %(msg)s", where, label=label, rest=rest, msg=error['msg']) from None
        if error["type"] == "union_tag_invalid" and loc[:1] == ["trigger"]:
            raise ServiceError("unknown trigger type %(tag)s", where, tag=repr(error['ctx']['tag'])) from None
        raise ServiceError("%(value)s: %(msg)s", where or "workflow", value=where or 'workflow', msg=error['msg']) from None


def check(conn: Connection, raw, workflow_id: int | None = None) -> WorkflowDefinition:
    """The whole check; returns the parsed definition or raises ServiceError."""
    definition = parse(raw)
    _check_trigger(conn, definition)
    if not backfill_possible(definition):
        raise ServiceError("entry.backfill: %(backfill)s is not possible for the trigger "
                           "%(type)s", "entry.backfill", backfill=json.dumps(definition.entry.backfill),
                           type=definition.trigger.type)
    _check_graph(definition)
    for index, node in enumerate(definition.graph.nodes):
        try:
            _check_references(conn, node, workflow_id)
        except ServiceError as exc:
            raise ServiceError("node %(id)s (%(type)s): %(text)s",
                               f"graph.nodes.{index}.config", id=node.id, type=node.type, text=exc) from None
    return definition


def _check_graph(definition: WorkflowDefinition) -> None:
    graph = definition.graph
    nodes = {}
    for index, node in enumerate(graph.nodes):
        if node.id in nodes:
            raise ServiceError("node %(id)s: two nodes have this id", f"graph.nodes.{index}.id", id=node.id)
        nodes[node.id] = node
    if graph.start not in nodes:
        raise ServiceError("the start node %(start)s does not exist", "graph.start", start=graph.start)
    taken: set[tuple[str, str | None]] = set()
    for index, edge in enumerate(graph.edges):
        where = f"graph.edges.{index}"
        for end in (edge.from_, edge.to):
            if end not in nodes:
                raise ServiceError("edge %(from_)s -> %(to)s: node %(end)s does not exist (a dangling edge)", where, from_=edge.from_, to=edge.to, end=end)
        source = nodes[edge.from_]
        allowed = branches(source)
        if edge.branch not in allowed:
            names = ", ".join(repr(b) for b in allowed if b) or "none"
            raise ServiceError("node %(id)s (%(type)s): no branch %(branch)s (branches: %(names)s)", where, id=source.id, type=source.type, branch=repr(edge.branch), names=names)
        if (edge.from_, edge.branch) in taken:
            raise ServiceError("node %(id)s (%(type)s): two edges leave by branch %(branch)s", where, id=source.id, type=source.type, branch=repr(edge.branch))
        taken.add((edge.from_, edge.branch))
    for node in graph.nodes:
        if node.type == "goto" and node.config.target not in nodes:
            raise ServiceError("node %(id)s (goto): target %(target)s does not exist",
                               "graph.nodes", id=node.id, target=node.config.target)
    _check_split_winners(graph)
    cycle = _cycle(graph)
    if cycle:
        raise ServiceError("a cycle without a bounded go-to: %(cycle)s (node %(node)s); loop back "
                           "with a goto node", "graph.edges", cycle=" -> ".join(cycle), node=cycle[0])


def _check_split_winners(graph) -> None:
    """A split that picks its winner judges each branch by the first email on its path."""
    types = {node.id: node.type for node in graph.nodes}
    edges = {(edge.from_, edge.branch): edge.to for edge in graph.edges}
    for index, node in enumerate(graph.nodes):
        if node.type != "split" or node.config.winner is None:
            continue
        where = f"graph.nodes.{index}.config.winner"
        if node.config.winner.test_size < len(node.config.variants):
            raise ServiceError("node %(id)s (split): the test group needs at least one person "
                               "per branch", where, id=node.id)
        sends = split_winner.first_sends(types, edges, node.id, node.config.variants)
        for branch, send in sends.items():
            if send is None:
                raise ServiceError("node %(id)s (split): branch %(branch)s sends no email to "
                                   "judge it by", where, id=node.id, branch=branch)
        for branch, send in sends.items():
            # The email that judges a branch must reach that branch's people only: one that
            # another branch's people reach too (branches that converge) mixes their figures.
            other = next((b for b in sends if b != branch and send in split_winner.reachable(
                edges, edges.get((node.id, b)))), None)
            if other is not None:
                raise ServiceError("node %(id)s (split): branch %(branch)s is judged by the email "
                                   "of node %(send)s, which people of branch %(other)s reach too; "
                                   "give each branch an email of its own before the branches "
                                   "meet", where, id=node.id, branch=branch, send=send, other=other)


def branches(node) -> tuple[str | None, ...]:
    if node.type == "switch":
        return (*[case.branch for case in node.config.cases], "default")
    if node.type == "split":
        return tuple(node.config.variants)
    if node.type == "wait_until" and node.config.conditions is not None:
        return (None, "timeout")
    return BRANCHES.get(node.type, (None,))


def _cycle(graph) -> list[str] | None:
    """A cycle of edges (goto jumps are not edges: they are bounded), or None."""
    following: dict[str, list[str]] = {node.id: [] for node in graph.nodes}
    for edge in graph.edges:
        following[edge.from_].append(edge.to)
    state: dict[str, int] = {}          # 1 on the path, 2 done
    path: list[str] = []

    def visit(node_id: str) -> list[str] | None:
        state[node_id] = 1
        path.append(node_id)
        for nxt in following[node_id]:
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node_id] = 2
        return None

    for node_id in following:
        if node_id not in state:
            found = visit(node_id)
            if found:
                return found
    return None


def _exists(conn: Connection, table, item_id: int) -> None:
    if conn.execute(select(table.c.id).where(table.c.id == item_id)).first() is not None:
        return
    if table is lists:
        raise ServiceError("list %(list_id)s does not exist", list_id=item_id)
    if table is segments:
        raise ServiceError("segment %(segment_id)s does not exist", segment_id=item_id)
    if table is campaigns:
        raise ServiceError("campaign %(campaign_id)s does not exist", campaign_id=item_id)
    raise ServiceError("workflow %(workflow_id)s does not exist", workflow_id=item_id)


def check_field(conn: Connection, name: str) -> str:
    """A field a workflow reads or writes: standard, or custom.KEY that is defined."""
    if name in STANDARD_FIELDS and name != "email":
        return name
    if name.removeprefix("custom.") in field_service.definitions(conn):
        return name
    raise ServiceError("field %(name)s does not exist (standard fields, or custom.KEY of a defined "
                       "custom field)", name=repr(name))


def _check_trigger(conn: Connection, definition: WorkflowDefinition) -> None:
    trigger = definition.trigger
    try:
        if getattr(trigger, "list_id", None) is not None:
            _exists(conn, lists, trigger.list_id)
        if getattr(trigger, "segment_id", None) is not None:
            _exists(conn, segments, trigger.segment_id)
        if trigger.type == "field_changed":
            check_field(conn, trigger.field)
        if trigger.type == "date_field":
            check_field(conn, trigger.field)
            segment_service.date_text(conn, trigger.field)
        if trigger.type in ("not_opened", "not_clicked") or (
                trigger.type == "email_delivered" and trigger.campaign_id is not None):
            _exists(conn, campaigns, trigger.campaign_id)
    except ServiceError as exc:
        raise ServiceError("trigger %(type)s: %(text)s", "trigger", type=trigger.type, text=exc) from None
    for key in ("segment_id", "exit_segment_id"):
        segment_id = getattr(definition.entry, key)
        if segment_id is not None:
            try:
                _exists(conn, segments, segment_id)
            except ServiceError as exc:
                raise ServiceError("entry: %(text)s", f"entry.{key}", text=exc) from None


def _check_references(conn: Connection, node, workflow_id: int | None) -> None:
    config = node.config
    if node.type == "send_email":
        require_sendable(conn, config.message_id)
        try:
            normalise_email(config.from_email)
        except ValueError as exc:
            raise ServiceError("from_email: %(exc)s", exc=exc) from None
    elif node.type == "update_fields":
        for name in config.fields:
            check_field(conn, name)
    elif node.type == "webhook":
        for name in config.map.values():
            check_field(conn, name)
    elif node.type == "wait_until":
        forms = [config.at is not None, config.weekdays is not None, config.field is not None,
                 config.conditions is not None]
        if sum(forms) != 1:
            raise ServiceError("give exactly one of at, weekdays (with time), field (with time) "
                               "or conditions (with timeout)")
        if config.field is not None:
            check_field(conn, config.field)
        if config.conditions is not None:
            if config.timeout is None:
                raise ServiceError("conditions need a timeout (ISO 8601, e.g. P7D)")
            segment_conditions.validate(conn, config.conditions)
    elif node.type in ("add_to_list", "remove_from_list"):
        _exists(conn, lists, config.list_id)
    elif node.type == "condition":
        segment_conditions.validate(conn, config.conditions)
    elif node.type == "switch":
        for case in config.cases:
            segment_conditions.validate(conn, case.conditions)
    elif node.type == "enroll":
        if config.workflow_id == workflow_id:
            raise ServiceError("a workflow cannot enroll people in itself (use goto)")
        try:
            _exists(conn, workflows, config.workflow_id)
        except NotFound:
            raise ServiceError("workflow %(workflow_id)s does not exist", workflow_id=config.workflow_id) from None
