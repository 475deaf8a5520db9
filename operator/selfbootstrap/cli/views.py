"""How the plugin shows things: rich trees and tables, facts first.

Everything shown comes from the cluster, where anyone who may edit a run, a Deployment or a pod wrote
it, so every piece of text reaches rich through `line()` only: it escapes control, bidi and zero-width
characters (no escape sequence from a status message or an annotation reaches the reader's terminal)
and bounds each piece, and it returns a `Text`, which rich never parses as markup.
"""

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
from ..core.targets.controllerrevisions import REVISION_HASH
from ..core.text import MESSAGE_LIMIT, NAME_LIMIT, printable
from .plan import Plan

STYLE = {"Succeeded": "green", "Superseded": "cyan", "RolledBack": "yellow", "Failed": "red"}
GATE_STYLE = {"Passed": "green", "Failed": "red", "Running": "bold"}
METRIC_STYLE = {"Successful": "green", "Failed": "red", "Error": "red", "Inconclusive": "yellow"}
CELL_LIMIT = NAME_LIMIT  # a name, id, image or reason: a Kubernetes name is never cut
LIST_MESSAGE_LIMIT = 100  # the message column of `list`: `get` shows it whole
DOCUMENT_LIMIT = 65536  # a line of the planned patch: the author's own manifest, shown whole

Part = str | tuple[str, str]  # plain text, or (text, style)


def line(*parts: Part, style: str = "", limit: int = CELL_LIMIT) -> Text:
    """The one way text reaches rich: each part escaped and bounded to `limit` by core.text.printable,
    in a Text, which rich never parses as markup (so `[bold red]` in a release id prints as itself)."""
    out = Text(style=style)
    for part in parts:
        body, part_style = (part, "") if isinstance(part, str) else part
        out.append(printable(body, limit), style=part_style)
    return out


def age(when: str | None, now: datetime) -> str:
    if not when:
        return "-"
    seconds = int((now - datetime.fromisoformat(when.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def phase_part(phase: str | None) -> tuple[str, str]:
    return phase or "-", STYLE.get(phase or "", "bold")


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
    tree = Tree(line(("run ", "dim"), (k.name_of(run), "bold"), "  ", phase_part(text(s.get("phase"))), "  ",
                     text(s.get("reason")) or ""))
    tree.add(line("release ", text(s.get("deployedReleaseId")) or "?", " (previous ",
                  text(s.get("previousReleaseId")) or "-", ", rollback target ",
                  text(s.get("rollbackTargetReleaseId")) or "-", ")"))
    if s.get("deployedImage") or s.get("imageLookup"):
        tree.add(line("image ", text(s.get("deployedImage")) or "-", "  version ", text(s.get("imageVersion")) or "-",
                      ", revision ", text(s.get("imageRevision")) or "-", ", created ",
                      text(s.get("imageCreated")) or "-", "  (", text(s.get("imageLookup")) or "", ")",
                      limit=MESSAGE_LIMIT))
    if s.get("message"):
        tree.add(line(text(s.get("message")) or "", style="italic", limit=MESSAGE_LIMIT))
    times = phase_times(s)
    if times:
        tree.add(line("phases: " + " · ".join(f"{phase} {spent:.1f}s" for phase, spent in times),
                      limit=MESSAGE_LIMIT))
    for gate in objects(s.get("gates")):
        tree.children.append(gate_tree(gate))
    if dep is None:
        kind, target = m.target_of(run)
        tree.add(line(kind.lower(), " ", target, " not found", style="red"))
        return tree
    tree.children.append(deployment_tree(dep, replica_sets, pods, s, now))
    return tree


def gate_tree(gate: JsonObject) -> Tree:
    """A gate and its metrics, each with its counters and last measurements."""
    phase = text(gate.get("phase"))
    node = Tree(line("gate ", text(gate.get("name")) or "?", "  ", (phase or "-", GATE_STYLE.get(phase or "", "")),
                     "  ", text(gate.get("message")) or "", limit=MESSAGE_LIMIT))
    for metric in objects(gate.get("metrics")):
        measured = objects(metric.get("measurements"))
        values = ", ".join(text(x.get("value")) or text(x.get("phase")) or "?" for x in measured[-5:])
        counts = (f"  {integer(metric.get('count'))} measured: {integer(metric.get('successful'))} successful, "
                  f"{integer(metric.get('failed'))} failed, {integer(metric.get('inconclusive'))} inconclusive, "
                  f"{integer(metric.get('error'))} errors")
        branch = node.add(line("metric ", text(metric.get("name")) or "?", "  ",
                               (text(metric.get("phase")) or "-", METRIC_STYLE.get(text(metric.get("phase")) or "",
                                                                                     "")),
                               counts, limit=MESSAGE_LIMIT))
        if values:
            branch.add(line("last values: ", values, limit=MESSAGE_LIMIT))
        last = measured[-1] if measured else {}
        if text(last.get("message")):
            branch.add(line(text(last.get("message")) or "", style="italic", limit=MESSAGE_LIMIT))
    return node


def _current_revision(dep: JsonObject, kind: str, revisions: list[JsonObject]) -> str | None:
    """A Deployment's revision number; a StatefulSet's update revision; a DaemonSet's status names none, so its
    newest ControllerRevision (as `kubectl rollout history` lists last)."""
    if kind == "Deployment":
        return strings(k.meta(dep).get("annotations")).get(k.REVISION)
    newest = max(revisions, key=lambda r: k.revision_of(r, None).revision, default=None)
    return text(path(dep, "status", "updateRevision")) or (k.name_of(newest) if newest is not None else None)


def deployment_tree(dep: JsonObject, replica_sets: list[JsonObject], pods: list[JsonObject], s: JsonObject,
                    now: datetime) -> Tree:
    st, kind = obj(dep.get("status")), text(dep.get("kind")) or "Deployment"
    if kind == "DaemonSet":
        counts = f"  {integer(st.get('numberAvailable'))}/{integer(st.get('desiredNumberScheduled'))} available"
    else:
        counts = f"  {integer(st.get('availableReplicas'))}/{integer(path(dep, 'spec', 'replicas'), 1)} available"
    revision = _current_revision(dep, kind, replica_sets)
    node = Tree(line(kind.lower(), " ", k.name_of(dep), counts, *((", revision ", revision) if revision else ())))
    marks = {text(s.get("deployedReplicaSet")): "  ← deployed by this run",
             text(s.get("rollbackTargetReplicaSet")): "  ← rollback target"}
    for rs in sorted(replica_sets, key=lambda r: -k.revision_of(r, None).revision):
        rev = k.revision_of(rs, None)
        template = strip_hash(obj(path(rs, "spec", "template")))
        branch = node.add(line("replicaset " if kind == "Deployment" else "revision ", rev.replica_set,
                               f"  revision {rev.revision}  release ",
                               release_id_of(template) or "-", "  ", image_of(template, None) or "-", "  ",
                               age(text(k.meta(rs).get("creationTimestamp")), now), marks.get(rev.replica_set, "")))
        for pod in sorted((p for p in pods if _of_revision(p, rs)), key=k.name_of):
            state = k.pod_state(pod)
            restarts = sum(c.restart_count for c in state.containers)
            waiting = next((c.waiting_reason for c in state.containers if c.waiting_reason), "")
            branch.add(line("pod ", state.name, "  ", state.phase, "  ready" if state.ready else "  not ready",
                            f"  restarts {restarts}", f"  {waiting}" if waiting else "",
                            style="green" if state.ready else "red"))
    return node


def _of_revision(pod: JsonObject, revision: JsonObject) -> bool:
    """A Deployment's pod is its ReplicaSet's; a StatefulSet's or DaemonSet's names its ControllerRevision (a
    DaemonSet's pods only by the hash its name ends with)."""
    if k.controlled_by(pod, text(k.meta(revision).get("uid")) or ""):
        return True
    label, name = strings(k.meta(pod).get("labels")).get(REVISION_HASH), k.name_of(revision)
    return label is not None and (label == name or name.endswith(f"-{label}"))


def runs_table(runs: list[JsonObject], now: datetime, namespaces: bool) -> Table:
    table = Table(box=None, header_style="bold")
    for column in (["NAMESPACE"] if namespaces else []) + ["NAME", "PHASE", "TARGET", "RELEASE", "PREVIOUS",
                                                          "REASON", "AGE", "MESSAGE"]:
        table.add_column(column)
    for run in sorted(runs, key=lambda r: text(k.meta(r).get("creationTimestamp")) or ""):
        s = obj(run.get("status"))
        row = [line(k.name_of(run)), line(phase_part(text(s.get("phase")))),
               line(_target(run)),
               line(text(s.get("deployedReleaseId")) or ""), line(text(s.get("previousReleaseId")) or ""),
               line(text(s.get("reason")) or ""), line(age(text(k.meta(run).get("creationTimestamp")), now)),
               line(text(s.get("message")) or "", limit=LIST_MESSAGE_LIMIT)]
        if namespaces:
            row.insert(0, line(k.namespace_of(run)))
        table.add_row(*row)
    return table


def _target(run: JsonObject) -> str:
    kind, name = m.target_of(run)
    return name if kind == m.WorkloadKind.DEPLOYMENT else f"{kind.lower()}/{name}"


def history_table(dep: JsonObject, replica_sets: list[JsonObject], runs: list[JsonObject], now: datetime) -> Group:
    """Revisions, newest first, each beside the runs that deployed or restored them."""
    kind = text(dep.get("kind")) or "Deployment"
    table = Table(box=None, header_style="bold", title=line(kind.lower(), " ", k.name_of(dep)), title_justify="left")
    for column in ("REVISION", "REPLICASET" if kind == "Deployment" else "CONTROLLERREVISION", "RELEASE", "IMAGE",
                   "VERSION", "AGE", "RUNS", "CHANGE-CAUSE"):
        table.add_column(column)
    for rs in sorted(replica_sets, key=lambda r: -k.revision_of(r, None).revision):
        rev = k.revision_of(rs, None)
        template = strip_hash(obj(path(rs, "spec", "template")))
        table.add_row(line(str(rev.revision)), line(rev.replica_set), line(release_id_of(template) or "-"),
                      line(image_of(template, None) or "-"), line(_image_version(rev.replica_set, runs)),
                      line(age(text(k.meta(rs).get("creationTimestamp")), now)),
                      line(", ".join(_runs_of(rev.replica_set, runs)) or "-", limit=MESSAGE_LIMIT),
                      line(rev.annotations.get(m.CHANGE_CAUSE_ANNOTATION, "")))
    kept = record.parse(strings(k.meta(dep).get("annotations")).get(m.RUNS_ANNOTATION))
    lines = [line(e.at[:19], "  ", e.run, "  release ", e.release or "-", "  ", e.outcome) for e in kept.runs]
    if kept.holder is not None:
        lines.append(line("held by run ", kept.holder.run, " since ", kept.holder.since[:19]))
    return Group(table, line("record of runs (oldest first):", style="bold"), *lines) if lines else Group(table)


def _image_version(replica_set: str, runs: list[JsonObject]) -> str:
    """The image's own version and source revision, as the registry told the run that deployed the revision."""
    for run in runs:
        s = obj(run.get("status"))
        if s.get("deployedReplicaSet") == replica_set and (s.get("imageVersion") or s.get("imageRevision")):
            revision = text(s.get("imageRevision"))
            return (text(s.get("imageVersion")) or "-") + (f" ({revision[:12]})" if revision else "")
    return "-"


def _runs_of(replica_set: str, runs: list[JsonObject]) -> list[str]:
    out = []
    for run in runs:
        s = obj(run.get("status"))
        if s.get("deployedReplicaSet") == replica_set:
            out.append(f"{k.name_of(run)} deployed ({text(s.get('phase'))})")
        if s.get("rollbackTargetReplicaSet") == replica_set and s.get("phase") == "RolledBack":
            out.append(f"{k.name_of(run)} rolled back to it")
    return out


def status_line(run: JsonObject) -> Text:
    """`kubectl sbr status`'s last word on a run that ended."""
    s = obj(run.get("status"))
    return line(k.name_of(run), ": ", phase_part(text(s.get("phase"))), " (", text(s.get("reason")) or "", "): ",
                text(s.get("message")) or "", limit=MESSAGE_LIMIT)


def plan_view(p: Plan, name: str, target: str) -> Group:
    s = p.status
    parts: list[Text | Table] = [line("run ", name, " → ", target, style="bold")]
    if p.git_first:
        parts.append(line("first proposes the change in git (branch, commit, push, pull request, CI, merge); then:"))
    if p.ends:
        parts.append(line("would end ", p.ends, " (", p.reason or "", "): ", p.message or "",
                          style=STYLE.get(p.ends, "yellow"), limit=MESSAGE_LIMIT))
        return Group(*parts)
    parts.append(line("deploys release ", s.deployed_release_id or "-", " over ", s.previous_release_id or "-",
                      f" (revision {s.previous_revision or '-'}, ", s.previous_replica_set or "-",
                      "); release metadata from ", s.release_metadata_source or "-"))
    parts.append(line("rollback target: release ", s.rollback_target_release_id or "-"))
    if p.image is not None:
        parts.append(line("image ", p.image, " is resolved by its registry before the patch: digest, version, "
                          "revision, created", "; pinned to its digest" if p.pin_digest else "; not pinned",
                          "; the new version's CRD is checked against the runs in flight" if p.self_update else "",
                          limit=MESSAGE_LIMIT))
    parts.append(line("gates:", style="bold"))
    parts.extend(line("  ", gate, limit=MESSAGE_LIMIT) for gate in p.gates)
    if p.patch is not None:
        parts.append(line("patch (strategic merge, guarded by the resourceVersion):", style="bold"))
        parts.extend(line(row, limit=DOCUMENT_LIMIT) for row in json_text(p.patch).splitlines())
    policies = Table(box=None, header_style="bold", title="rollback policy if a gate fails", title_justify="left")
    for column in ("FAILURE CLASS", "OUTCOME", "REASON", "TARGET"):
        policies.add_column(column)
    for o in p.policies:
        target_set = line(o.target_replica_set, f" (revision {o.target_revision})") if o.target_replica_set \
            else line("-")
        policies.add_row(line(o.failure_class), line(o.status), line(o.reason), target_set)
    parts.append(policies)
    return Group(*parts)


def json_text(value: object) -> str:
    """JSON for a terminal: ensure_ascii writes every control and non-ASCII character (bidi overrides
    included) as an escape, so the document holds nothing but printable ASCII."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=True)


def plan_json(p: Plan) -> JsonObject:
    """The plan for machines: what `-o json` prints (the status fields as the run would record them)."""
    status = p.status.model_dump(mode="json", by_alias=True, exclude_none=True,
                                 include={"deployed_release_id", "previous_release_id", "previous_revision",
                                          "previous_replica_set", "rollback_target_release_id",
                                          "release_metadata_source"})
    return {"ends": p.ends, "reason": p.reason, "message": p.message, "gitFirst": p.git_first,
            "deploymentPatch": p.patch, "status": status, "gates": list(p.gates),
            "image": {"reference": p.image, "pinDigest": p.pin_digest, "crdChecked": p.self_update}
            if p.image else None,
            "rollbackPolicy": [{"failureClass": o.failure_class, "outcome": o.status, "reason": o.reason,
                                "targetReplicaSet": o.target_replica_set, "targetRevision": o.target_revision}
                               for o in p.policies]}
