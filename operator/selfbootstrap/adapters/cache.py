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
from collections.abc import Callable, Collection, Iterable
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar, cast

from .. import models as m
from ..core import record, releases
from ..core.jsontypes import JsonObject, integer, obj, objects, path, text
from ..core.world import ContainerState, DeploymentState, Peer, PodState, World
from . import kube as k

Key = tuple[str, str]
T_co = TypeVar("T_co", covariant=True)

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


@dataclass(frozen=True, slots=True)
class RunEntry:
    """An unfinished run as the gate sees its peers: who it is and how new."""

    name: str
    uid: str
    created: str
    sequence: int | None
    active: bool  # past Pending: it holds its workload or works on its git change

    @property
    def key(self) -> record.OrderKey:
        return record.order_key(self.sequence, self.created, self.name)

    def peer(self) -> Peer:
        return Peer(self.name, self.uid, self.sequence, self.created)


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


REQUESTED_KINDS = (m.WorkloadKind.STATEFUL_SET.value, m.WorkloadKind.DAEMON_SET.value)  # not cached: read by request


def controller_of(o: JsonObject, *kinds: str) -> JsonObject | None:
    return next((ref for ref in objects(k.meta(o).get("ownerReferences"))
                 if ref.get("controller") is True and ref.get("kind") in kinds), None)


def replica_set_entry(rs: JsonObject) -> ReplicaSetEntry:
    """Without the resourceVersion: nothing reads it, and a status count's change would make a new entry."""
    md = {key: value for key, value in _trim_meta(rs, "annotations", "ownerReferences").items()
          if key not in ("resourceVersion", "generation")}
    body: JsonObject = {"metadata": md,
                        "spec": {"template": obj(path(rs, "spec", "template"))},
                        "status": {"availableReplicas": integer(path(rs, "status", "availableReplicas"))}}
    return ReplicaSetEntry(_pack(body))


def run_entry(run: JsonObject) -> RunEntry:
    phase = path(run, "status", "phase")
    sequence = path(run, "spec", "release", "sequence")
    return RunEntry(name=k.name_of(run), uid=text(k.meta(run).get("uid")) or "",
                    created=text(k.meta(run).get("creationTimestamp")) or "",
                    sequence=sequence if isinstance(sequence, int) and not isinstance(sequence, bool) else None,
                    active=phase not in (None, m.Phase.PENDING))


def _always(_: str) -> bool:
    return True


@dataclass(frozen=True)
class Indices:
    deployments: Index[DeploymentEntry]
    replica_sets: Index[ReplicaSetEntry]
    pods: Index[PodEntry]
    runs: Index[RunEntry]
    ready: Callable[[str], bool] = _always  # whether a namespace's workloads are all listed (else: ask the API)


def world_from(indices: Indices, run: JsonObject, container: str | None) -> World | None:
    """The run's world from the caches; None when its Deployment is not there (gone, or not seen yet:
    the caller asks the API rather than deciding on an absence the cache may only lag behind)."""
    namespace = k.namespace_of(run)
    kind, target = m.target_of(run)
    if kind != m.WorkloadKind.DEPLOYMENT or not indices.ready(namespace):
        return None  # other kinds are not cached; a namespace's watches may not have listed yet
    found = list(indices.deployments[(namespace, target)]) if (namespace, target) in indices.deployments else []
    if not found:
        return None
    dep = found[0].body
    owned = (namespace, text(k.meta(dep).get("uid")) or "")
    replica_sets = [rs.body for rs in indices.replica_sets[owned]] if owned in indices.replica_sets else []
    state = k.deployment_state(dep, replica_sets, container)
    return World(deployment=state, pods=_pods(indices, namespace, state, replica_sets))


def _pods(indices: Indices, namespace: str, state: DeploymentState,
          replica_sets: list[JsonObject]) -> tuple[PodState, ...]:
    current = releases.current_revision(state)
    if current is None:
        return ()
    uid = next((text(k.meta(rs).get("uid")) or "" for rs in replica_sets if k.name_of(rs) == current.replica_set), "")
    key = (namespace, uid)
    return tuple(sorted((p.state for p in indices.pods[key]), key=lambda p: p.name)) if key in indices.pods else ()


def peers_of(indices: Indices, run: JsonObject) -> list[RunEntry]:
    """The other unfinished runs of the run's workload."""
    key = (k.namespace_of(run), m.workload_key(*m.target_of(run)))
    uid = text(k.meta(run).get("uid"))
    return [e for e in indices.runs[key] if e.uid != uid] if key in indices.runs else []


def newer_than(entries: list[RunEntry], run: JsonObject) -> tuple[Peer, ...]:
    """The entries of runs newer than this one (the only ones the gate weighs against it; most runs have
    none, so no object is made for the many older ones)."""
    mine = run_entry(run).key
    return tuple(e.peer() for e in entries if e.key > mine)


def older_than(entries: list[RunEntry], run: JsonObject) -> tuple[str, ...]:
    """The names of the runs older than this one: those it passes over if it takes the workload."""
    mine = run_entry(run).key
    return tuple(e.name for e in entries if e.key < mine)


def stale(world: World, guards: Collection[str]) -> bool:
    """The cache still shows the Deployment as it was before one of this run's own patches."""
    return world.deployment is not None and world.deployment.resource_version in guards

