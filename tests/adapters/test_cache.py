"""The caches: trimmed entries, the world built from kopf's indices, and which run waits for which."""

from __future__ import annotations

import pytest

from selfbootstrap.adapters import cache
from selfbootstrap.core.world import ContainerState, PodState

TEMPLATE: dict = {"metadata": {"labels": {"app": "web"}, "annotations": {"selfbootstrap.dev/release-id": "v2"}},
            "spec": {"containers": [{"name": "app", "image": "reg/web:v2"}]}}
DEPLOYMENT: dict = {
    "metadata": {"name": "web", "namespace": "apps", "uid": "d-1", "resourceVersion": "42", "generation": 2,
                 "labels": {"big": "x" * 1000}, "managedFields": [{"manager": "kubectl"}]},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE,
             "strategy": {"type": "RollingUpdate"}},
    "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
}
RS: dict = {"metadata": {"name": "web-abc", "namespace": "apps", "uid": "rs-1",
                   "annotations": {"deployment.kubernetes.io/revision": "2"},
                   "ownerReferences": [{"kind": "Deployment", "name": "web", "uid": "d-1", "controller": True}]},
      "spec": {"template": {**TEMPLATE, "metadata": {**TEMPLATE["metadata"],
                                                     "labels": {"app": "web", "pod-template-hash": "abc"}}}},
      "status": {"replicas": 1, "availableReplicas": 1, "fullyLabeledReplicas": 1}}
RUN = {"metadata": {"name": "r", "namespace": "apps", "creationTimestamp": "2030-01-02T00:00:00Z"},
       "spec": {"target": {"deployment": "web"}}, "status": {"phase": "Pending"}}


def test_entries_keep_only_what_the_core_reads():
    entry = cache.deployment_entry(DEPLOYMENT)
    assert entry.body["metadata"] == {"name": "web", "namespace": "apps", "uid": "d-1", "resourceVersion": "42",
                                      "generation": 2}
    assert "managedFields" not in entry.body["metadata"] and "labels" not in entry.body["metadata"]
    assert "strategy" not in entry.body["spec"]
    assert cache.replica_set_entry(RS).body["status"] == {"availableReplicas": 1}


def test_a_pod_entry_gives_back_the_state_it_was_made_of():
    state = PodState("web-abc-1", phase="Pending", ready=False, started=False, containers=(
        ContainerState("app", ready=False, restart_count=3, waiting_reason="CrashLoopBackOff",
                       last_terminated_reason="Error"), ContainerState("sidecar")))
    assert cache.PodEntry.of(state).state == state


def indices(**extra) -> cache.Indices:
    values: dict = dict(
        deployments={("apps", "web"): [cache.deployment_entry(DEPLOYMENT)]},
        replica_sets={("apps", "d-1"): [cache.replica_set_entry(RS)]},
        pods={("apps", "rs-1"): [cache.PodEntry.of(PodState("web-abc-2")),
                                     cache.PodEntry.of(PodState("web-abc-1"))]},
        runs={},
    )
    values.update(extra)
    return cache.Indices(**values)


def test_the_world_of_a_run_comes_from_the_indices():
    world = cache.world_from(indices(), RUN, None)
    assert world is not None and world.deployment is not None
    assert [(r.replica_set, r.available_replicas) for r in world.deployment.revisions] == [("web-abc", 1)]
    assert [p.name for p in world.pods] == ["web-abc-1", "web-abc-2"]


def test_a_deployment_the_cache_has_not_seen_is_no_world():
    assert cache.world_from(indices(deployments={}), RUN, None) is None


def test_a_cache_that_still_shows_the_deployment_before_our_patch_is_stale():
    world = cache.world_from(indices(), RUN, None)
    assert cache.stale(world, {"42"}) and cache.stale(world, {"41", "42"}) and not cache.stale(world, {"41"})
    assert not cache.stale(world, set())


def a_run(name: str, uid: str, phase: str | None, sequence: int | None = None) -> dict:
    release = {"image": "reg/web:v3", **({"sequence": sequence} if sequence is not None else {})}
    return {"metadata": {"name": name, "namespace": "apps", "uid": uid, "creationTimestamp": "2030-01-01T00:00:00Z"},
            "spec": {"target": {"deployment": "web"}, "release": release}, "status": {"phase": phase}}


@pytest.mark.parametrize("phase, active", [(None, False), ("Pending", False), ("Deploying", True),
                                           ("AwaitingCI", True), ("RollingBack", True)])
def test_a_run_entry_says_who_the_run_is_and_whether_it_is_past_pending(phase, active):
    entry = cache.run_entry(a_run("r", "u", phase, sequence=7))
    assert (entry.name, entry.uid, entry.sequence, entry.created, entry.active) == (
        "r", "u", 7, "2030-01-01T00:00:00Z", active)
    assert cache.run_entry(a_run("r", "u", phase, sequence=None)).sequence is None


def test_the_peers_of_a_run_are_the_other_unfinished_runs_of_its_workload():
    runs = {("apps", "web"): [cache.run_entry(a_run("r", "u", "Pending")),
                              cache.run_entry(a_run("other", "u-2", "WatchingRestarts"))],
            ("apps", "db"): [cache.run_entry(a_run("elsewhere", "u-3", "Pending"))]}
    me = {**RUN, "metadata": {**RUN["metadata"], "uid": "u"}}
    assert [e.name for e in cache.peers_of(indices(runs=runs), me)] == ["other"]
    assert cache.peers_of(indices(runs={}), me) == []


def test_only_newer_runs_are_peers_the_gate_weighs():
    me = a_run("m", "u", "Pending")
    me["metadata"]["creationTimestamp"] = "2030-01-01T00:00:05Z"
    older, newer = a_run("a", "u-a", "Pending"), a_run("z", "u-z", "Pending")
    newer["metadata"]["creationTimestamp"] = "2030-01-01T00:00:09Z"
    entries = [cache.run_entry(older), cache.run_entry(newer)]
    assert [p.name for p in cache.newer_than(entries, me)] == ["z"]
