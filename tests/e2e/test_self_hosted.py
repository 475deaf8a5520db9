"""End-to-end: runs that target the operator's own Deployment (deploymentContext: selfHosted).

The operator's Deployment here has kwok pods; the operator process itself runs
outside the cluster, so its replacement is played by starting and stopping
operator processes that coordinate through kopf peering, as the old and new
pods of a rolling update do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kubernetes import client

from .cluster import wait_for
from .kube_helpers import create_deployment, create_run, deployment_image, replica_sets, run_body, status, wait_phase
from .operator_fixtures import CRD, OperatorProcess, wait_established
from .test_resume import crash_pods

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "registry.example.com/selfbootstrap-operator:0.1.0", "registry.example.com/selfbootstrap-operator:0.1.1"


def self_hosted_spec(image: str, release: str, retries: int = 3) -> dict:
    return {"target": {"deployment": "app", "deploymentContext": "selfHosted"},
            "release": {"id": release, "image": image},
            "restartWatchdog": {"retries": retries, "intervalSeconds": 1}}


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

    assert f"{namespace}/handover Deployed" in old.log()
    assert f"{namespace}/handover" not in new.log(), "the lower-priority instance must stay paused"

    old.stop()  # graceful, as when the rolling update terminates the old pod
    st = wait_phase(namespace, "handover", {"RolledBack", "Failed", "Succeeded"}, timeout=120)

    assert st["phase"] == "Succeeded", st
    assert f"{namespace}/handover Succeeded" in new.log()
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
