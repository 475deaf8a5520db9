"""Shared fixtures of the git workflow tests: a real git server (git http-backend, token auth),
a server speaking GitHub's REST API, and a repository, token Secret and Deployment per test."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from kubernetes import client

from tests.support.gitserver.fake_github import FakeGitHub
from tests.support.gitserver.git_http import GitHttpServer

from .kube_helpers import create_deployment, deployment_image, replica_sets

TOKEN = "s3cr3t-t0ken-for-e2e"
V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
CRASHING = "registry.example.com/app:v2-crashloop"
MANIFEST = f"""\
# deployed by selfbootstrap
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    metadata:
      annotations:
        selfbootstrap.dev/release-id: v1
    spec:
      containers:
        - name: app
          image: {V1}
"""
FINISHED = {"Succeeded", "Failed", "RolledBack", "Superseded"}


@pytest.fixture(scope="module")
def git_server(tmp_path_factory) -> Iterator[GitHttpServer]:
    with GitHttpServer(tmp_path_factory.mktemp("git"), TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def forge(git_server) -> Iterator[FakeGitHub]:
    with FakeGitHub(git_server, TOKEN) as github:
        yield github


@pytest.fixture
def repo(git_server, forge, namespace) -> dict:
    """A repository holding the app's manifest, a token Secret, and a Deployment at v1."""
    name = f"acme/{namespace}"
    url = git_server.create_repo(name, {"deploy/app.yaml": MANIFEST, "README.md": "config\n"})
    client.CoreV1Api().create_namespaced_secret(namespace, {
        "metadata": {"name": "git-token", "annotations": {
            "selfbootstrap.dev/allowed-urls": f"{git_server.base_url}/, {forge.api_url}/"}},
        "data": {"token": base64.b64encode(TOKEN.encode()).decode()}})
    create_deployment(namespace, "app", V1, "v1")
    forge.set_ci(None, ["success"])
    forge.refuse_merges(None)
    return {"name": name, "url": url}


def git_spec(repo: dict, forge: FakeGitHub, image: str = V2, **git) -> dict:
    spec_git = {
        "repositoryUrl": repo["url"],
        "change": {"setImage": {"path": "deploy/app.yaml"}},
        "credentials": {"secretRef": {"name": "git-token"}},
        "forge": {"apiUrl": forge.api_url, "repository": repo["name"]},
        "ci": {"initialIntervalSeconds": 0.5, "maxIntervalSeconds": 1, "timeoutSeconds": 30},
    }
    spec_git.update(git)
    return {"target": {"deployment": "app"}, "release": {"id": "v2", "image": image},
            "restartWatchdog": {"retries": 2, "intervalSeconds": 1}, "git": spec_git}


def assert_deployment_untouched(namespace: str) -> None:
    assert deployment_image(namespace, "app") == V1
    assert len(replica_sets(namespace, "app")) == 1
