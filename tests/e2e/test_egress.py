"""End-to-end: the operator's egress policy on the real control plane.

An operator of this module's own (shard `egress`, the default policy plus an allow for 127.0.0.1,
where this module's servers listen) fails runs whose repository, forge API or HTTP check point at
loopback (a recording listener on 127.0.0.2), link-local, the API server or its own metrics and
liveness ports with EgressRefused before any request; a redirecting git server and forge get the
run's token to no redirect target; and what a hostile forge says never reaches the run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.support.gitserver.git_http import GitHttpServer
from tests.support.gitserver.hostile import SECRET, Answer, HostileForge, RecordingListener, RedirectingServer

from .cluster import NAMESPACES
from .git_fixtures import MANIFEST, TOKEN, V1, V2
from .kube_helpers import GROUP, PLURAL, VERSION, create_deployment, deployment_image, events_of, run_body, wait_phase
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.e2e

SHARD = "egress"  # the session's operator serves only runs without a shard label: these are this module's
ENDED = {"Succeeded", "Failed", "RolledBack", "Superseded"}


@pytest.fixture(scope="module")
def sink() -> Iterator[RecordingListener]:
    with RecordingListener("127.0.0.2") as listener:
        yield listener


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileForge]:
    with HostileForge() as forge:
        yield forge


@pytest.fixture(scope="module")
def egress_operator(cluster, crd, tmp_path_factory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(str(cluster.kubeconfig), tmp_path_factory.mktemp("egress-operator"),
                           ("--standalone", f"--namespace={NAMESPACES}", f"--shard={SHARD}",
                            "--egress-allow=127.0.0.1/32"), name="egress")
    proc.start()
    yield proc
    proc.stop()
    print(f"egress operator logs: {proc.log_dir}")


@pytest.fixture
def ns(namespace, egress_operator) -> str:
    egress_operator.wait_watching(namespace)
    create_deployment(namespace, "app", V1, "v1", replicas=1)
    return namespace


def start(namespace: str, name: str, spec: dict[str, Any]) -> None:
    body = run_body(name, spec)
    body["metadata"]["labels"] = {"selfbootstrap.dev/shard": SHARD}
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def git_spec(repository_url: str, api_url: str, credentials: bool = False) -> dict[str, Any]:
    git: dict[str, Any] = {"repositoryUrl": repository_url, "change": {"setImage": {"path": "deploy/app.yaml"}},
                           "forge": {"apiUrl": api_url, "repository": "acme/web"}, "ci": {"required": False}}
    if credentials:
        git["credentials"] = {"secretRef": {"name": "git-token"}}
    return {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
            "restartWatchdog": {"retries": 1, "intervalSeconds": 1}, "git": git}


def http_spec(url: str) -> dict[str, Any]:
    return {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
            "restartWatchdog": {"retries": 1, "intervalSeconds": 1},
            "health": {"http": {"url": url, "retries": 1, "timeoutSeconds": 1}},
            "rollbackPolicy": {"onHealthFailure": False}}


def api_server() -> str:
    return str(client.Configuration.get_default_copy().host).rstrip("/")


# Each case: the run's spec from (sink, operator, git server URL), and the rule its message must name
# ({m} and {l}: the operator's metrics and liveness ports).
CASES = {
    "repository-loopback": (lambda s, o, g: git_spec(f"{s}/acme/web.git", f"{g}/api"), "127.0.0.2 is loopback"),
    "repository-link-local": (lambda s, o, g: git_spec("http://169.254.169.254/acme/web.git", f"{g}/api"),
                              "169.254.169.254 is link-local"),
    "repository-api-server": (lambda s, o, g: git_spec(f"{api_server()}/acme/web.git", f"{g}/api"),
                              "is the Kubernetes API server"),
    "forge-loopback": (lambda s, o, g: git_spec(f"{g}/acme/web.git", s), "127.0.0.2 is loopback"),
    "forge-api-server": (lambda s, o, g: git_spec(f"{g}/acme/web.git", api_server()), "the Kubernetes API server"),
    "forge-metrics": (lambda s, o, g: git_spec(f"{g}/acme/web.git", f"http://127.0.0.1:{o.metrics_port}"),
                      "port {m} is the operator's own metrics endpoint"),
    "check-loopback": (lambda s, o, g: http_spec(f"{s}/healthz"), "127.0.0.2 is loopback"),
    "check-link-local": (lambda s, o, g: http_spec("http://169.254.169.254/latest/meta-data/"),
                         "169.254.169.254 is link-local"),
    "check-api-server": (lambda s, o, g: http_spec(f"{api_server()}/healthz"), "is the Kubernetes API server"),
    "check-metrics": (lambda s, o, g: http_spec(f"http://127.0.0.1:{o.metrics_port}/metrics"),
                      "port {m} is the operator's own metrics endpoint"),
    "check-liveness": (lambda s, o, g: http_spec(f"http://127.0.0.1:{o.port}/healthz"),
                       "port {l} is the operator's own liveness endpoint"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_refused_destination_fails_the_run_before_any_request(ns, case, sink, git_server, egress_operator):
    build, rule = CASES[case]
    spec = build(sink.base_url, egress_operator, git_server.base_url)
    git_requests = len(git_server.requests)
    start(ns, "refused", spec)

    st = wait_phase(ns, "refused", ENDED, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "EgressRefused"), st
    url = spec["git"]["repositoryUrl"] if case.startswith("repository") else spec["git"]["forge"]["apiUrl"] \
        if case.startswith("forge") else spec["health"]["http"]["url"]
    assert url in st["message"], st["message"]
    assert rule.format(m=egress_operator.metrics_port, l=egress_operator.port) in st["message"], st["message"]
    assert (sink.connections, sink.requests) == (0, []), "nothing reached the recording listener"
    assert len(git_server.requests) == git_requests, "no git request either"
    assert st["failureReason"] == "EgressRefused" and "the Deployment was not touched" in st["message"]
    assert deployment_image(ns, "app") == V1, "a run whose URL is refused fails before its deploy"


def token_secret(namespace: str, *allowed: str) -> None:
    client.CoreV1Api().create_namespaced_secret(namespace, {
        "metadata": {"name": "git-token", "annotations": {"selfbootstrap.dev/allowed-urls": ", ".join(allowed)}},
        "stringData": {"token": TOKEN}})


def seen_by_people(namespace: str, name: str) -> str:
    st = client.CustomObjectsApi().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    return json.dumps(st.get("status")) + json.dumps(events_of(namespace, name))


def test_a_redirecting_git_server_gets_the_token_nowhere(ns, sink, hostile):
    with RedirectingServer(sink.base_url, 302) as redirector:
        token_secret(ns, f"{redirector.base_url}/", f"{hostile.api_url}/")
        start(ns, "redirected", git_spec(f"{redirector.base_url}/acme/web.git", hostile.api_url, credentials=True))
        st = wait_phase(ns, "redirected", ENDED, timeout=60)

    assert (st["phase"], st["reason"]) == ("Failed", "RedirectRefused"), st
    assert f"{redirector.base_url}/acme/web.git" in st["message"] and sink.base_url in st["message"]
    assert (sink.connections, sink.requests) == (0, [])
    assert TOKEN not in seen_by_people(ns, "redirected")


@pytest.fixture
def repository(ns, git_server: GitHttpServer) -> str:
    return git_server.create_repo(f"acme/{ns}", {"deploy/app.yaml": MANIFEST})


@pytest.mark.parametrize("answer, reason", [
    (Answer(302, b"", {"Location": "{sink}/steal"}), "RedirectRefused"),
    (None, "PullRequestFailed"),  # the hostile forge's 404, its body and status line holding a secret
], ids=["redirect", "secret-in-error-body"])
def test_a_hostile_forge_gets_no_token_elsewhere_and_its_words_stay_out(ns, repository, git_server, hostile, sink,
                                                                        answer, reason):
    hostile.script.clear()
    if answer is not None:
        answer.headers["Location"] = answer.headers["Location"].format(sink=sink.base_url)
        hostile.answer("GET", r"/repos/acme/web/pulls", answer)
    token_secret(ns, f"{git_server.base_url}/", f"{hostile.api_url}/")
    start(ns, "hostile", git_spec(repository, hostile.api_url, credentials=True))

    st = wait_phase(ns, "hostile", ENDED, timeout=90)

    assert (st["phase"], st["reason"]) == ("Failed", reason), st
    assert "Pushing" in [h["phase"] for h in st["history"]], "the run got as far as the forge"
    assert (sink.connections, sink.requests) == (0, [])
    assert hostile.authorized_requests(), "the forge itself got the token (its Secret allows it)"
    seen = seen_by_people(ns, "hostile")
    assert SECRET not in seen and TOKEN not in seen
    if answer is not None:
        assert f"{sink.base_url}/steal" in st["message"]
    else:
        assert "returned 404 (Not Found)" in st["message"]
