"""End-to-end: a StatefulSet's and a DaemonSet's releases read from their ControllerRevisions, and the undo the
operator computes (core/targets/controllerrevisions.py) against `kubectl rollout undo` on a twin object: the
same template, the same revision re-adopted."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from selfbootstrap.adapters.kube import Kube
from selfbootstrap.core import releases, rollout, watchdog
from selfbootstrap.core.targets import controllerrevisions as cr
from selfbootstrap.core.world import World

from .cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crd")]  # the namespace fixture lists runs

IMAGES = ("registry.example.com/db:v1", "registry.example.com/db:v2", "registry.example.com/db:v3")


def body(kind: str, name: str, image: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"selector": {"matchLabels": {"app": name}},
                            "template": {"metadata": {"labels": {"app": name},
                                                      "annotations": {"selfbootstrap.dev/release-id": "v1"}},
                                         "spec": {"containers": [{"name": "db", "image": image}]}}}
    if kind == "StatefulSet":
        spec.update(serviceName=name, replicas=1)
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def plural(kind: str) -> str:
    return {"StatefulSet": "statefulset", "DaemonSet": "daemonset"}[kind]


def release(kubectl, namespace: str, kind: str, name: str, version: int) -> None:
    kubectl("-n", namespace, "patch", plural(kind), name, "--type=strategic", "-p", json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"selfbootstrap.dev/release-id": f"v{version}"}},
        "spec": {"containers": [{"name": "db", "image": IMAGES[version - 1]}]}}}}))


def revisions(kube: Kube, namespace: str, kind: str, name: str, count: int) -> tuple[cr.ControllerRevision, ...]:
    def enough() -> tuple[cr.ControllerRevision, ...]:
        workload = kube.read_workload(kind, namespace, name)
        found = kube.controller_revisions_of(workload) if workload else ()
        return found if len(found) >= count else ()
    return wait_for(enough, 60, f"{kind} {name} never had {count} ControllerRevisions")


def normal(template: dict[str, Any], name: str) -> dict[str, Any]:
    """A template with its object's own name taken out, to compare twins."""
    return json.loads(json.dumps(template).replace(name, "NAME"))


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_the_operator_s_undo_is_kubectl_rollout_undo_on_a_twin(namespace, kubectl, kind):
    kube = Kube(client.ApiClient())
    for twin in ("by-kubectl", "by-operator"):
        kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(body(kind, twin, IMAGES[0])))
        for version in (2, 3):
            revisions(kube, namespace, kind, twin, version - 1)
            release(kubectl, namespace, kind, twin, version)
        revisions(kube, namespace, kind, twin, 3)

    kubectl("-n", namespace, "rollout", "undo", f"{plural(kind)}/by-kubectl")

    workload = kube.read_workload(kind, namespace, "by-operator")
    assert workload is not None
    history = kube.controller_revisions_of(workload)
    current = next(r for r in history if cr.matches(workload, r))
    target = cr.previous(history, current.name)
    assert target is not None and target.release_id() == "v2"
    assert cr.undo_refusal(kind, workload, target) is None
    # sent as the operator sends it: a strategic merge patch of the revision's data
    kubectl("-n", namespace, "patch", plural(kind), "by-operator", "--type=strategic", "-p",
            json.dumps(cr.undo_patch(target)))

    def template(name: str) -> dict[str, Any]:
        found = kube.read_workload(kind, namespace, name)
        assert found is not None
        return normal(found["spec"]["template"], name)
    assert template("by-operator") == template("by-kubectl")
    assert template("by-operator")["spec"]["containers"][0]["image"] == IMAGES[1]
    def numbers(twin: str) -> list[int]:
        return sorted(r.revision for r in revisions(kube, namespace, kind, twin, 3))
    for twin in ("by-kubectl", "by-operator"):  # the controller re-adopts the undone-to revision as the newest
        wait_for(lambda t=twin: numbers(t) == [1, 3, 4], 60, lambda t=twin: f"{t}'s revisions: {numbers(t)}")


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
def test_a_workload_is_observed_as_the_core_sees_one(namespace, kubectl, kind):
    """Its revisions from its ControllerRevisions, its rollout progress as kubectl judges the kind, and the pods
    of its current revision, crash-looping ones included (the restart watchdog's view)."""
    kube = Kube(client.ApiClient())
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(body(kind, "db", IMAGES[0])))

    def settled(release: str) -> World:
        def look() -> World | None:
            world = kube.observe_workload(kind, namespace, "db", "db")
            dep = world.deployment
            done = dep is not None and rollout.rollout_progress(dep).done and world.pods and all(
                p.ready for p in world.pods)
            current = releases.current_revision(dep) if dep else None
            return world if done and current is not None and current.release_id == release else None
        found = wait_for(look, 90, lambda: f"{kind} never settled on {release}: "
                                           f"{kube.observe_workload(kind, namespace, 'db', 'db')}")
        assert found is not None
        return found

    first = settled("v1")
    assert first.deployment is not None and first.deployment.kind == kind
    assert [r.release_id for r in first.deployment.revisions] == ["v1"]
    kubectl("-n", namespace, "patch", plural(kind), "db", "--type=strategic", "-p", json.dumps({"spec": {"template": {
        "metadata": {"annotations": {"selfbootstrap.dev/release-id": "v2"}},
        "spec": {"containers": [{"name": "db", "image": IMAGES[1]}]}}}}))
    second = settled("v2")
    assert second.deployment is not None
    assert sorted(r.release_id or "" for r in second.deployment.revisions) == ["v1", "v2"]
    assert "successfully rolled out" in rollout.rollout_progress(second.deployment).message or \
        "complete" in rollout.rollout_progress(second.deployment).message

    release(kubectl, namespace, kind, "db", 3)  # v3, then crash-looping
    kubectl("-n", namespace, "set", "image", f"{plural(kind)}/db", "db=registry.example.com/db:v3-crashloop")

    def crashing() -> World | None:
        world = kube.observe_workload(kind, namespace, "db", "db")
        dep = world.deployment
        current = releases.current_revision(dep) if dep else None
        on_new = current is not None and "crashloop" in json.dumps(current.template)
        return world if on_new and world.pods and not watchdog.crash_verdict(world.pods, 0).stable else None
    broken = wait_for(crashing, 90, f"the {kind}'s crash-looping pods were never seen")
    assert broken.deployment is not None and not rollout.rollout_progress(broken.deployment).done
