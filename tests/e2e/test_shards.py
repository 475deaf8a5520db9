"""End-to-end: operator instances share the work by shard, each shard with kopf peering of its own.

Runs labelled selfbootstrap.dev/shard=a go to the instances started with --shard=a (of which
only the one with the highest peering priority is active), shard b to --shard=b, and runs
without the label to an instance without --shard (here the test session's own operator).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from tests.support.waiting import poll

from .kube_helpers import create_deployment, run_body, wait_phase
from .operator_fixtures import OperatorProcess, wait_established

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_scoped("installs kopf's peering CRDs")]

ROOT = Path(__file__).resolve().parents[2]
GROUP, VERSION, PLURAL = "selfbootstrap.dev", "v1alpha1", "selfbootstrapruns"


@pytest.fixture
def shards(operator, kubectl, tmp_path, namespace):
    kubectl("apply", "-f", str(ROOT / "manifests" / "common" / "peering.yaml"))
    wait_established(kubectl, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev")
    scope = f"--namespace={namespace}"
    instances = {
        "a-active": OperatorProcess(operator.kubeconfig, tmp_path, ("--shard=a", "--peering=selfbootstrap-a",
                                                                    "--priority=200", scope), name="a-active"),
        "a-standby": OperatorProcess(operator.kubeconfig, tmp_path, ("--shard=a", "--peering=selfbootstrap-a",
                                                                     "--priority=100", scope), name="a-standby"),
        "b": OperatorProcess(operator.kubeconfig, tmp_path, ("--shard=b", "--peering=selfbootstrap-b", scope),
                             name="b"),
    }
    try:
        for instance in instances.values():
            instance.start()
        yield instances
    finally:
        for instance in instances.values():
            instance.stop()


def create_sharded_run(namespace: str, name: str, target: str, shard: str | None) -> None:
    body = run_body(name, {"target": {"deployment": target}, "restartWatchdog": {"retries": 2, "intervalSeconds": 1},
                           "release": {"id": "v2", "image": "registry.example.com/app:v2"}})
    if shard:
        body["metadata"]["labels"] = {"selfbootstrap.dev/shard": shard}
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def test_two_shards_side_by_side(shards, operator, namespace):
    for target in ("app-a", "app-b", "app-c"):
        create_deployment(namespace, target, "registry.example.com/app:v1", "v1", replicas=1)
    create_sharded_run(namespace, "run-a", "app-a", "a")
    create_sharded_run(namespace, "run-b", "app-b", "b")
    create_sharded_run(namespace, "run-c", "app-c", None)

    for name in ("run-a", "run-b", "run-c"):
        assert wait_phase(namespace, name, {"Succeeded", "Failed", "RolledBack"}, 90)["phase"] == "Succeeded"

    def handled(instance: OperatorProcess) -> set[str]:
        log = instance.log()
        return {name for name in ("run-a", "run-b", "run-c") if f"{namespace}/{name} Succeeded" in log}

    # An instance logs a step just after it writes it to status: wait for the line, then compare exactly.
    expected = {shards["a-active"]: {"run-a"}, shards["b"]: {"run-b"}, operator: {"run-c"}}
    poll(lambda: all(names <= handled(instance) for instance, names in expected.items()), 30)
    assert handled(shards["a-active"]) == {"run-a"}
    assert handled(shards["a-standby"]) == set(), "the shard's standby stays paused"
    assert handled(shards["b"]) == {"run-b"}
    assert handled(operator) == {"run-c"}, "runs without a shard label go to the instance without --shard"
