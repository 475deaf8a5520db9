"""The restart watchdog's verdict on the pods of the new ReplicaSet."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .world import PodState

STABLE = "stable"
CRASH_LOOP = "crashLoopBackOff"
OOM_KILLED = "oomKilled"
IMAGE_PULL = "imagePullBackOff"
NOT_READY = "podsNotReady"
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"})


@dataclass(frozen=True)
class Verdict:
    stable: bool
    reason: str  # typed: stable, crashLoopBackOff, oomKilled, imagePullBackOff, containerRestarted:<n>, podsNotReady
    message: str


def _signals(pods: Iterable[PodState], restart_threshold: int) -> list[tuple[int, int, str, str]]:
    """Every crash signal as (severity, -restarts, reason, message): the most severe first, then the most restarts."""
    found = []
    for pod in pods:
        for c in pod.containers:
            where = f"pod {pod.name} container {c.name}"
            if c.waiting_reason == "CrashLoopBackOff":
                found.append((0, 0, CRASH_LOOP, f"{where} is in CrashLoopBackOff ({c.restart_count} restarts)"))
            if "OOMKilled" in (c.terminated_reason, c.last_terminated_reason):
                found.append((1, 0, OOM_KILLED, f"{where} was OOMKilled"))
            if c.waiting_reason in IMAGE_PULL_REASONS:
                found.append((2, 0, IMAGE_PULL, f"{where} cannot pull its image ({c.waiting_reason})"))
            if c.restart_count > restart_threshold:
                found.append((3, -c.restart_count, f"containerRestarted:{c.restart_count}",
                              f"{where} restarted {c.restart_count} times (threshold {restart_threshold})"))
    return sorted(found)


def crash_verdict(pods: Iterable[PodState], restart_threshold: int) -> Verdict:
    """Crash signals only: used while the rollout is still in progress."""
    signals = _signals(pods, restart_threshold)
    if signals:
        _, _, reason, message = signals[0]
        return Verdict(False, reason, message)
    return Verdict(True, STABLE, "no crash signals")


def stability_verdict(pods: Iterable[PodState], restart_threshold: int) -> Verdict:
    """Crash signals, then readiness: used once the rollout has completed.

    Readiness is judged only for pods that got the chance to start: a pod an autoscaler just
    added that is not scheduled yet (or still creating its containers) is not a crash; the
    Deployment's own progress deadline is what catches pods that never get going.
    """
    pods = list(pods)
    verdict = crash_verdict(pods, restart_threshold)
    if not verdict.stable:
        return verdict
    started = [p for p in pods if p.started]
    unready = sorted(p.name for p in started if not p.ready)
    if unready:
        return Verdict(False, NOT_READY, f"pods not ready: {', '.join(unready)}")
    waiting = len(pods) - len(started)
    return Verdict(True, STABLE, f"{len(started)} pods stable" + (f", {waiting} starting" if waiting else ""))
