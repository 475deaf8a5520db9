"""The control plane itself: real Deployment/ReplicaSet controllers and scheduler, kwok pods that
misbehave by image name (hack/kwok/stages.yaml)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from .cluster import holds, wait_for

pytestmark = pytest.mark.e2e

GOOD, CRASHING = "registry.example.com/app:v1", "registry.example.com/app:v2-crashloop"
REVISION, HISTORY = "deployment.kubernetes.io/revision", "deployment.kubernetes.io/revision-history"


def create_deployment(namespace: str, name: str, image: str, replicas: int) -> None:
    client.AppsV1Api().create_namespaced_deployment(namespace, {
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "minReadySeconds": 0, "progressDeadlineSeconds": 30,
                 "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}}})


def deployment(namespace: str, name: str) -> Any:
    return client.AppsV1Api().read_namespaced_deployment(name, namespace)


def available(namespace: str, name: str, replicas: int) -> bool:
    d = deployment(namespace, name)
    s = d.status
    return (s.observed_generation or 0) >= d.metadata.generation and s.replicas == replicas \
        and s.updated_replicas == replicas and s.ready_replicas == replicas and s.available_replicas == replicas


def replica_sets(namespace: str, name: str) -> dict[str, Any]:
    """Image -> ReplicaSet."""
    items = client.AppsV1Api().list_namespaced_replica_set(namespace, label_selector=f"app={name}").items
    return {rs.spec.template.spec.containers[0].image: rs for rs in items}


def pods(namespace: str, name: str, image: str | None = None) -> list[Any]:
    items = client.CoreV1Api().list_namespaced_pod(namespace, label_selector=f"app={name}").items
    return [p for p in items if image is None or p.spec.containers[0].image == image]


def container(pod: Any) -> Any:
    return (pod.status.container_statuses or [None])[0]


def pod_ready(pod: Any) -> str | None:
    return next((c.status for c in pod.status.conditions or [] if c.type == "Ready"), None)


def describe(namespace: str, name: str) -> str:
    return "; ".join(f"{p.metadata.name} {p.status.phase} ready={pod_ready(p)} {container(p)}"
                     for p in pods(namespace, name)) or "no pods"


def test_rollout_crash_loop_and_undo(namespace, kubectl):
    create_deployment(namespace, "app", GOOD, replicas=2)
    wait_for(lambda: available(namespace, "app", 2), 60,
             lambda: f"deployment never had 2 ready replicas: {deployment(namespace, 'app').status}")

    kubectl("-n", namespace, "set", "image", "deployment/app", f"app={CRASHING}")

    def restarts_while_crash_looping() -> list[int]:
        found = [container(p) for p in pods(namespace, "app", CRASHING)]
        return [c.restart_count for c in found] if found and all(
            c and c.state.waiting and c.state.waiting.reason == "CrashLoopBackOff" and c.restart_count > 0
            for c in found) else []

    first = wait_for(restarts_while_crash_looping, 30, lambda: f"no crash loop: {describe(namespace, 'app')}")
    for pod in pods(namespace, "app", CRASHING):
        c = container(pod)
        assert (pod.status.phase, pod_ready(pod), c.ready) == ("Running", "False", False)
        assert (c.last_state.terminated.exit_code, c.last_state.terminated.reason) == (1, "Error")
    rs = replica_sets(namespace, "app")
    assert {img: r.metadata.annotations[REVISION] for img, r in rs.items()} == {GOOD: "1", CRASHING: "2"}
    wait_for(lambda: min(restarts_while_crash_looping() or [0]) > max(first), 15,
             lambda: f"restart count does not grow beyond {max(first)}: {describe(namespace, 'app')}")
    assert deployment(namespace, "app").status.available_replicas == 2, "the old pods keep serving"

    kubectl("-n", namespace, "rollout", "undo", "deployment/app")
    kubectl("-n", namespace, "rollout", "status", "deployment/app", "--timeout=60s")

    assert deployment(namespace, "app").spec.template.spec.containers[0].image == GOOD
    wait_for(lambda: available(namespace, "app", 2) and not pods(namespace, "app", CRASHING), 60,
             lambda: f"not back on {GOOD}: {describe(namespace, 'app')}")
    rs = replica_sets(namespace, "app")
    assert (rs[GOOD].metadata.annotations[REVISION], rs[GOOD].metadata.annotations[HISTORY]) == ("3", "1")
    assert (rs[CRASHING].metadata.annotations[REVISION], rs[CRASHING].spec.replicas) == ("2", 0)


def test_notready_image_runs_but_never_becomes_ready(namespace):
    create_deployment(namespace, "odd", "registry.example.com/app:v2-notready", replicas=1)
    wait_for(lambda: [p for p in pods(namespace, "odd") if container(p) and container(p).state.running], 30,
             lambda: f"pod never started: {describe(namespace, 'odd')}")

    def not_ready() -> bool:
        (pod,) = pods(namespace, "odd")
        c = container(pod)
        return (pod.status.phase, pod_ready(pod), c.ready, c.restart_count) == ("Running", "False", False, 0)

    holds(not_ready, 5, lambda: f"pod became ready or restarted: {describe(namespace, 'odd')}")
    assert not deployment(namespace, "odd").status.available_replicas


@pytest.mark.parametrize("image, phase, waiting, last_terminated", [
    ("registry.example.com/app:v2-oomkilled", "Running", "CrashLoopBackOff", (137, "OOMKilled")),
    ("registry.example.com/app:v2-imagepull", "Pending", "ImagePullBackOff", None),
])
def test_misbehaving_images(namespace, image, phase, waiting, last_terminated):
    create_deployment(namespace, "odd", image, replicas=1)
    wait_for(lambda: [p for p in pods(namespace, "odd") if container(p)], 30,
             lambda: f"pod never got a status: {describe(namespace, 'odd')}")
    (pod,) = pods(namespace, "odd")
    c = container(pod)
    assert (pod.status.phase, pod_ready(pod), c.ready, c.state.waiting.reason) == (phase, "False", False, waiting)
    if last_terminated:
        assert (c.last_state.terminated.exit_code, c.last_state.terminated.reason) == last_terminated
        assert c.restart_count > 0
    else:
        assert (c.last_state.terminated, c.restart_count) == (None, 0)


def test_nodes_and_service_account_ca(cluster, namespace):
    if cluster.existing:
        pytest.skip("checks the local control plane's own setup")
    nodes = client.CoreV1Api().list_node(label_selector="type=kwok").items
    assert len(nodes) >= 1
    for node in nodes:
        assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
        assert int(node.status.allocatable["pods"]) > 0
    core = client.CoreV1Api()
    published = wait_for(lambda: core.list_namespaced_config_map(
        namespace, field_selector="metadata.name=kube-root-ca.crt")
                         .items, 30, "kube-root-ca.crt was never published")
    assert published[0].data["ca.crt"].startswith("-----BEGIN CERTIFICATE-----"), \
        "kube-controller-manager needs --root-ca-file"
