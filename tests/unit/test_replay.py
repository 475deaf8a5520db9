"""Replay safety and abort: what a run does when its release is no longer wanted, or a person stops it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfbootstrap.core import machine, replay
from selfbootstrap.core.replay import Entry
from selfbootstrap.models import RUNS_ANNOTATION

from .factories import T0, at, deployed, deployment, resolved, run, spec, status, verifying, watching, world

SELF = ("run-1", "u-1")


def entries(*items: tuple[str, str, str, str]) -> list[Entry]:
    return [Entry(r, u, rel, outcome, "") for r, u, rel, outcome in items]


@pytest.mark.parametrize("record, release, why", [
    ([], "v3", None),
    (entries(("run-0", "u-0", "v2", "deployed")), "v3", None),
    (entries(("run-1", "u-old", "v3", "deployed")), "v3", "a run named 'run-1' already deployed release v3"),
    (entries(("run-1", "u-1", "v3", "deployed")), "v3", None),
    (entries(("a", "u-a", "v3", "deployed"), ("b", "u-b", "v4", "deployed")), "v3",
     "release v3 is older than release v4, which run 'b' deployed after it"),
    (entries(("a", "u-a", "v3", "deployed"), ("b", "u-b", "v4", "rolledBack")), "v3", None),
    (entries(("a", "u-a", "v3", "deployed"), ("b", "u-b", "v4", "deployed"), ("c", "u-c", "v3", "deployed")),
     "v3", None),
], ids=["empty", "other-release", "same-name-new-uid", "itself", "older-release", "newer-was-rolled-back",
        "released-again-since"])
def test_superseded_by(record, release, why):
    got = replay.superseded_by(record, *SELF, release)
    assert (got is None) if why is None else (why in (got or ""))


def test_the_record_is_bounded_and_replaces_a_runs_own_entry():
    record: list[Entry] = []
    for i in range(15):
        record = replay.recorded(record, f"r{i}", f"u{i}", f"v{i}", "deployed", T0)
    assert len(record) == replay.RECORD_LIMIT and record[-1].run == "r14"
    record = replay.recorded(record, "r14", "u14", "v14", "rolledBack", at(1))
    assert record[-1].outcome == "rolledBack" and len(record) == replay.RECORD_LIMIT
    assert replay.parse(replay.render(record)) == record


@pytest.mark.parametrize("annotation", ["not json", '{"a": 1}', '[1, {"run": 2}]', ""])
def test_a_record_that_is_not_a_record_counts_as_none(annotation):
    assert replay.parse(annotation) == []


def with_record(*items) -> dict:
    return {RUNS_ANNOTATION: replay.render(entries(*items))}


def test_a_run_made_again_with_the_name_of_a_finished_one_is_superseded_untouched():
    dep = deployment(annotations=with_record(("run-1", "u-old", "v3", "deployed")))
    d = machine.decide(run(status(phase="Pending", reason="Accepted")), world(dep), T0)
    assert (d.status.phase, d.status.reason, d.action, d.requeue_after) == ("Superseded", "Superseded", None, None)
    assert "the Deployment was not touched" in d.status.message
    assert [c.type for c in d.status.conditions if c.status == "True"] == ["Complete", "Ready"]


def test_a_release_older_than_a_later_one_is_superseded_at_the_deploy_gate_too():
    dep = deployment(annotations=with_record(("a", "u-a", "v3", "deployed"), ("b", "u-b", "v4", "deployed")))
    d = machine.decide(run(status(phase="Deploying", reason="Merged")), world(dep), T0)
    assert d.status.phase == "Superseded" and "run 'b'" in d.status.message


def test_redeploy_skips_replay_safety():
    dep = deployment(annotations=with_record(("run-1", "u-old", "v3", "deployed")))
    d = machine.decide(run(status(phase="Pending", reason="Accepted"), spec(release={"redeploy": True})),
                       world(dep), T0)
    assert d.status.phase == "Deploying"


@pytest.mark.parametrize("expected, phase", [("v2", "Deploying"), ("v1", "Failed")])
def test_expected_current_release(expected, phase):
    d = machine.decide(run(status(phase="Pending", reason="Accepted"),
                           spec(release={"expectedCurrentReleaseId": expected})), world(deployment()), T0)
    assert d.status.phase == phase
    if phase == "Failed":
        assert d.status.reason == "CurrentReleaseMismatch" and "runs release v2, not v1" in d.status.message


def aborted(st, **fields):
    return replace(run(st, spec(**fields)), abort="bad idea, says alice")


def test_abort_before_the_deploy_ends_the_run():
    d = machine.decide(aborted(resolved()), world(deployment()), T0)
    assert (d.status.phase, d.status.reason) == ("Failed", "Aborted")
    assert "bad idea, says alice" in d.status.message and "nothing was deployed" in d.status.message


@pytest.mark.parametrize("st", [verifying(), watching()], ids=["verifying", "watching"])
def test_abort_after_the_deploy_rolls_back(st):
    d = machine.decide(aborted(st), world(deployed()), at(3))
    assert (d.status.phase, d.status.reason, d.status.rollback_failure_class) == ("RollingBack", "Aborted", "aborted")
    assert d.status.rollback_target_replica_set == "rs-2"


def test_abort_after_the_deploy_without_rollback_on_abort_fails():
    d = machine.decide(aborted(watching(), rollbackPolicy={"onAbort": False}), world(deployed()), at(3))
    assert (d.status.phase, d.status.reason, d.status.rollback_policy_reason) == (
        "Failed", "Aborted", "rollbackDisabledForAbort")


def test_abort_does_not_stop_a_rollback():
    from .factories import rolling_back
    d = machine.decide(aborted(rolling_back()), world(deployed()), at(3))
    assert d.status.phase == "RollingBack" and d.action is not None


def test_a_retry_records_what_it_retries():
    d = machine.decide(replace(run(), retry_of="web-v3"), world(deployment()), T0)
    assert d.status.retry_of == "web-v3" and "a retry of web-v3" in d.status.message


def test_the_deploy_and_the_undo_keep_the_record():
    d = machine.decide(run(resolved()), world(deployment(annotations=with_record(("a", "u-a", "v2", "deployed")))),
                       at(5))
    written = d.action.patch["metadata"]["annotations"][RUNS_ANNOTATION]
    assert [(e.run, e.release, e.outcome) for e in replay.parse(written)] == [
        ("a", "v2", "deployed"), ("run-1", "v3", "deployed")]
