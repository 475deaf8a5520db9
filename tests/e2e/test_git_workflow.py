"""End-to-end: runs with spec.git against a real git server (git http-backend, token auth)
and a local server speaking GitHub's REST API, then the deploy on the real control plane."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client

from tests.support.gitserver.fake_gitlab import FakeGitLab

from .git_fixtures import CRASHING, FINISHED, MANIFEST, TOKEN, V1, V2, assert_deployment_untouched, git_spec
from .kube_helpers import (
    create_deployment,
    create_run,
    deployment_image,
    events_of,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

def test_git_pull_request_ci_merge_then_deploy(namespace, repo, git_server, forge):
    forge.set_ci(None, ["pending", "pending", "success"])
    create_run(namespace, "via-git", git_spec(repo, forge, pullRequest={"mergeMethod": "squash"}))

    st = wait_phase(namespace, "via-git", FINISHED, timeout=120)

    assert st["phase"] == "Succeeded", st
    g = st["git"]
    assert g["branch"] == "selfbootstrap/via-git"
    assert len(g["commitSha"]) == 40 and g["pullRequestNumber"] >= 1 and g["pullRequestUrl"]
    assert st["ciStatus"] == "success" and g["ciChecks"] == 3
    assert g["mergeCommitSha"] == git_server.branches(repo["name"])["main"]
    main_manifest = git_server.read_file(repo["name"], "main", "deploy/app.yaml")
    assert f"image: {V2}" in main_manifest and "selfbootstrap.dev/release-id: v2" in main_manifest
    assert "# deployed by selfbootstrap" in main_manifest
    head = git_server.log(repo["name"], "selfbootstrap/via-git", 1)[0]
    assert head["sha"] == g["commitSha"]
    assert f"Selfbootstrap-Run: {namespace}/via-git/" in head["body"]
    assert forge.status_requests(g["commitSha"]) >= 3
    assert deployment_image(namespace, "app") == V2
    history = [h["phase"] for h in st["history"]]
    for phase in ("Branching", "Committing", "Pushing", "OpeningPullRequest", "AwaitingCI", "Merging",
                  "Deploying", "Succeeded"):
        assert phase in history
    reasons = {r for _, r, _ in events_of(namespace, "via-git")}
    assert {"Committed", "Pushed", "PullRequestOpened", "CIPassed", "Merged", "Deployed"} <= reasons


@pytest.mark.parametrize("ci, timeout, reason, ci_status", [
    (["pending", "failure"], 30, "CIFailed", "failure"),
    (["pending"], 2, "CITimedOut", "timeout"),
], ids=["ci-failure", "ci-timeout"])
def test_ci_that_does_not_pass_ends_the_run_without_deploying(namespace, repo, forge, ci, timeout, reason,
                                                               ci_status):
    forge.set_ci(None, ci)
    spec = git_spec(repo, forge, ci={"initialIntervalSeconds": 0.5, "maxIntervalSeconds": 1,
                                     "timeoutSeconds": timeout})
    create_run(namespace, "red", spec)

    st = wait_phase(namespace, "red", FINISHED, timeout=90)

    assert (st["phase"], st["reason"], st["ciStatus"]) == ("Failed", reason, ci_status)
    assert "nothing was deployed" in st["message"]
    assert "mergeCommitSha" not in st["git"]
    assert_deployment_untouched(namespace)


def test_refused_merge_ends_the_run_with_the_status_not_the_forge_text(namespace, repo, forge):
    forge.refuse_merges("Required status check \"security\" is expected.")
    create_run(namespace, "refused", git_spec(repo, forge))

    st = wait_phase(namespace, "refused", FINISHED, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "MergeRefused")
    assert "returned 405 (Method Not Allowed)" in st["message"] and "Required status check" not in st["message"]
    assert_deployment_untouched(namespace)


def test_rolled_back_git_run_opens_a_revert_pull_request(namespace, repo, git_server, forge):
    create_run(namespace, "bad-release", git_spec(repo, forge, image=CRASHING))

    st = wait_phase(namespace, "bad-release", FINISHED, timeout=120)

    assert st["phase"] == "RolledBack", st
    g = st["git"]
    assert (g["revertStatus"], g["revertBranch"]) == ("opened", "selfbootstrap/bad-release-revert")
    revert = next(p for p in forge.pulls[repo["name"]] if p["number"] == g["revertPullRequestNumber"])
    assert revert["state"] == "open" and revert["head"]["ref"] == "selfbootstrap/bad-release-revert"
    reverted = git_server.read_file(repo["name"], "selfbootstrap/bad-release-revert", "deploy/app.yaml")
    assert f"image: {V1}" in reverted and CRASHING not in reverted
    assert deployment_image(namespace, "app") == V1


def test_operator_restart_while_awaiting_ci_repeats_no_side_effect(namespace, repo, git_server, forge, operator):
    forge.set_ci(None, ["pending"])
    create_run(namespace, "patient", git_spec(repo, forge, ci={"initialIntervalSeconds": 0.5,
                                                                "maxIntervalSeconds": 1, "timeoutSeconds": 120}))
    wait_phase(namespace, "patient", "AwaitingCI", timeout=60)
    operator.kill()
    forge.set_ci(None, ["success"])
    operator.start()

    st = wait_phase(namespace, "patient", FINISHED, timeout=90)

    assert st["phase"] == "Succeeded", st
    assert git_server.pushes(repo["name"]) == 1
    assert len(forge.pulls[repo["name"]]) == 1
    assert forge.pulls[repo["name"]][0]["merged"] is True
    assert deployment_image(namespace, "app") == V2


def test_wrong_token_fails_clearly_and_never_shows_the_token(namespace, repo, forge, operator, kubectl):
    client.CoreV1Api().patch_namespaced_secret("git-token", namespace, {
        "data": {"token": base64.b64encode(b"wrong-token-value").decode()}})
    create_run(namespace, "denied", git_spec(repo, forge))

    st = wait_phase(namespace, "denied", FINISHED, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "RemoteUnreachable")
    assert "git ls-remote failed: authentication failed" in st["message"]
    assert_deployment_untouched(namespace)
    seen = json.dumps(status(namespace, "denied")) + json.dumps(events_of(namespace, "denied")) + operator.log()
    seen += kubectl("get", "events", "-n", namespace, "-o", "json")
    for secret in ("wrong-token-value", TOKEN, base64.b64encode(b"x-access-token:wrong-token-value").decode()):
        assert secret not in seen


def test_the_token_appears_nowhere_after_a_full_run(namespace, repo, forge, operator, kubectl):
    create_run(namespace, "quiet", git_spec(repo, forge))
    assert wait_phase(namespace, "quiet", FINISHED, timeout=90)["phase"] == "Succeeded"
    seen = kubectl("get", "sbr", "quiet", "-n", namespace, "-o", "json") + operator.log()
    seen += kubectl("get", "events", "-n", namespace, "-o", "json")
    basic = base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()
    assert TOKEN not in seen and basic not in seen


@pytest.mark.parametrize("allowed, why", [
    (None, "has no selfbootstrap.dev/allowed-urls annotation"),
    ("https://git.example.com/", "does not allow sending its token to"),
    ("https://127.0.0.1/", "does not allow sending its token to http://127.0.0.1"),
], ids=["no-annotation", "other-prefix", "https-only-prefix-for-plain-http"])
def test_a_token_is_sent_nowhere_its_secret_does_not_allow(namespace, repo, git_server, forge, allowed, why):
    annotations = {"selfbootstrap.dev/allowed-urls": allowed}
    client.CoreV1Api().patch_namespaced_secret("git-token", namespace, {"metadata": {"annotations": annotations}})
    git_requests, forge_requests = len(git_server.requests), len(forge.requests)
    create_run(namespace, "leaky", git_spec(repo, forge))

    st = wait_phase(namespace, "leaky", FINISHED, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "CredentialsNotAllowed"), st
    assert why in st["message"] and "'git-token'" in st["message"]
    assert (len(git_server.requests), len(forge.requests)) == (git_requests, forge_requests), \
        "nothing may be contacted"
    assert_deployment_untouched(namespace)


# --- GitLab (a fake of its API, real git behind it) -------------------------------------------------


@pytest.fixture
def gitlab(git_server) -> Iterator[FakeGitLab]:
    with FakeGitLab(git_server, TOKEN) as fake:
        yield fake


@pytest.mark.parametrize("release", ["healthy", "crashing"])
def test_a_gitlab_project_in_a_subgroup_is_changed_through_a_merge_request(namespace, git_server, gitlab, release):
    """Branch to merge through a merge request of a project in a subgroup; a crashing release is rolled back and
    its merge reverted through a second merge request."""
    name = f"acme/platform/{namespace}"
    url = git_server.create_repo(name, {"deploy/app.yaml": MANIFEST})
    client.CoreV1Api().create_namespaced_secret(namespace, {
        "metadata": {"name": "git-token", "annotations": {
            "selfbootstrap.dev/allowed-urls": f"{git_server.base_url}/, {gitlab.api_url}/projects/"}},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    create_deployment(namespace, "app", V1, "v1")
    gitlab.set_ci(None, ["pending", "success"])
    spec = git_spec({"name": name, "url": url}, gitlab, image=V2 if release == "healthy" else CRASHING)
    spec["git"]["forge"] = {"kind": "gitlab", "apiUrl": gitlab.api_url}  # the project's path from the clone URL
    create_run(namespace, "gl", spec)
    st = wait_phase(namespace, "gl", FINISHED, timeout=120)
    git = st["git"]
    assert git["pullRequestNumber"] == 1 and git["mergeCommitSha"]
    paths = {r["path"] for r in gitlab.requests}
    encoded = f"/api/v4/projects/acme%2Fplatform%2F{namespace}"
    assert f"{encoded}/merge_requests" in paths and f"{encoded}/merge_requests/1/merge" in paths
    if release == "healthy":
        assert st["phase"] == "Succeeded", st.get("message")
        assert git["mergeCommitSha"] == git_server.branches(name)["main"]
        assert deployment_image(namespace, "app") == V2
        return
    assert st["phase"] == "RolledBack", st.get("message")
    assert (git["revertStatus"], git["revertBranch"]) == ("opened", "selfbootstrap/gl-revert")
    reverted = git_server.read_file(name, "selfbootstrap/gl-revert", "deploy/app.yaml")
    assert f"image: {V1}" in reverted and CRASHING not in reverted
    assert git["revertPullRequestNumber"] == 2 and deployment_image(namespace, "app") == V1


def test_github_app_credentials_carry_a_run_from_branch_to_merge_and_its_revert(namespace, repo, git_server, forge,
                                                                                operator, kubectl):
    """The run's Secret holds a GitHub App (id, installation, private key) instead of a token: the operator
    mints an installation token with the app's JWT (which the fake GitHub verifies with the app's public
    key) and the whole workflow runs on it, including the revert after a rollback."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    forge.install_app("4242", "77", key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    data = {"githubAppID": b"4242", "githubAppInstallationID": b"77", "githubAppPrivateKey": pem}
    client.CoreV1Api().create_namespaced_secret(namespace, {
        "metadata": {"name": "git-app", "annotations": {
            "selfbootstrap.dev/allowed-urls": f"{git_server.base_url}/, {forge.api_url}/"}},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()}})
    minted = forge.minted
    spec = git_spec(repo, forge, image=CRASHING, credentials={"secretRef": {"name": "git-app"}})

    create_run(namespace, "as-app", spec)
    st = wait_phase(namespace, "as-app", FINISHED, timeout=120)

    assert st["phase"] == "RolledBack", st
    g = st["git"]
    assert g["mergeCommitSha"] and g["revertStatus"] == "opened", g
    reverted = git_server.read_file(repo["name"], "selfbootstrap/as-app-revert", "deploy/app.yaml")
    assert f"image: {V1}" in reverted
    assert forge.minted - minted >= 1
    seen = kubectl("get", "sbr", "as-app", "-n", namespace, "-o", "json") + operator.log()
    seen += kubectl("get", "events", "-n", namespace, "-o", "json")
    body = pem.decode().splitlines()[1]
    assert TOKEN not in seen and body not in seen, "neither the installation token nor the key is shown"
