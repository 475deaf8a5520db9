"""Resource paths: the REST path of each kind the operator touches; a name can never walk the path. And who the
requests say they come from."""

from __future__ import annotations

import http.server

import pytest
from kubernetes import client

from selfbootstrap.adapters.kubeapi import KubeApi, api_client, resource_path
from tests.support.gitserver.loopback import LoopbackServer, QuietHandler


@pytest.mark.parametrize(("args", "expected"), [
    (("", "v1", "pods", "apps"), "/api/v1/namespaces/apps/pods"),
    (("", "v1", "secrets", "apps", "token"), "/api/v1/namespaces/apps/secrets/token"),
    (("apps", "v1", "deployments", "apps", "web"), "/apis/apps/v1/namespaces/apps/deployments/web"),
    (("selfbootstrap.dev", "v1alpha1", "selfbootstrapruns", "apps", "r1", "status"),
     "/apis/selfbootstrap.dev/v1alpha1/namespaces/apps/selfbootstrapruns/r1/status"),
    (("selfbootstrap.dev", "v1alpha1", "selfbootstrapruns"), "/apis/selfbootstrap.dev/v1alpha1/selfbootstrapruns"),
    (("apiextensions.k8s.io", "v1", "customresourcedefinitions", None, "a.b"),
     "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/a.b"),
    (("apps", "v1", "deployments", "apps", "../../secrets/x"),
     "/apis/apps/v1/namespaces/apps/deployments/..%2F..%2Fsecrets%2Fx"),
    (("apps", "v1", "deployments", "a/b", "web?watch=1"),
     "/apis/apps/v1/namespaces/a%2Fb/deployments/web%3Fwatch%3D1"),
])
def test_resource_path(args: tuple[str, ...], expected: str) -> None:
    assert resource_path(*args) == expected  # type: ignore[arg-type]


class _Recording(LoopbackServer):
    """Answers every request with an empty JSON object and keeps the User-Agent it was sent."""

    def __init__(self) -> None:
        self.agents: list[str | None] = []

    def handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        agents = self.agents

        class Handler(QuietHandler):
            def _serve(self) -> None:
                agents.append(self.headers.get("User-Agent"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        return Handler


def test_requests_name_the_program_in_user_agent() -> None:
    """The API server's audit log says which program asked (not the client library's code generator)."""
    with _Recording() as server:
        configuration = client.Configuration(host=server.base_url)
        api = KubeApi(api_client(configuration, "selfbootstrap-operator/1.2.3"))
        assert api.request("GET", resource_path("apps", "v1", "deployments", "apps", "web")) == {}
    assert server.agents == ["selfbootstrap-operator/1.2.3"]
