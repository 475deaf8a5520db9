"""A self-update's pre-flight: the CRD the new version ships (attached to its image as a referrer) against the
runs in flight (core/compat.runs_unfit, adapters/registry.py), and the run that stops before its patch."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from unittest.mock import create_autospec

import httpx
import pytest
import yaml

from selfbootstrap.adapters.kube import Kube
from selfbootstrap.adapters.registry import ImageExecutor
from selfbootstrap.core import compat, images
from selfbootstrap.core.actions import ImageResolved, ResolveImage
from selfbootstrap.crdgen import PACKAGED
from selfbootstrap.models import RunSpec
from tests.adapters.test_registry_adapter import CONFIG, CONFIG_DIGEST, EGRESS, MANIFEST

from .factories import run, spec
from .test_machine import FakeCluster, drive

CRD = yaml.safe_load(PACKAGED.read_text())


def crd_with(change) -> dict:
    crd = copy.deepcopy(CRD)
    change(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])
    return crd


def a_run(name: str = "waiting", phase: str | None = "AwaitingApproval", **spec_fields) -> dict:
    body = {"target": {"deployment": "web"}, "release": {"image": "reg/web:v2"}, **spec_fields}
    return {"metadata": {"namespace": "apps", "name": name}, "spec": body,
            "status": {"phase": phase} if phase else {}}


APPROVING = a_run(approval={"beforeDeploy": True})
RETRIES = a_run(name="patient", restartWatchdog={"retries": 500, "intervalSeconds": 1})


def _drop_approval(props):
    del props["approval"]


def _cap_retries(props):
    props["restartWatchdog"]["properties"]["retries"]["maximum"] = 100


@pytest.mark.parametrize(("crd", "runs", "expected"), [
    pytest.param(CRD, [APPROVING, RETRIES], [], id="the-same-crd-fits"),
    pytest.param(crd_with(_drop_approval), [APPROVING], ["run apps/waiting: the new CRD drops spec.approval, which "
                                                        "it sets"], id="a-field-a-run-sets-is-dropped"),
    pytest.param(crd_with(_drop_approval), [RETRIES], [], id="a-field-no-run-sets-may-go"),
    pytest.param(crd_with(_drop_approval), [{**APPROVING, "status": {"phase": "Succeeded"}}], [],
                 id="finished-runs-do-not-count"),
    pytest.param(crd_with(_cap_retries), [RETRIES], ["run apps/patient: the new CRD refuses "
                                                     "spec.restartWatchdog.retries: 500 is greater than the maximum "
                                                     "of 100"], id="a-stricter-bound-a-run-breaks"),
    pytest.param({"spec": {"versions": [{"name": "v2"}]}}, [RETRIES],
                 ["the new version's CRD does not serve selfbootstrap.dev/v1alpha1"], id="the-version-is-not-served"),
])
def test_the_new_crd_is_checked_against_every_run_in_flight(crd, runs, expected):
    assert compat.runs_unfit(crd, runs) == expected


def test_unknown_fields_follow_preserve_unknown_and_additional_properties():
    schema = {"properties": {"a": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                             "m": {"type": "object", "additionalProperties": {"properties": {"k": {}}}},
                             "l": {"type": "array", "items": {"properties": {"x": {}}}}}}
    value = {"a": {"anything": 1}, "m": {"one": {"k": 1, "gone": 2}}, "l": [{"x": 1}, {"y": 2}], "top": 1}
    assert compat.unknown_fields(value, schema) == ["m.one.gone", "l[1].y", "top"]


# --- the adapter: the CRD found as a referrer of the image ---------------------------------------------

IMAGE_DIGEST = "sha256:" + "e" * 64


def registry(crd_doc: dict | None, *, referrers_api: bool):
    """A registry holding the image, and its CRD attached as an OCI referrer (by the API, or by the tag)."""
    blob = yaml.safe_dump(crd_doc).encode() if crd_doc is not None else b""
    blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    artifact = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "artifactType": images.CRD_ARTIFACT,
                           "layers": [{"mediaType": images.CRD_ARTIFACT, "digest": blob_digest,
                                       "size": len(blob)}]}).encode()
    artifact_digest = "sha256:" + hashlib.sha256(artifact).hexdigest()
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + "1" * 64,
         "artifactType": "application/spdx+json"},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": artifact_digest,
         "artifactType": images.CRD_ARTIFACT}]}).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        p = request.url.path
        if p.endswith("/manifests/v2"):
            return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": IMAGE_DIGEST})
        if p.endswith(f"/blobs/{CONFIG_DIGEST}"):
            return httpx.Response(200, content=CONFIG)
        if crd_doc is not None and referrers_api and p.endswith(f"/referrers/{IMAGE_DIGEST}"):
            return httpx.Response(200, content=index)
        if crd_doc is not None and not referrers_api and p.endswith("/manifests/" + IMAGE_DIGEST.replace(":", "-")):
            return httpx.Response(200, content=index)
        if p.endswith(f"/manifests/{artifact_digest}"):
            return httpx.Response(200, content=artifact)
        if p.endswith(f"/blobs/{blob_digest}"):
            return httpx.Response(200, content=blob)
        return httpx.Response(404)
    return answer


def check(answer, runs) -> ImageResolved:
    kube = create_autospec(Kube, instance=True)
    kube.read_docker_config.return_value = None
    kube.read_service_account.return_value = {}
    ex = ImageExecutor(kube, EGRESS, transport=httpx.MockTransport(answer), runs_in_flight=lambda: runs)
    found = ex.perform(run(), ResolveImage("reg.example.com/sys/operator:v2", (), "default", check_crd=True))
    assert isinstance(found, ImageResolved), found
    return found


@pytest.mark.parametrize("referrers_api", [True, False], ids=["referrers-api", "referrers-tag"])
def test_the_image_s_crd_is_found_as_a_referrer_and_checked(referrers_api):
    fits = check(registry(CRD, referrers_api=referrers_api), [APPROVING, RETRIES])
    assert fits.crd_problems == () and fits.crd_note == "the new version's CRD fits the 2 runs in flight"
    broken = check(registry(crd_with(_drop_approval), referrers_api=referrers_api), [APPROVING])
    assert broken.crd_problems == ("run apps/waiting: the new CRD drops spec.approval, which it sets",)


def test_an_image_without_a_crd_is_not_checked_and_says_so():
    found = check(registry(None, referrers_api=True), [APPROVING])
    assert found.crd_problems == () and "no CRD attached" in (found.crd_note or "")


# --- the machine: a self-update stops before its patch ------------------------------------------------

class PreflightCluster(FakeCluster):
    """The fake cluster, whose registry answers that the new version's CRD breaks a run in flight."""

    def __init__(self):
        super().__init__()
        self.asked: list[ResolveImage] = []

    def perform(self, action):
        if isinstance(action, ResolveImage):
            self.actions.append("ResolveImage")
            self.asked.append(action)
            return ImageResolved(digest=IMAGE_DIGEST, registry="reg",
                                 crd_problems=("run apps/waiting: the new CRD drops spec.approval, which it sets",))
        return super().perform(action)


def test_a_self_update_whose_crd_does_not_fit_fails_before_the_patch():
    cluster = PreflightCluster()
    st, _ = drive(cluster, spec(target={"deploymentContext": "selfHosted"}))
    assert (st.phase, st.reason) == ("Failed", "CRDIncompatible")
    assert "drops spec.approval" in st.message and "not touched" in st.message
    assert cluster.asked[0].check_crd and "PatchDeployment" not in cluster.actions


def test_an_ordinary_run_does_not_check_a_crd():
    cluster = PreflightCluster()
    drive(cluster, spec())
    assert not cluster.asked[0].check_crd


# --- invariants over every run the API accepts (the corpus and the examples) --------------------------------

ROOT = Path(__file__).resolve().parents[2]


def filled(text: str) -> str:
    """A corpus file or an example with its placeholders (servers the tests start) filled in."""
    values = {"FORGE_URL": "http://127.0.0.1:1", "GIT_URL": "http://127.0.0.1:2", "REPO_URL": "http://127.0.0.1:2/a/b.git",
              "REPO": "acme/app", "TOKEN": "token", "HOME": "/home/test", "FORGE_HOST": "127.0.0.1:1",
              "GIT_HOST": "127.0.0.1:2"}
    text = re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], text)
    return text.replace("PROMETHEUS", "http://127.0.0.1:9090").replace("REGISTRY", "127.0.0.1:5000")


def accepted_specs() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "tests" / "corpus").glob("*.yaml")):
        case = yaml.safe_load(filled(path.read_text()))
        if "rejected" not in (case.get("expect") or {}) and isinstance(case.get("spec"), dict):
            found.append((path.stem, case["spec"]))
    for path in sorted((ROOT / "manifests" / "examples").glob("run-*.yaml")):
        found += [(path.stem, doc["spec"]) for doc in yaml.safe_load_all(filled(path.read_text()))
                  if doc and doc.get("kind") == "SelfBootstrapRun"]
    return found


ACCEPTED = accepted_specs()


def in_flight(spec: dict) -> dict:
    return {"metadata": {"namespace": "apps", "name": "r"}, "spec": spec, "status": {"phase": "Deploying"}}


@pytest.mark.parametrize(("name", "spec"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_this_version_s_crd_fits_every_run_it_accepts_as_written_and_as_stored(name, spec):
    """No false alarm: a self-update to this very version is never refused for a run this version accepts."""
    stored = RunSpec.model_validate(spec).dump()
    written = [spec] if not compat.lost_fields(spec, stored) else []  # unknown fields: pruned before they are stored
    assert compat.runs_unfit(CRD, [in_flight(s) for s in (*written, stored)]) == []


@pytest.mark.parametrize(("name", "spec"), ACCEPTED, ids=[n for n, _ in ACCEPTED])
def test_a_crd_without_any_field_a_run_sets_is_caught(name, spec):
    for field in RunSpec.model_validate(spec).dump():
        def drop(props, field=field):
            del props[field]
        found = compat.runs_unfit(crd_with(drop), [in_flight(RunSpec.model_validate(spec).dump())])
        assert f"run apps/r: the new CRD drops spec.{field}, which it sets" in found, (field, found)
