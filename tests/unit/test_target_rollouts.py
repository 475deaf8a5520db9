"""Rollout progress of StatefulSets and DaemonSets (core/targets/), each case as kubectl's status viewer
(k8s.io/kubectl pkg/polymorphichelpers/rollout_status.go, 1.34) answers it."""

from __future__ import annotations

from typing import Any

import pytest

from selfbootstrap.core.targets import daemonset, statefulset


def sts(generation: int = 2, observed: int = 2, replicas: int = 3, ready: int = 3, updated: int = 3,
        strategy: dict[str, Any] | None = None, current: str = "web-2", update: str = "web-2",
        current_replicas: int = 3) -> dict[str, Any]:
    return {"metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": replicas, "updateStrategy": strategy if strategy is not None
                     else {"type": "RollingUpdate"}},
            "status": {"observedGeneration": observed, "readyReplicas": ready, "updatedReplicas": updated,
                       "currentRevision": current, "updateRevision": update, "currentReplicas": current_replicas}}


PARTITION_1 = {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}


@pytest.mark.parametrize("obj, done, failed, says", [
    (sts(strategy={"type": "OnDelete"}), False, True, "only available for the RollingUpdate strategy"),
    (sts(observed=0), False, False, "spec update to be observed"),
    (sts(generation=3), False, False, "spec update to be observed"),
    (sts(ready=1), False, False, "waiting for 2 pods to be ready"),
    (sts(strategy=PARTITION_1, updated=1), False, False, "1 out of 2 new pods have been updated"),
    (sts(strategy=PARTITION_1, updated=2), True, False, "partitioned roll out complete: 2 new pods"),
    (sts(strategy={"type": "RollingUpdate", "rollingUpdate": {}}, updated=3), True, False,
     "partitioned roll out complete: 3 new pods"),
    (sts(update="web-3", updated=1), False, False, "complete 1 pods at revision web-3"),
    (sts(), True, False, "statefulset rolling update complete 3 pods at revision web-2"),
])
def test_statefulset(obj, done, failed, says):
    progress = statefulset.rollout_progress(obj)
    assert (progress.done, progress.failed) == (done, failed) and says in progress.message


def ds(generation: int = 2, observed: int = 2, desired: int = 2, updated: int = 2, available: int = 2,
       kind: str = "RollingUpdate") -> dict[str, Any]:
    return {"metadata": {"name": "agent", "generation": generation}, "spec": {"updateStrategy": {"type": kind}},
            "status": {"observedGeneration": observed, "desiredNumberScheduled": desired,
                       "updatedNumberScheduled": updated, "numberAvailable": available}}


@pytest.mark.parametrize("obj, done, failed, says", [
    (ds(kind="OnDelete"), False, True, "only available for the RollingUpdate strategy"),
    (ds(generation=3), False, False, "spec update to be observed"),
    (ds(updated=1), False, False, "1 out of 2 new pods have been updated"),
    (ds(available=1), False, False, "1 of 2 updated pods are available"),
    (ds(), True, False, "daemon set 'agent' successfully rolled out"),
    (ds(desired=0, updated=0, available=0), True, False, "successfully rolled out"),  # no node to run on
])
def test_daemonset(obj, done, failed, says):
    progress = daemonset.rollout_progress(obj)
    assert (progress.done, progress.failed) == (done, failed) and says in progress.message
