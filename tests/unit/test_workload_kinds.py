"""A run of a StatefulSet or DaemonSet: the undo as `kubectl rollout undo` does it for these kinds, the policy's
refusal of an unsafe undo, and a StatefulSet's forced rollback (table-driven on the pure machine)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfbootstrap.core import machine, record
from selfbootstrap.core.actions import DeleteStuckPods, PodsDeleted, RollbackDeployment
from selfbootstrap.core.patches import RECORD_POINTER
from selfbootstrap.core.world import DeploymentState, PodState, RolloutProgress
from selfbootstrap.models import RUNS_ANNOTATION, RunSpec, WorkloadKind

from .factories import REV1, T0, at, container, held_record, rev, rolling_back, run, tmpl, watching, world

GOOD = rev("db-6b2", 2, "v2")
BAD = rev("db-7c9", 3, "v3")


def sts(template: dict | None = None, *, kind: str = "StatefulSet", ordered_ready: bool = True,
        others: tuple[tuple[PodState, str], ...] = (), done: bool = False, **fields: object) -> DeploymentState:
    """A StatefulSet (or DaemonSet) the run holds, running `template` (default: the bad v3)."""
    values: dict = dict(name="db", resource_version="555", template=template or tmpl("v3"), kind=kind,
                        revisions=(REV1, GOOD, BAD), ordered_ready=ordered_ready, other_pods=others,
                        annotations={RUNS_ANNOTATION: held_record(previous="db-6b2")},
                        progress=RolloutProgress(done, False, "done" if done else "1 of 3 pods updated"))
    values.update(fields)
    return DeploymentState(**values)  # type: ignore[arg-type]


def spec(kind: str = "StatefulSet", **policy: object) -> RunSpec:
    return RunSpec.model_validate({"target": {"kind": kind, "name": "db"},
                                   "release": {"image": "registry.local:5000/team/web:v3"},
                                   "rollbackPolicy": policy})


def rolling(**fields: object):
    return rolling_back(previous_replica_set="db-6b2", deployed_replica_set="db-7c9",
                        rollback_target_replica_set="db-6b2", **fields)


def decide(dep: DeploymentState, sp: RunSpec | None = None, now=T0, **status: object):
    return machine.decide(run(rolling(**status), sp or spec(dep.kind)), world(dep), now)


@pytest.mark.parametrize("kind", [WorkloadKind.STATEFUL_SET, WorkloadKind.DAEMON_SET])
def test_the_undo_restores_the_revision_s_template_and_leaves_the_object_s_annotations(kind):
    d = decide(sts(kind=kind), now=at(1))
    assert isinstance(d.action, RollbackDeployment) and d.action.replica_set == "db-6b2"
    ops = d.action.patch
    assert ops[:2] == [{"op": "replace", "path": "/metadata/resourceVersion", "value": "555"},
                       {"op": "replace", "path": "/spec/template", "value": tmpl("v2")}]
    assert [op["path"] for op in ops[2:]] == [RECORD_POINTER], "only the record changes beside the template"
    assert record.parse(ops[2]["value"]).runs[-1].outcome == record.ROLLED_BACK


def pod(name: str, ready: bool) -> PodState:
    return PodState(name=name, ready=ready, uid=f"uid-{name}")


STUCK = ((pod("db-2", False), "db-7c9"), (pod("db-1", True), "db-7c9"), (pod("db-0", False), "db-6b2"))


def test_a_statefulset_waiting_for_a_stuck_pod_has_it_deleted_and_says_so():
    d = decide(sts(tmpl("v2"), others=STUCK), now=at(2), rollback_patched_at=at(1), reason="RollbackPatched")
    assert d.action == DeleteStuckPods("db-6b2", (("db-2", "uid-db-2"),)), "never a ready pod or a good one"
    assert d.status.stuck_pods_deleted == ["db-2"]
    assert [(e.reason, e.on_deployment) for e in d.events] == [("StuckPodsDeleted", True)]
    assert "db-2" in d.events[0].message and "forced rollback to db-6b2" in d.events[0].message
    after = machine.settle(run(d.status, spec()), world(sts(tmpl("v2"))), d.action, PodsDeleted(("db-2",)), at(2))
    assert after.status.phase == "RollingBack" and after.status.stuck_pods_deleted == ["db-2"]


@pytest.mark.parametrize("dep, sp", [
    pytest.param(sts(tmpl("v2"), others=STUCK), spec(deleteStuckPods=False), id="policy-says-no"),
    pytest.param(sts(tmpl("v2"), others=STUCK, ordered_ready=False), None, id="parallel-pods"),
    pytest.param(sts(tmpl("v2"), others=STUCK, kind="DaemonSet", ordered_ready=False), None, id="daemonset"),
    pytest.param(sts(tmpl("v2"), others=STUCK, generation=3, observed_generation=2), None, id="undo-not-observed"),
])
def test_no_pod_is_deleted_unless_the_policy_allows_and_the_controller_needs_it(dep, sp):
    d = decide(dep, sp, now=at(2), rollback_patched_at=at(1), reason="RollbackPatched")
    assert not isinstance(d.action, DeleteStuckPods) and d.status.stuck_pods_deleted == []


def test_a_rollback_left_waiting_by_the_policy_names_the_stuck_pods_when_it_times_out():
    d = decide(sts(tmpl("v2"), others=STUCK), spec(deleteStuckPods=False), now=at(700),
               rollback_patched_at=at(1), reason="RollbackPatched")
    assert (d.status.phase, d.status.reason) == ("Failed", "RollbackUnhealthy")
    assert "pods db-2 of the bad release" in (d.status.message or "") and "deleteStuckPods" in d.status.message


def test_the_rollback_of_a_statefulset_ends_when_its_rollout_is_done():
    d = decide(sts(tmpl("v2"), done=True), now=at(3), rollback_patched_at=at(1), reason="RollbackPatched")
    assert (d.status.phase, d.status.reason, d.status.rollback_healthy) == ("RolledBack", "RolledBack", True)


def test_an_unsafe_undo_is_denied_with_its_reason():
    refused = replace(GOOD, undo_refusal="the StatefulSet's rolling update is partitioned at 2")
    dep = sts(revisions=(REV1, refused, BAD), progress=RolloutProgress(False, True, "failed"))
    st = watching(deployed_replica_set="db-7c9", previous_replica_set="db-6b2")
    crashing = PodState(name="db-2", ready=False, containers=(
        container(waiting_reason="CrashLoopBackOff", restart_count=3, ready=False),))
    d = machine.decide(run(st, spec()), world(dep, pods=(crashing,)), T0)
    assert (d.status.phase, d.status.rollback_policy_status, d.status.rollback_policy_reason) == (
        "Failed", "denied", "undoUnsafe")
    assert "partitioned at 2" in (d.status.message or "")
