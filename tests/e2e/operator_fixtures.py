"""Fixtures that install the CRD, the operator's RBAC and the admission policy, and run the operator
as a real subprocess (tests/support/operator_process.py) with the identity it is shipped with."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.kube import service_account_token, token_kubeconfig, wait_established
from tests.support.operator_process import OperatorProcess

from .cluster import NAMESPACES, refuse_unless_owned

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "selfbootstrap.dev_selfbootstrapruns.yaml"
COMMON = ROOT / "manifests" / "common"
POLICY = COMMON / "admission-policy.yaml"
USER_ROLES = COMMON / "user-roles.yaml"
OPERATOR_NS, OPERATOR_SA = "selfbootstrap-system", "selfbootstrap-operator"


@pytest.fixture(scope="session")
def crd(cluster, kubectl) -> None:
    """The runs' CRD, applied on a control plane of ours; on an existing cluster it must be there already."""
    if cluster.existing:
        try:
            kubectl("get", "crd/selfbootstrapruns.selfbootstrap.dev")
        except AssertionError:
            pytest.skip("SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1: the tests do not install CRDs on a cluster they "
                        f"did not start; install it first (kubectl apply --server-side -f {CRD.relative_to(ROOT)})")
    else:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kubectl, "selfbootstrapruns.selfbootstrap.dev")


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster, kubectl, tmp_path_factory) -> str:
    """A kubeconfig as the shipped ServiceAccount selfbootstrap-system/selfbootstrap-operator, bound to the
    shipped ClusterRole (manifests/cluster-rbac.yaml): the operator in the tests has exactly its
    installed rights, not the admin's. On an existing cluster: that ServiceAccount if it is installed
    there, else the kubeconfig's own user (the tests install no RBAC there)."""
    if cluster.existing:
        try:
            kubectl("get", "clusterrolebinding", OPERATOR_SA)
            kubectl("-n", OPERATOR_NS, "get", "serviceaccount", OPERATOR_SA)
        except AssertionError:
            return str(cluster.kubeconfig)
    else:
        kubectl("apply", "-f", str(COMMON / "namespace.yaml"))
        kubectl("-n", OPERATOR_NS, "apply", "-f", str(COMMON / "serviceaccount.yaml"),
                "-f", str(ROOT / "manifests" / "cluster-rbac.yaml"))
    path = tmp_path_factory.mktemp("identity") / "operator-kubeconfig"
    return str(token_kubeconfig(kubectl, service_account_token(OPERATOR_NS, OPERATOR_SA), path))


@pytest.fixture(scope="session")
def operator(cluster, crd, operator_kubeconfig, tmp_path_factory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, tmp_path_factory.mktemp("operator"),
                           ("--standalone", f"--namespace={NAMESPACES}", "--egress-allow=127.0.0.0/8"))
    proc.start()
    yield proc
    proc.stop()
    print(f"operator logs: {proc.log_dir}")


@pytest.fixture(scope="session")
def author_rights(cluster, kubectl, crd) -> None:
    """The admission policies (a run can do no more than its author; status is never an instruction) and
    the roles for people, as shipped."""
    refuse_unless_owned(cluster, "installs the admission policies and the ClusterRoles for people")
    kubectl("apply", "-f", str(POLICY), "-f", str(USER_ROLES))
