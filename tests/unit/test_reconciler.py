"""The shell's tick with an autospec'd Kubernetes adapter: ordering of writes and side effects,
decisions chained into one write, and failure injection (conflicts, refused patches, invalid
specs, API errors, bugs)."""

from __future__ import annotations

import json
from unittest.mock import create_autospec

import pytest
from kubernetes.client.exceptions import ApiException

from selfbootstrap.adapters.executor import Executor
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.adapters.jobs import JobExecutor
from selfbootstrap.adapters.kube import KubeExecutor, StatusConflictError
from selfbootstrap.adapters.metricproviders import MetricExecutor
from selfbootstrap.adapters.registry import ImageExecutor
from selfbootstrap.core.actions import ImageUnresolved
from selfbootstrap.core.world import World
from selfbootstrap.reconciler import Reconciler

from .factories import T0, deployed, deployment, holding, resolved, world

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


def reconciler(kube, http=None, git=None) -> Reconciler:
    no_registry = create_autospec(ImageExecutor, instance=True)
    no_registry.perform.return_value = ImageUnresolved("the registry could not be reached (a test)")
    executor = Executor(KubeExecutor(kube), http or create_autospec(HttpExecutor, instance=True),
                        git or create_autospec(GitExecutor, instance=True), create_autospec(JobExecutor, instance=True),
                        create_autospec(MetricExecutor, instance=True), no_registry)
    return Reconciler(kube, executor, clock=lambda: T0)


def writes(kube) -> list[dict]:
    return [c.args[1] for c in kube.write_status.call_args_list]


def test_a_new_run_takes_its_workload_with_its_deploy_patch(kube):
    tick = reconciler(kube).tick(run_obj(), world(deployment()))

    names = [c[0] for c in kube.mock_calls if c[0] in ("write_status", "patch_workload")]
    assert names == ["write_status", "patch_workload", "write_status"], "intent, the patch, its outcome"
    intent, deployed_ = writes(kube)
    assert (intent["phase"], intent["reason"], intent["deployedReleaseId"]) == ("Pending", "ReleasesResolved", "v3")
    assert intent["startedAt"] and intent["imageLookup"], "the registry's answer is written with the intent"
    (call,) = kube.patch_workload.call_args_list
    assert call.args[3]["metadata"]["resourceVersion"] == "100"
    assert deployed_["phase"] == "VerifyingHealth"
    assert tick.patched_from == "100" and tick.run["status"] == deployed_
    assert tick.wrote, "the run is what its write returned (kopf handles that version's event lightly)"


def test_a_take_whose_outcome_was_not_written_is_not_made_again(kube):
    r = reconciler(kube)
    kube.write_status.side_effect = [{**run_obj(), "status": {"phase": "Pending"}}, api_error(503)]
    with pytest.raises(ApiException):
        r.tick(run_obj(), world(deployment()))
    intent = kube.write_status.call_args_list[0].args[1]
    kube.reset_mock()  # a new worker (the operator restarted) knows only what status and the record say
    kube.write_status.side_effect = lambda obj, status: {**obj, "status": status}
    reconciler(kube).tick(run_obj(intent), world(holding(deployed(), outcome="deployed")))
    kube.patch_workload.assert_not_called()
    assert "Deployed" in [t["reason"] for t in writes(kube)[-1]["history"]], "it goes on from the deploy"


def test_the_events_of_a_write_are_numbered_and_kept_with_it(kube):
    r = reconciler(kube)
    r.tick(run_obj(), world(deployment()))
    intent, last = writes(kube)
    posted = [(c.args[1].reason, c.args[1].seq, c.args[2]["kind"] if len(c.args) > 2 else "SelfBootstrapRun")
              for c in kube.post_event.call_args_list]
    assert posted == [("Started", 1, "SelfBootstrapRun"), ("Deployed", 2, "SelfBootstrapRun"),
                      ("Deployed", 2, "Deployment")], "a key step is told on the Deployment too"
    assert [(e["reason"], e["seq"]) for e in intent["lastEvents"]] == [("Started", 1)]
    order = [c[0] for c in kube.mock_calls if c[0] in ("write_status", "patch_workload", "post_event")]
    assert order == ["write_status", "patch_workload", "post_event", "write_status", "post_event",
                     "post_event"], "the deploy patch is not kept waiting for the Events of its intent"
    assert [(e["reason"], e["seq"]) for e in last["lastEvents"]] == [("Deployed", 2)]
    assert last["eventSeq"] == 2


def test_repost_posts_the_kept_events_again(kube):
    o = run_obj({"phase": "VerifyingHealth", "eventSeq": 2,
                 "lastEvents": [{"seq": 2, "type": "Normal", "reason": "Deployed", "message": "m"}]})
    reconciler(kube).repost(o)
    (event,) = [c.args[1] for c in kube.post_event.call_args_list]
    assert (event.reason, event.seq, event.message) == ("Deployed", 2, "m")


def test_a_status_conflict_skips_the_side_effect_and_reads_the_run_again(kube):
    kube.write_status.side_effect = StatusConflictError("changed")
    kube.read_run.return_value = run_obj({"phase": "Pending"})
    tick = reconciler(kube).tick(run_obj(resolved().dump()), world(holding(deployment())))
    assert (tick.requeue, tick.run) == (0.0, kube.read_run.return_value)
    assert not tick.wrote, "someone else's version, read: kopf handles its event in full"
    kube.patch_workload.assert_not_called()


def test_conflicts_in_a_row_back_off_and_a_write_that_passes_resets_them(kube):
    kube.write_status.side_effect = StatusConflictError("changed")
    kube.read_run.return_value = run_obj({"phase": "Pending"})
    r = reconciler(kube)
    waits = [r.tick(run_obj(resolved().dump()), world(holding(deployment()))).requeue for _ in range(10)]
    assert waits == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    kube.write_status.side_effect = lambda run, status: {**run, "status": status}
    r.tick(run_obj({"phase": "Pending"}), world(deployment()))
    assert r.conflicts == 0


def test_a_refused_patch_is_a_deploy_failure_denied_by_default(kube):
    kube.patch_workload.side_effect = api_error(422, 'spec.template.spec.containers[0].image: Required value')

    reconciler(kube).tick(run_obj(resolved().dump()), world(holding(deployment())))

    final = writes(kube)[-1]
    assert (final["phase"], final["reason"], final["rollbackPolicyReason"]) == (
        "Failed", "DeployRefused", "rollbackDisabledForDeployFailure")
    assert "containers[0].image: Required value" in final["message"]


def test_a_conflicting_patch_is_decided_again_once_the_cache_moves_past_it(kube):
    kube.patch_workload.side_effect = api_error(409)
    tick = reconciler(kube).tick(run_obj(resolved().dump()), world(holding(deployment())))
    assert (tick.requeue, tick.patched_from) == (0, "100"), "the worker waits for a newer Deployment"
    final = writes(kube)[-1]
    assert (final["phase"], final["retry"]["attempts"]) == ("Deploying", 1)
    kube.post_event.assert_not_called()


def test_a_passing_fault_of_the_api_server_is_retried_after_a_backoff(kube):
    kube.patch_workload.side_effect = api_error(503)
    tick = reconciler(kube).tick(run_obj(resolved().dump()), world(holding(deployment())))
    assert (tick.requeue, tick.patched_from) == (2.0, None)
    assert kube.post_event.call_args.args[1].reason == "Retrying"


def test_an_unparseable_spec_fails_the_run_with_the_field(kube):
    tick = reconciler(kube).tick(run_obj(spec={"target": {"deployment": "web"}, "release": {"image": 5}}),
                                 world(deployment()))
    assert tick.requeue is None
    final = writes(kube)[-1]
    assert (final["phase"], final["reason"]) == ("Failed", "InvalidSpec")
    assert final["message"].startswith("spec.release.image")
    assert kube.post_event.call_args.args[1].reason == "InvalidSpec"


def test_a_finished_run_is_not_touched(kube):
    tick = reconciler(kube).tick(run_obj({"phase": "Succeeded"}), world(deployment()))
    assert tick.requeue is None and not tick.wrote
    kube.write_status.assert_not_called()


def test_missing_deployment_fails_the_run(kube):
    assert reconciler(kube).tick(run_obj({"phase": "Pending"}), World(deployment=None)).requeue is None
    assert writes(kube)[-1]["reason"] == "TargetNotFound"


def test_api_errors_reach_the_caller_which_backs_off(kube):
    kube.write_status.side_effect = api_error(503)
    with pytest.raises(ApiException):
        reconciler(kube).tick(run_obj(resolved().dump()), world(holding(deployment())))


def test_an_unexpected_error_fails_the_run_with_internal_error(kube):
    http = create_autospec(HttpExecutor, instance=True)
    http.perform.side_effect = KeyError("surprise")
    st = resolved(phase="VerifyingHealth", deploy_patched_at=T0,
                  deployed_template_digest=None).dump()
    spec = {**SPEC, "health": {"http": {"url": "http://web/healthz"}}}
    from .factories import deployed

    tick = reconciler(kube, http).tick(run_obj(st, spec), world(holding(deployed())))

    assert tick.requeue is None
    final = writes(kube)[-1]
    assert (final["phase"], final["reason"]) == ("Failed", "InternalError")
    assert "run apps/run-1 met an unexpected KeyError" in final["message"]


def test_a_run_in_line_is_told_queued_once_in_kopf_s_patch(kube):
    from selfbootstrap.core import gate

    r = reconciler(kube)
    why = gate.namespace_bound(100, 100)
    status, events = r.held_back(run_obj(), why)
    assert (status["phase"], status["reason"]) == ("Pending", "Queued") and "bound is 100" in status["message"]
    assert [(e.reason, e.seq) for e in events] == [("Queued", 1)]
    assert [(e["reason"], e["seq"]) for e in status["lastEvents"]] == [("Queued", 1)], "kept for a repost"
    kube.write_status.assert_not_called()  # the shell puts it in kopf's patch of the run
    assert r.held_back(run_obj(status), why) is None, "said once"
    assert r.held_back(run_obj(spec={"target": {}}), why) is None, "a run the models refuse: its worker says why"
