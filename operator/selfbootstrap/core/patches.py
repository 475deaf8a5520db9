"""The two patches the core sends to a Deployment: deploy a release, and undo to a ReplicaSet."""

from __future__ import annotations

from datetime import datetime

from ..models import (
    CHANGE_CAUSE_ANNOTATION,
    RELEASE_ANNOTATION,
    RELEASE_IMAGES_ANNOTATION,
    RUN_ANNOTATION,
    RUNS_ANNOTATION,
)
from . import releases, replay
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


def deploy_patch(run: Run, release_id: str | None, dep: DeploymentState, container: str | None,
                 now: datetime) -> JsonObject:
    """The strategic-merge patch that deploys the run's release, guarded by resourceVersion; it adds the run
    to the Deployment's record of runs (replay safety)."""
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
    record = replay.recorded(replay.parse(dep.annotations.get(RUNS_ANNOTATION)), run.name, run.uid, release_id,
                             replay.DEPLOYED, now)
    return {
        "metadata": {"resourceVersion": dep.resource_version,
                     "annotations": {CHANGE_CAUSE_ANNOTATION: cause, RUN_ANNOTATION: run.name,
                                     RUNS_ANNOTATION: replay.render(record)}},
        "spec": {"template": template},
    }


def rollback_patch(dep: DeploymentState, target: Revision, run: Run | None = None,
                   now: datetime | None = None) -> JsonPatch:
    """The JSON patch `kubectl rollout undo` sends, plus a resourceVersion guard; the run's entry in the
    Deployment's record of runs says it rolled back."""
    annotations = {k: v for k, v in dep.annotations.items() if k in UNDO_SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in target.annotations.items() if k not in UNDO_SKIPPED_ANNOTATIONS})
    record = replay.parse(dep.annotations.get(RUNS_ANNOTATION))
    if run is not None and now is not None:
        entry = next((e for e in record if e.uid == run.uid), None)
        release = entry.release if entry else run.status.deployed_release_id
        record = replay.recorded(record, run.name, run.uid, release, replay.ROLLED_BACK, now)
    if record:
        annotations[RUNS_ANNOTATION] = replay.render(record)
    return [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": dep.resource_version},
        {"op": "replace", "path": "/spec/template", "value": target.template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
