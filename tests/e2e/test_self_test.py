"""End-to-end, on a control plane of its own: an operator whose CRD is not installed yet in the version it
needs refuses to serve (exit 3, the reasons in its log), and serves once its CRD is applied. A self-update
that brings a version ahead of its CRD thus never becomes ready, and the old version rolls it back.

A control plane of its own: the test installs an older CRD, which on the session's would prune the status
of every other test's runs.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from .cluster import SESSION, localcluster, refuse_unless_owned
from .cluster import kubectl as run_kubectl
from .operator_fixtures import CRD, OperatorProcess, wait_established

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_scoped("installs an older CRD")]


@pytest.fixture
def own_plane() -> Iterator[localcluster.LocalCluster]:
    refuse_unless_owned(None, "installs an older CRD")
    plane = localcluster.LocalCluster.private(f"e2e-{SESSION}-self-test")
    try:
        plane.up()
        yield plane
    finally:
        plane.down(purge=True)


def older_crd(path: Path) -> Path:
    """This version's CRD without status.gates: as an earlier version installed it."""
    crd = yaml.safe_load(CRD.read_text())
    older = copy.deepcopy(crd)
    del older["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]["gates"]
    path.write_text(yaml.safe_dump(older))
    return path


def test_an_operator_ahead_of_its_crd_refuses_to_serve_until_the_crd_is_applied(own_plane, tmp_path):
    kubectl = functools.partial(run_kubectl, kubeconfig=own_plane.kubeconfig)
    kubectl("apply", "--server-side", "-f", str(older_crd(tmp_path / "older.yaml")))
    wait_established(kubectl, "selfbootstrapruns.selfbootstrap.dev")
    operator = OperatorProcess(str(own_plane.kubeconfig), tmp_path, ("--standalone",))
    with pytest.raises(RuntimeError, match="exited with 3") as refused:
        operator.start()
    assert "self-test failed: the installed CRD lacks status.gates" in str(refused.value)
    assert "apply this version's CRD first" in str(refused.value)

    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    operator.start()
    try:
        assert "self-test passed" in operator.log()
    finally:
        operator.stop()
