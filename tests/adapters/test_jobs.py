"""The validation Job: its manifest, how its outcome is read, the executor with an autospec'd
Kubernetes adapter, and the checkout step run for real against a git server with token auth."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.jobs import CHECKOUT_SCRIPT, HOME, JobExecutor, job_outcome, render_job
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
from selfbootstrap.models import RunSpec, RunStatus, Validation
from tests.support.gitserver.git_http import GitHttpServer, git

SHA = "c" * 40
RUN = Run("web-v2", 1, RunSpec.model_validate({"target": {"deployment": "web"}, "release": {"image": "r/w:v2"}}),
          RunStatus(), "apps", "uid-1")
ACTION = CreateValidationJob(
    name="web-v2-validate", sha=SHA, branch="selfbootstrap/web-v2", repository_url="https://git.example.com/a/w.git",
    image="registry.example.com/ci:1", command=("make", "lint"), service_account_name="ci",
    automount_service_account_token=False, timeout_seconds=120, secret_name="git-token", secret_key="token",
    username="x-access-token", run_as_user=65532, resources=Validation.Resources(), ttl_seconds_after_finished=3600)


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
    assert [v["name"] for v in validate["volumeMounts"]] == ["workspace", "home"]
    assert validate["env"] == [{"name": "HOME", "value": HOME}] and "envFrom" not in validate
    assert {"name": "credentials", "mountPath": "/credentials", "readOnly": True} in checkout["volumeMounts"]
    secret = next(v for v in pod["volumes"] if v["name"] == "credentials")["secret"]
    assert (secret["secretName"], secret["items"]) == ("git-token", [{"key": "token", "path": "token"}])
    assert checkout["command"][:2] == ["/bin/sh", "-c"] and checkout["image"] == "checkout:1"
    assert {e["name"]: e["value"] for e in checkout["env"]}["SHA"] == SHA


def test_without_credentials_nothing_is_mounted():
    pod = render_job(RUN, CreateValidationJob(**{**ACTION.__dict__, "secret_name": None, "secret_key": None}),
                     "checkout:1")["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["workspace", "home"]


def test_the_pod_meets_the_restricted_pod_security_standard():
    pod = render_job(RUN, ACTION, "checkout:1")["spec"]["template"]["spec"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532,
                                      "seccompProfile": {"type": "RuntimeDefault"}}
    for container in pod["initContainers"] + pod["containers"]:
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"}}, container["name"]
        assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/workspace", HOME}
        assert not {"privileged", "runAsUser", "procMount"} & set(container["securityContext"])
    assert not {"hostNetwork", "hostPID", "hostIPC"} & set(pod)
    assert all(set(v) <= {"name", "emptyDir", "secret"} for v in pod["volumes"]), "no hostPath"


def test_resources_and_ttl_come_from_the_spec_with_defaults():
    asked = Validation.model_validate({"image": "i", "command": ["c"], "runAsUser": 1000,
                                       "ttlSecondsAfterFinished": 600,
                                       "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}})
    action = CreateValidationJob(**{**ACTION.__dict__, "run_as_user": asked.run_as_user,
                                    "resources": asked.resources,
                                    "ttl_seconds_after_finished": asked.ttl_seconds_after_finished})
    for made, (user, ttl, resources) in [
            (ACTION, (65532, 3600, {"requests": {"cpu": "100m", "memory": "128Mi"},
                                    "limits": {"cpu": "1", "memory": "512Mi"}})),
            (action, (1000, 600, {"requests": {"cpu": "2"}, "limits": {"cpu": "4"}}))]:
        job = render_job(RUN, made, "checkout:1")
        pod = job["spec"]["template"]["spec"]
        assert (pod["securityContext"]["runAsUser"], job["spec"]["ttlSecondsAfterFinished"]) == (user, ttl)
        assert pod["containers"][0]["resources"] == resources
        checkout = pod["initContainers"][0]["resources"]
        assert set(checkout) == {"requests", "limits"} and set(checkout["limits"]) == {"cpu", "memory"}


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
    assert isinstance(result, Failed) and not result.retryable
    assert "deleted before its outcome was read" in result.message


TOKEN = "checkout-t0ken"


@pytest.fixture
def git_server(tmp_path):
    with GitHttpServer(tmp_path / "repos", TOKEN) as server:
        yield server


def run_checkout(tmp_path, url: str, branch: str, sha: str, token: str | None,
                 as_user: int | None = None) -> subprocess.CompletedProcess:
    """The checkout step's own script, on this machine instead of in a pod (paths moved into tmp_path).
    as_user: run it as that uid, with the workspace and HOME made as the kubelet makes emptyDirs (owned by
    root, mode 0777) and the token as fsGroup leaves it (group-readable only)."""
    workspace, credentials, home = tmp_path / "workspace", tmp_path / "credentials", tmp_path / "home"
    credentials.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    if token:
        (credentials / "token").write_text(token + "\n")
    argv = ["/bin/sh", "-c", CHECKOUT_SCRIPT.replace("/workspace", str(workspace))
            .replace("/credentials", str(credentials))]
    if as_user is not None:
        workspace.mkdir()
        for emptydir in (workspace, home):
            emptydir.chmod(0o777)
        tmp_path.chmod(0o755)
        if token:
            os.chown(credentials / "token", 0, as_user)
            (credentials / "token").chmod(0o440)
        argv = ["setpriv", f"--reuid={as_user}", f"--regid={as_user}", f"--groups={as_user}", *argv]
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "REPO_URL": url, "BRANCH": branch, "SHA": sha,
           "GIT_USERNAME": "x-access-token", "GIT_CONFIG_NOSYSTEM": "1"}
    return subprocess.run(argv, env=env, capture_output=True, text=True, check=False)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root to switch users")
def test_the_checkout_step_works_as_a_non_root_user_in_a_root_owned_workspace(git_server):
    """The pod runs as runAsUser in emptyDirs owned by root: git would refuse the workspace as "dubious
    ownership" without safe.directory, both in the checkout and in the validate step after it."""
    tmp_path = Path(tempfile.mkdtemp(dir="/tmp"))  # pytest's own base directory is closed to other users
    try:
        url = git_server.create_repo("acme/web", {"Makefile": "lint:\n\ttrue\n"}, branch="feature")
        sha = git_server.branches("acme/web")["feature"]
        done = run_checkout(tmp_path, url, "feature", sha, TOKEN, as_user=65532)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "workspace").stat().st_uid == 0
        validate = subprocess.run(
            ["setpriv", "--reuid=65532", "--regid=65532", "--groups=65532", "git", "rev-parse", "HEAD"],
            cwd=tmp_path / "workspace", env={"PATH": os.environ["PATH"], "HOME": str(tmp_path / "home")},
            capture_output=True, text=True, check=False)
        assert validate.stdout.strip() == sha, validate.stderr
        assert TOKEN not in (tmp_path / "home" / ".gitconfig").read_text()
    finally:
        shutil.rmtree(tmp_path)


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
    from tests.support.gitserver.hostile import RecordingListener, RedirectingServer

    url = git_server.create_repo("acme/web", {"a": "1"}, branch="feature")
    sha = git_server.branches("acme/web")["feature"]
    with RecordingListener("127.0.0.2") as sink, \
            RedirectingServer(sink.base_url, 307, upstream=git_server.base_url, redirects=redirected) as redirector:
        done = run_checkout(tmp_path, url.replace(git_server.base_url, redirector.base_url), "feature", sha, TOKEN)
    assert done.returncode != 0 and "returned error: 307" in done.stderr, done.stderr
    assert (sink.connections, sink.requests) == (0, [])
