"""watchdog.py: typed verdicts on the new ReplicaSet's pods."""

from __future__ import annotations

import pytest

from selfbootstrap.core.watchdog import crash_verdict, stability_verdict
from selfbootstrap.core.world import PodState

from .factories import container, pod

HEALTHY = pod("web-1", container())
CRASH_LOOP = pod("web-2", container(waiting_reason="CrashLoopBackOff", restart_count=4, ready=False))
OOM_NOW = pod("web-3", container(terminated_reason="OOMKilled", ready=False))
OOM_BEFORE = pod("web-3", container(last_terminated_reason="OOMKilled", restart_count=1))
PULL_BACKOFF = pod("web-4", container(waiting_reason="ImagePullBackOff", ready=False), ready=False)
PULL_ERROR = pod("web-4", container(waiting_reason="ErrImagePull", ready=False), ready=False)
BAD_NAME = pod("web-4", container(waiting_reason="InvalidImageName", ready=False), ready=False)
RESTARTED_2 = pod("web-5", container(restart_count=2))
NOT_READY = pod("web-6", container(ready=False), ready=False)
STARTING = pod("web-7", container(waiting_reason="ContainerCreating", ready=False), ready=False)


@pytest.mark.parametrize("pods, threshold, reason", [
    pytest.param([], 0, "stable", id="no-pods"),
    pytest.param([HEALTHY], 0, "stable", id="healthy-pod"),
    pytest.param([CRASH_LOOP], 10, "crashLoopBackOff", id="crash-loop"),
    pytest.param([OOM_NOW], 0, "oomKilled", id="oom-killed-current-state"),
    pytest.param([OOM_BEFORE], 5, "oomKilled", id="oom-killed-last-state"),
    pytest.param([PULL_BACKOFF], 0, "imagePullBackOff", id="image-pull-backoff"),
    pytest.param([PULL_ERROR], 0, "imagePullBackOff", id="err-image-pull"),
    pytest.param([BAD_NAME], 0, "imagePullBackOff", id="invalid-image-name"),
    pytest.param([RESTARTED_2], 0, "containerRestarted:2", id="restarts-beyond-threshold"),
    pytest.param([RESTARTED_2], 1, "containerRestarted:2", id="restarts-one-beyond-threshold"),
    pytest.param([RESTARTED_2], 2, "stable", id="restarts-at-threshold"),
    pytest.param([RESTARTED_2], 3, "stable", id="restarts-below-threshold"),
    pytest.param([NOT_READY], 0, "stable", id="not-ready-is-no-crash-signal"),
    pytest.param([STARTING], 0, "stable", id="container-creating-is-no-crash-signal"),
    # precedence: crash loop, then OOM, then image pull, then restarts; whatever the pod order
    pytest.param([RESTARTED_2, PULL_BACKOFF, OOM_NOW, CRASH_LOOP], 0, "crashLoopBackOff",
                 id="crash-loop-beats-all"),
    pytest.param([RESTARTED_2, PULL_BACKOFF, OOM_NOW], 0, "oomKilled", id="oom-beats-pull-and-restarts"),
    pytest.param([RESTARTED_2, PULL_BACKOFF], 0, "imagePullBackOff", id="pull-beats-restarts"),
    pytest.param([pod("p", container(waiting_reason="CrashLoopBackOff", last_terminated_reason="OOMKilled",
                                     restart_count=9))], 0, "crashLoopBackOff",
                 id="crash-loop-beats-oom-in-one-container"),
    pytest.param([pod("p", container("a"), container("b", restart_count=3))], 0, "containerRestarted:3",
                 id="any-container-of-a-pod"),
])
def test_crash_verdict(pods, threshold, reason):
    verdict = crash_verdict(pods, threshold)
    assert (verdict.stable, verdict.reason) == (reason == "stable", reason)


@pytest.mark.parametrize("pods, threshold, reason", [
    pytest.param([], 0, "stable", id="no-pods"),
    pytest.param([HEALTHY, pod("web-2", container())], 0, "stable", id="all-ready"),
    pytest.param([HEALTHY, NOT_READY], 0, "podsNotReady", id="a-pod-not-ready"),
    pytest.param([STARTING], 0, "podsNotReady", id="starting-pod-not-ready"),
    pytest.param([NOT_READY, CRASH_LOOP], 0, "crashLoopBackOff", id="crash-signal-beats-not-ready"),
    pytest.param([NOT_READY, RESTARTED_2], 0, "containerRestarted:2", id="restarts-beat-not-ready"),
    pytest.param([NOT_READY, RESTARTED_2], 5, "podsNotReady", id="tolerated-restarts-then-not-ready"),
    pytest.param([PULL_ERROR], 0, "imagePullBackOff", id="pull-error-beats-not-ready"),
    pytest.param([OOM_BEFORE], 1, "oomKilled", id="oom-last-state"),
])
def test_stability_verdict(pods, threshold, reason):
    verdict = stability_verdict(pods, threshold)
    assert (verdict.stable, verdict.reason) == (reason == "stable", reason)


@pytest.mark.parametrize("verdict, expected", [
    pytest.param(crash_verdict([CRASH_LOOP], 0),
                 "pod web-2 container app is in CrashLoopBackOff (4 restarts)", id="crash-loop"),
    pytest.param(crash_verdict([OOM_BEFORE], 1), "pod web-3 container app was OOMKilled", id="oom"),
    pytest.param(crash_verdict([PULL_ERROR], 0), "pod web-4 container app cannot pull its image (ErrImagePull)",
                 id="image-pull"),
    pytest.param(crash_verdict([RESTARTED_2], 1), "pod web-5 container app restarted 2 times (threshold 1)",
                 id="restarts"),
    pytest.param(crash_verdict([HEALTHY], 0), "no crash signals", id="crash-stable"),
    pytest.param(stability_verdict([NOT_READY, STARTING], 0), "pods not ready: web-6, web-7",
                 id="not-ready-lists-pods"),
    pytest.param(stability_verdict([HEALTHY, HEALTHY], 0), "2 pods stable", id="stable-counts-pods"),
])
def test_verdict_messages(verdict, expected):
    assert verdict.message == expected


def test_stability_verdict_accepts_a_generator():
    assert stability_verdict((p for p in [HEALTHY, NOT_READY]), 0).reason == "podsNotReady"


def test_most_restarted_container_is_reported_not_the_first_by_text():
    from selfbootstrap.core.watchdog import crash_verdict
    from selfbootstrap.core.world import ContainerState, PodState

    pods = [PodState("a", containers=(ContainerState("app", restart_count=2),)),
            PodState("b", containers=(ContainerState("app", restart_count=10),))]
    assert crash_verdict(pods, restart_threshold=1).reason == "containerRestarted:10"


def test_pods_that_have_not_started_are_not_judged_on_readiness():
    """An autoscaler's new pods, still unscheduled or creating containers, are no crash."""
    pods = [PodState("web-1"), PodState("web-2", phase="Pending", ready=False, started=False)]
    verdict = stability_verdict(pods, 0)
    assert (verdict.stable, verdict.reason, verdict.message) == (True, "stable", "1 pods stable, 1 starting")


def test_a_started_pod_that_is_not_ready_is_unstable():
    verdict = stability_verdict([PodState("web-1", ready=False, started=True)], 0)
    assert (verdict.stable, verdict.reason) == (False, "podsNotReady")
