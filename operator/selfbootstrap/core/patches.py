"""The patches the core sends to a Deployment: take it and deploy a release, undo to a ReplicaSet, let go of it."""

from __future__ import annotations

from datetime import datetime

from ..models import (
    CHANGE_CAUSE_ANNOTATION,
    RELEASE_ANNOTATION,
    RELEASE_IMAGES_ANNOTATION,
    RUN_ANNOTATION,
    RUNS_ANNOTATION,
)
from . import record, releases
from .jsontypes import JsonObject, JsonPatch, JsonValue, obj, objects, path, text
from .run import Run
from .text import printable
from .world import DeploymentState, Revision

# Deployment annotations `kubectl rollout undo` keeps from the Deployment rather than the ReplicaSet.
UNDO_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
    RUNS_ANNOTATION,  # ours: the Deployment's record of runs, not a property of a revision
})


def _record_of(dep: DeploymentState) -> record.Record:
    return record.parse(dep.annotations.get(RUNS_ANNOTATION))


RECORD_POINTER = "/metadata/annotations/" + RUNS_ANNOTATION.replace("~", "~0").replace("/", "~1")


def record_patch(dep: DeploymentState, new: record.Record) -> JsonPatch:
    """A JSON patch writing the workload's record, applied only if the record is still the one read: the
    API server lets exactly one of two writers that read the same record win (the other's `test` fails).
    A Deployment without a record is guarded by its resourceVersion instead."""
    written = record.render(new)
    old = dep.annotations.get(RUNS_ANNOTATION)
    if old is not None:
        return [{"op": "test", "path": RECORD_POINTER, "value": old},
                {"op": "replace", "path": RECORD_POINTER, "value": written}]
    ops: list[JsonObject] = [{"op": "test", "path": "/metadata/resourceVersion", "value": dep.resource_version}]
    if not dep.annotations:
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    return [*ops, {"op": "add", "path": RECORD_POINTER, "value": written}]


def release_patch(dep: DeploymentState, uid: str, outcome: str, now: datetime) -> JsonPatch:
    """Let go of the workload, saying how the run ended."""
    return record_patch(dep, record.outcome(_record_of(dep), uid, outcome, now, release=True))


Taking = tuple[record.Claimant, tuple[str, ...]]  # the run taking the workload, the older runs it passes over


def _deployed_record(run: Run, dep: DeploymentState, now: datetime, taking: Taking | None) -> str:
    """The record once the run's release is live, the run its holder (made so now, with `taking`)."""
    held = _record_of(dep)
    if taking is not None:
        held = record.claimed(held, taking[0], now, taking[1])
    return record.render(record.deployed(held, run.uid, now))


def deploy_patch(run: Run, release_id: str | None, dep: DeploymentState, container: str | None,
                 now: datetime, taking: Taking | None = None) -> JsonObject:
    """The strategic-merge patch that deploys the run's release, guarded by resourceVersion; the record
    says the holder's release is live. `taking` (the run, the older runs waiting): the run takes the
    workload in the same write, becoming the holder, the older runs passed over for good."""
    spec = run.spec
    template: dict[str, JsonValue] = dict(spec.release.pod_template_patch or {})
    if spec.release.image:
        template["spec"] = {"containers": [{"name": container, "image": spec.release.image}]}
    images = releases.images_of(dep.template)
    for c in objects(path(template, "spec", "containers")):  # the images the patched template will run
        name, image = text(c.get("name")), text(c.get("image"))
        if name is not None and image is not None:
            images[name] = image
    meta = dict(obj(template.get("metadata")))
    meta["annotations"] = {**obj(meta.get("annotations")), RELEASE_ANNOTATION: release_id,
                           RELEASE_IMAGES_ANNOTATION: releases.images_text(images)}
    template["metadata"] = meta
    # `kubectl rollout history` prints it to whoever looks: the author's text as data
    cause = printable(spec.release.change_cause or f"SelfBootstrapRun {run.name}: deploy release {release_id}")
    return {
        "metadata": {"resourceVersion": dep.resource_version,
                     "annotations": {CHANGE_CAUSE_ANNOTATION: cause, RUN_ANNOTATION: run.name,
                                     RUNS_ANNOTATION: _deployed_record(run, dep, now, taking)}},
        "spec": {"template": template},
    }


def take_patch(run: Run, dep: DeploymentState, taking: Taking, now: datetime) -> JsonObject:
    """Take a workload whose template runs the release already: the record alone, guarded by resourceVersion
    like the deploy (nothing rolls out, and the change cause stays that of whoever made the template)."""
    return {"metadata": {"resourceVersion": dep.resource_version,
                         "annotations": {RUNS_ANNOTATION: _deployed_record(run, dep, now, taking)}}}


def rollback_patch(dep: DeploymentState, target: Revision, run: Run | None = None,
                   now: datetime | None = None) -> JsonPatch:
    """The JSON patch `kubectl rollout undo` sends, plus a resourceVersion guard; the run's entry in the
    workload's record says it rolled back (the run keeps holding the workload until it ends).

    A Deployment's undo also takes the ReplicaSet's annotations; a StatefulSet's or DaemonSet's replaces the
    template with the ControllerRevision's and leaves the object's annotations (controllerrevisions.undo_patch)."""
    written = record.render(record.outcome(_record_of(dep), run.uid, record.ROLLED_BACK, now, release=False)) \
        if run is not None and now is not None else None
    if dep.kind != "Deployment":
        ops: list[JsonObject] = [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": dep.resource_version},
            {"op": "replace", "path": "/spec/template", "value": target.template}]
        return ops + ([{"op": "add", "path": RECORD_POINTER, "value": written}] if written is not None else [])
    annotations = {k: v for k, v in dep.annotations.items() if k in UNDO_SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in target.annotations.items() if k not in UNDO_SKIPPED_ANNOTATIONS})
    if written is not None:
        annotations[RUNS_ANNOTATION] = written
    return [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": dep.resource_version},
        {"op": "replace", "path": "/spec/template", "value": target.template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
