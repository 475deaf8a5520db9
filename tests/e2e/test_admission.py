"""End-to-end: the CRD schema and its CEL rules reject bad runs at admission, naming the field."""

from __future__ import annotations

import copy

import pytest
from kubernetes.client.exceptions import ApiException

from .kube_helpers import create_deployment, create_run, get_run, wait_phase

pytestmark = pytest.mark.e2e

VALID: dict = {"target": {"deployment": "app"}, "release": {"id": "v2", "image": "registry.example.com/app:v2"}}


def mutated(path: str, value) -> dict:
    spec = copy.deepcopy(VALID)
    *parents, leaf = path.split(".")
    node: dict = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return spec


DELETE = object()


def git(**fields) -> dict:
    base = {"repositoryUrl": "https://git.example.com/acme/app.git",
            "change": {"setImage": {"path": "deploy/app.yaml"}}}
    return {**VALID, "git": {**base, **fields}}

REJECTED = [
    pytest.param(mutated("release.podTemplatePatch", {"spec": {}}),
                 "spec.release.image or spec.release.podTemplatePatch",
                 id="image-and-patch"),
    pytest.param(mutated("release.image", DELETE), "spec.release.image or spec.release.podTemplatePatch",
                 id="neither-image-nor-patch"),
    pytest.param({"target": {"deployment": "app"}, "release": {"podTemplatePatch": {"spec": {}}}},
                 "spec.release.id", id="patch-without-id"),
    pytest.param(mutated("release.rollbackReleaseId", "v2"), "spec.release.rollbackReleaseId", id="rollback-to-self"),
    pytest.param(mutated("restartWatchdog", {"retries": 0}), "spec.restartWatchdog.retries", id="zero-retries"),
    pytest.param(mutated("restartWatchdog", {"intervalSeconds": 0}), "spec.restartWatchdog.intervalSeconds",
                 id="zero-interval"),
    pytest.param(mutated("health", {"http": {"url": "ftp://x"}}), "spec.health.http.url", id="non-http-url"),
    pytest.param(mutated("health", {"http": {"url": "http://x", "retries": -1}}), "spec.health.http.retries",
                 id="negative-http-retries"),
    pytest.param(mutated("target.deploymentContext", "elsewhere"), "spec.target.deploymentContext",
                 id="unknown-context"),
    pytest.param(mutated("target.deployment", "Not_A_Name"), "spec.target.deployment", id="bad-name"),
    pytest.param(mutated("target.deployment", DELETE), "spec.target.deployment", id="missing-deployment"),
    pytest.param({"target": {"deployment": "app"}}, "spec.release", id="missing-release"),
    *[pytest.param(git(change={"files": [{"path": path, "content": "x"}]}), "spec.git.change.files[0].path",
                   id=f"path-{path}") for path in (".git/config", "./.git/hooks/x", "a/../.git/config",
                                                   ".GIT/config", "/etc/passwd", "a/../../b")],
    pytest.param(git(change={"setImage": {"path": ".git/config"}}), "spec.git.change.setImage.path",
                 id="set-image-into-git"),
    *[pytest.param(git(branch=branch), "spec.git.branch", id=f"branch-{branch}")
      for branch in ("feat..x", "feat/x.lock", "-x", "a b", "x/")],
    pytest.param(git(baseBranch="ma..in"), "spec.git.baseBranch", id="base-branch"),
    pytest.param(git(forge={"apiUrl": "file:///etc"}), "spec.git.forge.apiUrl", id="forge-file-url"),
    pytest.param(git(repositoryUrl="ext::sh -c touch% /tmp/x"), "spec.git.repositoryUrl", id="ext-transport"),
    pytest.param(git(repositoryUrl="https://git.example.com/trusted/../acme/app.git"), "spec.git.repositoryUrl",
                 id="repository-dot-segments"),
    pytest.param(git(forge={"apiUrl": "https://api.example.com/%2e%2e/x", "repository": "acme/app"}),
                 "spec.git.forge.apiUrl", id="forge-dot-segments"),
    pytest.param(git(validation={"command": ["make"]}), "spec.git.validation.image", id="validation-without-image"),
]


@pytest.mark.parametrize("spec, field", REJECTED)
def test_invalid_run_is_rejected_with_the_field_named(cluster, crd, namespace, spec, field):
    with pytest.raises(ApiException) as err:
        create_run(namespace, "bad", spec)
    assert err.value.status == 422
    assert field in err.value.body, err.value.body


def test_defaults_are_applied_at_admission(cluster, crd, namespace):
    create_run(namespace, "defaults", VALID)
    spec = get_run(namespace, "defaults")["spec"]
    assert spec["rollbackPolicy"] == {"onDeployFailure": False, "onHealthFailure": True, "deleteStuckPods": True,
                                      "onAnalysisFailure": True, "onSelfTestFailure": True,
                                      "onRestartWatchdogFailure": True, "onAbort": True, "timeoutSeconds": 600}
    assert spec["selfTest"] == {"enabled": True, "timeoutSeconds": 300}
    assert spec["restartWatchdog"]["retries"] == 3
    assert spec["target"]["deploymentContext"] == "external"


def test_spec_is_immutable_once_the_run_started(operator, namespace):
    from kubernetes import client

    create_deployment(namespace, "app", "registry.example.com/app:v1", "v1")
    create_run(namespace, "started", dict(VALID, restartWatchdog={"retries": 1, "intervalSeconds": 1}))
    wait_phase(namespace, "started", {"Succeeded", "Failed", "RolledBack"})
    with pytest.raises(ApiException) as err:
        client.CustomObjectsApi().patch_namespaced_custom_object(
            "selfbootstrap.dev", "v1alpha1", namespace, "selfbootstrapruns", "started",
            {"spec": {"release": {"id": "v9"}}})
    assert err.value.status == 422
    assert "spec is immutable" in err.value.body
