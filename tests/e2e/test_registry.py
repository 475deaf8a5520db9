"""End-to-end, with a real registry: the operator asks the image's registry what a release's reference names
before it patches anything, pins the digest, and keeps the image's own release metadata."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes import client

from .kube_helpers import create_deployment, create_run, deployment, deployment_image, wait_phase
from .operator_fixtures import CRD
from .registry_fixtures import Registry, registry  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

FINISHED = {"Succeeded", "Failed", "RolledBack"}
VERSION, REVISION = "org.opencontainers.image.version", "org.opencontainers.image.revision"


@pytest.fixture
def app(namespace: str, registry: Registry) -> str:  # noqa: F811
    """Deployment app running <registry>/<namespace>/app:v1, pulling with Secret `pull`."""
    registry.pull_secret(namespace, "pull")
    create_deployment(namespace, "app", f"{registry.host}/{namespace}/app:v1", "v1", replicas=1)
    client.AppsV1Api().patch_namespaced_deployment("app", namespace, {"spec": {"template": {"spec": {
        "imagePullSecrets": [{"name": "pull"}]}}}})
    return namespace


def template(namespace: str) -> Any:
    """The Deployment's pod template: what a rollout would change."""
    return client.ApiClient().sanitize_for_serialization(deployment(namespace, "app").spec.template)


def run_spec(image: str, **release: Any) -> dict[str, Any]:
    return {"target": {"deployment": "app"}, "release": {"image": image, **release},
            "restartWatchdog": {"retries": 1, "intervalSeconds": 1}}


def test_a_tag_the_registry_does_not_have_fails_before_any_patch(app, registry):  # noqa: F811
    before = template(app)
    image = f"{registry.host}/{app}/app:v9"
    create_run(app, "typo", run_spec(image))
    st = wait_phase(app, "typo", FINISHED, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "ImageNotFound"), st.get("message")
    assert image in st["message"] and registry.host in st["message"] and "not touched" in st["message"]
    assert template(app) == before, "no rollout"


def test_an_existing_tag_deploys_by_digest_with_the_image_s_metadata_and_a_moved_tag_changes_nothing(
        app, registry):  # noqa: F811
    digest = registry.pusher.image(f"{app}/app", "v2", labels={REVISION: "0123abc"},
                                   annotations={VERSION: "2.0.0", "org.opencontainers.image.source":
                                                "https://git.example.com/acme/app"})
    create_run(app, "good", run_spec(f"{registry.host}/{app}/app:v2"))
    st = wait_phase(app, "good", FINISHED, timeout=90)
    assert st["phase"] == "Succeeded", st.get("message")
    pinned = f"{registry.host}/{app}/app:v2@{digest}"
    assert deployment_image(app, "app") == pinned
    assert (st["imageDigest"], st["imageVersion"], st["imageRevision"], st["deployedImage"], st["deployedReleaseId"]) \
        == (digest, "2.0.0", "0123abc", pinned, "v2")
    assert st["imageLookup"] == f"resolved by {registry.host}"

    moved = registry.pusher.image(f"{app}/app", "v2", labels={REVISION: "fffffff"}, seed="moved")
    assert moved != digest
    assert deployment_image(app, "app") == pinned, "what release v2 runs did not move with its tag"


@pytest.mark.parametrize("case", ["wrong-password", "no-pull-secret"])
def test_a_registry_that_refuses_the_credentials_gives_a_clear_reason(app, registry, case):  # noqa: F811
    registry.pusher.image(f"{app}/app", "v3")
    apps = client.AppsV1Api()
    if case == "wrong-password":
        registry.pull_secret(app, "stale", password="not-the-password")
        pull: list[dict[str, str]] | None = [{"name": "stale"}]
    else:
        pull = None
    apps.patch_namespaced_deployment("app", app, [{"op": "replace", "path": "/spec/template/spec/imagePullSecrets",
                                                   "value": pull}] if pull else
                                     [{"op": "remove", "path": "/spec/template/spec/imagePullSecrets"}])
    before = template(app)
    create_run(app, "refused", run_spec(f"{registry.host}/{app}/app:v3"))
    st = wait_phase(app, "refused", FINISHED, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "ImagePullRefused"), st.get("message")
    said = ("refused the credentials of pull secret 'stale'" if case == "wrong-password"
            else f"neither the Deployment nor its ServiceAccount has an imagePullSecret for {registry.host}")
    assert said in st["message"]
    assert template(app) == before


def test_an_index_without_the_platform_fails_before_any_patch(app, registry):  # noqa: F811
    arm = registry.pusher.image(f"{app}/app", None, arch="arm64", seed="arm")
    registry.pusher.index(f"{app}/app", "v4", {"arm64": arm})
    create_run(app, "arm-only", run_spec(f"{registry.host}/{app}/app:v4"))
    st = wait_phase(app, "arm-only", FINISHED, timeout=60)
    assert (st["phase"], st["reason"]) == ("Failed", "ImageNotFound")
    assert "has no linux/amd64 image in its index" in st["message"]


CRD_ARTIFACT = "application/vnd.selfbootstrap.crd.v1+yaml"


def crd_without_change_cause() -> bytes:
    """The runs' CRD as a next version might ship it: without spec.release.changeCause."""
    crd = yaml.safe_load(CRD.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"]["release"]["properties"]["changeCause"]
    return yaml.safe_dump(crd).encode()


def test_a_self_update_whose_crd_drops_a_field_a_run_in_flight_sets_stops_before_the_patch(app, registry):  # noqa: F811
    create_deployment(app, "web", "registry.example.com/web:v1", "v1", replicas=1)
    create_run(app, "waiting", {"target": {"deployment": "web"},
                                "release": {"image": "registry.example.com/web:v2", "changeCause": "ticket 42"},
                                "restartWatchdog": {"retries": 600, "intervalSeconds": 1}})
    wait_phase(app, "waiting", "WatchingRestarts", timeout=60)  # in flight for the whole test
    broken = registry.pusher.image(f"{app}/app", "v2", annotations={VERSION: "0.2.0"})
    registry.pusher.referrer(f"{app}/app", broken, CRD_ARTIFACT, crd_without_change_cause())
    fitting = registry.pusher.image(f"{app}/app", "v3", annotations={VERSION: "0.3.0"}, seed="fits")
    registry.pusher.referrer(f"{app}/app", fitting, CRD_ARTIFACT, CRD.read_bytes())
    before = template(app)

    def self_update(name: str, tag: str) -> dict[str, Any]:
        create_run(app, name, {**run_spec(f"{registry.host}/{app}/app:{tag}"), "selfTest": {"enabled": False},
                               "target": {"deployment": "app", "deploymentContext": "selfHosted"}})
        return wait_phase(app, name, FINISHED, timeout=90)

    st = self_update("upgrade", "v2")
    assert (st["phase"], st["reason"]) == ("Failed", "CRDIncompatible"), st.get("message")
    assert f"run {app}/waiting: the new CRD drops spec.release.changeCause, which it sets" in st["message"]
    assert "not touched" in st["message"] and template(app) == before

    st = self_update("upgrade-fixed", "v3")
    assert st["phase"] == "Succeeded", st.get("message")
    assert "the new version's CRD fits the" in st["imageLookup"], st["imageLookup"]
    assert deployment_image(app, "app") == f"{registry.host}/{app}/app:v3@{fitting}"
