"""End-to-end: the git workflow against a real Gitea (built from its Go module, SQLite, on loopback): the branch,
the commit and the push over git, the pull request, commit statuses the test sets as CI, the merge guarded by
the tested commit, the deploy, and after a rollback the revert pull request."""

from __future__ import annotations

import base64

import pytest
from kubernetes import client

from .cluster import wait_for
from .git_fixtures import CRASHING, FINISHED, MANIFEST, V1, V2
from .gitea_fixtures import USER, Gitea, gitea  # noqa: F401  (fixture)
from .kube_helpers import create_deployment, create_run, deployment_image, status, wait_phase

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]


@pytest.fixture
def repo(gitea: Gitea, namespace: str) -> str:  # noqa: F811
    """A Gitea repository named after the namespace holding the app's manifest, a token Secret allowed to
    Gitea only, and the Deployment at v1."""
    url = gitea.create_repo(namespace, {"deploy/app.yaml": MANIFEST})
    client.CoreV1Api().create_namespaced_secret(namespace, {
        "metadata": {"name": "git-token", "annotations": {"selfbootstrap.dev/allowed-urls": f"{gitea.base_url}/"}},
        "data": {"token": base64.b64encode(gitea.token.encode()).decode()}})
    create_deployment(namespace, "app", V1, "v1")
    return url


def gitea_spec(gitea: Gitea, url: str, image: str) -> dict:  # noqa: F811
    return {"target": {"deployment": "app"}, "release": {"id": "v2", "image": image},
            "restartWatchdog": {"retries": 2, "intervalSeconds": 1},
            "git": {"repositoryUrl": url, "change": {"setImage": {"path": "deploy/app.yaml"}},
                    "credentials": {"secretRef": {"name": "git-token"}, "username": USER},
                    "forge": {"kind": "gitea", "apiUrl": gitea.api_url},
                    "ci": {"initialIntervalSeconds": 0.5, "maxIntervalSeconds": 1, "timeoutSeconds": 60}}}


def play_ci(gitea: Gitea, namespace: str, run: str, *states: str) -> str:  # noqa: F811
    """Once the run has pushed its commit, report CI on it, state by state; the commit."""
    def pushed() -> str | None:
        sha = status(namespace, run).get("git", {}).get("commitSha")  # recorded before the push
        return sha if sha and gitea.head(namespace, f"selfbootstrap/{run}") == sha else None

    sha = str(wait_for(pushed, 90, lambda: f"no commit pushed: {status(namespace, run)}"))
    for state in states:
        gitea.set_status(namespace, sha, state)
    return sha


@pytest.mark.parametrize("release", ["healthy", "crashing"])
def test_the_git_workflow_against_a_real_gitea(gitea, namespace, repo, release):  # noqa: F811
    create_run(namespace, "via-gitea", gitea_spec(gitea, repo, V2 if release == "healthy" else CRASHING))
    sha = play_ci(gitea, namespace, "via-gitea", "pending", "success")
    st = wait_phase(namespace, "via-gitea", FINISHED, timeout=120)

    g = st["git"]
    assert g["commitSha"] == sha and g["pullRequestNumber"] >= 1, g
    pull = next(p for p in gitea.pulls(namespace) if p["number"] == g["pullRequestNumber"])
    assert pull["merged"] and pull["head"]["ref"] == "selfbootstrap/via-gitea"
    assert g["mergeCommitSha"] == pull["merge_commit_sha"]
    if release == "healthy":
        assert st["phase"] == "Succeeded", st.get("message")
        assert g["mergeCommitSha"] == gitea.head(namespace, "main")
        assert f"image: {V2}" in gitea.read_file(namespace, "main", "deploy/app.yaml")
        assert deployment_image(namespace, "app") == V2
        return
    assert st["phase"] == "RolledBack", st.get("message")
    assert (g["revertStatus"], g["revertBranch"]) == ("opened", "selfbootstrap/via-gitea-revert")
    revert = next(p for p in gitea.pulls(namespace) if p["number"] == g["revertPullRequestNumber"])
    assert revert["state"] == "open" and revert["head"]["ref"] == "selfbootstrap/via-gitea-revert"
    reverted = gitea.read_file(namespace, "selfbootstrap/via-gitea-revert", "deploy/app.yaml")
    assert f"image: {V1}" in reverted and CRASHING not in reverted
    assert deployment_image(namespace, "app") == V1


def test_failed_ci_on_gitea_ends_the_run_without_deploying(gitea, namespace, repo):  # noqa: F811
    create_run(namespace, "red", gitea_spec(gitea, repo, V2))
    play_ci(gitea, namespace, "red", "failure")
    st = wait_phase(namespace, "red", FINISHED, timeout=90)
    assert (st["phase"], st["reason"], st["ciStatus"]) == ("Failed", "CIFailed", "failure"), st.get("message")
    assert "ci/tests" in st["message"] and deployment_image(namespace, "app") == V1
    assert gitea.head(namespace, "main") != st["git"]["commitSha"]


def test_a_gitea_token_goes_nowhere_its_secret_does_not_allow(gitea, namespace, repo):  # noqa: F811
    """The Secret allows the repositories (git) but not the API: nothing is sent, anywhere."""
    client.CoreV1Api().patch_namespaced_secret("git-token", namespace, {"metadata": {"annotations": {
        "selfbootstrap.dev/allowed-urls": f"{gitea.base_url}/{USER}/"}}})
    create_run(namespace, "walled", gitea_spec(gitea, repo, V2))
    st = wait_phase(namespace, "walled", FINISHED, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "CredentialsNotAllowed"), st.get("message")
    assert f"{gitea.api_url}/repos/{USER}/{namespace}/" in st["message"]
    assert gitea.head(namespace, "selfbootstrap/walled") is None and gitea.pulls(namespace) == []
