"""End-to-end, on a control plane of its own: uninstalling with finished runs present and the operator
stopped completes, because a finished run keeps no finalizer.

Uninstalling deletes the CRD, and with it every run of the cluster. So the test starts a control plane
for itself (not the session's, whose other tests' runs it would take along, nor anyone else's), installs
the operator there as shipped (`kubectl apply -k manifests/`, the operator as its ServiceAccount), and
removes the control plane afterwards: it needs no place in the order of the tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import SESSION, localcluster, refuse_unless_owned, wait_for
from .cluster import kubectl as run_kubectl
from .kube_helpers import deployment_body, run_body
from .operator_fixtures import OPERATOR_NS, OPERATOR_SA, OperatorProcess, token_kubeconfig, wait_established

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_scoped("deletes the CRDs, and with them every run")]

ROOT = Path(__file__).resolve().parents[2]
FINISHED = {"Succeeded", "Failed", "RolledBack"}


def cache_ready(kubectl, collection: str) -> bool:
    """A list served from the watch cache (resourceVersion=0) answers: the cache of the resource is ready."""
    try:
        kubectl("get", "--raw", f"/{collection}?resourceVersion=0&limit=1")
    except AssertionError:
        return False
    return True


@pytest.fixture
def own_plane() -> Iterator[localcluster.LocalCluster]:
    refuse_unless_owned(None, "deletes the CRDs, and with them every run of the cluster")
    plane = localcluster.LocalCluster.private(f"e2e-{SESSION}-uninstall")
    try:
        plane.up()
        yield plane
    finally:
        plane.down(purge=True)


def test_uninstall_with_finished_runs_and_the_operator_stopped_completes(own_plane, tmp_path):
    kubectl = functools.partial(run_kubectl, kubeconfig=own_plane.kubeconfig)
    kubectl("apply", "-k", str(ROOT / "manifests"))
    wait_established(kubectl, "selfbootstrapruns.selfbootstrap.dev")
    kubectl("create", "namespace", "shop")
    kubectl("-n", "shop", "apply", "-f", "-",
            input=json.dumps(deployment_body("app", "registry.example.com/app:v1", "v1", replicas=1)))
    kubectl("-n", "shop", "rollout", "status", "deployment/app", "--timeout=60s")
    token = kubectl("-n", OPERATOR_NS, "create", "token", OPERATOR_SA, "--duration=1h").strip()
    operator = OperatorProcess(str(token_kubeconfig(kubectl, token, tmp_path / "kubeconfig")), tmp_path,
                               ("--standalone",))  # cluster-wide, as the manifests run it
    operator.start()
    try:
        kubectl("-n", "shop", "apply", "-f", "-", input=json.dumps(run_body("kept", {
            "target": {"deployment": "app"}, "restartWatchdog": {"retries": 1, "intervalSeconds": 1},
            "release": {"id": "v2", "image": "registry.example.com/app:v2"}})))

        def run() -> dict:
            return json.loads(kubectl("-n", "shop", "get", "sbr", "kept", "-o", "json"))

        wait_for(lambda: run().get("status", {}).get("phase") in FINISHED, 90,
                 lambda: f"the run did not finish: {run().get('status')}\n{operator.tail()}")
        assert run()["status"]["phase"] == "Succeeded"
        assert not run()["metadata"].get("finalizers")
    finally:
        operator.stop()

    # The API server's CRD finalizer lists a CRD's instances from its watch cache before it deletes them; a
    # CRD deleted before that cache is ready fails with "storage is (re)initializing" and is retried with a
    # growing backoff (seen in CI: a CRD created seconds before still stuck after 240 s). So the uninstall
    # waits until every CRD's cache answers, as an operator's uninstall after a while of use finds it.
    for served in ("apis/selfbootstrap.dev/v1alpha1/selfbootstrapruns", "apis/kopf.dev/v1/kopfpeerings",
                   "apis/kopf.dev/v1/clusterkopfpeerings"):
        wait_for(lambda served=served: cache_ready(kubectl, served), 120,
                 f"the API server's watch cache of {served} never became ready")
    # The finalizer then deletes the instances and polls for them in steps of seconds; on a loaded machine
    # that takes its time, so the wait is generous and a timeout says what held.
    try:
        kubectl("delete", "-k", str(ROOT / "manifests"), "--timeout=240s", timeout=270)
    except AssertionError as err:
        crds = kubectl("get", "crd", "-o", "jsonpath={range .items[*]}{.metadata.name} "
                       "{.metadata.finalizers} {.status.conditions}{'\\n'}{end}")
        raise AssertionError(f"{err}\nCRDs left:\n{crds}") from None
    assert "selfbootstrapruns" not in kubectl("get", "crd", "-o", "name")
