"""Release metadata read from a Deployment's revisions, and its resolution chain.

Precedence (the older system's contract): explicit spec fields, then the
Deployment's revisions, then further release sources, in order.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..models import RELEASE_ANNOTATION, RELEASE_IMAGES_ANNOTATION, Release
from .jsontypes import JsonObject, JsonValue, obj, objects, path, strings, text
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


def images_of(template: JsonObject) -> dict[str, str]:
    """Container name -> image, for every container of a pod template."""
    return {text(c.get("name")) or "": text(c.get("image")) or "" for c in containers_of(template)}


def images_text(images: dict[str, str]) -> str:
    """The form of the release-images annotation: name=image pairs, sorted, comma-separated."""
    return ",".join(f"{name}={image}" for name, image in sorted(images.items()))


def release_id_of(template: JsonObject, container: str | None = None) -> str | None:
    """The release a pod template carries: its release annotation, else its image's tag.

    A release is what the template runs, not only what its annotation says: the annotation
    survives `kubectl set image`, so it counts only while the template still runs the images
    it was set for (the release-images annotation beside it; a release annotation without one
    was set by hand and is taken as it is).
    """
    annotations = template_annotations(template)
    annotated = annotations.get(RELEASE_ANNOTATION)
    recorded = annotations.get(RELEASE_IMAGES_ANNOTATION)
    if annotated and (recorded is None or recorded == images_text(images_of(template))):
        return annotated
    image = image_of(template, container)
    return image_tag(image) if image else None


def includes(whole: JsonValue, part: JsonValue) -> bool:
    """Whether `whole` already holds everything the strategic-merge patch `part` sets
    (lists of named items are matched by name, as the patch merges them)."""
    if isinstance(part, Mapping):
        return isinstance(whole, Mapping) and all(
            key.startswith("$") or (key in whole and includes(whole[key], value)) for key, value in part.items())
    if isinstance(part, Sequence) and not isinstance(part, str):
        if not isinstance(whole, Sequence) or isinstance(whole, str):
            return False
        named = [p for p in part if isinstance(p, Mapping) and "name" in p]
        if len(named) == len(part):
            by_name = {obj(w).get("name"): w for w in whole}
            return all(p["name"] in by_name and includes(by_name[p["name"]], p) for p in named)
        return list(whole) == list(part)
    return whole == part


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

    `source` names the first source consulted for anything, ids or the previous
    revision ("spec" only when nothing came from elsewhere).
    """
    deployed, deployed_from = requested_release_id(release), SPEC
    previous, previous_from = release.previous_release_id, SPEC
    previous_revision, revision_from = None, SPEC
    for answer in answers:
        if deployed is None and answer.current_release_id:
            deployed, deployed_from = answer.current_release_id, answer.source
        if previous is None and answer.previous_release_id:
            previous, previous_from = answer.previous_release_id, answer.source
        if previous_revision is None and answer.previous_revision is not None:
            previous_revision, revision_from = answer.previous_revision, answer.source
    consulted = [s for s in (deployed_from, previous_from, revision_from) if s != SPEC]
    explicit = release.rollback_release_id or release.previous_release_id
    return ReleaseResolution(
        deployed_release_id=deployed,
        previous_release_id=previous,
        rollback_target_release_id=explicit or previous,
        previous_revision=previous_revision,
        source=consulted[0] if consulted else SPEC,
    )
