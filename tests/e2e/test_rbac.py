"""End-to-end: the operator works with exactly the permissions `kubectl apply -k manifests/` grants.

Every operator of the session runs as the shipped ServiceAccount (operator_fixtures); here the whole
kustomize install is applied and the operator runs peered, as its Deployment would.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .cluster import kubectl, refuse_unless_owned
from .kube_helpers import create_deployment, create_run, deployment_image, wait_phase
from .operator_fixtures import OPERATOR_NS, OPERATOR_SA, OperatorProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def test_the_session_s_operator_runs_as_its_shipped_service_account(cluster, operator):
    if cluster.existing:
        pytest.skip("on an existing cluster the operator is whoever installed it, or the kubeconfig's user")
    review = json.loads(kubectl("auth", "whoami", "-o", "json", kubeconfig=Path(operator.kubeconfig)))
    assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{OPERATOR_NS}:{OPERATOR_SA}"


@pytest.fixture
def least_privileged_operator(operator, cluster, tmp_path, namespace):
    """The operator as its service account, peered as in the manifests, with the whole kustomize install."""
    refuse_unless_owned(cluster, "installs the operator with kubectl apply -k manifests/ (CRDs, RBAC, policies)")
    kubectl("apply", "-k", str(ROOT / "manifests"))
    operator.stop()
    proc = OperatorProcess(operator.kubeconfig, tmp_path, ("--peering=selfbootstrap", f"--namespace={namespace}"),
                           name="sa")
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        operator.start()


@pytest.mark.cluster_scoped("installs the operator with kubectl apply -k manifests/ (CRDs, RBAC, policies)")
def test_operator_needs_nothing_beyond_its_cluster_role(least_privileged_operator, namespace):
    create_deployment(namespace, "app", "registry.example.com/app:v1", "v1")
    create_run(namespace, "as-sa", {"target": {"deployment": "app", "deploymentContext": "selfHosted"},
                                    "release": {"id": "v2", "image": "registry.example.com/app:v2-crashloop"},
                                    "restartWatchdog": {"retries": 2, "intervalSeconds": 1}})

    st = wait_phase(namespace, "as-sa", {"Succeeded", "Failed", "RolledBack"}, timeout=90)

    assert st["phase"] == "RolledBack", st
    assert deployment_image(namespace, "app") == "registry.example.com/app:v1"
    log = least_privileged_operator.log()
    assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:3]
