"""A StatefulSet's rollout progress, as kubectl's StatefulSetStatusViewer judges it (kubectl 1.34)."""

from __future__ import annotations

from ..jsontypes import JsonObject, integer, obj, path, text
from ..rollout import RolloutProgress


def rollout_progress(sts: JsonObject) -> RolloutProgress:
    spec, status = obj(sts.get("spec")), obj(sts.get("status"))
    strategy = obj(spec.get("updateStrategy"))
    if (text(strategy.get("type")) or "RollingUpdate") != "RollingUpdate":
        return RolloutProgress(False, True, "rollout status is only available for the RollingUpdate strategy type "
                                            f"(this StatefulSet updates {text(strategy.get('type'))})")
    observed = integer(status.get("observedGeneration"))
    if observed == 0 or integer(path(sts, "metadata", "generation")) > observed:
        return RolloutProgress(False, False, "waiting for the statefulset spec update to be observed", observed=False)
    replicas = integer(spec.get("replicas"), 1)
    ready, updated = integer(status.get("readyReplicas")), integer(status.get("updatedReplicas"))
    if ready < replicas:
        return RolloutProgress(False, False, f"waiting for {replicas - ready} pods to be ready")
    rolling = strategy.get("rollingUpdate")
    if isinstance(rolling, dict):
        partition = obj(rolling).get("partition")
        if isinstance(partition, int) and not isinstance(partition, bool) and updated < replicas - partition:
            return RolloutProgress(False, False, f"waiting for the partitioned roll out to finish: {updated} out of "
                                                 f"{replicas - partition} new pods have been updated")
        return RolloutProgress(True, False, f"partitioned roll out complete: {updated} new pods have been updated")
    update, current = text(status.get("updateRevision")), text(status.get("currentRevision"))
    if update != current:
        return RolloutProgress(False, False, f"waiting for the statefulset rolling update to complete {updated} pods "
                                             f"at revision {update}")
    return RolloutProgress(True, False, f"statefulset rolling update complete {integer(status.get('currentReplicas'))} "
                                        f"pods at revision {current}")
