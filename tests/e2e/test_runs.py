"""End-to-end: runs reconciled by the real operator process against the real control plane.

Pods are simulated by kwok: an image whose reference contains "crashloop" crash-loops.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from .kube_helpers import (
    condition,
    create_deployment,
    create_run,
    deployment,
    deployment_image,
    events_of,
    poll,
    replica_sets,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
CRASHING = "registry.example.com/app:v2-crashloop"
FAST_WATCHDOG = {"retries": 3, "intervalSeconds": 1}


def run_spec(image: str, release: str, **extra) -> dict:
    spec = {"target": {"deployment": "app"}, "release": {"id": release, "image": image},
            "restartWatchdog": FAST_WATCHDOG, "health": {"progressDeadlineSeconds": 60}}
    spec.update(extra)
    return spec


def test_healthy_release_succeeds_with_release_metadata(namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "to-v2", run_spec(V2, "v2"))

    st = wait_phase(namespace, "to-v2", {"Succeeded", "Failed", "RolledBack"})

    assert st["phase"] == "Succeeded", st
    rs = replica_sets(namespace, "app")
    assert (st["deployedReleaseId"], st["deployedRevision"], st["deployedReplicaSet"]) == ("v2", 2, rs[V2]["name"])
    assert (st["previousReleaseId"], st["previousRevision"], st["previousReplicaSet"]) == ("v1", 1, rs[V1]["name"])
    assert st["releaseMetadataSource"] == "deploymentRevisions"
    assert st["healthStatus"] == "healthy"
    assert (st["restartWatchdogStatus"], st["restartWatchdogReason"]) == ("stable", "stable")
    assert st["restartWatchdogAttempts"] == 3
    assert st["rollbackPolicyStatus"] == "notEvaluated"
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Progressing")["status"] == "False"
    assert [h["phase"] for h in st["history"]][:1] == ["Pending"]
    assert [(h["phase"], h["reason"]) for h in st["history"]][:3] == [
        ("Pending", "Accepted"), ("Pending", "ReleasesResolved"), ("VerifyingHealth", "Deployed")], \
        "the releases are recorded before the patch that takes the Deployment and deploys"
    assert {"WatchingRestarts", "Succeeded"} <= {h["phase"] for h in st["history"]}
    dep = deployment(namespace, "app")
    assert deployment_image(namespace, "app") == V2
    assert dep.spec.template.metadata.annotations["selfbootstrap.dev/release-id"] == "v2"
    assert "to-v2" in dep.metadata.annotations["kubernetes.io/change-cause"]
    reasons = {reason for _, reason, _ in events_of(namespace, "to-v2")}
    assert {"Started", "Deployed", "Healthy", "Succeeded"} <= reasons

    table = kubectl("get", "sbr", "-n", namespace)
    header, row = table.splitlines()[0].split(), table.splitlines()[1].split()
    assert header[:6] == ["NAME", "PHASE", "TARGET", "RELEASE", "PREVIOUS", "AGE"]
    assert row[:5] == ["to-v2", "Succeeded", "app", "v2", "v1"]
    assert "CI" in kubectl("get", "sbr", "-n", namespace, "-o", "wide").splitlines()[0].split()


def test_crash_looping_release_is_rolled_back_to_previous_replica_set(namespace, operator):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "broken", run_spec(CRASHING, "v2"))

    st = wait_phase(namespace, "broken", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "RolledBack", st
    assert st["rollbackPolicyStatus"] == "allowed"
    assert st["rollbackPolicyReason"] == "rollbackTargetValidated"
    assert st["rollbackTargetValid"] is True
    assert st["rollbackFailureClass"] == "restartWatchdogFailure"
    assert st["rollbackDeploymentContext"] == "external"
    assert st["restartWatchdogStatus"] == "unstable"
    assert st["restartWatchdogReason"] in {"crashLoopBackOff"} or st["restartWatchdogReason"].startswith(
        "containerRestarted:")
    assert st["rollbackHealthy"] is True
    rs = replica_sets(namespace, "app")
    # Recorded before the patch: the old revision number, and the ReplicaSet by name.
    assert (st["rollbackTargetReleaseId"], st["rollbackTargetRevision"]) == ("v1", 1)
    assert st["rollbackTargetReplicaSet"] == rs[V1]["name"]
    # The controller re-adopted the v1 ReplicaSet under a new revision: exactly one undo.
    assert (rs[V1]["revision"], rs[V1]["history"]) == (3, "1")
    assert rs[CRASHING]["revision"] == 2
    assert deployment_image(namespace, "app") == V1
    dep = deployment(namespace, "app")
    assert dep.status.available_replicas == 2 and dep.status.updated_replicas == 2
    assert "pod-template-hash" not in (dep.spec.template.metadata.labels or {})
    assert condition(st, "RolledBack")["status"] == "True"
    assert condition(st, "Degraded")["reason"] == "restartWatchdogFailure"
    reasons = {reason for _, reason, _ in events_of(namespace, "broken")}
    assert {"RestartWatchdogFailed", "RollingBack", "RollbackPatched", "RolledBack"} <= reasons
    metrics = operator.metrics()
    assert 'selfbootstrap_rollbacks_total{failure_class="restartWatchdogFailure"}' in metrics
    assert 'selfbootstrap_runs_finished_total{phase="RolledBack",reason="RolledBack"}' in metrics


def test_denied_policy_leaves_the_deployment_alone(namespace):
    create_deployment(namespace, "app", V1, "v1")
    spec = run_spec(CRASHING, "v2", rollbackPolicy={"onRestartWatchdogFailure": False})
    create_run(namespace, "no-rollback", spec)

    st = wait_phase(namespace, "no-rollback", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "Failed"
    assert st["reason"] == "RestartWatchdogFailed"
    assert "rollbackDisabledForRestartWatchdogFailure" in st["message"]
    assert (st["rollbackPolicyStatus"], st["rollbackPolicyReason"]) == (
        "denied", "rollbackDisabledForRestartWatchdogFailure")
    assert st["rollbackFailureClass"] == "restartWatchdogFailure"
    assert "rollbackHealthy" not in st
    assert deployment_image(namespace, "app") == CRASHING
    assert {r["revision"] for r in replica_sets(namespace, "app").values()} == {1, 2}
    assert ("Warning", "Failed") in {(t, r) for t, r, _ in events_of(namespace, "no-rollback")}


def test_external_target_without_identifiable_release_is_denied(namespace):
    """The previous template carries no release id (no annotation, untagged image)."""
    apps = client.AppsV1Api()
    create_deployment(namespace, "app", V1, "v1")
    apps.patch_namespaced_deployment("app", namespace, [
        {"op": "remove", "path": "/spec/template/metadata/annotations"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "registry.example.com/app"},
    ], _content_type="application/json-patch+json")
    poll(lambda: len(replica_sets(namespace, "app")) == 2, 30, "second ReplicaSet never appeared")
    create_run(namespace, "untracked", run_spec(CRASHING, "v2"))

    st = wait_phase(namespace, "untracked", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "Failed"
    assert (st["rollbackPolicyStatus"], st["rollbackPolicyReason"], st["rollbackTargetValid"]) == (
        "denied", "rollbackTargetRequiredForExternalContext", False)
    assert deployment_image(namespace, "app") == CRASHING


def test_a_second_run_for_the_same_deployment_waits_its_turn(namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "first", run_spec(V2, "v2", restartWatchdog={"retries": 4, "intervalSeconds": 1}))
    wait_phase(namespace, "first", {"Deploying", "VerifyingHealth", "WatchingRestarts"}, timeout=30)
    create_run(namespace, "second", run_spec("registry.example.com/app:v3", "v3"))

    queued = poll(lambda: status(namespace, "second").get("reason") == "Queued" and status(namespace, "second"),
                  30, lambda: f"second run not queued: {status(namespace, 'second')}")
    assert queued["phase"] == "Pending" and "'first'" in queued["message"]

    assert wait_phase(namespace, "first", {"Succeeded", "Failed", "RolledBack"})["phase"] == "Succeeded"
    st = wait_phase(namespace, "second", {"Succeeded", "Failed", "RolledBack"})
    assert st["phase"] == "Succeeded"
    assert (st["previousReleaseId"], st["deployedReleaseId"]) == ("v2", "v3")


@pytest.fixture
def health_endpoint() -> Iterator[dict]:
    """A real HTTP server on loopback whose answer the test controls."""
    state: dict = {"code": 503, "hits": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            state["hits"] += 1
            self.send_response(state["code"])
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    yield state
    server.shutdown()


def test_failing_http_check_rolls_back_after_all_retries(namespace, health_endpoint):
    create_deployment(namespace, "app", V1, "v1")
    http = {"url": health_endpoint["url"], "retries": 3, "intervalSeconds": 1}
    create_run(namespace, "unhealthy", run_spec(V2, "v2", health={"http": http}))

    st = wait_phase(namespace, "unhealthy", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "RolledBack"
    assert (st["healthStatus"], st["healthAttempts"]) == ("unhealthy", 3)
    assert health_endpoint["hits"] == 3
    assert st["rollbackFailureClass"] == "healthFailure"
    assert st["restartWatchdogStatus"] == "notRun"
    assert deployment_image(namespace, "app") == V1


def test_passing_http_check_gates_the_release(namespace, health_endpoint):
    health_endpoint["code"] = 200
    create_deployment(namespace, "app", V1, "v1")
    http = {"url": health_endpoint["url"], "retries": 3, "intervalSeconds": 1}
    create_run(namespace, "healthy", run_spec(V2, "v2", health={"http": http}))

    st = wait_phase(namespace, "healthy", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "Succeeded"
    assert (st["healthStatus"], st["healthAttempts"]) == ("healthy", 1)


def test_missing_deployment_fails_with_a_reason(namespace):
    create_run(namespace, "nowhere", run_spec(V2, "v2"))
    st = wait_phase(namespace, "nowhere", "Failed", timeout=30)
    assert st["reason"] == "TargetNotFound" and "'app'" in st["message"]


def test_deleting_a_run_mid_flight_leaves_the_deployment_and_says_so(namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "doomed", run_spec(V2, "v2", restartWatchdog={"retries": 30, "intervalSeconds": 1}))
    wait_phase(namespace, "doomed", "WatchingRestarts", timeout=60)

    client.CustomObjectsApi().delete_namespaced_custom_object(
        "selfbootstrap.dev", "v1alpha1", namespace, "selfbootstrapruns", "doomed")

    def gone() -> bool:
        try:
            status(namespace, "doomed")
        except ApiException as err:
            return err.status == 404
        return False

    poll(gone, 30, "run was not deleted (finalizer stuck?)")
    assert deployment_image(namespace, "app") == V2
    events = events_of(namespace, "app", kind="Deployment")
    assert any(r == "SelfBootstrapRunDeleted" and "WatchingRestarts" in m and "stays deployed" in m
               and "no rollback was performed" in m for _, r, m in events), events
