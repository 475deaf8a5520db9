"""`kubectl sbr plan`: the dry run, decided by the operator's core from plain data."""

from __future__ import annotations

from selfbootstrap.cli.plan import plan
from selfbootstrap.models import FailureClass

from .factories import T0, deployment, image, spec, world


def outcomes(p) -> dict[str, tuple[str, str | None]]:
    return {o.failure_class: (o.status, o.target_replica_set) for o in p.policies}


def test_a_plan_names_the_patch_the_releases_and_each_failure_class_s_outcome():
    p = plan(spec(release={"id": "v3"}), "run-1", "apps", world(deployment()), T0)
    assert p.ends is None and not p.git_first
    assert (p.status.deployed_release_id, p.status.previous_release_id, p.status.previous_replica_set) == (
        "v3", "v2", "rs-2")
    assert p.patch is not None
    assert p.patch["spec"]["template"]["spec"]["containers"] == [{"name": "app", "image": image("v3")}]
    assert outcomes(p) == {
        FailureClass.DEPLOY: ("denied", None),
        FailureClass.HEALTH: ("allowed", "rs-2"),
        FailureClass.ANALYSIS: ("allowed", "rs-2"),
        FailureClass.SELF_TEST: ("allowed", "rs-2"),
        FailureClass.RESTART_WATCHDOG: ("allowed", "rs-2"),
        FailureClass.ABORTED: ("allowed", "rs-2"),
    }


def test_a_plan_says_the_image_is_resolved_and_pinned_and_a_self_update_s_crd_checked():
    p = plan(spec(release={"id": "v3"}), "run-1", "apps", world(deployment()), T0)
    assert (p.image, p.pin_digest, p.self_update) == (image("v3"), True, False)
    update = plan(spec(release={"id": "v3", "pinDigest": False}, target={"deploymentContext": "selfHosted"}),
                  "run-1", "apps", world(deployment()), T0)
    assert (update.pin_digest, update.self_update) == (False, True)
    assert any(g.startswith("self-test: every new operator pod reports") for g in update.gates)


def test_a_plan_lists_the_gates_in_the_order_they_judge():
    analysis = {"metrics": [{"name": "errors", "interval": "30s", "count": 4, "successCondition": "result[0] < 0.05",
                             "provider": {"prometheus": {"address": "http://prom:9090", "query": "q"}}}]}
    p = plan(spec(release={"id": "v3"}, health={"http": {"url": "http://web/healthz"}}, analysis=analysis),
             "run-1", "apps", world(deployment()), T0)
    assert [g.split(":")[0] for g in p.gates] == ["rollout", "http", "analysis", "restart watchdog"]
    assert "metric errors (prometheus), 4 measurements every 30s, success when result[0] < 0.05" in p.gates[2]


def test_a_plan_follows_the_run_s_policy():
    p = plan(spec(release={"id": "v3"}, rollbackPolicy={"onHealthFailure": False, "onDeployFailure": True}),
             "run-1", "apps", world(deployment()), T0)
    assert outcomes(p)[FailureClass.HEALTH][0] == "denied"
    assert outcomes(p)[FailureClass.DEPLOY] == ("allowed", "rs-2")


def test_a_plan_without_the_deployment_ends_failed_and_patches_nothing():
    p = plan(spec(), "run-1", "apps", world(None), T0)
    assert (p.ends, p.reason, p.patch, p.policies) == ("Failed", "TargetNotFound", None, ())


def test_a_git_run_is_planned_from_its_deploy():
    p = plan(spec(git={"repositoryUrl": "https://git.example.com/acme/web.git",
                       "change": {"setImage": {"path": "deploy/web.yaml"}}}),
             "run-1", "apps", world(deployment()), T0)
    assert p.git_first and p.patch is not None
