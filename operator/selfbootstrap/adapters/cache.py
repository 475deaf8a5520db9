"""The world as the watches see it: trimmed entries of Deployments, ReplicaSets, pods and runs,
kept by kopf's indices, and the core's World built from them without a request.

An entry holds only what the core reads, so memory stays small however large the cluster, packed
as one compact JSON string rather than dozens of small objects (at 1,000 Deployments with their
ReplicaSets and pods: 10 MB less live memory; a world is decoded when a run looks, in microseconds).
Entries are keyed so that a run finds everything in O(1): its Deployment by (namespace, name),
the Deployment's ReplicaSets by (namespace, owner uid), a ReplicaSet's pods by (namespace, owner
uid), and the runs of a Deployment by (namespace, target).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar, cast

from .. import models as m
from ..core import releases
from ..core.jsontypes import JsonObject, integer, obj, objects, path, text
from ..core.world import ContainerState, DeploymentState, PodState, World
from . import kube as k

Key = tuple[str, str]
T_co = TypeVar("T_co", covariant=True)

# Phases in which a run holds its Deployment: it has resolved its releases and may patch or undo.
HOLDING = frozenset({m.Phase.VERIFYING_HEALTH, m.Phase.WATCHING_RESTARTS, m.Phase.ROLLING_BACK})


class Index(Protocol[T_co]):
    """What a kopf index is to its readers: per key, the values of every object indexed under it."""

    def __contains__(self, key: object) -> bool: ...
    def __getitem__(self, key: Key) -> Iterable[T_co]: ...


def _pack(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class _PackedObject:
    packed: bytes

    @property
    def body(self) -> JsonObject:
        return cast(JsonObject, json.loads(self.packed))


@dataclass(frozen=True, slots=True)
class DeploymentEntry(_PackedObject):
    """Metadata, spec and status, trimmed to what deployment_state reads."""


@dataclass(frozen=True, slots=True)
class ReplicaSetEntry(_PackedObject):
    """Name, annotations, owner, template and available replicas."""


@dataclass(frozen=True, slots=True)
class PodEntry:
    packed: bytes

    @classmethod
    def of(cls, state: PodState) -> PodEntry:
        return cls(_pack(asdict(state)))

    @property
    def state(self) -> PodState:
        fields = json.loads(self.packed)
        containers = tuple(ContainerState(**c) for c in fields.pop("containers"))
        return PodState(**fields, containers=containers)


@dataclass(frozen=True)
class RunEntry:
    name: str
    created: str
    phase: str | None
    resolved: bool  # has recorded its releases: it is past the gate into Deploying
    git: bool


def _trim_meta(o: JsonObject, *keys: str) -> JsonObject:
    md = k.meta(o)
    return {key: md[key] for key in ("name", "namespace", "uid", "resourceVersion", "generation", *keys)
            if key in md}


def deployment_entry(dep: JsonObject) -> DeploymentEntry:
    spec, status = obj(dep.get("spec")), obj(dep.get("status"))
    body: JsonObject = {
        "metadata": _trim_meta(dep, "annotations"),
        "spec": {key: spec[key] for key in ("replicas", "paused", "selector", "template") if key in spec},
        "status": {key: status[key] for key in ("observedGeneration", "replicas", "updatedReplicas",
                                                 "availableReplicas", "conditions") if key in status},
    }
    return DeploymentEntry(_pack(body))


def controller_of(o: JsonObject, kind: str) -> JsonObject | None:
    return next((ref for ref in objects(k.meta(o).get("ownerReferences"))
                 if ref.get("controller") is True and ref.get("kind") == kind), None)


def replica_set_entry(rs: JsonObject) -> ReplicaSetEntry:
    body: JsonObject = {"metadata": _trim_meta(rs, "annotations", "ownerReferences"),
                        "spec": {"template": obj(path(rs, "spec", "template"))},
                        "status": {"availableReplicas": integer(path(rs, "status", "availableReplicas"))}}
    return ReplicaSetEntry(_pack(body))


def run_entry(run: JsonObject) -> RunEntry:
    status = obj(run.get("status"))
    return RunEntry(name=k.name_of(run), created=text(k.meta(run).get("creationTimestamp")) or "",
                    phase=text(status.get("phase")), resolved=status.get("releaseMetadataSource") is not None,
                    git=path(run, "spec", "git") is not None)


def blocking_run(me: RunEntry, others: Iterable[RunEntry]) -> str | None:
    """The run this one waits for before it may take the Deployment, if any.

    A run holds its Deployment from the moment it resolves its releases until it ends; a git
    run in its git phases holds nothing. Runs waiting at the gate go in creation order.
    """
    def waiting(r: RunEntry) -> bool:
        return (r.phase in (None, m.Phase.PENDING) and not r.git) or (r.phase == m.Phase.DEPLOYING and not r.resolved)

    holders = [r for r in others if r.name != me.name and (
        r.phase in HOLDING or (r.phase == m.Phase.DEPLOYING and r.resolved))]
    if holders:
        return min(holders, key=lambda r: (r.created, r.name)).name
    ahead = [r for r in others if r.name != me.name and waiting(r) and (r.created, r.name) < (me.created, me.name)]
    return min(ahead, key=lambda r: (r.created, r.name)).name if ahead else None


@dataclass(frozen=True)
class Indices:
    deployments: Index[DeploymentEntry]
    replica_sets: Index[ReplicaSetEntry]
    pods: Index[PodEntry]
    runs: Index[RunEntry]


def world_from(indices: Indices, run: JsonObject, container: str | None) -> World | None:
    """The run's world from the caches; None when its Deployment is not there (gone, or not seen yet:
    the caller asks the API rather than deciding on an absence the cache may only lag behind)."""
    namespace = k.namespace_of(run)
    target = text(path(run, "spec", "target", "deployment")) or ""
    found = list(indices.deployments[(namespace, target)]) if (namespace, target) in indices.deployments else []
    if not found:
        return None
    dep = found[0].body
    owned = (namespace, text(k.meta(dep).get("uid")) or "")
    replica_sets = [rs.body for rs in indices.replica_sets[owned]] if owned in indices.replica_sets else []
    state = k.deployment_state(dep, replica_sets, container)
    return World(deployment=state, pods=_pods(indices, namespace, state, replica_sets),
                 blocking_run=blocker(indices, run))


def _pods(indices: Indices, namespace: str, state: DeploymentState,
          replica_sets: list[JsonObject]) -> tuple[PodState, ...]:
    current = releases.current_revision(state)
    if current is None:
        return ()
    uid = next((text(k.meta(rs).get("uid")) or "" for rs in replica_sets if k.name_of(rs) == current.replica_set), "")
    key = (namespace, uid)
    return tuple(sorted((p.state for p in indices.pods[key]), key=lambda p: p.name)) if key in indices.pods else ()


def blocker(indices: Indices, run: JsonObject) -> str | None:
    """The run this one waits for (only a run at the gate waits), from the runs of its Deployment."""
    if path(run, "status", "phase") not in (None, m.Phase.PENDING, m.Phase.DEPLOYING):
        return None
    key = (k.namespace_of(run), text(path(run, "spec", "target", "deployment")) or "")
    return blocking_run(run_entry(run), indices.runs[key]) if key in indices.runs else None


def stale(world: World, guard: str | None) -> bool:
    """The cache still shows the Deployment as it was before this run's own last patch."""
    return guard is not None and world.deployment is not None and world.deployment.resource_version == guard

