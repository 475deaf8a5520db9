"""The two patches the core sends to a Deployment: deploy a release, and undo to a ReplicaSet."""

from __future__ import annotations

from ..models import CHANGE_CAUSE_ANNOTATION, RELEASE_ANNOTATION, RELEASE_IMAGES_ANNOTATION, RUN_ANNOTATION
from . import releases
from .jsontypes import JsonObject, JsonPatch, JsonValue, obj, objects, path, text
from .run import Run
from .world import DeploymentState, Revision

# Deployment annotations `kubectl rollout undo` keeps from the Deployment rather than the ReplicaSet.
UNDO_SKIPPED_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


def deploy_patch(run: Run, release_id: str | None, dep: DeploymentState, container: str | None) -> JsonObject:
    """The strategic-merge patch that deploys the run's release, guarded by resourceVersion."""
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
    cause = spec.release.change_cause or f"SelfBootstrapRun {run.name}: deploy release {release_id}"
    return {
        "metadata": {"resourceVersion": dep.resource_version,
                     "annotations": {CHANGE_CAUSE_ANNOTATION: cause, RUN_ANNOTATION: run.name}},
        "spec": {"template": template},
    }


def rollback_patch(dep: DeploymentState, target: Revision) -> JsonPatch:
    """The JSON patch `kubectl rollout undo` sends, plus a resourceVersion guard."""
    annotations = {k: v for k, v in dep.annotations.items() if k in UNDO_SKIPPED_ANNOTATIONS}
    annotations.update({k: v for k, v in target.annotations.items() if k not in UNDO_SKIPPED_ANNOTATIONS})
    return [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": dep.resource_version},
        {"op": "replace", "path": "/spec/template", "value": target.template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]
