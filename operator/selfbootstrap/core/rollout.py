"""Rollout progress of a Deployment, judged as `kubectl rollout status` judges it."""

from __future__ import annotations

from .world import DeploymentState, RolloutProgress

PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
__all__ = ["PROGRESS_DEADLINE_EXCEEDED", "RolloutProgress", "release_available", "rollout_progress"]


def rollout_progress(dep: DeploymentState) -> RolloutProgress:
    if dep.progress is not None:  # another kind's, judged from its own status (core/targets/)
        return dep.progress

    def waiting(message: str) -> RolloutProgress:
        return RolloutProgress(done=False, failed=False, message=message)

    if dep.generation > dep.observed_generation:
        return RolloutProgress(False, False, "waiting for the Deployment spec update to be observed", observed=False)
    if dep.progressing_reason == PROGRESS_DEADLINE_EXCEEDED:
        return RolloutProgress(False, True, f"deployment {dep.name!r} exceeded its progress deadline")
    if dep.updated_replicas < dep.replicas:
        return waiting(f"{dep.updated_replicas} of {dep.replicas} new replicas have been updated")
    if dep.status_replicas > dep.updated_replicas:
        old = dep.status_replicas - dep.updated_replicas
        return waiting(f"{old} old replicas are pending termination")
    if dep.available_replicas < dep.updated_replicas:
        return waiting(f"{dep.available_replicas} of {dep.updated_replicas} updated replicas are available")
    return RolloutProgress(True, False, f"deployment {dep.name!r} successfully rolled out")


def release_available(dep: DeploymentState, replica_set: str) -> bool:
    """Every replica the Deployment wants runs the given ReplicaSet's template and is available.

    What a rollback waits for: the service is whole again, while pods of the bad release may still
    be terminating (`kubectl rollout status` also waits for those). The ReplicaSet's own count is
    used, not the Deployment's: old pods that are still available must not count as the new ones.
    """
    revision = next((r for r in dep.revisions if r.replica_set == replica_set), None)
    return (revision is not None and dep.generation <= dep.observed_generation
            and dep.progressing_reason != PROGRESS_DEADLINE_EXCEEDED
            and dep.updated_replicas >= dep.replicas and revision.available_replicas >= dep.replicas)
