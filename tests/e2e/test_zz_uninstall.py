"""End-to-end, last of the session (it removes the CRDs): uninstalling with finished runs present and the
operator stopped completes, because a finished run keeps no finalizer.

It runs after every other end-to-end test (pytest takes files in name order) and installs the CRD
again afterwards, so that a test selected after it still finds it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .kube_helpers import create_deployment, create_run, get_run, wait_phase
from .operator_fixtures import CRD

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def release_leftovers(kubectl) -> None:
    """Runs that earlier tests left in flight (their namespaces are going) would hold the CRD's deletion
    up; with the operator stopped nobody releases them, so the test does, naming them."""
    runs = json.loads(kubectl("get", "sbr", "--all-namespaces", "-o", "json"))["items"]
    for run in runs:
        if run["metadata"].get("finalizers") and not run["metadata"]["namespace"].startswith("e2e-raw-"):
            kubectl("-n", run["metadata"]["namespace"], "patch", "sbr", run["metadata"]["name"], "--type=json",
                    "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')


def test_uninstall_with_finished_runs_and_the_operator_stopped_completes(operator, namespace, kubectl):
    kubectl("apply", "-k", str(ROOT / "manifests"))
    create_deployment(namespace, "app", "registry.example.com/app:v1", "v1", replicas=1)
    create_run(namespace, "kept", {"target": {"deployment": "app"}, "restartWatchdog": {"retries": 1,
                                                                                         "intervalSeconds": 1},
                                   "release": {"id": "v2", "image": "registry.example.com/app:v2"}})
    assert wait_phase(namespace, "kept", {"Succeeded", "Failed", "RolledBack"})["phase"] == "Succeeded"
    assert not get_run(namespace, "kept")["metadata"].get("finalizers")
    operator.stop()
    try:
        release_leftovers(kubectl)
        kubectl("delete", "-k", str(ROOT / "manifests"), "--timeout=90s", timeout=120)
        assert "selfbootstrapruns" not in kubectl("get", "crd", "-o", "name")
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/selfbootstrapruns.selfbootstrap.dev")
        operator.start()
