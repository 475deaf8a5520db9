"""Release metadata read from a Deployment's revisions, and its resolution chain.

Precedence (the older system's contract): explicit spec fields, then the
Deployment's revisions, then further release sources, in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..models import RELEASE_ANNOTATION, Release
from .jsontypes import JsonObject, obj, objects, path, strings, text
from .world import DeploymentState, Revision

POD_TEMPLATE_HASH = "pod-template-hash"
DEPLOYMENT_REVISIONS = "deploymentRevisions"
SPEC = "spec"


def image_tag(image: str) -> str | None:
    """The tag of an image reference, else its digest; None for a bare name."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        return last.rsplit(":", 1)[1]
    return digest or None


def containers_of(template: JsonObject) -> list[JsonObject]:
    return objects(path(template, "spec", "containers"))


def target_container(template: JsonObject, name: str | None) -> str:
    """The container a run changes; raises ValueError with a reason when ambiguous or absent."""
    names = [text(c.get("name")) or "" for c in containers_of(template)]
    if name:
        if name not in names:
            raise ValueError(f"container {name!r} not found in the pod template (has {names})")
        return name
    if len(names) != 1:
        raise ValueError(f"spec.target.container is required: the pod template has containers {names}")
    return names[0]


def image_of(template: JsonObject, container: str | None) -> str | None:
    for c in containers_of(template):
        if container is None or c.get("name") == container:
            return text(c.get("image"))
    return None


def template_annotations(template: JsonObject) -> dict[str, str]:
    return strings(path(template, "metadata", "annotations"))


def release_id_of(template: JsonObject, container: str | None = None) -> str | None:
    """The release a pod template carries: its release annotation, else its image's tag."""
    annotated = template_annotations(template).get(RELEASE_ANNOTATION)
    if annotated:
        return annotated
    image = image_of(template, container)
    return image_tag(image) if image else None


def template_digest(template: JsonObject) -> str:
    """A digest of everything a pod template says: a template that differs in anything differs here."""
    canonical = json.dumps(template, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def strip_hash(template: JsonObject) -> JsonObject:
    """A ReplicaSet's pod template as its Deployment would hold it."""
    meta = obj(template.get("metadata"))
    labels = obj(meta.get("labels"))
    if POD_TEMPLATE_HASH not in labels:
        return template
    kept = {k: v for k, v in labels.items() if k != POD_TEMPLATE_HASH}
    return {**template, "metadata": {**meta, "labels": kept}}


def current_revision(deployment: DeploymentState) -> Revision | None:
    """The ReplicaSet whose template the Deployment holds now (None until the controller made it)."""
    for rev in sorted(deployment.revisions, key=lambda r: -r.revision):
        if rev.template == deployment.template:
            return rev
    return None


def newest_revision(revisions: Sequence[Revision], release_id: str | None = None,
                    exclude: str | None = None, below: int | None = None) -> Revision | None:
    """The newest revision matching the filters."""
    for rev in sorted(revisions, key=lambda r: -r.revision):
        if rev.replica_set == exclude or (below is not None and rev.revision >= below):
            continue
        if release_id is None or rev.release_id == release_id:
            return rev
    return None


@dataclass(frozen=True)
class SourceAnswer:
    """What one release source says about the releases around a deploy."""

    source: str
    current_release_id: str | None = None
    previous_release_id: str | None = None
    previous_revision: Revision | None = None


@dataclass(frozen=True)
class ReleaseResolution:
    deployed_release_id: str | None
    previous_release_id: str | None
    rollback_target_release_id: str | None
    previous_revision: Revision | None
    source: str


def answer_from_deployment(deployment: DeploymentState, requested_release_id: str | None,
                           container: str | None) -> SourceAnswer:
    """Read the releases around a deploy from the Deployment's revisions, before it is patched.

    The previous release is what runs now, unless the Deployment already runs the
    requested release (a resumed or repeated run): then it is the revision before.
    """
    current = current_revision(deployment)
    current_id = release_id_of(deployment.template, container)
    previous = current
    if current is None:  # the controller has not made the template's ReplicaSet yet
        previous = newest_revision(deployment.revisions)
    elif requested_release_id and current.release_id == requested_release_id:
        previous = newest_revision(deployment.revisions, below=current.revision)
    return SourceAnswer(
        source=DEPLOYMENT_REVISIONS,
        current_release_id=current_id,
        previous_release_id=previous.release_id if previous else None,
        previous_revision=previous,
    )


def requested_release_id(release: Release) -> str | None:
    if release.id:
        return release.id
    return image_tag(release.image) if release.image else None


def resolve(release: Release, answers: Sequence[SourceAnswer]) -> ReleaseResolution:
    """Apply the precedence chain: spec fields first, then each source in order.

    `source` names the first source that supplied an id the spec left out
    ("spec" when the spec supplied them all).
    """
    deployed, deployed_from = requested_release_id(release), SPEC
    previous, previous_from = release.previous_release_id, SPEC
    previous_revision = None
    for answer in answers:
        if deployed is None and answer.current_release_id:
            deployed, deployed_from = answer.current_release_id, answer.source
        if previous is None and answer.previous_release_id:
            previous, previous_from = answer.previous_release_id, answer.source
        previous_revision = previous_revision or answer.previous_revision
    consulted = [s for s in (deployed_from, previous_from) if s != SPEC]
    explicit = release.rollback_release_id or release.previous_release_id
    return ReleaseResolution(
        deployed_release_id=deployed,
        previous_release_id=previous,
        rollback_target_release_id=explicit or previous,
        previous_revision=previous_revision,
        source=consulted[0] if consulted else SPEC,
    )
