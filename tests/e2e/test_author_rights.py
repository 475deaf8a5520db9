"""End-to-end: a run can do no more than its author could (the ValidatingAdmissionPolicy).

Users are impersonated with `kubectl --as`: each test namespace grants them exactly the
rights a test needs, and admission must refuse a run naming the permission that is missing.
"""

from __future__ import annotations

import json

import pytest

from tests.support.kube import refusal_of

from .cluster import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.cluster_scoped("installs the admission policies and the roles for people")]


def run_manifest(name: str, secret: bool = False, validation: bool = False) -> str:
    spec: dict = {"target": {"deployment": "app"}, "release": {"id": "v2", "image": "registry.example.com/app:v2"}}
    if secret or validation:
        spec["git"] = {"repositoryUrl": "https://git.example.com/acme/app.git",
                       "change": {"setImage": {"path": "deploy/app.yaml"}}}
        if secret:
            spec["git"]["credentials"] = {"secretRef": {"name": "git-token"}}
        if validation:
            spec["git"]["validation"] = {"image": "registry.example.com/ci:1", "command": ["make", "lint"]}
    return json.dumps({"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
                       "metadata": {"name": name}, "spec": spec})


def grant(kubectl, namespace: str, user: str, *rules: tuple[str, str, str]) -> None:
    """A Role with the rules (apiGroup, resource, verb) and its binding to the user."""
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": user},
            "rules": [{"apiGroups": [g], "resources": [r], "verbs": [v]} for g, r, v in rules]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": user},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": [role, binding]}))


RUNS = ("selfbootstrap.dev", "selfbootstrapruns", "create")
PATCH_DEPLOYMENT = ("apps", "deployments", "patch")
READ_SECRET = ("", "secrets", "get")
CREATE_JOB = ("batch", "jobs", "create")


def create_as(kubectl, namespace: str, user: str, manifest: str) -> str:
    """kubectl create as the user: '' when admitted, else the refusal."""
    return refusal_of(user, "-n", namespace, "create", "-f", "-", input=manifest)


@pytest.fixture
def users(kubectl, namespace, author_rights) -> str:
    grant(kubectl, namespace, "alice", RUNS)
    grant(kubectl, namespace, "bob", RUNS, PATCH_DEPLOYMENT, READ_SECRET, CREATE_JOB)
    grant(kubectl, namespace, "carol", RUNS, PATCH_DEPLOYMENT)
    grant(kubectl, namespace, "dave", RUNS, PATCH_DEPLOYMENT, READ_SECRET)
    # The policy takes effect a moment after it is created: wait until it refuses alice.
    wait_for(lambda: "may not patch" in create_as(
        kubectl, namespace, "alice", run_manifest("probe").replace('"name": "probe"', '"generateName": "probe-"')),
        30, "the admission policy never took effect")
    return namespace


def test_a_user_who_may_not_patch_the_deployment_may_not_create_a_run_for_it(kubectl, users):
    refusal = create_as(kubectl, users, "alice", run_manifest("r1"))
    assert "spec.target.deployment: alice may not patch deployments/app" in refusal
    assert f"in namespace {users}" in refusal


def test_a_user_who_may_not_read_the_secret_may_not_make_a_run_use_it(kubectl, users):
    refusal = create_as(kubectl, users, "carol", run_manifest("r2", secret=True))
    assert "spec.git.credentials.secretRef: carol may not get secrets/git-token" in refusal


def test_a_user_who_may_not_create_jobs_may_not_ask_for_a_validation_job(kubectl, users):
    refusal = create_as(kubectl, users, "dave", run_manifest("r3", secret=True, validation=True))
    assert "spec.git.validation: dave may not create jobs.batch" in refusal


def test_a_user_who_may_not_create_jobs_may_not_ask_for_a_job_metric(kubectl, users):
    spec = json.loads(run_manifest("job-metric"))
    spec["spec"]["analysis"] = {"metrics": [{"name": "smoke", "provider": {"job": {"spec": {"template": {
        "spec": {"restartPolicy": "Never", "containers": [{"name": "s", "image": "registry.example.com/s:1"}]}}}}}}]}
    refused = create_as(kubectl, users, "carol", json.dumps(spec))
    assert "spec.analysis.metrics[].provider.job: carol may not create jobs.batch" in refused
    assert create_as(kubectl, users, "bob", json.dumps(spec)) == ""


def test_a_user_who_may_not_read_an_analysis_template_may_not_make_a_run_use_it(kubectl, users):
    spec = json.loads(run_manifest("templated"))
    spec["spec"]["analysis"] = {"templates": [{"templateName": "errors"}]}
    refused = create_as(kubectl, users, "carol", json.dumps(spec))
    assert "spec.analysis.templates: carol may not get every analysis template the run names" in refused
    grant(kubectl, users, "carol", RUNS, PATCH_DEPLOYMENT, ("argoproj.io", "analysistemplates", "get"))
    assert create_as(kubectl, users, "carol", json.dumps(spec)) == ""


def test_a_user_with_all_the_rights_is_admitted(kubectl, users):
    assert create_as(kubectl, users, "bob", run_manifest("r4", secret=True, validation=True)) == ""
    assert create_as(kubectl, users, "carol", run_manifest("r5")) == ""


def test_people_with_edit_may_create_runs_and_viewers_may_read_them(kubectl, namespace, author_rights):
    for user, role in (("erin", "edit"), ("frank", "view")):
        kubectl("-n", namespace, "create", "rolebinding", user, f"--clusterrole={role}", f"--user={user}")

    wait_for(lambda: _allowed(kubectl, "erin", "create", namespace), 60,
             "the run roles were never aggregated into edit")
    assert create_as(kubectl, namespace, "erin", run_manifest("by-editor", secret=True)) == ""
    assert _allowed(kubectl, "frank", "get", namespace)
    assert not _allowed(kubectl, "frank", "create", namespace)


def _allowed(kubectl, user: str, verb: str, namespace: str) -> bool:
    try:
        kubectl("auth", "can-i", verb, "selfbootstrapruns.selfbootstrap.dev", "--as", user, "-n", namespace)
    except AssertionError:
        return False
    return True


@pytest.mark.parametrize("kind, resource", [("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")])
def test_the_author_must_be_allowed_to_patch_a_target_of_its_kind(kubectl, users, kind, resource):
    """carol may patch Deployments, not other kinds: a run of her StatefulSet or DaemonSet is hers only once she may
    patch that kind."""
    manifest = json.loads(run_manifest("r-kind"))
    manifest["spec"]["target"] = {"kind": kind, "name": "app"}
    refusal = create_as(kubectl, users, "carol", json.dumps(manifest))
    assert f"spec.target.name: carol may not patch {resource}/app in namespace {users}" in refusal, refusal
    grant(kubectl, users, "carol", RUNS, PATCH_DEPLOYMENT, ("apps", resource, "patch"))
    wait_for(lambda: create_as(kubectl, users, "carol", json.dumps(manifest)) == "", 30,
             f"carol may patch {resource} and still may not create the run")
