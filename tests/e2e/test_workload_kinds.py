"""End-to-end: runs of a StatefulSet and a DaemonSet, reconciled by the real operator process (with the
ClusterRole it ships) against the real controllers.

A crash-looping release is rolled back to the previous ControllerRevision, and the restored template is compared
field by field with what `kubectl rollout undo` makes of a twin object given the same history. A StatefulSet with
OrderedReady pods needs the forced rollback (the operator deletes the stuck pod of the bad release); a healthy
release succeeds; an undo that could not put every pod back is denied with its reason; and runs created at the
same instant on one StatefulSet take it one at a time (invariants.Recorder). Pods are kwok's: an image whose
reference contains "crashloop" crash-loops.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from .cluster import wait_for
from .invariants import Recorder
from .kube_helpers import at_once, create_run, events_of, get_run, sbr, wait_phase

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

FINISHED = {"Succeeded", "Failed", "RolledBack", "Superseded"}
WATCHDOG = {"retries": 3, "intervalSeconds": 1}
KINDS = ["StatefulSet", "DaemonSet"]


def image(version: str) -> str:
    return f"registry.example.com/db:{version}"


def body(kind: str, name: str, version: str, replicas: int = 2, **strategy: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}, "annotations": {"selfbootstrap.dev/release-id": version}},
                     "spec": {"containers": [{"name": "db", "image": image(version)}]}}}
    if kind == "StatefulSet":
        spec.update(serviceName=name, replicas=replicas)
    if strategy:
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def read(kind: str, namespace: str, name: str) -> dict[str, Any]:
    apps = client.AppsV1Api()
    found = (apps.read_namespaced_stateful_set if kind == "StatefulSet" else apps.read_namespaced_daemon_set)(
        name, namespace)
    return client.ApiClient().sanitize_for_serialization(found)


def rolled_out(kind: str, namespace: str, name: str) -> bool:
    o = read(kind, namespace, name)
    s, generation = o.get("status") or {}, o["metadata"]["generation"]
    if s.get("observedGeneration", 0) < generation:
        return False
    if kind == "DaemonSet":
        want = s.get("desiredNumberScheduled", 0)
        return want > 0 and s.get("updatedNumberScheduled", 0) == want and s.get("numberAvailable", 0) == want
    want = o["spec"]["replicas"]
    return s.get("updatedReplicas", 0) == want and s.get("readyReplicas", 0) == want \
        and s.get("currentRevision") == s.get("updateRevision")


def create(kubectl, namespace: str, kind: str, name: str, version: str = "v1", **extra: Any) -> None:
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(body(kind, name, version, **extra)))
    wait_for(lambda: rolled_out(kind, namespace, name), 90, f"{kind} {name} never rolled out")


def release_patch(version: str) -> str:
    return json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"selfbootstrap.dev/release-id": version}},
        "spec": {"containers": [{"name": "db", "image": image(version)}]}}}})


def run_spec(kind: str, name: str, version: str, **extra: Any) -> dict[str, Any]:
    return {"target": {"kind": kind, "name": name}, "release": {"id": version, "image": image(version)},
            "restartWatchdog": WATCHDOG, "health": {"progressDeadlineSeconds": 90}, **extra}


def template(kind: str, namespace: str, name: str) -> dict[str, Any]:
    """The object's pod template with its own name taken out, to compare twins."""
    return json.loads(json.dumps(read(kind, namespace, name)["spec"]["template"]).replace(name, "NAME"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_healthy_release_succeeds_with_its_revisions(namespace, kubectl, kind, tmp_path):
    create(kubectl, namespace, kind, "db")
    manifest = tmp_path / "run.yaml"
    manifest.write_text(json.dumps({"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
                                    "metadata": {"name": "to-v2"}, "spec": run_spec(kind, "db", "v2")}))
    planned = sbr("-n", namespace, "plan", "-f", str(manifest), "-o", "json")
    assert planned.returncode == 0, planned
    plan = json.loads(planned.stdout)
    assert (plan["status"]["deployedReleaseId"], plan["status"]["previousReleaseId"]) == ("v2", "v1"), plan
    create_run(namespace, "to-v2", run_spec(kind, "db", "v2"))

    st = wait_phase(namespace, "to-v2", FINISHED, timeout=150)

    assert st["phase"] == "Succeeded", st
    assert (st["deployedReleaseId"], st["previousReleaseId"]) == ("v2", "v1")
    assert st["previousReplicaSet"] == plan["status"]["previousReplicaSet"], "the plan named the same revision"
    history = {h["metadata"]["name"]: h for h in client.ApiClient().sanitize_for_serialization(
        client.AppsV1Api().list_namespaced_controller_revision(namespace).items)}
    deployed, previous = history[st["deployedReplicaSet"]], history[st["previousReplicaSet"]]
    assert deployed["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == image("v2")
    assert previous["data"]["spec"]["template"]["spec"]["containers"][0]["image"] == image("v1")
    assert rolled_out(kind, namespace, "db")
    label = f"selfbootstrap.dev/{kind.lower()}"
    assert get_run(namespace, "to-v2")["metadata"]["labels"][label] == "db"
    row = kubectl("get", "sbr", "-n", namespace, "-o", "wide").splitlines()
    assert row[1].split()[:6] == ["to-v2", "Succeeded", "db", kind, "v2", "v1"], row
    shown = sbr("-n", namespace, "history", "db", "--kind", kind)
    assert shown.returncode == 0 and "CONTROLLERREVISION" in shown.stdout and "to-v2 deployed" in shown.stdout, shown


@pytest.mark.parametrize("kind", KINDS)
def test_a_crash_looping_release_is_rolled_back_as_kubectl_rollout_undo_does(namespace, kubectl, kind):
    for name in ("primary", "twin"):
        create(kubectl, namespace, kind, name)
    kubectl("-n", namespace, "patch", kind.lower(), "twin", "--type=strategic", "-p", release_patch("v2-crashloop"))
    create_run(namespace, "broken", run_spec(kind, "primary", "v2-crashloop"))

    st = wait_phase(namespace, "broken", FINISHED, timeout=180)

    assert (st["phase"], st["rollbackHealthy"]) == ("RolledBack", True), st
    assert st["rollbackTargetReplicaSet"] == st["previousReplicaSet"]
    kubectl("-n", namespace, "rollout", "undo", f"{kind.lower()}/twin")
    undone = template(kind, namespace, "primary")
    assert undone == template(kind, namespace, "twin"), "field by field, as kubectl undoes"
    assert undone["spec"]["containers"][0]["image"] == image("v1")
    wait_for(lambda: rolled_out(kind, namespace, "primary"), 60, f"{kind} primary never ran v1 everywhere again")
    reasons = {reason for _, reason, _ in events_of(namespace, "primary", kind)}
    assert "RolledBack" in reasons, reasons
    if kind == "StatefulSet":  # OrderedReady: the controller waited for the stuck pod until it was deleted
        assert st["stuckPodsDeleted"] == ["primary-1"], st
        assert "StuckPodsDeleted" in reasons
        assert (read(kind, namespace, "twin")["status"].get("updatedReplicas") or 0) < 2, \
            "the twin, undone by kubectl alone, still waits for its stuck pod"
    else:
        assert st.get("stuckPodsDeleted", []) == [], st
    shown = sbr("-n", namespace, "get", "broken")
    assert shown.returncode == 0 and f"{kind.lower()} primary" in shown.stdout, shown
    assert "rollback target" in shown.stdout, shown.stdout


def test_an_unsafe_statefulset_undo_is_denied_with_its_reason(namespace, kubectl):
    create(kubectl, namespace, "StatefulSet", "db", partition=1)
    create_run(namespace, "broken", run_spec("StatefulSet", "db", "v2-crashloop"))

    st = wait_phase(namespace, "broken", FINISHED, timeout=150)

    assert (st["phase"], st["rollbackPolicyStatus"], st["rollbackPolicyReason"]) == ("Failed", "denied",
                                                                                     "undoUnsafe"), st
    assert "partitioned at 1" in st["message"], st["message"]
    assert read("StatefulSet", namespace, "db")["spec"]["template"]["spec"]["containers"][0]["image"] == \
        image("v2-crashloop"), "nothing was undone"


def test_runs_created_at_the_same_instant_take_one_statefulset_one_at_a_time(namespace, kubectl):
    create(kubectl, namespace, "StatefulSet", "db", replicas=1)
    recorder = Recorder(namespace, "db", kind="StatefulSet").start()
    try:
        for r in range(3):
            names = [f"r{r}-{i}" for i in range(3)]
            at_once(namespace, [(n, run_spec("StatefulSet", "db", f"v{r}-{i}"), None) for i, n in enumerate(names)])
            created = {n: get_run(namespace, n)["metadata"]["creationTimestamp"] for n in names}
            newest = max(names, key=lambda n: (created[n], n))
            ends = {n: wait_phase(namespace, n, FINISHED, timeout=180) for n in names}
            assert ends[newest]["phase"] == "Succeeded", ends
            assert all(st["phase"] in ("Succeeded", "Superseded") for st in ends.values()), ends
            current = read("StatefulSet", namespace, "db")["spec"]["template"]["spec"]["containers"][0]["image"]
            assert current == image(f"v{r}-{names.index(newest)}")
        # Replay safety: a run of an earlier round made again under its name changes nothing.
        template_before = read("StatefulSet", namespace, "db")["spec"]["template"]
        replayed = next(n for n in ("r0-0", "r0-1", "r0-2") if get_run(namespace, n)["status"]["phase"] == "Succeeded")
        spec_of = get_run(namespace, replayed)["spec"]
        client.CustomObjectsApi().delete_namespaced_custom_object("selfbootstrap.dev", "v1alpha1", namespace,
                                                                  "selfbootstrapruns", replayed)
        wait_for(lambda: not [r for r in client.CustomObjectsApi().list_namespaced_custom_object(
            "selfbootstrap.dev", "v1alpha1", namespace, "selfbootstrapruns")["items"]
            if r["metadata"]["name"] == replayed], 30, f"{replayed} was not deleted")
        create_run(namespace, replayed, spec_of)
        assert wait_phase(namespace, replayed, FINISHED, timeout=60)["phase"] == "Superseded"
        assert read("StatefulSet", namespace, "db")["spec"]["template"] == template_before
    finally:
        recorder.stop()
    assert recorder.violations() == []
    assert recorder.deploys(), "the recorder saw the StatefulSet's template change"


def test_kubectl_explain_covers_the_target_kinds(kubectl):
    def explained() -> str:
        try:
            return kubectl("explain", "selfbootstrapruns.spec.target")
        except Exception:  # the CRD's OpenAPI is published a moment after the CRD itself
            return ""
    target = wait_for(lambda: "StatefulSet" in explained() and explained(), 60, "kubectl explain never showed kind")
    for field_ in ("kind", "name", "deployment", "Deployment, StatefulSet or DaemonSet"):
        assert field_ in target, target
    stuck = kubectl("explain", "selfbootstrapruns.spec.rollbackPolicy.deleteStuckPods")
    assert "forced rollback" in stuck and "Never a pod of the revision rolled back to" in " ".join(stuck.split())
