"""End-to-end: `kubectl sbr`, found by the real kubectl on PATH, against real runs.

The plan is checked against what the operator then does with the same manifest: the same
release metadata, the same deploy patch and the same rollback target ReplicaSet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from selfbootstrap.core.text import is_hidden
from selfbootstrap.models import ABORT_ANNOTATION, GROUP, PLURAL, VERSION

from .kube_helpers import (
    create_deployment,
    create_run,
    get_run,
    poll,
    replica_sets,
    run_body,
    sbr,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
CRASHING = "registry.example.com/app:v2-crashloop"
FAST_WATCHDOG = {"retries": 3, "intervalSeconds": 1}


def spec(image: str, release: str, **extra) -> dict:
    return {"target": {"deployment": "app"}, "release": {"id": release, "image": image},
            "restartWatchdog": FAST_WATCHDOG, "health": {"progressDeadlineSeconds": 60}, **extra}


def ok(*args: str, timeout: float = 120) -> str:
    done = sbr(*args, timeout=timeout)
    assert done.returncode == 0, f"kubectl sbr {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def manifest(tmp_path: Path, name: str, body: dict) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
                                    "metadata": {"name": name}, "spec": body}))
    return str(path)


def test_kubectl_finds_the_plugin(cluster):
    done = sbr("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("kubectl-sbr, version ")


def test_plan_agrees_with_what_the_operator_then_does(operator, namespace, tmp_path):
    create_deployment(namespace, "app", V1, "v1")
    path = manifest(tmp_path, "broken", spec(CRASHING, "v2"))
    v1_set = replica_sets(namespace, "app")[V1]["name"]

    planned = json.loads(ok("-n", namespace, "plan", "-f", path, "-o", "json"))
    text = ok("-n", namespace, "plan", "-f", path)

    assert planned["ends"] is None, planned
    assert planned["status"] == {"deployedReleaseId": "v2", "previousReleaseId": "v1", "previousRevision": 1,
                                 "previousReplicaSet": v1_set, "rollbackTargetReleaseId": "v1",
                                 "releaseMetadataSource": "deploymentRevisions"}
    watchdog = next(p for p in planned["rollbackPolicy"] if p["failureClass"] == "restartWatchdogFailure")
    assert (watchdog["outcome"], watchdog["targetReplicaSet"]) == ("allowed", v1_set), planned
    deploy = next(p for p in planned["rollbackPolicy"] if p["failureClass"] == "deployFailure")
    assert deploy["outcome"] == "denied", "onDeployFailure defaults to false"
    assert "deploys release v2 over v1" in text and CRASHING in text
    assert not get_run_or_none(namespace, "broken"), "a plan creates nothing"

    with open(path) as f:
        create_run(namespace, "broken", yaml.safe_load(f)["spec"])
    st = wait_phase(namespace, "broken", {"RolledBack", "Failed", "Succeeded"})
    assert st["phase"] == "RolledBack", st
    assert st["rollbackFailureClass"] == "restartWatchdogFailure"
    assert st["rollbackTargetReplicaSet"] == watchdog["targetReplicaSet"]
    for field, value in planned["status"].items():
        assert st[field] == value, field
    template = planned["deploymentPatch"]["spec"]["template"]
    assert template["spec"]["containers"] == [{"name": "app", "image": CRASHING}]


def get_run_or_none(namespace: str, name: str) -> dict | None:
    from kubernetes.client.exceptions import ApiException
    try:
        return get_run(namespace, name)
    except ApiException as err:
        if err.status == 404:
            return None
        raise


def test_plan_says_a_run_would_fail_without_its_deployment(cluster, crd, namespace, tmp_path):
    planned = json.loads(ok("-n", namespace, "plan", "-f", manifest(tmp_path, "lost", spec(V2, "v2")), "-o", "json"))
    assert (planned["ends"], planned["reason"]) == ("Failed", "TargetNotFound"), planned


def test_plan_rejects_an_invalid_manifest_naming_the_field(cluster, namespace, tmp_path):
    body = spec(V2, "v2")
    body["rollbackPolicy"] = {"timeoutSeconds": "soon"}
    done = sbr("-n", namespace, "plan", "-f", manifest(tmp_path, "bad", body))
    assert done.returncode == 3, done
    assert "spec.rollbackPolicy.timeoutSeconds" in done.stderr and "Traceback" not in done.stderr


def test_get_list_history_and_status_of_finished_runs(operator, namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "to-v2", spec(V2, "v2"))
    assert wait_phase(namespace, "to-v2", {"Succeeded", "Failed", "RolledBack"})["phase"] == "Succeeded"
    create_run(namespace, "to-v3", spec(CRASHING, "v3"))
    assert wait_phase(namespace, "to-v3", {"Succeeded", "Failed", "RolledBack"})["phase"] == "RolledBack"
    sets = replica_sets(namespace, "app")

    tree = ok("-n", namespace, "get", "to-v2")
    assert "to-v2" in tree and "Succeeded" in tree and "deployment app" in tree
    assert f"replicaset {sets[V2]['name']}" in tree
    assert tree.count("pod app-") >= 2, tree

    rows = [line.split() for line in ok("-n", namespace, "list").splitlines()]
    assert rows[0][:4] == ["NAME", "PHASE", "TARGET", "RELEASE"]
    assert [r[:4] for r in rows[1:]] == [["to-v2", "Succeeded", "app", "v2"], ["to-v3", "RolledBack", "app", "v3"]]

    history = ok("-n", namespace, "history", "app")
    assert "to-v3 deployed (RolledBack)" in history and "to-v3 rolled back to it" in history
    assert "to-v2 deployed (Succeeded)" in history
    assert sets[CRASHING]["name"] in history

    assert sbr("-n", namespace, "status", "to-v2").returncode == 0
    failed = sbr("-n", namespace, "status", "to-v3")
    assert failed.returncode == 1 and "RolledBack" in failed.stderr
    missing = sbr("-n", namespace, "status", "nope")
    assert missing.returncode == 3 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_status_times_out_then_abort_and_retry(operator, namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "slow", spec(V2, "v2", restartWatchdog={"retries": 30, "intervalSeconds": 5}))
    wait_phase(namespace, "slow", {"WatchingRestarts"})

    waited = sbr("-n", namespace, "status", "slow", "--timeout", "1s")
    assert waited.returncode == 2 and "still WatchingRestarts" in waited.stderr, waited
    in_flight = (f'selfbootstrap_run_info{{name="slow",namespace="{namespace}",phase="WatchingRestarts",'
                 'target="app",target_kind="Deployment"} 1.0')
    poll(lambda: in_flight in operator.metrics(), 10, lambda: f"no {in_flight} in the metrics")
    assert 'selfbootstrap_build_info{' in operator.metrics() and 'version="' in operator.metrics()

    assert "abort requested" in ok("-n", namespace, "abort", "slow", "--reason", "wrong ticket")
    st = wait_phase(namespace, "slow", {"RolledBack", "Failed", "Succeeded"})
    assert (st["phase"], st["rollbackFailureClass"]) == ("RolledBack", "aborted"), st
    assert "wrong ticket" in st["message"]
    poll(lambda: f'name="slow",namespace="{namespace}"' not in operator.metrics(), 10,
         "a run that ended keeps its selfbootstrap_run_info series")

    assert "retried as slow-retry-1" in ok("-n", namespace, "retry", "slow")
    poll(lambda: status(namespace, "slow-retry-1").get("retryOf") == "slow", 30,
         lambda: f"the retry does not name its origin: {status(namespace, 'slow-retry-1')}")
    again = sbr("-n", namespace, "retry", "slow-retry-1")
    assert again.returncode == 3 and "abort it first" in again.stderr


def test_get_watch_ends_with_the_run(operator, namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "watched", spec(V2, "v2"))
    done = sbr("-n", namespace, "get", "watched", "-w", timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Succeeded" in done.stdout, done.stdout
    assert status(namespace, "watched")["phase"] == "Succeeded"


def test_text_from_the_cluster_reaches_the_terminal_escaped(operator, namespace):
    """A run's author wrote a screen clear and a forged line into the abort reason, which the run's status
    message quotes: `get` and `list` show it as visible escapes, and no control character at all."""
    create_deployment(namespace, "app", V1, "v1")
    body = run_body("hostile", spec(V2, "v2"))
    body["metadata"]["annotations"] = {ABORT_ANNOTATION: "\x1b[2J\r\nFAKE"}
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    st = wait_phase(namespace, "hostile", {"Failed", "RolledBack", "Succeeded"})
    assert st["reason"] == "Aborted", st

    for args in (("get", "hostile"), ("list",)):
        shown = ok("-n", namespace, *args)
        assert [c for c in shown if is_hidden(c) and c != "\n"] == [], (args, shown)
        assert "\\x1b[2J\\x0d\\x0aFAKE" in shown, (args, shown)
