"""Resource paths: the REST path of each kind the operator touches; a name can never walk the path."""

from __future__ import annotations

import pytest

from selfbootstrap.adapters.kubeapi import resource_path


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
