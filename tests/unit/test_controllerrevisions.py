"""StatefulSet and DaemonSet releases from ControllerRevisions, and their undo as `kubectl rollout undo` does it
(core/targets/controllerrevisions.py): table-driven."""

from __future__ import annotations

import pytest

from selfbootstrap.core.targets import controllerrevisions as cr
from selfbootstrap.core.world import DeploymentState, PodState

UID = "uid-sts"


def template(image: str, release: str | None = None) -> dict:
    meta: dict = {"labels": {"app": "db"}}
    if release:
        meta["annotations"] = {"selfbootstrap.dev/release-id": release}
    return {"metadata": meta, "spec": {"containers": [{"name": "db", "image": image}]}}


def history(name: str, revision: int, image: str, owner: str = UID, **spec: object) -> dict:
    """A ControllerRevision as the controllers write it: data replaces spec.template."""
    return {"metadata": {"name": name, "ownerReferences": [{"uid": owner, "controller": True}]},
            "revision": revision, "data": {"spec": {"template": {**template(image), "$patch": "replace"}, **spec}}}


HISTORY = [history("db-7c9", 3, "reg/db:v3"), history("db-5a1", 1, "reg/db:v1"), history("db-6b2", 2, "reg/db:v2"),
           history("other-1", 9, "reg/other:v9", owner="uid-other")]
REVISIONS = cr.revisions_of(HISTORY, UID)


def sts(image: str = "reg/db:v3", **spec: object) -> dict:
    return {"metadata": {"name": "db"}, "spec": {"template": template(image), **spec}}


def test_the_object_s_revisions_oldest_first_and_their_templates():
    assert [(r.name, r.revision) for r in REVISIONS] == [("db-5a1", 1), ("db-6b2", 2), ("db-7c9", 3)]
    assert REVISIONS[1].template == template("reg/db:v2") and "$patch" not in REVISIONS[1].template
    assert REVISIONS[1].release_id() == "v2"
    assert cr.undo_patch(REVISIONS[1]) == HISTORY[2]["data"], "the revision's data is sent as it is stored"


@pytest.mark.parametrize(("current", "expected"), [
    ("db-7c9", "db-6b2"),  # the newest before the current
    ("db-6b2", "db-7c9"),  # after an undo renumbered nothing yet, the current is found by name
    (None, "db-7c9"),
])
def test_an_undo_goes_back_to_the_newest_revision_before_the_current(current, expected):
    found = cr.previous(REVISIONS, current)
    assert found is not None and found.name == expected


def test_nothing_to_go_back_to_with_one_revision():
    assert cr.previous(REVISIONS[:1], "db-5a1") is None


def test_an_undo_is_skipped_when_the_template_already_matches():
    assert cr.matches(sts("reg/db:v2"), REVISIONS[1]) and not cr.matches(sts("reg/db:v3"), REVISIONS[1])


@pytest.mark.parametrize(("kind", "workload", "target", "why"), [
    ("StatefulSet", sts(), REVISIONS[1], None),
    ("StatefulSet", sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}), REVISIONS[1],
     None),
    ("StatefulSet", sts(updateStrategy={"type": "OnDelete"}), REVISIONS[1], "updates OnDelete"),
    ("DaemonSet", sts(updateStrategy={"type": "OnDelete"}), REVISIONS[1], "the DaemonSet updates OnDelete"),
    ("StatefulSet", sts(updateStrategy={"rollingUpdate": {"partition": 2}}), REVISIONS[1],
     "partitioned at 2: an undo would leave the pods below that ordinal on the new revision"),
    ("DaemonSet", sts(updateStrategy={"rollingUpdate": {"maxUnavailable": 1}}), REVISIONS[1], None),
    ("StatefulSet", sts(volumeClaimTemplates=[{"metadata": {"name": "data"}}]),
     cr.revisions_of([history("db-8d3", 4, "reg/db:v2", volumeClaimTemplates=[{"metadata": {"name": "old"}}])],
                     UID)[0], "also restores spec.volumeClaimTemplates"),
    ("StatefulSet", sts(volumeClaimTemplates=[{"metadata": {"name": "data"}}]),
     cr.revisions_of([history("db-8d3", 4, "reg/db:v2", volumeClaimTemplates=[{"metadata": {"name": "data"}}])],
                     UID)[0], None),
])
def test_an_undo_that_would_not_put_every_pod_back_is_refused(kind, workload, target, why):
    refusal = cr.undo_refusal(kind, workload, target)
    assert (refusal is None) == (why is None) and (why is None or why in (refusal or "")), refusal


def pod(name: str, revision: str, ready: bool) -> tuple[PodState, str]:
    return PodState(name=name, ready=ready, uid=f"uid-{name}"), revision


PODS = (pod("db-2", "db-7c9", False), pod("db-3", "db-7c9", True), pod("db-4", "db-5a1", False))


def workload(kind: str = "StatefulSet", ordered_ready: bool = True, pods=PODS) -> DeploymentState:
    return DeploymentState(name="db", resource_version="1", template={}, kind=kind, ordered_ready=ordered_ready,
                           other_pods=pods)


@pytest.mark.parametrize(("state", "expected"), [
    # the stuck pods of any other revision; a ready one and every pod of the good revision stay
    (workload(), ("db-2", "db-4")),
    (workload(ordered_ready=False), ()),  # Parallel: the controller replaces them by itself
    (workload("DaemonSet", ordered_ready=False), ()),
    (workload("Deployment", ordered_ready=False), ()),
])
def test_a_forced_rollback_deletes_only_stuck_pods_of_other_revisions(state, expected):
    assert tuple(p.name for p in cr.stuck_pods(state, good="db-6b2")) == expected


def test_a_forced_rollback_never_deletes_a_pod_of_the_good_revision():
    assert [p.name for p in cr.stuck_pods(workload(), good="db-7c9")] == ["db-4"]
    assert cr.stuck_pods(workload(pods=(pod("db-0", "db-6b2", False),)), good="db-6b2") == ()
