"""Plain data the core decides on: what the shell observed in the cluster.

The Kubernetes adapter builds these from API objects; the core never sees a client.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .jsontypes import JsonObject


@dataclass(frozen=True)
class ContainerState:
    name: str
    ready: bool = True
    restart_count: int = 0
    waiting_reason: str | None = None
    terminated_reason: str | None = None
    last_terminated_reason: str | None = None


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str = "Running"
    ready: bool = True
    containers: tuple[ContainerState, ...] = ()
    started: bool = True  # scheduled and past creating its containers: its readiness can be judged


@dataclass(frozen=True)
class Revision:
    """One ReplicaSet owned by the Deployment: a release it ran or runs."""

    replica_set: str
    revision: int
    template: JsonObject  # pod template without the pod-template-hash label
    release_id: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    available_replicas: int = 0  # its pods available, as its ReplicaSet counts them


@dataclass(frozen=True)
class DeploymentState:
    name: str
    resource_version: str
    template: JsonObject
    generation: int = 1
    observed_generation: int = 1
    paused: bool = False
    replicas: int = 1
    status_replicas: int = 0
    updated_replicas: int = 0
    available_replicas: int = 0
    progressing_reason: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    revisions: tuple[Revision, ...] = ()
    uid: str = ""


@dataclass(frozen=True)
class World:
    """One observation of the run's surroundings, taken at the start of a tick."""

    deployment: DeploymentState | None
    pods: tuple[PodState, ...] = ()  # pods of the Deployment's current ReplicaSet
    blocking_run: str | None = None  # another active run that holds the same Deployment
    crd_generation: int | None = None  # of this operator's own CRD; observed for selfHosted runs
