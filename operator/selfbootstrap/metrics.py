"""Prometheus metrics of the operator."""

from __future__ import annotations

import threading

from prometheus_client import Counter, Gauge, Histogram

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

_phases: dict[str, str] = {}
_lock = threading.Lock()


def track(run_uid: str, phase: str) -> None:
    """Keep the by-phase gauge of active runs in step with the latest transition."""
    with _lock:
        if phase in TERMINAL_PHASES:
            _phases.pop(run_uid, None)
        else:
            _phases[run_uid] = phase
        for p in Phase:
            if p not in TERMINAL_PHASES:
                ACTIVE.labels(p.value).set(sum(1 for v in _phases.values() if v == p))
