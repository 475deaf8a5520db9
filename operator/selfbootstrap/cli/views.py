"""How the plugin shows things: rich trees and tables, facts first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Group
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from .. import models as m
from ..adapters import kube as k
from ..core import record
from ..core.jsontypes import JsonObject, integer, obj, objects, path, strings, text
from ..core.releases import image_of, release_id_of, strip_hash
from .plan import Plan

STYLE = {"Succeeded": "green", "Superseded": "cyan", "RolledBack": "yellow", "Failed": "red"}


def age(when: str | None, now: datetime) -> str:
    if not when:
        return "-"
    seconds = int((now - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def phase_text(phase: str | None) -> Text:
    return Text(phase or "-", style=STYLE.get(phase or "", "bold"))


def phase_times(status: JsonObject) -> list[tuple[str, float]]:
    """Seconds spent in each phase, in order, from the history (the last phase until it ended or now)."""
    history = objects(status.get("history"))
    out: list[tuple[str, float]] = []
    for entry, after in zip(history, [*history[1:], None], strict=True):
        start = datetime.fromisoformat(text(entry.get("at")) or "")
        end = datetime.fromisoformat(text(after.get("at")) or "") if after else None
        phase = text(entry.get("phase")) or "?"
        if phase in m.TERMINAL_PHASES:
            continue
        spent = ((end or datetime.now(UTC)) - start).total_seconds()
        if out and out[-1][0] == phase:
            out[-1] = (phase, out[-1][1] + spent)
        else:
            out.append((phase, spent))
    return out


def run_tree(run: JsonObject, dep: JsonObject | None, replica_sets: list[JsonObject], pods: list[JsonObject],
             now: datetime) -> Tree:
    s = obj(run.get("status"))
    head = Text.assemble(("run ", "dim"), (k.name_of(run), "bold"), "  ", phase_text(text(s.get("phase"))),
                         f"  {text(s.get('reason')) or ''}")
    tree = Tree(head)
    tree.add(f"release {text(s.get('deployedReleaseId')) or '?'} (previous {text(s.get('previousReleaseId')) or '-'}"
             f", rollback target {text(s.get('rollbackTargetReleaseId')) or '-'})")
    if s.get("message"):
        tree.add(Text(text(s.get("message")) or "", style="italic"))
    times = phase_times(s)
    if times:
        tree.add("phases: " + " · ".join(f"{phase} {spent:.1f}s" for phase, spent in times))
    if dep is None:
        tree.add(Text(f"deployment {text(path(run, 'spec', 'target', 'deployment'))} not found", style="red"))
        return tree
    tree.children.append(deployment_tree(dep, replica_sets, pods, s, now))
    return tree


def deployment_tree(dep: JsonObject, replica_sets: list[JsonObject], pods: list[JsonObject], s: JsonObject,
                    now: datetime) -> Tree:
    st = obj(dep.get("status"))
    node = Tree(f"deployment {k.name_of(dep)}  {integer(st.get('availableReplicas'))}/"
                f"{integer(path(dep, 'spec', 'replicas'), 1)} available, revision "
                f"{strings(k.meta(dep).get('annotations')).get(k.REVISION, '?')}")
    marks = {text(s.get("deployedReplicaSet")): "deployed by this run",
             text(s.get("rollbackTargetReplicaSet")): "rollback target"}
    for rs in sorted(replica_sets, key=lambda r: -k.revision_of(r, None).revision):
        rev = k.revision_of(rs, None)
        template = strip_hash(obj(path(rs, "spec", "template")))
        label = (f"replicaset {rev.replica_set}  revision {rev.revision}  release {release_id_of(template) or '-'}  "
                 f"{image_of(template, None) or '-'}  {age(text(k.meta(rs).get('creationTimestamp')), now)}")
        if marks.get(rev.replica_set):
            label += f"  ← {marks[rev.replica_set]}"
        branch = node.add(label)
        uid = text(k.meta(rs).get("uid")) or ""
        for pod in sorted((p for p in pods if k.controlled_by(p, uid)), key=k.name_of):
            state = k.pod_state(pod)
            restarts = sum(c.restart_count for c in state.containers)
            waiting = next((c.waiting_reason for c in state.containers if c.waiting_reason), "")
            style = "green" if state.ready else "red"
            branch.add(Text(f"pod {state.name}  {state.phase}  {'ready' if state.ready else 'not ready'}  "
                            f"restarts {restarts}  {waiting}".rstrip(), style=style))
    return node


def runs_table(runs: list[JsonObject], now: datetime, namespaces: bool) -> Table:
    table = Table(box=None, header_style="bold")
    for column in (["NAMESPACE"] if namespaces else []) + ["NAME", "PHASE", "TARGET", "RELEASE", "PREVIOUS",
                                                          "REASON", "AGE"]:
        table.add_column(column)
    for run in sorted(runs, key=lambda r: text(k.meta(r).get("creationTimestamp")) or ""):
        s = obj(run.get("status"))
        row: list[str | Text] = [
            k.name_of(run), phase_text(text(s.get("phase"))), text(path(run, "spec", "target", "deployment")) or "",
            text(s.get("deployedReleaseId")) or "", text(s.get("previousReleaseId")) or "",
            text(s.get("reason")) or "", age(text(k.meta(run).get("creationTimestamp")), now)]
        if namespaces:
            row.insert(0, k.namespace_of(run))
        table.add_row(*row)
    return table


def history_table(dep: JsonObject, replica_sets: list[JsonObject], runs: list[JsonObject], now: datetime) -> Group:
    """Revisions, newest first, each beside the runs that deployed or restored it."""
    table = Table(box=None, header_style="bold", title=f"deployment {k.name_of(dep)}", title_justify="left")
    for column in ("REVISION", "REPLICASET", "RELEASE", "IMAGE", "AGE", "RUNS", "CHANGE-CAUSE"):
        table.add_column(column)
    for rs in sorted(replica_sets, key=lambda r: -k.revision_of(r, None).revision):
        rev = k.revision_of(rs, None)
        template = strip_hash(obj(path(rs, "spec", "template")))
        table.add_row(str(rev.revision), rev.replica_set, release_id_of(template) or "-",
                      image_of(template, None) or "-", age(text(k.meta(rs).get("creationTimestamp")), now),
                      ", ".join(_runs_of(rev.replica_set, runs)) or "-",
                      rev.annotations.get(m.CHANGE_CAUSE_ANNOTATION, ""))
    kept = record.parse(strings(k.meta(dep).get("annotations")).get(m.RUNS_ANNOTATION))
    lines = [Text(f"{e.at[:19]}  {e.run}  release {e.release}  {e.outcome}") for e in kept.runs]
    if kept.holder is not None:
        lines.append(Text(f"held by run {kept.holder.run} since {kept.holder.since[:19]}"))
    return Group(table, Text("record of runs (oldest first):", style="bold"), *lines) if lines else Group(table)


def _runs_of(replica_set: str, runs: list[JsonObject]) -> list[str]:
    out = []
    for run in runs:
        s = obj(run.get("status"))
        if s.get("deployedReplicaSet") == replica_set:
            out.append(f"{k.name_of(run)} deployed ({text(s.get('phase'))})")
        if s.get("rollbackTargetReplicaSet") == replica_set and s.get("phase") == "RolledBack":
            out.append(f"{k.name_of(run)} rolled back to it")
    return out


def plan_view(p: Plan, name: str, target: str) -> Group:
    s = p.status
    parts: list[Text | Table] = [Text(f"run {name} → deployment {target}", style="bold")]
    if p.git_first:
        parts.append(Text("first proposes the change in git (branch, commit, push, pull request, CI, merge); then:"))
    if p.ends:
        parts.append(Text(f"would end {p.ends} ({p.reason}): {p.message}", style=STYLE.get(p.ends, "yellow")))
        return Group(*parts)
    parts.append(Text(f"deploys release {s.deployed_release_id} over {s.previous_release_id or '-'} "
                      f"(revision {s.previous_revision or '-'}, {s.previous_replica_set or '-'}); "
                      f"release metadata from {s.release_metadata_source}"))
    parts.append(Text(f"rollback target: release {s.rollback_target_release_id or '-'}"))
    if p.patch is not None:
        parts.append(Text("patch (strategic merge, guarded by the resourceVersion):", style="bold"))
        parts.append(Text(json.dumps(p.patch, indent=2, sort_keys=True)))
    policies = Table(box=None, header_style="bold", title="rollback policy if a gate fails", title_justify="left")
    for column in ("FAILURE CLASS", "OUTCOME", "REASON", "TARGET"):
        policies.add_column(column)
    for o in p.policies:
        target = f"{o.target_replica_set} (revision {o.target_revision})" if o.target_replica_set else "-"
        policies.add_row(o.failure_class, o.status, o.reason, target)
    parts.append(policies)
    return Group(*parts)


def plan_json(p: Plan) -> JsonObject:
    """The plan for machines: what `-o json` prints (the status fields as the run would record them)."""
    status = p.status.model_dump(mode="json", by_alias=True, exclude_none=True,
                                 include={"deployed_release_id", "previous_release_id", "previous_revision",
                                          "previous_replica_set", "rollback_target_release_id",
                                          "release_metadata_source"})
    return {"ends": p.ends, "reason": p.reason, "message": p.message, "gitFirst": p.git_first,
            "deploymentPatch": p.patch, "status": status,
            "rollbackPolicy": [{"failureClass": o.failure_class, "outcome": o.status, "reason": o.reason,
                                "targetReplicaSet": o.target_replica_set, "targetRevision": o.target_revision}
                               for o in p.policies]}
