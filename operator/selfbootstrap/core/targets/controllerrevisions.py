"""A StatefulSet's or DaemonSet's releases and their undo, from its ControllerRevisions, as `kubectl rollout undo`
does for these kinds (pure).

The controller stores each template as a ControllerRevision whose `data` is a strategic merge patch replacing
`spec.template` (`{"spec": {"template": {..., "$patch": "replace"}}}`); `kubectl rollout undo` applies that patch
to the object as it is, and skips when the object's template already matches. The revision it goes back to is
the newest one before the current (kubectl's findHistory with no --to-revision), found by name: the controller
renumbers a revision it re-adopts. Where an undo cannot put every pod back (an `OnDelete` update strategy, a
StatefulSet partition), or would change more than the template, the undo is refused with the reason; a
StatefulSet with `OrderedReady` whose new pod never becomes ready waits for it forever (the Kubernetes docs'
"forced rollback"): the stuck pods of the bad revision are the ones to delete, never a pod of a good one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..jsontypes import JsonObject, integer, obj, path, text
from ..releases import release_id_of
from ..world import DeploymentState, PodState

REVISION_HASH: Final = "controller-revision-hash"  # the pod label naming its ControllerRevision


@dataclass(frozen=True)
class ControllerRevision:
    name: str
    revision: int
    data: JsonObject  # the strategic merge patch that restores it

    @property
    def template(self) -> JsonObject:
        """The pod template the revision holds, as the object would (without the patch directive)."""
        template = obj(path(self.data, "spec", "template"))
        return {k: v for k, v in template.items() if k != "$patch"}

    def release_id(self, container: str | None = None) -> str | None:
        return release_id_of(self.template, container)


def revisions_of(history: Sequence[JsonObject], owner_uid: str) -> tuple[ControllerRevision, ...]:
    """The object's ControllerRevisions (controlled by its uid), oldest first."""
    owned = [h for h in history if any(ref.get("uid") == owner_uid and ref.get("controller") is True
                                       for ref in obj_list(path(h, "metadata", "ownerReferences")))]
    found = [ControllerRevision(text(path(h, "metadata", "name")) or "", integer(h.get("revision")), obj(h.get("data")))
             for h in owned]
    return tuple(sorted(found, key=lambda r: r.revision))


def obj_list(value: object) -> list[JsonObject]:
    return [obj(v) for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def matches(workload: JsonObject, revision: ControllerRevision) -> bool:
    """Whether the object's template is the revision's (kubectl then skips the undo)."""
    return obj(path(workload, "spec", "template")) == revision.template


def previous(revisions: Sequence[ControllerRevision], current: str | None) -> ControllerRevision | None:
    """The revision an undo goes back to: the newest before the current one (by name, not number)."""
    before = [r for r in revisions if r.name != current]
    return max(before, key=lambda r: r.revision) if before else None


def undo_patch(revision: ControllerRevision) -> JsonObject:
    """The strategic merge patch `kubectl rollout undo` sends: the revision's data, as stored."""
    return revision.data


def undo_refusal(kind: str, workload: JsonObject, target: ControllerRevision) -> str | None:
    """Why an undo to the revision would not put the object back (None: it would)."""
    spec = obj(workload.get("spec"))
    strategy = obj(spec.get("updateStrategy"))
    if (text(strategy.get("type")) or "RollingUpdate") == "OnDelete":
        return (f"the {kind} updates OnDelete: an undo would change its template and no pod until each is deleted "
                f"by hand")
    partition = integer(path(strategy, "rollingUpdate", "partition"))
    if kind == "StatefulSet" and partition > 0:
        return (f"the StatefulSet's rolling update is partitioned at {partition}: an undo would leave the pods "
                f"below that ordinal on the new revision")
    others = {k: v for k, v in obj(target.data.get("spec")).items() if k != "template"}
    changed = sorted(k for k, v in others.items() if spec.get(k) != v)
    if changed:
        return (f"revision {target.name} also restores spec.{', spec.'.join(changed)}, which an undo of the "
                f"template alone must not change")
    return None


def stuck_pods(workload: DeploymentState, good: str) -> tuple[PodState, ...]:
    """The pods a forced rollback deletes once the undo to `good` is observed: a StatefulSet's with OrderedReady
    management, of another revision, not ready (the controller waits for them forever). Never a pod of the good
    revision; none for other kinds (their controllers replace such pods themselves)."""
    if workload.kind != "StatefulSet" or not workload.ordered_ready:
        return ()
    return tuple(sorted((pod for pod, revision in workload.other_pods if revision != good and not pod.ready),
                        key=lambda p: p.name))
