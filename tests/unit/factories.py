"""Small builders for the core's plain data: templates, revisions, deployments, pods, runs.

The default scenario: Deployment "web" ran release v1 (rs-1, revision 1), then v2
(rs-2, revision 2, running now); the run deploys v3 (rs-3, revision 3 once patched).
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from selfbootstrap.core import record
from selfbootstrap.core.releases import template_digest
from selfbootstrap.core.run import Run
from selfbootstrap.core.world import ContainerState, DeploymentState, PodState, Revision, World
from selfbootstrap.models import RELEASE_ANNOTATION, RUNS_ANNOTATION, RunSpec, RunStatus

T0 = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC)
IMAGE = "registry.local:5000/team/web"
DEPLOYMENT = "web"
RUN = "run-1"


def at(seconds: float) -> datetime:
    """The fixed clock: T0 plus `seconds`."""
    return T0 + timedelta(seconds=seconds)


def image(release: str) -> str:
    return f"{IMAGE}:{release}"


def tmpl(release: str | None = None, *, img: str | None = None, annotated: bool = True,
         containers: list[dict[str, Any]] | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    """A pod template running `release` (image tag, plus the release annotation unless annotated=False)."""
    meta: dict[str, Any] = {"labels": dict(labels or {"app": DEPLOYMENT})}
    if annotated and release is not None:
        meta["annotations"] = {RELEASE_ANNOTATION: release}
    if containers is None:
        containers = [{"name": "app", "image": img or image(release or "latest")}]
    return {"metadata": meta, "spec": {"containers": containers}}


def rev(rs: str, number: int, release: str | None, *, template: dict[str, Any] | None = None,
        history: tuple[int, ...] = (), annotations: dict[str, str] | None = None, available: int = 0) -> Revision:
    annotations = dict(annotations or {})
    if history:
        annotations["deployment.kubernetes.io/revision-history"] = ",".join(str(h) for h in history)
    return Revision(replica_set=rs, revision=number, template=template or tmpl(release), release_id=release,
                    annotations=annotations, available_replicas=available)


REV1 = rev("rs-1", 1, "v1")
REV2 = rev("rs-2", 2, "v2")
REV3 = rev("rs-3", 3, "v3")


def deployment(template: dict[str, Any] | None = None, revisions: tuple[Revision, ...] = (REV1, REV2),
               **fields: Any) -> DeploymentState:
    """A Deployment whose rollout is complete, with one replica, running `template` (default: v2)."""
    values: dict[str, Any] = dict(
        name=DEPLOYMENT, resource_version="100", template=copy.deepcopy(template or tmpl("v2")),
        generation=1, observed_generation=1, replicas=1, status_replicas=1, updated_replicas=1,
        available_replicas=1, revisions=revisions,
    )
    values.update(fields)
    return DeploymentState(**values)


def deployed(**fields: Any) -> DeploymentState:
    """The Deployment after the run's patch: v3 rolled out (rs-3)."""
    fields.setdefault("revisions", (REV1, REV2, REV3))
    return deployment(tmpl("v3"), **fields)


def rolled_back(**fields: Any) -> DeploymentState:
    """After `kubectl rollout undo` to rs-2: v2's template, rs-2 renumbered to 4."""
    fields.setdefault("revisions", (REV1, rev("rs-2", 4, "v2", history=(2,)), REV3))
    return deployment(tmpl("v2"), **fields)


def held_record(uid: str = "u-1", outcome: str = record.DEPLOYED, previous: str | None = "rs-2",
                release: str = "v3", name: str = RUN) -> str:
    """The workload's record with the run holding it (by default: it deployed v3 over rs-2)."""
    claimant = record.Claimant(name, uid, release, created="2030-01-01T11:00:00Z", previous=previous)
    rec = record.claimed(record.Record(), claimant, T0)
    rec = record.outcome(record.deployed(rec, uid, T0), uid, outcome, T0, release=False)
    return record.render(rec)


def holding(dep: DeploymentState, **fields: Any) -> DeploymentState:
    """The Deployment with the run holding it in its record (see held_record)."""
    return replace(dep, annotations={**dep.annotations, RUNS_ANNOTATION: held_record(**fields)})


def container(name: str = "app", **fields: Any) -> ContainerState:
    return ContainerState(name=name, **fields)


def pod(name: str = "web-1", *containers: ContainerState, ready: bool = True) -> PodState:
    return PodState(name=name, ready=ready, containers=containers or (container(),))


def world(dep: DeploymentState | None, pods: tuple[PodState, ...] = (), **fields: Any) -> World:
    return World(deployment=dep, pods=pods, **fields)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def spec(**sections: Any) -> RunSpec:
    """A RunSpec deploying image v3 to "web"; keyword sections (camelCase JSON) are deep-merged."""
    base = {"target": {"deployment": DEPLOYMENT}, "release": {"image": image("v3")}}
    return RunSpec.model_validate(deep_merge(base, sections))


def status(**fields: Any) -> RunStatus:
    return RunStatus(**fields)


def run(st: RunStatus | None = None, sp: RunSpec | None = None, *, generation: int = 1) -> Run:
    return Run(name=RUN, generation=generation, spec=sp or spec(), status=st or RunStatus(), namespace="apps",
               uid="u-1", created="2030-01-01T11:00:00Z")


# --- statuses of a run part-way through the default scenario ------------------

V3_DIGEST = template_digest(tmpl("v3"))  # what the run's deploy patch leaves on the Deployment

RESOLVED = dict(
    phase="Deploying", reason="ReleasesResolved", started_at=at(-10), phase_started_at=at(-10),
    deployed_release_id="v3", previous_release_id="v2", previous_revision=2, previous_replica_set="rs-2",
    rollback_target_release_id="v2", release_metadata_source="deploymentRevisions",
)


def resolved(**fields: Any) -> RunStatus:
    """Deploying, releases resolved, not patched yet."""
    return RunStatus(**{**RESOLVED, **fields})


def verifying(**fields: Any) -> RunStatus:
    """Deployed at T0, waiting for the rollout."""
    values = {**RESOLVED, "phase": "VerifyingHealth", "reason": "Deployed", "phase_started_at": T0,
              "deploy_patched_at": T0, "deployed_template_digest": V3_DIGEST}
    return RunStatus(**{**values, **fields})


def watching(**fields: Any) -> RunStatus:
    """Healthy, watching for restarts."""
    values = {**RESOLVED, "phase": "WatchingRestarts", "reason": "Healthy", "phase_started_at": T0,
              "deploy_patched_at": at(-60), "deployed_template_digest": V3_DIGEST,
              "health_status": "healthy", "deployed_replica_set": "rs-3",
              "deployed_revision": 3}
    return RunStatus(**{**values, **fields})


def rolling_back(**fields: Any) -> RunStatus:
    """A gate failed at T0; rolling back to rs-2 (revision 2), not patched yet."""
    values = {**RESOLVED, "phase": "RollingBack", "reason": "RestartWatchdogFailed", "phase_started_at": T0,
              "deploy_patched_at": at(-60), "deployed_template_digest": V3_DIGEST,
              "deployed_replica_set": "rs-3", "deployed_revision": 3, "rollback_policy_status": "allowed",
              "rollback_policy_reason": "rollbackTargetValidated",
              "rollback_failure_class": "restartWatchdogFailure", "rollback_target_replica_set": "rs-2",
              "rollback_target_revision": 2, "rollback_target_valid": True}
    return RunStatus(**{**values, **fields})
