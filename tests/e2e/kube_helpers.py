"""Small helpers the end-to-end tests share: workloads, runs, waits."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tools import localcluster

from tests.support.waiting import poll as settle

from .cluster import wait_for as poll

GROUP, VERSION, PLURAL = "selfbootstrap.dev", "v1alpha1", "selfbootstrapruns"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"


def create_deployment(namespace: str, name: str, image: str, release: str, replicas: int = 2,
                      progress_deadline: int = 60) -> dict[str, Any]:
    body = deployment_body(name, image, release, replicas, progress_deadline)
    apps = client.AppsV1Api()
    apps.create_namespaced_deployment(namespace, body)
    poll(lambda: _available(namespace, name, replicas), 60,
         lambda: f"deployment {name} never became available: {apps.read_namespaced_deployment(name, namespace).status}")
    return body


def deployment_body(name: str, image: str, release: str, replicas: int = 2,
                    progress_deadline: int = 60) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": progress_deadline,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"selfbootstrap.dev/release-id": release}},
                "spec": {"containers": [{"name": "app", "image": image}]},
            },
        },
    }


def _available(namespace: str, name: str, replicas: int) -> bool:
    dep = client.AppsV1Api().read_namespaced_deployment(name, namespace)
    s = dep.status
    return (s.observed_generation or 0) >= dep.metadata.generation and (s.available_replicas or 0) == replicas \
        and (s.updated_replicas or 0) == replicas and (s.replicas or 0) == replicas


def deployment(namespace: str, name: str) -> Any:
    return client.AppsV1Api().read_namespaced_deployment(name, namespace)


def deployment_image(namespace: str, name: str) -> str:
    return deployment(namespace, name).spec.template.spec.containers[0].image


def replica_sets(namespace: str, app: str) -> dict[str, dict[str, Any]]:
    """Image -> {name, revision, history} for the app's ReplicaSets."""
    out = {}
    for rs in client.AppsV1Api().list_namespaced_replica_set(namespace, label_selector=f"app={app}").items:
        ann = rs.metadata.annotations or {}
        out[rs.spec.template.spec.containers[0].image] = {
            "name": rs.metadata.name,
            "revision": int(ann.get(REVISION, "0")),
            "history": ann.get(REVISION_HISTORY, ""),
        }
    return out


def run_body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun", "metadata": {"name": name}, "spec": spec}


def create_run(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return client.CustomObjectsApi().create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, run_body(name, spec))


def get_run(namespace: str, name: str) -> dict[str, Any]:
    return client.CustomObjectsApi().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)


def status(namespace: str, name: str) -> dict[str, Any]:
    return get_run(namespace, name).get("status") or {}


def wait_phase(namespace: str, name: str, phases: set[str] | str, timeout: float = 90) -> dict[str, Any]:
    wanted = {phases} if isinstance(phases, str) else phases

    def seen() -> str:
        s = status(namespace, name)
        return f"run {name} is {s.get('phase')} ({s.get('reason')}: {s.get('message')}), wanted {wanted}"

    poll(lambda: status(namespace, name).get("phase") in wanted, timeout, seen)
    return status(namespace, name)


EVENTS_WAIT_SECONDS = 10.0


def events_of(namespace: str, name: str, kind: str = "SelfBootstrapRun") -> list[tuple[str, str, str]]:
    """The object's Events. A run's status numbers its Events (eventSeq) and the operator posts them after the
    write that numbers them: for a run, wait a moment for as many as its status numbers."""
    def listed() -> list[Any]:
        return client.CoreV1Api().list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name},involvedObject.kind={kind}").items

    numbered = _event_seq(namespace, name) if kind == "SelfBootstrapRun" else 0

    def enough() -> tuple[list[Any]] | None:  # a tuple: an empty list is an answer too
        items = listed()
        return (items,) if len(items) >= numbered else None

    found = settle(enough, EVENTS_WAIT_SECONDS, interval=0.2)
    return [(e.type, e.reason, e.message) for e in (found[0] if found else listed())]


def _event_seq(namespace: str, name: str) -> int:
    try:
        return int(status(namespace, name).get("eventSeq") or 0)
    except ApiException:  # gone: nothing to wait for
        return 0


def condition(st: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in st["conditions"] if c["type"] == type_)


def at_once(namespace: str, runs: list[tuple[str, dict[str, Any], dict[str, str] | None]],
            spread: float = 0.0) -> None:
    """Create the runs (name, spec, labels) from one thread each, released together (each after a random
    delay of up to `spread` seconds: creation times then fall in different seconds, in any order of names)."""
    start = threading.Barrier(len(runs))
    errors: list[BaseException] = []
    delays = [random.uniform(0, spread) for _ in runs]

    def create(name: str, body: dict[str, Any], labels: dict[str, str] | None, delay: float) -> None:
        start.wait()
        time.sleep(delay)
        try:
            manifest = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun",
                        "metadata": {"name": name, "labels": labels or {}}, "spec": body}
            client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=create, args=(*run, delay)) for run, delay in zip(runs, delays, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def sbr(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`kubectl sbr ARGS` through the real kubectl, which finds the plugin on PATH as `kubectl-sbr`."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": os.environ["KUBECONFIG"]}  # the session's; kubectl takes no flags before a plugin's name
    argv = [str(localcluster.kubectl_path()), "sbr", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, check=False)
