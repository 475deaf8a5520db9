"""Argo CD's health check and actions, and kstatus, on run objects as the operator writes them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from selfbootstrap.core.conditions import derive
from selfbootstrap.models import Phase, RunStatus
from tests.support.gitops import argocd_action, argocd_actions, argocd_health, kstatus

from .factories import T0

ROOT = Path(__file__).resolve().parents[2]


def run_obj(phase: str | None, reason: str = "R", generation: int = 1, observed: int = 1, **extra) -> dict:
    status = RunStatus(phase=Phase(phase) if phase else None, reason=reason, message="what happened",
                       observed_generation=observed, **extra)
    status = status.model_copy(update={"conditions": derive(status, observed, T0)})
    return {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
            "metadata": {"name": "web-v2", "namespace": "shop", "generation": generation},
            "status": status.dump() if phase else {}}


@pytest.mark.parametrize("phase, reason, health, flux", [
    (None, "R", "Progressing", "Current"),  # kstatus knows nothing before the first status (written in ms)
    ("Pending", "Accepted", "Progressing", "InProgress"),
    ("Pending", "Queued", "Suspended", "InProgress"),
    ("AwaitingCI", "CIPending", "Progressing", "InProgress"),
    ("WatchingRestarts", "Observing", "Progressing", "InProgress"),
    ("RollingBack", "RestartWatchdogFailed", "Progressing", "InProgress"),
    ("Succeeded", "Succeeded", "Healthy", "Current"),
    ("Superseded", "Superseded", "Healthy", "Current"),
    ("RolledBack", "RolledBack", "Degraded", "Failed"),
    ("Failed", "CIFailed", "Degraded", "Failed"),
])
def test_health_of_a_run(phase, reason, health, flux):
    obj = run_obj(phase, reason)
    got, message = argocd_health(obj)
    assert got == health
    if phase:
        assert message == f"{phase}: what happened"
    assert kstatus(obj) == flux


@pytest.mark.parametrize("target, suffix", [
    ({"deployment": "web"}, ""),
    ({"kind": "Deployment", "deployment": "web"}, ""),
    ({"kind": "StatefulSet", "name": "db"}, " (StatefulSet db)"),
    ({"kind": "DaemonSet", "name": "agent"}, " (DaemonSet agent)"),
])
def test_the_health_of_a_run_names_a_target_of_another_kind(target, suffix):
    obj = {**run_obj("RolledBack", "RolledBack"), "spec": {"target": target}}
    assert argocd_health(obj) == ("Degraded", f"RolledBack: what happened{suffix}")


def test_a_spec_the_operator_has_not_seen_yet_is_in_progress():
    obj = run_obj("Succeeded", "Succeeded", generation=2, observed=1)
    assert argocd_health(obj)[0] == "Progressing" and kstatus(obj) == "InProgress"


@pytest.mark.parametrize("phase, abort, retry", [
    ("WatchingRestarts", True, False), ("Succeeded", False, True), ("RolledBack", False, True),
])
def test_actions_offered(phase, abort, retry):
    assert argocd_actions(run_obj(phase)) == {"abort": not abort, "retry": not retry}


def test_abort_action_sets_the_annotation():
    obj = argocd_action("abort", run_obj("WatchingRestarts"))
    assert obj["metadata"]["annotations"]["selfbootstrap.dev/abort"] == "aborted from Argo CD"


def test_retry_action_asks_for_one_more_retry_each_time():
    obj = argocd_action("retry", run_obj("RolledBack", retried_as=["web-v2-retry-1"]))
    assert obj["metadata"]["annotations"]["selfbootstrap.dev/retry"] == "2"


def test_retry_action_names_nobody():
    """Argo CD cannot say who asked; a previous retry's name would be refused at admission."""
    run = run_obj("RolledBack", retried_as=["web-v2-retry-1"])
    run["metadata"]["annotations"] = {"selfbootstrap.dev/retry-requested-by": "alice"}
    assert "selfbootstrap.dev/retry-requested-by" not in argocd_action("retry", run)["metadata"]["annotations"]


def test_the_argocd_cm_snippet_is_current():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "argocd_snippet.py"), "--check"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
