"""End-to-end: the namespaced install (manifests/namespaced) runs a healthy and a rolled-back release
with Roles in the watched namespace only, and nothing cluster-wide but reading its own CRD."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import yaml

from .cluster import refuse_unless_owned
from .kube_helpers import create_deployment, create_run, deployment_image, wait_phase
from .operator_fixtures import OperatorProcess, service_account_token, token_kubeconfig

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_scoped("installs kopf's peering CRDs and a ClusterRoleBinding")]

ROOT = Path(__file__).resolve().parents[2]
OPERATOR_NS = "selfbootstrap-system"
SHARED = {"CustomResourceDefinition", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
          "Deployment"}  # installed once by the session, or (the operator's Deployment) played by a process


def namespaced_install(kubectl, watched: str, account: str) -> list[dict]:
    """manifests/namespaced rendered for one watched namespace and a service account of this test's own."""
    docs = [d for d in yaml.safe_load_all(kubectl("kustomize", str(ROOT / "manifests" / "namespaced"))) if d]
    out = []
    for rendered in docs:
        if rendered["kind"] in SHARED or (rendered["kind"] == "ClusterRole" and "run-" in rendered["metadata"]["name"]):
            continue
        doc = json.loads(json.dumps(rendered).replace('"team-a"', json.dumps(watched)))
        if doc["kind"] == "ServiceAccount":
            doc["metadata"]["name"] = account
        for subject in doc.get("subjects", []):
            subject["name"] = account
        if doc["kind"] == "ClusterRoleBinding":
            doc["metadata"]["name"] = account
        out.append(doc)
    return out


def can(kubectl, account: str, *args: str) -> bool:
    try:
        kubectl("auth", "can-i", *args, "--as", f"system:serviceaccount:{OPERATOR_NS}:{account}")
    except AssertionError:
        return False
    return True


@pytest.fixture
def namespaced_operator(operator, cluster, kubectl, namespace, tmp_path):
    refuse_unless_owned(cluster, "installs kopf's peering CRDs and a ClusterRoleBinding")
    account = f"sbr-ns-{uuid.uuid4().hex[:6]}"
    kubectl("apply", "-f", str(ROOT / "manifests" / "common" / "peering.yaml"))
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                  "items": namespaced_install(kubectl, namespace, account)}))
    kubeconfig = token_kubeconfig(kubectl, service_account_token(OPERATOR_NS, account),
                                  tmp_path / "namespaced-kubeconfig")
    operator.stop()
    proc = OperatorProcess(str(kubeconfig), tmp_path, ("--peering=selfbootstrap", f"--namespace={namespace}"),
                           name="namespaced")
    try:
        proc.start()
        yield proc, account
    finally:
        proc.stop()
        operator.start()
        kubectl("delete", "clusterrolebinding", account, "--ignore-not-found")
        kubectl("-n", OPERATOR_NS, "delete", "serviceaccount", account, "--ignore-not-found")


def test_the_namespaced_install_has_no_cluster_wide_rights_but_reading_its_crd(namespaced_operator, kubectl,
                                                                               namespace):
    _, account = namespaced_operator
    assert can(kubectl, account, "patch", "deployments", "-n", namespace)
    assert can(kubectl, account, "get", "secrets", "-n", namespace)
    assert can(kubectl, account, "get", "customresourcedefinitions/selfbootstrapruns.selfbootstrap.dev")
    assert can(kubectl, account, "list", "servicecidrs.networking.k8s.io")  # the egress policy's service ranges
    for args in (("patch", "deployments", "-n", "default"), ("get", "secrets", "-n", "kube-system"),
                 ("get", "secrets", "--all-namespaces"), ("list", "namespaces"),
                 ("list", "customresourcedefinitions"), ("create", "jobs", "-n", "default"),
                 ("patch", "selfbootstrapruns.selfbootstrap.dev", "-n", "default")):
        assert not can(kubectl, account, *args), args


def test_the_namespaced_install_runs_a_healthy_and_a_rolled_back_release(namespaced_operator, namespace):
    proc, _ = namespaced_operator
    create_deployment(namespace, "app", "registry.example.com/app:v1", "v1")
    watchdog = {"retries": 2, "intervalSeconds": 1}
    create_run(namespace, "healthy", {"target": {"deployment": "app"}, "restartWatchdog": watchdog,
                                      "release": {"id": "v2", "image": "registry.example.com/app:v2"}})
    assert wait_phase(namespace, "healthy", {"Succeeded", "Failed", "RolledBack"}, 90)["phase"] == "Succeeded"

    create_run(namespace, "broken", {"target": {"deployment": "app"}, "restartWatchdog": watchdog,
                                     "release": {"id": "v3", "image": "registry.example.com/app:v3-crashloop"}})
    st = wait_phase(namespace, "broken", {"Succeeded", "Failed", "RolledBack"}, 90)

    assert st["phase"] == "RolledBack", st
    assert deployment_image(namespace, "app") == "registry.example.com/app:v2"
    log = proc.log()
    assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:3]
