"""End-to-end: runs that target the operator's own Deployment (deploymentContext: selfHosted).

The operator's Deployment here has kwok pods; the operator process itself runs
outside the cluster, so its replacement is played by starting and stopping
operator processes that coordinate through kopf peering, as the old and new
pods of a rolling update do.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from kubernetes import client

import selfbootstrap

from .cluster import wait_for
from .kube_helpers import create_deployment, create_run, deployment_image, replica_sets, run_body, status, wait_phase
from .operator_fixtures import CRD, OPERATOR_NS, OperatorProcess, wait_established
from .test_resume import crash_pods

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "registry.example.com/selfbootstrap-operator:0.1.0", "registry.example.com/selfbootstrap-operator:0.1.1"


def self_hosted_spec(image: str, release: str, retries: int = 3, self_test: int | None = None) -> dict:
    """A self-update of the Deployment "app"; its self-test gate only when `self_test` (its deadline) is given,
    as only the tests of that gate play the new operator's pods."""
    return {"target": {"deployment": "app", "deploymentContext": "selfHosted"},
            "release": {"id": release, "image": image},
            "restartWatchdog": {"retries": retries, "intervalSeconds": 1},
            "selfTest": {"enabled": self_test is not None, "timeoutSeconds": self_test or 300}}


def test_crash_looping_operator_release_is_rolled_back(operator, namespace):
    create_deployment(namespace, "app", OLD, "0.1.0")
    create_run(namespace, "upgrade", self_hosted_spec(OLD.replace("0.1.0", "0.1.1-crashloop"), "0.1.1"))

    st = wait_phase(namespace, "upgrade", {"RolledBack", "Failed", "Succeeded"})

    assert st["phase"] == "RolledBack", st
    assert st["rollbackDeploymentContext"] == "selfHosted"
    assert st["rollbackPolicyReason"] == "rollbackTargetValidated"
    assert deployment_image(namespace, "app") == OLD


@pytest.mark.cluster_scoped("changes the runs' CRD")
def test_operator_crd_change_blocks_automatic_rollback(operator, namespace, kubectl):
    create_deployment(namespace, "app", OLD, "0.1.0")
    create_run(namespace, "with-crd", self_hosted_spec(NEW, "0.1.1", retries=60))
    wait_phase(namespace, "with-crd", "WatchingRestarts", timeout=60)
    ext = client.ApiextensionsV1Api()
    crd_name = "selfbootstrapruns.selfbootstrap.dev"
    before = ext.read_custom_resource_definition(crd_name).metadata.generation
    try:
        # The release shipped a new CRD (here: a changed column), then it crashes.
        ext.patch_custom_resource_definition(crd_name, [{
            "op": "replace", "path": "/spec/versions/0/additionalPrinterColumns/0/description",
            "value": "changed by the new release"}], _content_type="application/json-patch+json")
        assert ext.read_custom_resource_definition(crd_name).metadata.generation == before + 1
        crash_pods(namespace, replica_sets(namespace, "app")[NEW]["name"])

        st = wait_phase(namespace, "with-crd", {"RolledBack", "Failed", "Succeeded"})
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))

    assert st["phase"] == "Failed"
    assert (st["rollbackPolicyStatus"], st["rollbackPolicyReason"]) == ("denied", "crdChangedSinceDeploy")
    assert deployment_image(namespace, "app") == NEW


@pytest.fixture
def peering(operator, kubectl, tmp_path, namespace):
    """Two peered operator instances for the test's namespace instead of the standalone one."""
    kubectl("apply", "-f", str(ROOT / "manifests" / "common" / "peering.yaml"))
    wait_established(kubectl, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
    operator.stop()
    scope = f"--namespace={namespace}"
    peers = [
        OperatorProcess(operator.kubeconfig, tmp_path, ("--peering=selfbootstrap", "--priority=200", scope),
                        name="old"),
        OperatorProcess(operator.kubeconfig, tmp_path, ("--peering=selfbootstrap", "--priority=100", scope),
                        name="new"),
    ]
    try:
        for peer in peers:
            peer.start()
        yield peers
    finally:
        for peer in peers:
            peer.stop()
        operator.start()


@pytest.mark.cluster_scoped("installs kopf's peering CRDs")
def test_old_operator_keeps_the_run_until_it_is_replaced(peering, namespace):
    old, new = peering
    create_deployment(namespace, "app", OLD, "0.1.0")
    create_run(namespace, "handover", self_hosted_spec(NEW, "0.1.1", retries=60))
    wait_phase(namespace, "handover", "WatchingRestarts", timeout=60)

    assert old.logged(f"{namespace}/handover Deployed")
    assert f"{namespace}/handover" not in new.log(), "the lower-priority instance must stay paused"

    old.stop()  # graceful, as when the rolling update terminates the old pod
    st = wait_phase(namespace, "handover", {"RolledBack", "Failed", "Succeeded"}, timeout=120)

    assert st["phase"] == "Succeeded", st
    assert new.logged(f"{namespace}/handover Succeeded")
    assert replica_sets(namespace, "app")[NEW]["revision"] == 2


def test_a_self_update_outside_its_window_waits_and_goes_once_the_window_allows(operator, namespace, tmp_path):
    """An instance serving a shard of its own, with a change window that excludes now: the self-update waits
    Queued and touches nothing; the same run goes once an instance's window includes now."""
    now = datetime.now(UTC)
    later = f"{(now + timedelta(hours=3)):%H:%M}-{(now + timedelta(hours=4)):%H:%M}"
    current = f"{(now - timedelta(hours=1)):%H:%M}-{(now + timedelta(hours=1)):%H:%M}"
    create_deployment(namespace, "app", OLD, "0.1.0", replicas=1)
    body = run_body("upgrade", self_hosted_spec(NEW, "0.1.1", retries=1))
    body["metadata"]["labels"] = {"selfbootstrap.dev/shard": "windowed"}

    def instance(window: str, name: str) -> OperatorProcess:
        proc = OperatorProcess(operator.kubeconfig, tmp_path, ("--standalone", f"--namespace={namespace}",
                                                               "--shard=windowed", f"--self-update-window={window}"),
                               name=name)
        proc.start()
        proc.wait_watching(namespace)
        return proc

    closed = instance(later, "closed")
    try:
        client.CustomObjectsApi().create_namespaced_custom_object("selfbootstrap.dev", "v1alpha1", namespace,
                                                                  "selfbootstrapruns", body)
        wait_for(lambda: "outside the self-update windows" in (status(namespace, "upgrade").get("message") or ""),
                 60, lambda: f"the self-update did not wait: {status(namespace, 'upgrade')}")
        assert status(namespace, "upgrade")["reason"] == "Queued"
        assert deployment_image(namespace, "app") == OLD
    finally:
        closed.stop()
    opened = instance(current, "opened")
    try:
        st = wait_phase(namespace, "upgrade", {"Succeeded", "Failed", "RolledBack"}, timeout=90)
        assert st["phase"] == "Succeeded", st
        assert deployment_image(namespace, "app") == NEW
    finally:
        opened.stop()


# --- the self-test gate and safe mode: operator processes that play the pods of the operator's Deployment ---

SELF_TEST_RBAC = ROOT / "manifests" / "common" / "self-test-rbac.yaml"
WEB_V1, WEB_V2 = "registry.example.com/web:v1", "registry.example.com/web:v2"


def grant_self_test_rights(namespace: str) -> None:
    """The shipped Role for the operator's own pod, in the namespace that plays the operator's namespace."""
    for doc in yaml.safe_load_all(SELF_TEST_RBAC.read_text()):
        doc["metadata"]["namespace"] = namespace
        rbac = client.RbacAuthorizationV1Api()
        if doc["kind"] == "Role":
            rbac.create_namespaced_role(namespace, doc)
        else:
            doc["subjects"][0]["namespace"] = OPERATOR_NS
            rbac.create_namespaced_role_binding(namespace, doc)


def pods_of_release(namespace: str, image: str) -> list[client.V1Pod]:
    rs = replica_sets(namespace, "app")[image]["name"]
    return [p for p in client.CoreV1Api().list_namespaced_pod(namespace, label_selector="app=app").items
            if any(ref.name == rs for ref in p.metadata.owner_references or [])]


def self_test_condition(pod: client.V1Pod) -> dict | None:
    found = client.CoreV1Api().read_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace)
    return next(({"status": c.status, "message": c.message} for c in found.status.conditions or []
                 if c.type == "selfbootstrap.dev/SelfTestPassed"), None)


def as_pod(operator, tmp_path, namespace: str, pod: client.V1Pod | None, name: str, *args: str) -> OperatorProcess:
    """An operator process for the namespace, as the operator in that pod would run (POD_NAME, POD_NAMESPACE)."""
    env = {"POD_NAME": pod.metadata.name, "POD_NAMESPACE": namespace} if pod is not None else {}
    return OperatorProcess(operator.kubeconfig, tmp_path, (*args, f"--namespace={namespace}"), name=name, env=env)


@pytest.fixture
def old_operator(operator, kubectl, tmp_path, namespace):
    """The operator that starts the self-update: peered, and first, so it keeps the runs while it lives."""
    kubectl("apply", "-f", str(ROOT / "manifests" / "common" / "peering.yaml"))
    wait_established(kubectl, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
    grant_self_test_rights(namespace)
    operator.stop()
    old = as_pod(operator, tmp_path, namespace, None, "old", "--peering=selfbootstrap", "--priority=200")
    try:
        old.start()
        old.wait_watching(namespace)
        yield old
    finally:
        old.stop()
        operator.start()


@pytest.mark.cluster_scoped("installs kopf's peering CRDs")
def test_a_self_update_succeeds_once_the_new_operator_reports_its_self_test(old_operator, operator, namespace,
                                                                           tmp_path):
    create_deployment(namespace, "app", OLD, "0.1.0", replicas=1)
    create_run(namespace, "upgrade", self_hosted_spec(NEW, "0.1.1", retries=1, self_test=120))
    st = wait_phase(namespace, "upgrade", "SelfTesting", timeout=60)
    assert "waiting for the new operator's pods to report their self-test" in st["message"]
    (pod,) = pods_of_release(namespace, NEW)
    new = as_pod(operator, tmp_path, namespace, pod, "new", "--peering=selfbootstrap", "--priority=100")
    new.start()
    try:
        st = wait_phase(namespace, "upgrade", {"Succeeded", "Failed", "RolledBack"}, timeout=90)
    finally:
        new.stop()

    assert st["phase"] == "Succeeded", st
    gate = next(g for g in st["gates"] if g["kind"] == "selfTest")
    assert gate["phase"] == "Passed" and "passed its self-test on 1 pod(s)" in gate["message"], gate
    assert self_test_condition(pod)["status"] == "True"
    assert old_operator.logged(f"{namespace}/upgrade Succeeded")
    assert f"{namespace}/upgrade Succeeded" not in new.log(), "the paused new operator must not serve the run"


def next_version(tmp_path: Path) -> Path:
    """A build of the operator whose CRD has a status field the installed CRD lacks: a next version whose
    installer did not apply its CRD first. Its directory goes first on PYTHONPATH."""
    build = tmp_path / "next-version"
    shutil.copytree(Path(selfbootstrap.__file__).parent, build / "selfbootstrap",
                    ignore=shutil.ignore_patterns("__pycache__"))
    crd_file = build / "selfbootstrap" / "crds" / CRD.name
    crd = yaml.safe_load(crd_file.read_text())
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "nextVersionField"] = {"type": "string"}
    crd_file.write_text(yaml.safe_dump(crd))
    return build


@pytest.mark.cluster_scoped("installs kopf's peering CRDs")
def test_a_new_operator_that_fails_its_self_test_is_rolled_back_while_the_old_one_serves(
        old_operator, operator, namespace, tmp_path):
    create_deployment(namespace, "app", OLD, "0.1.0", replicas=1)
    create_deployment(namespace, "web", WEB_V1, "v1", replicas=1)
    create_run(namespace, "upgrade", self_hosted_spec(NEW, "0.1.1", retries=1, self_test=120))
    wait_phase(namespace, "upgrade", "SelfTesting", timeout=60)
    (pod,) = pods_of_release(namespace, NEW)
    new = as_pod(operator, tmp_path, namespace, pod, "new", "--peering=selfbootstrap", "--priority=100")
    new.env["PYTHONPATH"] = str(next_version(tmp_path))
    try:
        new.start()
        create_run(namespace, "meanwhile", {"target": {"deployment": "web"}, "release": {"id": "v2", "image": WEB_V2},
                                            "restartWatchdog": {"retries": 1, "intervalSeconds": 1}})
        st = wait_phase(namespace, "upgrade", {"Succeeded", "Failed", "RolledBack"}, timeout=120)
        other = wait_phase(namespace, "meanwhile", {"Succeeded", "Failed", "RolledBack"}, timeout=90)
    finally:
        new.stop()

    assert st["phase"] == "RolledBack", st
    assert st["rollbackFailureClass"] == "selfTestFailure"
    assert "failed its self-test" in st["message"] and "lacks status.nextVersionField" in st["message"], st["message"]
    assert deployment_image(namespace, "app") == OLD
    assert other["phase"] == "Succeeded", other
    assert old_operator.logged(f"{namespace}/meanwhile Succeeded")
    assert f"{namespace}/meanwhile Deployed" not in new.log(), "the paused new operator must not serve runs"
    assert old_operator.logged(f"{namespace}/upgrade RolledBack")
    assert "safe mode" in new.log() and "lacks status.nextVersionField" in new.log()


def test_safe_mode_finishes_a_half_done_self_update_after_a_crash(operator, namespace, tmp_path):
    """The operator dies mid self-update; the new version, crash-looping, starts in safe mode: it rolls its own
    self-update back and only then serves a run that waited meanwhile."""
    grant_self_test_rights(namespace)
    create_deployment(namespace, "app", OLD, "0.1.0", replicas=1)
    create_deployment(namespace, "web", WEB_V1, "v1", replicas=1)
    operator.stop()
    old = as_pod(operator, tmp_path, namespace, None, "old", "--standalone")
    new = None
    try:
        old.start()
        old.wait_watching(namespace)
        create_run(namespace, "upgrade", self_hosted_spec(NEW, "0.1.1", retries=60, self_test=300))
        wait_phase(namespace, "upgrade", "SelfTesting", timeout=60)
        old.kill()
        create_run(namespace, "waiting", {"target": {"deployment": "web"}, "release": {"id": "v2", "image": WEB_V2},
                                          "restartWatchdog": {"retries": 1, "intervalSeconds": 1}})
        (pod,) = pods_of_release(namespace, NEW)
        assert crash_pods(namespace, pod.metadata.owner_references[0].name) == 1  # the new version crash-loops
        new = as_pod(operator, tmp_path, namespace, pod, "new", "--standalone")
        new.start()
        st = wait_phase(namespace, "upgrade", {"Succeeded", "Failed", "RolledBack"}, timeout=120)
        waited = wait_phase(namespace, "waiting", {"Succeeded", "Failed", "RolledBack"}, timeout=90)
        log = new.log()
    finally:
        for proc in (old, new):
            if proc is not None:
                proc.stop()
        operator.start()

    assert st["phase"] == "RolledBack", st
    assert deployment_image(namespace, "app") == OLD
    assert waited["phase"] == "Succeeded", waited
    assert ("Pending", "Queued") in [(t["phase"], t["reason"]) for t in waited["history"]]
    entered = log.index("the operator is in safe mode (its pod restarted 4 time(s) during the self-update)")
    ended = log.index("safe mode ended")
    assert entered < ended < log.index(f"{namespace}/waiting Deployed"), "served before safe mode ended"
