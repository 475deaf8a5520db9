"""The control plane the end-to-end tests run against (kubectl, the waits and the servers they use are
in tests/support/, and imported from here too).

By default a session starts a control plane of its own (tools/localcluster.py: state in
<state root>/e2e-<session>, every port picked free) and stops and removes it at its end; the
built binaries stay in the cache. So the tests never touch what they did not create: not the
default local cluster (scripts/demo's), not another session's.

SELFBOOTSTRAP_TEST_CLUSTER=reuse runs them on the developer's default local cluster instead
(started if needed, left running). SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 runs them on
KUBECONFIG's cluster, where tests that would change cluster-scoped objects are refused
(refuse_unless_owned) and nothing outside the session's namespaces is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import localcluster

# Defined in tests/support/ (shared with the benchmarks); the tests import them from here too.
from tests.support.kube import kubectl, kubectl_as  # noqa: F401
from tests.support.servers import serving  # noqa: F401
from tests.support.waiting import holds, wait_for  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
SESSION = os.environ.get("SELFBOOTSTRAP_E2E_SESSION") or os.urandom(3).hex()  # names this session's namespaces
NAMESPACES = f"e2e-{SESSION}-*"  # what this session's operators watch
MODES = ("private", "reuse")


free_port = localcluster.free_port


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path  # admin kubeconfig (the user's own with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)
    plane: localcluster.LocalCluster | None  # the local control plane; None: KUBECONFIG's cluster
    owned: bool  # started by this session: stopped and removed at its end

    @property
    def existing(self) -> bool:
        """A cluster the tests did not start and may not change beyond their own namespaces."""
        return self.plane is None


def start() -> Cluster:
    """Start the session's control plane (or find the one asked for) and point KUBECONFIG at it;
    SystemExit says what failed."""
    mode = os.environ.get("SELFBOOTSTRAP_TEST_CLUSTER") or "private"
    if mode not in MODES:
        raise SystemExit(f"SELFBOOTSTRAP_TEST_CLUSTER={mode}: expected one of {', '.join(MODES)}")
    if localcluster.use_existing():
        localcluster.up()
        cluster = Cluster(localcluster.kubeconfig_path(), None, owned=False)
    elif mode == "reuse":
        plane = localcluster.LocalCluster.default()
        plane.up()
        cluster = Cluster(plane.kubeconfig, plane, owned=False)
    else:
        localcluster.reap_orphans()
        plane = localcluster.LocalCluster.private(f"e2e-{SESSION}")
        try:
            plane.up()
        except BaseException:
            plane.down(purge=True)
            raise
        cluster = Cluster(plane.kubeconfig, plane, owned=True)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)  # for kubectl() and every process the tests start
    return cluster


def stop(cluster: Cluster) -> None:
    if cluster.owned and cluster.plane is not None:
        cluster.plane.down(purge=True)


def refuse_unless_owned(cluster: Cluster | None, what: str) -> None:
    """Tests change cluster-scoped objects (CRDs, ClusterRoles, admission policies, Helm and kustomize
    installs) only on a control plane the session or the developer owns: on SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1's
    they are refused, saying what they would have changed."""
    if cluster.existing if cluster is not None else localcluster.use_existing():
        pytest.skip(f"refused on an existing cluster (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1): this test {what}, "
                    "and the tests change nothing cluster-scoped on a cluster they did not start")
