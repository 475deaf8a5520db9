"""The validation Job: its manifest, how its outcome is read, the executor with an autospec'd
Kubernetes adapter, and the checkout step run for real against a git server with token auth."""

from __future__ import annotations

import base64
import os
import subprocess
from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.jobs import CHECKOUT_SCRIPT, JobExecutor, job_outcome, render_job
from selfbootstrap.adapters.kube import Kube, SecretValue
from selfbootstrap.core.actions import (
    CheckValidationJob,
    CreateValidationJob,
    DeleteValidationJob,
    Failed,
    ValidationJobDeleted,
    ValidationJobObserved,
    ValidationJobStarted,
)
from selfbootstrap.core.run import Run
from selfbootstrap.models import RunSpec, RunStatus
from tests.gitserver.git_http import GitHttpServer, git

SHA = "c" * 40
RUN = Run("web-v2", 1, RunSpec.model_validate({"target": {"deployment": "web"}, "release": {"image": "r/w:v2"}}),
          RunStatus(), "apps", "uid-1")
ACTION = CreateValidationJob(
    name="web-v2-validate", sha=SHA, branch="selfbootstrap/web-v2", repository_url="https://git.example.com/a/w.git",
    image="registry.example.com/ci:1", command=("make", "lint"), service_account_name="ci",
    automount_service_account_token=False, timeout_seconds=120, secret_name="git-token", secret_key="token",
    username="x-access-token")


def test_the_job_runs_the_authors_image_and_command_with_the_authors_service_account():
    job = render_job(RUN, ACTION, "checkout:1")
    pod = job["spec"]["template"]["spec"]
    (validate,) = pod["containers"]
    assert (validate["image"], validate["command"], validate["workingDir"]) == (
        "registry.example.com/ci:1", ["make", "lint"], "/workspace")
    assert (pod["serviceAccountName"], pod["automountServiceAccountToken"]) == ("ci", False)
    assert (job["spec"]["backoffLimit"], job["spec"]["activeDeadlineSeconds"]) == (0, 120)
    assert pod["restartPolicy"] == "Never"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_the_token_reaches_only_the_checkout_step():
    pod = render_job(RUN, ACTION, "checkout:1")["spec"]["template"]["spec"]
    (checkout,) = pod["initContainers"]
    (validate,) = pod["containers"]
    assert [v["name"] for v in validate["volumeMounts"]] == ["workspace"]
    assert "env" not in validate and "envFrom" not in validate
    assert {"name": "credentials", "mountPath": "/credentials", "readOnly": True} in checkout["volumeMounts"]
    secret = next(v for v in pod["volumes"] if v["name"] == "credentials")["secret"]
    assert (secret["secretName"], secret["items"]) == ("git-token", [{"key": "token", "path": "token"}])
    assert checkout["command"][:2] == ["/bin/sh", "-c"] and checkout["image"] == "checkout:1"
    assert {e["name"]: e["value"] for e in checkout["env"]}["SHA"] == SHA


def test_without_credentials_nothing_is_mounted():
    pod = render_job(RUN, CreateValidationJob(**{**ACTION.__dict__, "secret_name": None, "secret_key": None}),
                     "checkout:1")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["workspace"]


def failed_pod(container: str, code: int, message: str, init: bool = False) -> dict:
    statuses = [{"name": container, "state": {"terminated": {"exitCode": code, "message": message}}}]
    return {"status": {"initContainerStatuses" if init else "containerStatuses": statuses}}


@pytest.mark.parametrize("conditions, pods, expected", [
    ([], [], ("running", "validation Job running")),
    ([{"type": "Complete", "status": "True"}], [], ("succeeded", "validation passed")),
    ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
     [failed_pod("validate", 2, "lint: 3 errors\n")], ("failed", "validate exited 2: lint: 3 errors")),
    ([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
     [failed_pod("checkout", 1, "branch moved", init=True)], ("failed", "checkout exited 1: branch moved")),
    ([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer"}],
     [], ("timedOut", "Job was active longer")),
    ([{"type": "Failed", "status": "False"}], [], ("running", "validation Job running")),
], ids=["running", "complete", "command-failed", "checkout-failed", "deadline", "condition-false"])
def test_job_outcome(conditions, pods, expected):
    assert job_outcome({"status": {"conditions": conditions}}, pods) == expected


def test_a_long_termination_message_is_bounded():
    state, message = job_outcome({"status": {"conditions": [{"type": "Failed", "status": "True"}]}},
                                 [failed_pod("validate", 1, "x" * 5000)])
    assert state == "failed" and len(message) == 1024


@pytest.fixture
def kube():
    kube = create_autospec(Kube, instance=True)
    kube.read_secret.return_value = SecretValue(b"tok", ("https://git.example.com/",))
    kube.create_job.return_value = None
    return kube


def test_create(kube):
    assert JobExecutor(kube, "checkout:1").perform(RUN, ACTION) == ValidationJobStarted("web-v2-validate")
    namespace, job = kube.create_job.call_args.args
    assert namespace == "apps" and job["metadata"]["name"] == "web-v2-validate"


def test_an_existing_job_of_this_run_and_commit_is_reused(kube):
    kube.create_job.return_value = render_job(RUN, ACTION, "checkout:1")
    assert JobExecutor(kube, "checkout:1").perform(RUN, ACTION) == ValidationJobStarted("web-v2-validate")


def test_a_job_of_that_name_made_by_someone_else_is_not_taken_for_ours(kube):
    kube.create_job.return_value = {"metadata": {"name": "web-v2-validate", "labels": {}}}
    result = JobExecutor(kube, "checkout:1").perform(RUN, ACTION)
    assert isinstance(result, Failed) and "was not made by this run" in result.message


def test_no_job_is_made_when_the_secret_does_not_allow_the_repository(kube):
    kube.read_secret.return_value = SecretValue(b"tok", ("https://elsewhere.example.com/",))
    result = JobExecutor(kube, "checkout:1").perform(RUN, ACTION)
    assert isinstance(result, Failed) and result.reason == "CredentialsNotAllowed"
    kube.create_job.assert_not_called()


def test_check_and_delete(kube):
    kube.read_job.return_value = {"status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    kube.pods_of_job.return_value = []
    executor = JobExecutor(kube, "checkout:1")
    assert executor.perform(RUN, CheckValidationJob("j")) == ValidationJobObserved("succeeded", "validation passed")
    assert executor.perform(RUN, DeleteValidationJob("j")) == ValidationJobDeleted()
    kube.delete_job.assert_called_once_with("apps", "j")
    kube.read_job.return_value = None
    result = executor.perform(RUN, CheckValidationJob("j"))
    assert isinstance(result, Failed) and "disappeared" in result.message


TOKEN = "checkout-t0ken"


@pytest.fixture
def git_server(tmp_path):
    with GitHttpServer(tmp_path / "repos", TOKEN) as server:
        yield server


def run_checkout(tmp_path, url: str, branch: str, sha: str, token: str | None) -> subprocess.CompletedProcess:
    """The checkout step's own script, on this machine instead of in a pod (paths moved into tmp_path)."""
    workspace, credentials = tmp_path / "workspace", tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    if token:
        (credentials / "token").write_text(token + "\n")
    script = CHECKOUT_SCRIPT.replace("/workspace", str(workspace)).replace("/credentials", str(credentials))
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "REPO_URL": url, "BRANCH": branch, "SHA": sha,
           "GIT_USERNAME": "x-access-token", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True, text=True, check=False)


def test_the_checkout_step_fetches_exactly_the_pushed_commit(git_server, tmp_path):
    url = git_server.create_repo("acme/web", {"Makefile": "lint:\n\ttrue\n"}, branch="feature")
    sha = git_server.branches("acme/web")["feature"]
    done = run_checkout(tmp_path, url, "feature", sha, TOKEN)
    assert done.returncode == 0, done.stderr
    assert git("rev-parse", "HEAD", cwd=tmp_path / "workspace").strip() == sha
    assert (tmp_path / "workspace" / "Makefile").exists()
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert TOKEN not in (tmp_path / "workspace" / ".git" / "config").read_text()
    assert basic not in (tmp_path / "workspace" / ".git" / "config").read_text()


def test_the_checkout_step_refuses_a_branch_that_moved(git_server, tmp_path):
    url = git_server.create_repo("acme/web", {"a": "1"}, branch="feature")
    done = run_checkout(tmp_path, url, "feature", "d" * 40, TOKEN)
    assert done.returncode == 1 and "not at the pushed commit" in done.stderr


def test_the_checkout_step_needs_the_token(git_server, tmp_path):
    url = git_server.create_repo("acme/web", {"a": "1"}, branch="feature")
    done = run_checkout(tmp_path, url, "feature", git_server.branches("acme/web")["feature"], None)
    assert done.returncode != 0


@pytest.mark.parametrize("redirected", [
    lambda method, path: True,
    lambda method, path: method == "POST",
], ids=["everything", "the-pack-only"])
def test_the_checkout_step_takes_the_token_along_no_redirect(git_server, tmp_path, redirected):
    from tests.gitserver.hostile import RecordingListener, RedirectingServer

    url = git_server.create_repo("acme/web", {"a": "1"}, branch="feature")
    sha = git_server.branches("acme/web")["feature"]
    with RecordingListener("127.0.0.2") as sink, \
            RedirectingServer(sink.base_url, 307, upstream=git_server.base_url, redirects=redirected) as redirector:
        done = run_checkout(tmp_path, url.replace(git_server.base_url, redirector.base_url), "feature", sha, TOKEN)
    assert done.returncode != 0 and "returned error: 307" in done.stderr, done.stderr
    assert (sink.connections, sink.requests) == (0, [])
