"""A DaemonSet's rollout progress, as kubectl's DaemonSetStatusViewer judges it (kubectl 1.34)."""

from __future__ import annotations

from ..jsontypes import JsonObject, integer, obj, path, text
from ..rollout import RolloutProgress


def rollout_progress(ds: JsonObject) -> RolloutProgress:
    spec, status = obj(ds.get("spec")), obj(ds.get("status"))
    kind = text(obj(spec.get("updateStrategy")).get("type")) or "RollingUpdate"
    name = text(path(ds, "metadata", "name")) or "?"
    if kind != "RollingUpdate":
        return RolloutProgress(False, True, "rollout status is only available for the RollingUpdate strategy type "
                                            f"(daemon set {name!r} updates {kind})")
    if integer(path(ds, "metadata", "generation")) > integer(status.get("observedGeneration")):
        return RolloutProgress(False, False, "waiting for the daemon set spec update to be observed", observed=False)
    desired = integer(status.get("desiredNumberScheduled"))
    updated, available = integer(status.get("updatedNumberScheduled")), integer(status.get("numberAvailable"))
    if updated < desired:
        return RolloutProgress(False, False, f"waiting for daemon set {name!r} rollout to finish: {updated} out of "
                                             f"{desired} new pods have been updated")
    if available < desired:
        return RolloutProgress(False, False, f"waiting for daemon set {name!r} rollout to finish: {available} of "
                                             f"{desired} updated pods are available")
    return RolloutProgress(True, False, f"daemon set {name!r} successfully rolled out")
