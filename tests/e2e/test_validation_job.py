"""End-to-end: a run's validation is a Job in its namespace, never a command in the operator.

kwok plays the kubelet: a Job pod completes, or fails with a termination message when its
image contains "failing", or runs until the Job's deadline when it contains "hanging".
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kubernetes import client

from .cluster import wait_for
from .git_fixtures import FINISHED, assert_deployment_untouched, git_spec
from .kube_helpers import create_run, deployment_image, events_of, status, wait_phase

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]


def validation(image: str = "registry.example.com/ci:1", **extra) -> dict:
    return {"image": image, "command": ["make", "lint"], **extra}


def job_of(namespace: str) -> client.V1Job:
    jobs = client.BatchV1Api().list_namespaced_job(namespace).items
    assert len(jobs) == 1, [j.metadata.name for j in jobs]
    return jobs[0]


def test_validation_runs_as_a_job_with_the_authors_image_and_service_account(namespace, repo, forge):
    core = client.CoreV1Api()
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "ci"}})
    marker = Path(f"/tmp/selfbootstrap-validation-{uuid.uuid4().hex}")
    check = validation(serviceAccountName="ci", deletePolicy="Never",
                       command=["sh", "-c", f"touch {marker}; make lint"])
    create_run(namespace, "checked", git_spec(repo, forge, validation=check))

    st = wait_phase(namespace, "checked", FINISHED, timeout=120)

    assert st["phase"] == "Succeeded", st
    g = st["git"]
    assert g["validationState"] == "succeeded" and "validationJobDeleted" not in g
    phases = [h["phase"] for h in st["history"]]
    assert phases.index("Validating") < phases.index("OpeningPullRequest")
    job = job_of(namespace)
    assert job.metadata.name == g["validationJob"]
    pod = job.spec.template.spec
    (validate,) = pod.containers
    assert (validate.image, validate.command) == ("registry.example.com/ci:1", check["command"])
    assert (pod.service_account_name, pod.automount_service_account_token) == ("ci", False)
    assert [(e.name, e.value) for e in validate.env] == [("HOME", "/home/validation")] and not validate.env_from, \
        "no credentials and no operator settings"
    assert [m.name for m in validate.volume_mounts] == ["workspace", "home"]
    assert (pod.security_context.run_as_non_root, pod.security_context.run_as_user) == (True, 65532)
    assert validate.security_context.allow_privilege_escalation is False
    assert validate.security_context.capabilities.drop == ["ALL"]
    assert validate.resources.limits == {"cpu": "1", "memory": "512Mi"}
    assert job.spec.ttl_seconds_after_finished == 3600
    # The API server's own Pod Security admission passes the Job's pod as restricted (a dry run: the
    # namespace's sample app is not meant to be restricted, and is not touched).
    core.patch_namespace(namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    template = client.ApiClient().sanitize_for_serialization(job.spec.template)
    core.create_namespaced_pod(namespace, {"metadata": {"generateName": "restricted-"}, "spec": template["spec"]},
                               dry_run="All")
    (checkout,) = pod.init_containers
    assert "credentials" in [m.name for m in checkout.volume_mounts]
    assert {e.name: e.value for e in checkout.env}["SHA"] == g["commitSha"]
    assert job.metadata.owner_references[0].name == "checked"
    assert not marker.exists(), "the operator must never run the author's command itself"
    assert deployment_image(namespace, "app") == "registry.example.com/app:v2"


def test_a_failing_validation_ends_the_run_with_the_jobs_message(namespace, repo, git_server, forge):
    create_run(namespace, "rejected", git_spec(repo, forge, validation=validation("registry.example.com/ci:failing")))

    st = wait_phase(namespace, "rejected", FINISHED, timeout=120)

    assert (st["phase"], st["reason"]) == ("Failed", "ValidationFailed"), st
    assert "simulated failure of [make lint]" in st["message"]
    assert st["git"]["validationState"] == "failed"
    assert "kept for inspection" in st["message"]
    assert job_of(namespace).status.failed == 1, "OnSuccess keeps a failed Job"
    assert "selfbootstrap/rejected" in git_server.branches(repo["name"]), "the pushed branch stays"
    assert forge.pulls.get(repo["name"], []) == [], "no pull request for a commit that failed validation"
    assert_deployment_untouched(namespace)
    assert ("Warning", "ValidationFailed") in {(t, r) for t, r, _ in events_of(namespace, "rejected")}


def test_a_validation_that_never_ends_times_out(namespace, repo, forge):
    check = validation("registry.example.com/ci:hanging", timeoutSeconds=3, deletePolicy="Always")
    create_run(namespace, "stuck", git_spec(repo, forge, validation=check))

    st = wait_phase(namespace, "stuck", FINISHED, timeout=120)

    assert (st["phase"], st["reason"]) == ("Failed", "ValidationTimedOut"), st
    assert st["git"]["validationJobDeleted"] is True
    wait_for(lambda: not client.BatchV1Api().list_namespaced_job(namespace).items, 30, "the Job was not deleted")
    assert_deployment_untouched(namespace)


def test_a_passed_job_is_deleted_by_default_and_the_run_goes_on(namespace, repo, forge):
    create_run(namespace, "clean", git_spec(repo, forge, validation=validation()))
    st = wait_phase(namespace, "clean", FINISHED, timeout=120)
    assert st["phase"] == "Succeeded" and st["git"]["validationJobDeleted"] is True
    wait_for(lambda: not client.BatchV1Api().list_namespaced_job(namespace).items, 30, "the Job was not deleted")
    assert status(namespace, "clean")["git"]["pullRequestNumber"] >= 1
