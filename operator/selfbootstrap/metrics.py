"""Prometheus metrics of the operator."""

from __future__ import annotations

import platform
import threading
from collections import Counter as Counter_
from dataclasses import dataclass
from importlib.metadata import version

from prometheus_client import Counter, Gauge, Histogram, Info

from . import __version__
from .models import TERMINAL_PHASES, Phase

TRANSITIONS = Counter("selfbootstrap_phase_transitions_total", "Phase transitions of runs.", ["phase"])
OUTCOMES = Counter("selfbootstrap_runs_finished_total", "Runs that reached a terminal phase.",
                   ["phase", "reason"])
ROLLBACKS = Counter("selfbootstrap_rollbacks_total", "Rollbacks started, by failure class.", ["failure_class"])
PHASE_SECONDS = Histogram("selfbootstrap_phase_duration_seconds", "Time a run spent in a phase.", ["phase"],
                          buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600))
ACTIVE = Gauge("selfbootstrap_runs_active", "Runs this operator is reconciling, by phase.", ["phase"])
TICK_ERRORS = Counter("selfbootstrap_reconcile_errors_total", "Reconcile ticks that failed and were retried.",
                      ["error"])

BUILD = Info("selfbootstrap_build", "The operator's version and what it runs on.")
RUN_INFO = Gauge("selfbootstrap_run_info", "1 for each run in flight, with its target and phase (gone once it ends).",
                 ["namespace", "name", "target", "phase", "target_kind"])


@dataclass(frozen=True)
class RunInfo:
    namespace: str
    name: str
    target: str
    phase: str
    target_kind: str = "Deployment"


_runs: dict[str, RunInfo] = {}  # by uid: the runs in flight as last seen
_phases: Counter_[str] = Counter_()  # how many of them are in each phase
_lock = threading.Lock()
for _phase in Phase:
    if _phase not in TERMINAL_PHASES:
        ACTIVE.labels(_phase.value).set(0)


def build_info() -> None:
    BUILD.info({"version": __version__, "python": platform.python_version(), "kopf": version("kopf"),
                "kubernetes_client": version("kubernetes")})


def track(uid: str, run: RunInfo) -> None:
    """Keep the per-run info and the by-phase gauge in step with the run's phase (an ended run drops out)."""
    with _lock:
        before = _runs.get(uid)
        if before == run:
            return
        if before is not None:
            _drop(before)
        if run.phase in TERMINAL_PHASES:
            _runs.pop(uid, None)
        else:
            _runs[uid] = run
            RUN_INFO.labels(run.namespace, run.name, run.target, run.phase, run.target_kind).set(1)
            _count(run.phase, +1)


def forget(uid: str) -> None:
    """The run is no longer this operator's (deleted, finished, or the operator stops serving it)."""
    with _lock:
        before = _runs.pop(uid, None)
        if before is not None:
            _drop(before)


def _drop(run: RunInfo) -> None:
    RUN_INFO.remove(run.namespace, run.name, run.target, run.phase, run.target_kind)
    _count(run.phase, -1)


def _count(phase: str, change: int) -> None:
    """Kept by increments: counting every run on each change would cost O(runs) per transition."""
    _phases[phase] += change
    ACTIVE.labels(phase).set(_phases[phase])
