"""Safe mode (core/safemode.py, scheduling.SafeModeHold): when an operator serves only its own self-update."""

from __future__ import annotations

import pytest

from selfbootstrap.core import safemode
from selfbootstrap.core.safemode import SafeMode, SelfUpdate
from selfbootstrap.scheduling import SafeModeHold


def run(name: str, *, deployment: str = "operator", context: str = "selfHosted", phase: str | None = "SelfTesting",
        namespace: str = "system", created: str = "2030-01-01T10:00:00Z", shard: str | None = None,
        deleting: bool = False) -> dict:
    meta: dict = {"name": name, "namespace": namespace, "uid": f"uid-{name}", "creationTimestamp": created}
    if shard:
        meta["labels"] = {"selfbootstrap.dev/shard": shard}
    if deleting:
        meta["deletionTimestamp"] = created
    return {"metadata": meta, "spec": {"target": {"deployment": deployment, "deploymentContext": context}},
            "status": {"phase": phase} if phase else {}}


@pytest.mark.parametrize(("runs", "expected"), [
    ([run("up")], "up"),
    ([run("up", phase=None)], "up"),  # created, not started yet: still the self-update to finish
    ([run("up", phase="Succeeded")], None),
    ([run("up", phase="RolledBack")], None),
    ([run("up", context="external")], None),  # a run on the operator's Deployment not declared selfHosted
    ([run("up", deployment="web")], None),
    ([run("up", namespace="other")], None),
    ([run("up", shard="b")], None),  # another shard's instances serve it
    ([run("up", deleting=True)], None),
    ([run("late", created="2030-01-01T11:00:00Z"), run("early")], "early"),
])
def test_the_unfinished_self_update_is_the_oldest_self_hosted_run_on_the_operator_s_deployment(runs, expected):
    found = safemode.unfinished_self_update(runs, "system", "operator", None)
    assert (found.name if found else None) == expected


UPDATE = SelfUpdate("system", "up", "uid-up")


@pytest.mark.parametrize(("update", "problems", "restarts", "why"), [
    (UPDATE, [], 0, None),  # healthy: serve as usual
    (None, ["the installed CRD lacks spec.x"], 0, None),  # failing, but no self-update to finish: exit
    (None, [], 4, None),  # a restart with no self-update in flight is just a restart
    (UPDATE, ["the installed CRD lacks spec.x"], 0, "its self-test failed: the installed CRD lacks spec.x"),
    (UPDATE, [], 2, "its pod restarted 2 time(s) during the self-update"),
])
def test_safe_mode_needs_an_unfinished_self_update_and_a_failing_operator(update, problems, restarts, why):
    mode = safemode.decide(update, problems, restarts)
    assert (mode.why if mode else None) == why
    if mode:
        assert "serves only its unfinished self-update system/up" in mode.message


def test_restarts_and_controllers_are_read_from_the_pod():
    pod = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "name": "op-abc", "controller": True},
                                            {"kind": "ReplicaSet", "name": "not-controller"}]},
           "status": {"containerStatuses": [{"restartCount": 2}, {"restartCount": 1}, {}]}}
    assert safemode.restarts(pod) == 3
    assert safemode.controller_name(pod, "ReplicaSet") == "op-abc"
    assert safemode.controller_name(pod, "Deployment") is None


def test_the_hold_admits_only_the_self_update_and_hands_back_the_others_when_it_ends():
    hold = SafeModeHold(SafeMode(UPDATE, "its pod restarted"))
    early, late = ("2030-01-01T10:00:00Z", "web-1"), ("2030-01-01T11:00:00Z", "other")
    assert hold.admits("system", "up", "uid-up", early)
    assert not hold.admits("apps", "web-1", "uid-w1", early)
    assert not hold.admits("apps", "web-1", "uid-w1", early)  # asked again: held once
    assert not hold.admits("system", "other", "uid-o", late)
    assert hold.ended("uid-w1") is None  # another run ending changes nothing
    released = hold.ended("uid-up")
    assert released is not None
    assert sorted((r.namespace, r.name, r.uid, r.order) for r in released) == [
        ("apps", "web-1", "uid-w1", early), ("system", "other", "uid-o", late)]
    assert hold.admits("apps", "web-2", "uid-w2", late) and hold.ended("uid-up") is None


def test_without_safe_mode_every_run_is_admitted():
    hold = SafeModeHold()
    assert hold.admits("apps", "web", "uid", ("", "web")) and hold.ended("uid") is None
