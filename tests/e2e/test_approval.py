"""End-to-end: a run that asks for approval waits, untouched, until someone other than its author who holds
the `approve` verb approves it in their own name (the admission policy and the operator, as shipped)."""

from __future__ import annotations

import json

import pytest

from selfbootstrap.models import APPROVAL_PREFIX, AUTHOR_ANNOTATION

from .cluster import wait_for
from .kube_helpers import create_deployment, deployment_image, status, wait_phase
from .test_author_rights import PATCH_DEPLOYMENT, RUNS, create_as, grant, refusal_of

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator"),
              pytest.mark.cluster_scoped("installs the admission policies and the roles for people")]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
PATCH_RUNS = ("selfbootstrap.dev", "selfbootstrapruns", "patch")
GET_RUNS = ("selfbootstrap.dev", "selfbootstrapruns", "get")
DEPLOY = APPROVAL_PREFIX + "deploy"


def manifest(name: str, author: str | None) -> str:
    meta: dict = {"name": name}
    if author is not None:
        meta["annotations"] = {AUTHOR_ANNOTATION: author}
    return json.dumps({"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun", "metadata": meta,
                       "spec": {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
                                "restartWatchdog": {"retries": 1, "intervalSeconds": 1},
                                "approval": {"beforeDeploy": True, "deadlineSeconds": 600}}})


@pytest.fixture
def people(kubectl, namespace, author_rights) -> str:
    grant(kubectl, namespace, "alice", RUNS, PATCH_DEPLOYMENT, PATCH_RUNS, GET_RUNS)
    grant(kubectl, namespace, "bob", PATCH_RUNS, GET_RUNS)  # may edit runs, may not approve them
    kubectl("-n", namespace, "create", "rolebinding", "approvers", "--clusterrole=selfbootstrap-run-approver",
            "--user=carol", "--user=alice")  # alice approves others' runs, never her own
    create_deployment(namespace, "app", V1, "v1", replicas=1)
    # The policy takes effect a moment after it is created: wait until it refuses a run without its author.
    wait_for(lambda: "names its author" in create_as(kubectl, namespace, "alice", manifest("probe", None)),
             30, "the approvals policy never took effect")
    return namespace


def approve_as(user: str, namespace: str, run: str, name: str) -> str:
    return refusal_of(user, "-n", namespace, "annotate", "--overwrite", "selfbootstrapruns", run, f"{DEPLOY}={name}")


def test_a_run_waits_for_an_approval_that_only_another_approver_may_give(kubectl, people):
    ns = people
    assert "may not create a run in the name of bob" in create_as(kubectl, ns, "alice", manifest("x", "bob"))
    assert create_as(kubectl, ns, "alice", manifest("release", "alice")) == ""
    st = wait_phase(ns, "release", "AwaitingApproval", timeout=60)
    assert "kubectl sbr approve release --stage deploy" in st["message"]
    assert deployment_image(ns, "app") == V1

    assert "alice is the author of run release and may not approve it" in approve_as("alice", ns, "release",
                                                                                        "alice")
    assert "bob may not approve selfbootstrapruns" in approve_as("bob", ns, "release", "bob")
    assert "may only give an approval in their own name" in approve_as("carol", ns, "release", "dave")
    assert "the author of a run never changes" in refusal_of(
        "alice", "-n", ns, "annotate", "--overwrite", "selfbootstrapruns", "release", f"{AUTHOR_ANNOTATION}=carol")
    assert deployment_image(ns, "app") == V1 and status(ns, "release")["phase"] == "AwaitingApproval"

    assert approve_as("carol", ns, "release", "carol") == ""
    st = wait_phase(ns, "release", {"Succeeded", "Failed", "RolledBack"}, timeout=90)
    assert st["phase"] == "Succeeded", st.get("message")
    assert deployment_image(ns, "app") == V2
    gate = next(g for g in st["gates"] if g["kind"] == "approval")
    assert (gate["name"], gate["phase"], gate["message"]) == ("approval-deploy", "Passed", "approved by carol")
    assert "may only give an approval in their own name, once" in approve_as("carol", ns, "release", "erin")
