"""End-to-end: every run ends, and what it says happened is what happened.

Each test is a defect a user met before: a retry loop without end, a podTemplatePatch run that
"succeeded" without patching, a stale release annotation that steered a rollback to the wrong
ReplicaSet, an autoscaler's pending pods that failed the watchdog, a retry record left behind.
"""

from __future__ import annotations

import json

import pytest
from kubernetes import client

from .cluster import holds, wait_for
from .git_fixtures import FINISHED, assert_deployment_untouched, git_spec
from .kube_helpers import (
    condition,
    create_deployment,
    create_run,
    deployment,
    deployment_image,
    replica_sets,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
WATCHDOG = {"retries": 2, "intervalSeconds": 1}


def events_about(namespace: str, name: str) -> list[dict]:
    """events.k8s.io/v1 Events about the object, as JSON (the client cannot parse Events without eventTime)."""
    raw = client.EventsV1Api().list_namespaced_event(namespace, _preload_content=False)
    return [e for e in json.loads(raw.data)["items"] if (e.get("regarding") or {}).get("name") == name]


def test_a_forge_that_keeps_failing_ends_the_run_after_its_retry_budget(namespace, repo, forge):
    forge.outage(*[503] * 50)
    spec = git_spec(repo, forge)
    spec["retryPolicy"] = {"maxAttempts": 3, "initialBackoffSeconds": 0.5, "maxBackoffSeconds": 1}
    create_run(namespace, "budget", spec)

    st = wait_phase(namespace, "budget", FINISHED, timeout=60)
    forge.outage()

    assert (st["phase"], st["reason"]) == ("Failed", "RetriesExhausted"), st
    assert "3 attempts in phase OpeningPullRequest" in st["message"] and "503" in st["message"]
    retrying = [e for e in events_about(namespace, "budget") if e["reason"] == "Retrying"]
    assert len(retrying) == 1, "repeats are one Event counted as a series"
    assert retrying[0]["series"]["count"] == 2
    assert_deployment_untouched(namespace)


def test_a_passing_fault_is_retried_and_its_record_cleared_once_the_phase_moves_on(namespace, repo, forge):
    forge.outage(503, 503)
    spec = git_spec(repo, forge)
    spec["retryPolicy"] = {"initialBackoffSeconds": 0.5, "maxBackoffSeconds": 1}
    create_run(namespace, "flaky", spec)

    seen = wait_for(lambda: (status(namespace, "flaky").get("retry") or {}).get("attempts"), 60,
                    "the retry was never recorded")
    st = wait_phase(namespace, "flaky", FINISHED, timeout=90)

    assert seen >= 1 and st["phase"] == "Succeeded", st
    assert "retry" not in st, "the retry record is cleared on the server when the phase moves on"


def test_a_pod_template_patch_is_applied_although_the_release_id_is_already_there(namespace):
    create_deployment(namespace, "app", V1, "p1")  # the template already says release p1
    patch = {"metadata": {"labels": {"tier": "canary"}}}
    create_run(namespace, "patched", {"target": {"deployment": "app"}, "restartWatchdog": WATCHDOG,
                                      "release": {"id": "p1", "podTemplatePatch": patch}})

    st = wait_phase(namespace, "patched", FINISHED, timeout=90)

    assert st["phase"] == "Succeeded", st
    assert deployment(namespace, "app").spec.template.metadata.labels["tier"] == "canary"
    assert len(client.AppsV1Api().list_namespaced_replica_set(namespace).items) == 2, "a new revision"


def test_a_rollback_to_a_release_finds_it_not_a_hotfix_that_kept_its_annotation(namespace, kubectl):
    create_deployment(namespace, "app", "registry.example.com/app:v0", "v0")
    create_run(namespace, "to-v1", {"target": {"deployment": "app"}, "restartWatchdog": WATCHDOG,
                                    "release": {"id": "v1", "image": V1}})
    assert wait_phase(namespace, "to-v1", FINISHED, timeout=90)["phase"] == "Succeeded"
    kubectl("-n", namespace, "set", "image", "deployment/app", "app=registry.example.com/app:v1-hotfix")
    kubectl("-n", namespace, "rollout", "status", "deployment/app", "--timeout=60s")
    hotfix = replica_sets(namespace, "app")["registry.example.com/app:v1-hotfix"]

    create_run(namespace, "to-v2", {"target": {"deployment": "app"}, "restartWatchdog": WATCHDOG,
                                    "release": {"id": "v2", "image": "registry.example.com/app:v2-crashloop",
                                                "rollbackReleaseId": "v1"}})
    st = wait_phase(namespace, "to-v2", FINISHED, timeout=90)

    assert st["phase"] == "RolledBack", st
    real_v1 = replica_sets(namespace, "app")[V1]
    assert st["rollbackTargetReplicaSet"] == real_v1["name"] != hotfix["name"]
    assert st["previousReleaseId"] == "v1-hotfix", "the hotfix is what ran before, named by what it runs"
    assert deployment_image(namespace, "app") == V1


def test_an_autoscalers_pods_that_cannot_be_scheduled_do_not_fail_the_watchdog(cluster, namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1", replicas=1)
    create_run(namespace, "scaled", {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
                                     "restartWatchdog": {"retries": 6, "intervalSeconds": 1}})
    wait_phase(namespace, "scaled", "WatchingRestarts", timeout=60)
    if cluster.existing:
        pytest.skip("stops the local control plane's scheduler: there is none on an existing cluster")

    # The new pods are placed nowhere for a while: they stay Pending, as on a cluster that is full.
    with cluster.plane.scheduler_paused():
        kubectl("-n", namespace, "scale", "deployment/app", "--replicas=3")
        pending = wait_for(lambda: [p for p in client.CoreV1Api().list_namespaced_pod(namespace).items
                                    if p.status.phase == "Pending"], 30, "no pod of the scale-up came")
        st = wait_phase(namespace, "scaled", FINISHED, timeout=60)
        still_pending = client.CoreV1Api().read_namespaced_pod(pending[0].metadata.name, namespace).status.phase

    assert still_pending == "Pending", "the test must have watched over unscheduled pods"
    assert (st["phase"], st["restartWatchdogStatus"]) == ("Succeeded", "stable"), st
    assert deployment_image(namespace, "app") == V2


def test_conditions_and_message_of_a_rolled_back_run_keep_what_failed(namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "crashy", {"target": {"deployment": "app"}, "restartWatchdog": WATCHDOG,
                                     "release": {"id": "v2", "image": "registry.example.com/app:v2-crashloop"}})
    st = wait_phase(namespace, "crashy", FINISHED, timeout=90)
    assert st["phase"] == "RolledBack", st
    assert "after RestartWatchdogFailed:" in st["message"] and "CrashLoopBackOff" in st["message"]
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "restartWatchdogFailure" and "CrashLoopBackOff" in degraded["message"]
    assert (st["failureReason"], st["restartWatchdogAttempts"]) == ("RestartWatchdogFailed", 1)
    holds(lambda: status(namespace, "crashy")["phase"] == "RolledBack", 2, "a finished run must stay finished")
