"""End-to-end: the operator works with exactly the permissions `kubectl apply -k manifests/` grants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .kube_helpers import create_deployment, create_run, deployment_image, wait_phase
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SA = ("selfbootstrap-system", "selfbootstrap-operator")


@pytest.fixture
def least_privileged_operator(operator, cluster, kubectl, tmp_path, namespace):
    """The operator as its service account, peered as in the manifests, instead of the admin one."""
    kubectl("apply", "-k", str(ROOT / "manifests"))
    token = kubectl("-n", SA[0], "create", "token", SA[1], "--duration=1h").strip()
    admin = json.loads(Path(cluster.kubeconfig).read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    kubeconfig = tmp_path / "operator-kubeconfig"
    kubeconfig.write_text(json.dumps(admin))
    operator.stop()
    proc = OperatorProcess(str(kubeconfig), tmp_path, ("--peering=selfbootstrap", f"--namespace={namespace}"),
                           name="sa")
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        operator.start()


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
