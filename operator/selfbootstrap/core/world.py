"""Plain data the core decides on: what the shell observed in the cluster.

The Kubernetes adapter builds these from API objects; the core never sees a client.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .guardrails import Window
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
    self_test: bool | None = None  # an operator pod's SelfTestPassed condition; None: not reported
    self_test_message: str = ""
    uid: str = ""  # a pod deleted by a forced rollback is deleted only while it is still this one


@dataclass(frozen=True)
class Revision:
    """One ReplicaSet owned by the Deployment: a release it ran or runs."""

    replica_set: str
    revision: int
    template: JsonObject  # pod template without the pod-template-hash label
    release_id: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    available_replicas: int = 0  # its pods available, as its ReplicaSet counts them
    undo_refusal: str | None = None  # why an undo to it would not put every pod back (StatefulSet, DaemonSet)


@dataclass(frozen=True)
class RolloutProgress:
    done: bool
    failed: bool
    message: str
    observed: bool = True  # the controller has seen the workload's latest spec (else it has not begun)


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
    kind: str = "Deployment"  # or StatefulSet, DaemonSet: revisions are then its ControllerRevisions
    progress: RolloutProgress | None = None  # another kind's rollout progress, as kubectl judges it for that kind
    ordered_ready: bool = False  # a StatefulSet with OrderedReady pod management (its undo may need force)
    other_pods: tuple[tuple[PodState, str], ...] = ()  # StatefulSet, DaemonSet: pods of other revisions (by name)


@dataclass(frozen=True)
class Peer:
    """Another unfinished run of the same workload, as the watches show it."""

    name: str
    uid: str
    sequence: int | None = None
    created: str = ""


@dataclass(frozen=True)
class Limits:
    """The installer's bounds on how runs go (operator settings, not a run's spec)."""

    namespace_runs: int = 0  # runs of one namespace past Pending at once; 0: no bound
    settle_seconds: float = 2.0  # a sequenced run on a workload with no record waits this long for a quiet moment
    self_update_windows: tuple[Window, ...] = ()  # when a selfHosted run may start; none: any time
    self_update_min_interval: float = 0.0  # seconds from the end of one self-update to the start of the next


@dataclass(frozen=True)
class World:
    """One observation of the run's surroundings, taken at the start of a tick."""

    deployment: DeploymentState | None
    pods: tuple[PodState, ...] = ()  # pods of the Deployment's current ReplicaSet
    peers: tuple[Peer, ...] = ()  # the workload's unfinished runs newer than this one (only at the gate)
    passed_over: tuple[str, ...] = ()  # the names of its unfinished runs older than this one (only at the gate)
    holder_running: bool = True  # the record's holder is unfinished (the shell asks when it matters)
    namespace_active: int = 0  # runs of the run's namespace in flight (with a worker), other than this one
    quiet_seconds: float = float("inf")  # since this operator first saw the newest-seen of the workload's runs
    limits: Limits = field(default_factory=Limits)
    crd_generation: int | None = None  # of this operator's own CRD; observed for selfHosted runs
    refused: str | None = None  # why the operator's egress policy refuses a URL the run names (checked at Pending)
    analysis_templates: Mapping[str, JsonObject | None] = field(default_factory=dict)  # by template_key; None: absent
