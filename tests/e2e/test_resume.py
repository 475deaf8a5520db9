"""End-to-end: the operator is SIGKILLed mid-run and the run resumes from status."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime

import pytest
from kubernetes import client

from .kube_helpers import create_deployment, create_run, events_of, replica_sets, status, wait_phase

pytestmark = pytest.mark.e2e

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"


def crash_pods(namespace: str, replica_set: str) -> int:
    """Act as the kubelet: report the ReplicaSet's containers as crash-looping."""
    core = client.CoreV1Api()
    now = datetime.now(UTC).isoformat()
    pods = [p for p in core.list_namespaced_pod(namespace, label_selector="app=app").items
            if any(ref.name == replica_set for ref in p.metadata.owner_references or [])]
    for pod in pods:
        core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
            "containerStatuses": [{
                "name": "app", "image": V2, "imageID": "", "ready": False, "restartCount": 4,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}},
                "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now,
                                             "finishedAt": now}},
            }],
        }})
    return len(pods)


def test_sigkill_during_restart_watchdog_resumes_and_rolls_back_exactly_once(operator, namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "resumed", {
        "target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
        "restartWatchdog": {"retries": 60, "intervalSeconds": 1},
    })
    wait_phase(namespace, "resumed", "WatchingRestarts", timeout=60)
    operator.kill()
    observed_before_kill = status(namespace, "resumed")["restartWatchdogAttempts"]
    try:
        assert crash_pods(namespace, replica_sets(namespace, "app")[V2]["name"]) == 2
    finally:
        operator.start()

    st = wait_phase(namespace, "resumed", {"RolledBack", "Failed", "Succeeded"}, timeout=90)

    assert st["phase"] == "RolledBack", st
    assert (st["restartWatchdogStatus"], st["restartWatchdogReason"]) == ("unstable", "crashLoopBackOff")
    assert st["rollbackHealthy"] is True
    rs = replica_sets(namespace, "app")
    # One undo: v1 re-adopted once (1 -> 3), the v2 ReplicaSet untouched at 2.
    assert (rs[V1]["revision"], rs[V1]["history"]) == (3, "1")
    assert (rs[V2]["revision"], rs[V2]["history"]) == (2, "")
    history = st["history"]
    entered = [b["phase"] for a, b in itertools.pairwise(history) if a["phase"] != b["phase"]]
    assert entered.count("RollingBack") == 1 and entered[-1] == "RolledBack"
    assert [r for _, r, _ in events_of(namespace, "resumed")].count("RollbackPatched") == 1
    # The watchdog went on from the observations recorded before the kill, not from zero.
    assert st["restartWatchdogAttempts"] == observed_before_kill + 1


def test_control_plane_crash_mid_run_is_survived(cluster, operator, namespace):
    if cluster.existing:
        pytest.skip("crashes the local control plane's processes: there are none on an existing cluster")
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "outage", {
        "target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
        "restartWatchdog": {"retries": 8, "intervalSeconds": 1},
    })
    wait_phase(namespace, "outage", "WatchingRestarts", timeout=60)

    cluster.plane.restart_control_plane()  # the API server and controllers crash and come back

    st = wait_phase(namespace, "outage", {"RolledBack", "Failed", "Succeeded"}, timeout=120)
    assert st["phase"] == "Succeeded", [(h["at"], h["phase"], h["reason"], h["message"]) for h in st["history"]]
    assert st["restartWatchdogAttempts"] == 8
    assert operator.proc.poll() is None, "the operator must ride out the outage, not crash"
    assert replica_sets(namespace, "app")[V2]["revision"] == 2


def test_a_persons_hotfix_between_the_failure_and_the_undo_survives(operator, namespace, kubectl):
    """The operator stops right after it recorded the decision to roll back; a person then fixes the
    Deployment by hand. The resumed run must not undo over the fix."""
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "hotfixed", {
        "target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
        "restartWatchdog": {"retries": 60, "intervalSeconds": 1},
    })
    wait_phase(namespace, "hotfixed", "WatchingRestarts", timeout=60)
    operator.kill()
    try:
        rs = replica_sets(namespace, "app")
        # What the operator writes when the watchdog fails and the policy allows the undo.
        kubectl("-n", namespace, "patch", "sbr", "hotfixed", "--subresource=status", "--type=merge", "-p", json.dumps(
            {"status": {"phase": "RollingBack", "reason": "RestartWatchdogFailed",
                        "message": "pod crash-looping; rolling back to revision 1",
                        "restartWatchdogStatus": "unstable", "restartWatchdogReason": "crashLoopBackOff",
                        "rollbackPolicyStatus": "allowed", "rollbackPolicyReason": "rollbackTargetValidated",
                        "rollbackTargetValid": True, "rollbackFailureClass": "restartWatchdogFailure",
                        "rollbackDeploymentContext": "external", "rollbackTargetReleaseId": "v1",
                        "rollbackTargetReplicaSet": rs[V1]["name"], "rollbackTargetRevision": rs[V1]["revision"]}}))
        kubectl("-n", namespace, "set", "image", "deployment/app", "app=registry.example.com/app:v2-hotfix")
    finally:
        operator.start()

    st = wait_phase(namespace, "hotfixed", {"RolledBack", "Failed", "Succeeded"}, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "DeploymentChanged"), st
    assert "not rolling back over someone else's change" in st["message"]
    rs = replica_sets(namespace, "app")
    assert client.AppsV1Api().read_namespaced_deployment("app", namespace).spec.template.spec.containers[0].image \
        == "registry.example.com/app:v2-hotfix"
    assert (rs[V1]["revision"], rs[V1]["history"]) == (1, ""), "the v1 ReplicaSet was never re-adopted"
