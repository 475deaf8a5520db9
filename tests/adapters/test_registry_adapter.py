"""The registry release source's HTTP (adapters/registry.py) against an in-process transport: credentials go
to their registry only (a token service elsewhere is asked anonymously, a redirect never carries them), and
the answers map to ImageNotFound / ImagePullRefused / no verdict."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from unittest.mock import create_autospec

import httpx
import pytest

from selfbootstrap.adapters import registry
from selfbootstrap.adapters.egress import EgressPolicy
from selfbootstrap.adapters.kube import Kube
from selfbootstrap.adapters.registry import ImageExecutor
from selfbootstrap.core.actions import Failed, ImageResolved, ImageUnresolved, ResolveImage
from selfbootstrap.core.egress import Policy
from tests.unit.factories import run

EGRESS = EgressPolicy(Policy(), lambda host, port: ["203.0.113.40"])
CONFIG = json.dumps({"config": {"Labels": {"org.opencontainers.image.revision": "abc"}}}).encode()
CONFIG_DIGEST = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"digest": CONFIG_DIGEST}, "annotations": {
                           "org.opencontainers.image.version": "2.0.0"}}).encode()
LOGIN = {"auths": {"reg.example.com": {"username": "u", "password": "p"}}}


def executor(answer, pull_config=LOGIN) -> ImageExecutor:
    kube = create_autospec(Kube, instance=True)
    kube.read_docker_config.return_value = pull_config
    return ImageExecutor(kube, EGRESS, transport=httpx.MockTransport(answer))


def resolve(ex: ImageExecutor, image: str = "reg.example.com/team/web:v2", secrets=("pull",)):
    return ex.perform(run(), ResolveImage(image, secrets, "default"))


def test_a_token_service_on_another_host_is_asked_without_the_credentials_and_a_redirect_never_carries_them():
    seen: list[tuple[str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        host = request.headers["Host"]
        seen.append((f"{host}{request.url.path}", request.headers.get("Authorization")))
        if host == "auth.other.example":
            return httpx.Response(200, json={"token": "T"})
        if request.headers.get("Authorization") != "Bearer T" and host == "reg.example.com":
            return httpx.Response(401, headers={"WWW-Authenticate":
                                                'Bearer realm="https://auth.other.example/token",service="reg"'})
        if request.url.path.endswith("/manifests/v2"):
            return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": "sha256:" + "e" * 64})
        if request.url.path.endswith(f"/blobs/{CONFIG_DIGEST}") and host == "reg.example.com":
            return httpx.Response(307, headers={"Location": "https://storage.example/blob"})
        if host == "storage.example":
            return httpx.Response(200, content=CONFIG)
        return httpx.Response(404)

    found = resolve(executor(answer))
    assert isinstance(found, ImageResolved)
    assert (found.digest, found.version, found.revision) == ("sha256:" + "e" * 64, "2.0.0", "abc")
    sent = dict(seen)
    assert sent["auth.other.example/token"] is None, "credentials go to their registry only"
    assert sent["storage.example/blob"] is None, "a redirect never carries them"


def test_basic_auth_refused_names_the_secret():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    refused = resolve(executor(answer))
    assert isinstance(refused, Failed) and refused.reason == "ImagePullRefused"
    assert "refused the credentials of pull secret 'pull'" in refused.message


def test_no_credentials_for_a_registry_that_asks_for_them():
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    refused = resolve(executor(answer, pull_config={"auths": {"other.example.com": {"auth": "dTpw"}}}))
    assert isinstance(refused, Failed) and "has an imagePullSecret for reg.example.com" in refused.message


@pytest.mark.parametrize("status, reason", [(404, "ImageNotFound"), (500, "ImageNotFound")])
def test_an_unknown_manifest_is_image_not_found(status, reason):
    failed = resolve(executor(lambda request: httpx.Response(status)), secrets=())
    assert isinstance(failed, Failed) and failed.reason == reason and failed.retryable is (status >= 500)


def test_an_unreachable_registry_is_no_verdict():
    def answer(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    assert isinstance(resolve(executor(answer), secrets=()), ImageUnresolved)


def test_a_registry_the_egress_policy_refuses_is_not_asked():
    asked = []

    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200)

    unresolved = resolve(executor(answer), image="127.0.0.1:5000/team/web:v2", secrets=())
    assert isinstance(unresolved, ImageUnresolved) and "egress policy" in unresolved.why and asked == []


def test_credentials_are_looked_up_only_when_the_registry_asks_for_them():
    """An anonymous registry, or one that cannot be reached, costs no read of the ServiceAccount or a Secret (a
    request per run, on every run that names an image)."""
    def anonymous(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/manifests/v2"):
            return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": "sha256:" + "e" * 64})
        return httpx.Response(200, content=CONFIG)

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    for answer, expected in ((anonymous, ImageResolved), (unreachable, ImageUnresolved)):
        ex = executor(answer)
        assert isinstance(resolve(ex, secrets=()), expected)
        ex.kube.read_service_account.assert_not_called()  # type: ignore[attr-defined]
        ex.kube.read_docker_config.assert_not_called()  # type: ignore[attr-defined]

    def challenged(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="r"'})

    ex = executor(challenged)
    ex.kube.read_service_account.return_value = {"imagePullSecrets": [{"name": "from-account"}]}  # type: ignore[attr-defined]
    refused = resolve(ex, secrets=())
    assert isinstance(refused, Failed) and "'from-account'" in refused.message
    ex.kube.read_service_account.assert_called_once()  # type: ignore[attr-defined]


def _counting(asked: list[str]):
    def answer(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        if request.url.path.endswith("/manifests/v2"):
            return httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": "sha256:" + "e" * 64})
        if request.url.path.endswith(f"/blobs/{CONFIG_DIGEST}"):
            return httpx.Response(200, content=CONFIG)
        raise httpx.ConnectError("refused", request=request)
    return answer


def test_runs_of_a_namespace_asking_the_same_with_the_same_credentials_share_one_answer():
    asked: list[str] = []
    ex = executor(_counting(asked))
    first, again = resolve(ex), resolve(ex)
    assert first == again and isinstance(first, ImageResolved)
    assert len(asked) == 2, "one manifest and one config read for both runs"
    resolve(ex, secrets=("other",))
    assert len(asked) == 4, "other credentials may see another answer: they ask"
    ex.perform(dataclasses.replace(run(), namespace="elsewhere"), ResolveImage("reg.example.com/team/web:v2",
                                                                               ("pull",), "default"))
    assert len(asked) == 6, "another namespace's runs ask with their own credentials"


def test_an_unreachable_registry_is_asked_once_by_a_burst_and_again_after_the_moment():
    asked: list[str] = []
    ex = executor(_counting(asked))
    now = [0.0]
    ex.recent.clock = lambda: now[0]
    image = "reg.example.com/team/web:v9"
    assert all(isinstance(resolve(ex, image), ImageUnresolved) for _ in range(50))
    assert len(asked) == 1
    now[0] += registry.LOOKUP_SECONDS + 1
    resolve(ex, image)
    assert len(asked) == 2, "an answer serves only for a moment (a tag may be pushed again)"


def test_a_self_updates_crd_check_is_asked_each_time():
    asked: list[str] = []
    ex = executor(_counting(asked))
    action = ResolveImage("reg.example.com/team/web:v2", ("pull",), "default", check_crd=True)
    ex.perform(run(), action)
    ex.perform(run(), action)
    assert asked.count("/v2/team/web/manifests/v2") == 2, "its answer depends on the runs in flight now"
