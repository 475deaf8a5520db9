"""Safe mode (pure): an operator that starts failing while its own self-update is unfinished serves only that run.

A self-update (a selfHosted run on the operator's own Deployment) that brought a broken version leaves the
one component that could undo it broken. So a pod that starts and finds such a run unfinished, and itself
failing (its self-test failed, or its containers have restarted: a crash-looping start), finishes or rolls
back that run and serves nothing else until it has ended; the other runs wait, Queued, saying why.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..models import SHARD_LABEL, DeploymentContext
from . import compat
from .jsontypes import JsonObject, integer, obj, objects, path, strings, text


@dataclass(frozen=True)
class SelfUpdate:
    """The unfinished self-update safe mode serves."""

    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class SafeMode:
    run: SelfUpdate
    why: str  # what fails: "its self-test failed: ..." or "it restarted 3 times"

    @property
    def message(self) -> str:
        return (f"the operator is in safe mode ({self.why}): it serves only its unfinished self-update "
                f"{self.run.namespace}/{self.run.name} until that ends")


def restarts(pod: JsonObject) -> int:
    """How often the pod's containers restarted."""
    return sum(integer(c.get("restartCount")) for c in objects(path(pod, "status", "containerStatuses")))


def controller_name(o: JsonObject, kind: str) -> str | None:
    """The name of the object's controller of that kind (a pod's ReplicaSet, a ReplicaSet's Deployment)."""
    for ref in objects(path(o, "metadata", "ownerReferences")):
        if ref.get("controller") is True and ref.get("kind") == kind:
            return text(ref.get("name"))
    return None


def unfinished_self_update(runs: Iterable[JsonObject], namespace: str, deployment: str,
                           shard: str | None) -> SelfUpdate | None:
    """The oldest unfinished selfHosted run of this instance's shard on the operator's own Deployment."""
    found = sorted(
        (text(path(r, "metadata", "creationTimestamp")) or "", r) for r in compat.in_flight(runs)
        if text(path(r, "metadata", "namespace")) == namespace
        and text(path(r, "spec", "target", "deployment")) == deployment
        and text(path(r, "spec", "target", "deploymentContext")) == DeploymentContext.SELF_HOSTED
        and not path(r, "metadata", "deletionTimestamp")
        and strings(path(r, "metadata", "labels")).get(SHARD_LABEL) == shard)
    if not found:
        return None
    run = obj(found[0][1].get("metadata"))
    return SelfUpdate(namespace, text(run.get("name")) or "", text(run.get("uid")) or "")


def decide(self_update: SelfUpdate | None, self_test_problems: list[str], restart_count: int) -> SafeMode | None:
    """Safe mode, or None: serve as usual (a failed self-test without a self-update to finish means exit)."""
    if self_update is None:
        return None
    if self_test_problems:
        return SafeMode(self_update, f"its self-test failed: {self_test_problems[0]}")
    if restart_count > 0:
        return SafeMode(self_update, f"its pod restarted {restart_count} time(s) during the self-update")
    return None
