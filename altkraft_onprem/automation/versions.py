"""Published workflow versions as the runner and the dispatcher read them: immutable, so each
is parsed once per process (per database, as a process may reach more than one: tests, the
CLI) with its nodes, branches and edges indexed."""
from __future__ import annotations

from sqlalchemy import Connection, select

from .definition import WorkflowDefinition
from .validate import branches
from .workflow_models import workflow_versions

_versions: dict[tuple[str, int], dict] = {}


def version(conn: Connection, version_id: int) -> dict:
    """The version row with `nodes` {id: node}, `branches` {id: names} and `edges`
    {(from, branch): to}; `campaigns` maps each send node to its campaign."""
    key = (str(conn.engine.url), version_id)
    found = _versions.get(key)
    if found is None:
        row = conn.execute(select(workflow_versions).where(
            workflow_versions.c.id == version_id)).mappings().one()
        found = dict(row)
        found["nodes"] = {n["id"]: n for n in found["definition"]["graph"]["nodes"]}
        parsed = WorkflowDefinition.model_validate(found["definition"])
        found["branches"] = {n.id: branches(n) for n in parsed.graph.nodes}
        found["edges"] = {(e["from"], e.get("branch")): e["to"]
                          for e in found["definition"]["graph"]["edges"]}
        _versions[key] = found
    return found
