"""The shell's tick with an autospec'd Kubernetes adapter: ordering of writes and side effects,
and failure injection (API errors, conflicts, refused patches, invalid specs)."""

from __future__ import annotations

import json
from unittest.mock import call, create_autospec

import pytest
from kubernetes.client.exceptions import ApiException

from selfbootstrap.adapters.executor import Executor
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.adapters.jobs import JobExecutor
from selfbootstrap.adapters.kube import Kube, KubeExecutor, StatusConflictError
from selfbootstrap.core.world import World
from selfbootstrap.reconciler import CONFLICT_RETRY, ERROR_BACKOFF, Reconciler

from .factories import T0, deployment, resolved, world

SPEC = {"target": {"deployment": "web"}, "release": {"image": "registry.local:5000/team/web:v3"}}


def run_obj(status: dict | None = None, spec: dict | None = None) -> dict:
    return {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
            "metadata": {"name": "run-1", "namespace": "apps", "uid": "u-1", "generation": 1,
                         "resourceVersion": "7", "creationTimestamp": "2030-01-01T00:00:00Z"},
            "spec": spec or SPEC, "status": status or {}}


def api_error(status: int, message: str = "boom") -> ApiException:
    err = ApiException(status=status, reason="Reason")
    err.body = json.dumps({"message": message})
    return err


@pytest.fixture
def kube():
    kube = create_autospec(Kube, instance=True)
    kube.write_status.side_effect = lambda obj, status: {**obj, "status": status}
    return kube


def reconciler(kube) -> Reconciler:
    executor = Executor(KubeExecutor(kube), create_autospec(HttpExecutor, instance=True),
                        create_autospec(GitExecutor, instance=True), create_autospec(JobExecutor, instance=True))
    return Reconciler(kube, executor, clock=lambda: T0)


def resolved_obj() -> dict:
    return run_obj(resolved().dump())


def test_api_errors_are_retried_later_not_raised(kube):
    kube.read_run.side_effect = api_error(503)
    assert reconciler(kube).tick("apps", "run-1") == ERROR_BACKOFF


def test_status_is_written_before_the_deploy_patch(kube):
    kube.read_run.return_value = resolved_obj()
    kube.observe.return_value = world(deployment())

    reconciler(kube).tick("apps", "run-1")

    calls = [c for c in kube.mock_calls if c[0] in ("write_status", "patch_deployment")]
    assert [c[0] for c in calls] == ["write_status", "patch_deployment", "write_status"]
    assert calls[0][1][1]["phase"] == "Deploying" and calls[-1][1][1]["phase"] == "VerifyingHealth"
    assert kube.patch_deployment.call_args == call("apps", "web", kube.patch_deployment.call_args.args[2],
                                                   "application/strategic-merge-patch+json")


def test_a_status_conflict_skips_the_side_effect(kube):
    kube.read_run.return_value = resolved_obj()
    kube.observe.return_value = world(deployment())
    kube.write_status.side_effect = StatusConflictError("changed")
    assert reconciler(kube).tick("apps", "run-1") == CONFLICT_RETRY
    kube.patch_deployment.assert_not_called()


def test_a_refused_patch_is_a_deploy_failure_denied_by_default(kube):
    kube.read_run.return_value = resolved_obj()
    kube.observe.return_value = world(deployment())
    kube.patch_deployment.side_effect = api_error(422, 'spec.template.spec.containers[0].image: Required value')

    reconciler(kube).tick("apps", "run-1")

    final = kube.write_status.call_args.args[1]
    assert (final["phase"], final["reason"], final["rollbackPolicyReason"]) == (
        "Failed", "DeployRefused", "rollbackDisabledForDeployFailure")
    assert "containers[0].image: Required value" in final["message"]


def test_a_conflicting_patch_is_retried_without_changing_phase(kube):
    kube.read_run.return_value = resolved_obj()
    kube.observe.return_value = world(deployment())
    kube.patch_deployment.side_effect = api_error(409)
    assert reconciler(kube).tick("apps", "run-1") == 2.0
    final = kube.write_status.call_args.args[1]
    assert (final["phase"], final["retry"]["attempts"]) == ("Deploying", 1)
    assert kube.post_event.call_args.args[1].reason == "Retrying"


def test_an_unparseable_spec_fails_the_run_with_the_field(kube):
    kube.read_run.return_value = run_obj(spec={"target": {"deployment": "web"}, "release": {"image": 5}})
    assert reconciler(kube).tick("apps", "run-1") is None
    final = kube.write_status.call_args.args[1]
    assert (final["phase"], final["reason"]) == ("Failed", "InvalidSpec")
    assert final["message"].startswith("spec.release.image")


@pytest.mark.parametrize("obj", [None, {**run_obj(), "metadata": {**run_obj()["metadata"],
                                                                     "deletionTimestamp": "2030-01-01T00:00:00Z"}}],
                         ids=["gone", "being-deleted"])
def test_a_deleted_run_stops_the_loop(kube, obj):
    kube.read_run.return_value = obj
    assert reconciler(kube).tick("apps", "run-1") is None
    kube.observe.assert_not_called()


def test_a_finished_run_is_not_touched(kube):
    kube.read_run.return_value = run_obj({"phase": "Succeeded"})
    assert reconciler(kube).tick("apps", "run-1") is None
    kube.observe.assert_not_called()
    kube.write_status.assert_not_called()


def test_missing_deployment_fails_the_run(kube):
    kube.read_run.return_value = run_obj({"phase": "Pending"})
    kube.observe.return_value = World(deployment=None)
    assert reconciler(kube).tick("apps", "run-1") is None
    assert kube.write_status.call_args.args[1]["reason"] == "TargetNotFound"
