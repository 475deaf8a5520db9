"""End-to-end: a test session on an existing cluster (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1) refuses every
test that would change cluster-scoped objects, and changes none.

The existing cluster here is this session's own control plane, lent to a second pytest session that
takes it for someone else's: its cluster-scoped tests must be skipped saying why, a namespaced test
must still run, and no CRD, ClusterRole(Binding) or admission policy may have changed afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .cluster import ROOT, SESSION

pytestmark = pytest.mark.e2e

CLUSTER_SCOPED = [
    "tests/e2e/test_uninstall.py",
    "tests/e2e/test_helm.py::test_install_upgrade_uninstall",
    "tests/e2e/test_install_modes.py",
    "tests/e2e/test_rbac.py::test_operator_needs_nothing_beyond_its_cluster_role",
    "tests/e2e/test_shards.py",
    "tests/e2e/test_author_rights.py",
    "tests/e2e/test_steering.py",
    "tests/e2e/test_self_hosted.py::test_operator_crd_change_blocks_automatic_rollback",
]
NAMESPACED = "tests/e2e/test_admission.py::test_defaults_are_applied_at_admission"
KINDS = "customresourcedefinitions,clusterroles,clusterrolebindings,validatingadmissionpolicies," \
        "validatingadmissionpolicybindings"


def cluster_scoped_objects(kubectl) -> list[str]:
    return kubectl("get", KINDS, "-o", "jsonpath={range .items[*]}{.kind}/{.metadata.name}"
                   "@{.metadata.resourceVersion}{'\\n'}{end}").split()


def test_an_existing_cluster_session_refuses_the_cluster_scoped_tests(cluster, crd, kubectl):
    before = cluster_scoped_objects(kubectl)
    env = {**os.environ, "SELFBOOTSTRAP_USE_EXISTING_CLUSTER": "1", "KUBECONFIG": str(cluster.kubeconfig),
           "SELFBOOTSTRAP_E2E_SESSION": f"{SESSION}x"}
    env.pop("SELFBOOTSTRAP_TEST_CLUSTER", None)

    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                           *CLUSTER_SCOPED, NAMESPACED], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300, check=False)

    out = done.stdout
    assert done.returncode == 0, out[-3000:]
    summary = out.strip().splitlines()[-1]
    assert " 1 passed" in f" {summary}" and "failed" not in summary and "error" not in summary, summary
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    assert skipped and all("refused on an existing cluster (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)" in line
                           for line in skipped), skipped
    for what in ("deletes the CRDs", "installs the chart", "installs kopf's peering CRDs",
                 "installs the admission policies", "changes the runs' CRD"):
        assert any(what in line for line in skipped), (what, skipped)
    assert cluster_scoped_objects(kubectl) == before, "a refused session changed cluster-scoped objects"
