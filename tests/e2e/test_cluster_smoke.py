"""The local control plane itself: real controllers, kwok pods, misbehaviour by image name."""

from __future__ import annotations

import pytest
from kubernetes import client

from .kube_helpers import create_deployment, poll, replica_sets

pytestmark = pytest.mark.e2e


def pods_of(namespace: str, app: str) -> list:
    return client.CoreV1Api().list_namespaced_pod(namespace, label_selector=f"app={app}").items


def waiting_reasons(namespace: str, app: str) -> set[str]:
    return {(cs.state.waiting.reason if cs.state and cs.state.waiting else "running")
            for p in pods_of(namespace, app) for cs in (p.status.container_statuses or [])}


def test_deployment_rolls_out_and_undo_renumbers_the_readopted_replica_set(namespace, kubectl):
    create_deployment(namespace, "app", "registry.example.com/app:v1", "v1")
    kubectl("-n", namespace, "set", "image", "deployment/app", "app=registry.example.com/app:v2-crashloop")
    poll(lambda: waiting_reasons(namespace, "app") >= {"CrashLoopBackOff"}, 30,
         lambda: f"no crash loop: {waiting_reasons(namespace, 'app')}")
    crashing = [p for p in pods_of(namespace, "app") if "crashloop" in p.spec.containers[0].image]
    assert all(p.status.container_statuses[0].restart_count > 0 for p in crashing)
    assert all(not p.status.container_statuses[0].ready for p in crashing)

    kubectl("-n", namespace, "rollout", "undo", "deployment/app")
    kubectl("-n", namespace, "rollout", "status", "deployment/app", "--timeout=60s")

    rs = replica_sets(namespace, "app")
    assert (rs["registry.example.com/app:v1"]["revision"], rs["registry.example.com/app:v1"]["history"]) == (3, "1")


@pytest.mark.parametrize("image, reason, phase", [
    ("registry.example.com/app:v2-notready", "running", "Running"),
    ("registry.example.com/app:v2-oomkilled", "CrashLoopBackOff", "Running"),
    ("registry.example.com/app:v2-imagepull", "ImagePullBackOff", "Pending"),
])
def test_misbehaving_images(namespace, image, reason, phase):
    client.AppsV1Api().create_namespaced_deployment(namespace, {
        "metadata": {"name": "odd"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "odd"}},
                 "template": {"metadata": {"labels": {"app": "odd"}},
                              "spec": {"containers": [{"name": "app", "image": image}]}}}})
    poll(lambda: any(p.status.container_statuses for p in pods_of(namespace, "odd")), 30, "pod never got a status")
    pod = pods_of(namespace, "odd")[0]
    assert waiting_reasons(namespace, "odd") == {reason}
    assert pod.status.phase == phase
    ready = next(c.status for c in pod.status.conditions if c.type == "Ready")
    assert ready == "False"
