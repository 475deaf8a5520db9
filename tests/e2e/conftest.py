"""End-to-end fixtures: the session's own control plane (see cluster.py), kubectl, a namespace per test.

Every test under tests/e2e is marked `e2e`; `pytest -m "not e2e"` runs without a cluster.
Namespaces carry this session's id (`e2e-<session>-<test>`) and the operator watches only
those, so that even on a shared cluster (SELFBOOTSTRAP_TEST_CLUSTER=reuse, or an existing one)
no session touches another's runs.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from . import cluster as cluster_lib
from .cluster import SESSION, Cluster, wait_for
from .git_fixtures import forge, git_server, repo  # noqa: F401  (fixtures)
from .operator_fixtures import author_rights, crd, operator, operator_kubeconfig  # noqa: F401  (fixtures)

E2E_DIR = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs against the real local control plane")
    config.addinivalue_line("markers", "cluster_scoped(what): changes cluster-scoped objects (what it does), "
                            "so it is refused on an existing cluster (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """A cluster_scoped test is refused on an existing cluster before any of its fixtures runs."""
    marker = item.get_closest_marker("cluster_scoped")
    if marker is not None:
        cluster_lib.refuse_unless_owned(None, marker.args[0])


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """The session's control plane, up for the whole session and removed at its end; sets KUBECONFIG
    and the Python client's config.

    Its first start builds the binaries (about 15 minutes on a cold machine): the build's
    output is shown as it happens rather than captured.
    """
    capture = request.config.pluginmanager.getplugin("capturemanager")
    try:
        with capture.global_and_fixture_disabled():
            started = cluster_lib.start()
    except (SystemExit, subprocess.CalledProcessError) as err:
        pytest.fail(f"the control plane did not come up: {err}", pytrace=False)
    config.load_kube_config(str(started.kubeconfig))
    yield started
    cluster_lib.stop(started)


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Callable[..., str]:
    """kubectl(*args, input=None, timeout=120) -> stdout; AssertionError with stderr on failure."""
    return cluster_lib.kubectl


@pytest.fixture(scope="session")
def kubectl_as(cluster: Cluster) -> Callable[..., str]:
    """kubectl_as(user, *args, groups=(), input=None) -> stdout: kubectl impersonating the user
    (--as, --as-group); AssertionError with stderr on failure, e.g. a refusal."""
    return cluster_lib.kubectl_as


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace (with its default ServiceAccount), deleted after the test.

    With the session's operator in use, the test starts once the operator watches the namespace
    (it finds namespaces of its pattern through a watch). Runs are released before the namespace
    goes, so that no namespace is left Terminating behind a finalizer when the operator stops.
    """
    name = f"e2e-{SESSION}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name, "labels": {"selfbootstrap.dev/e2e": "true"}}})
    wait_for(lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             30, f"namespace {name} never got its default ServiceAccount (is kube-controller-manager running?)")
    if "operator" in request.fixturenames:
        request.getfixturevalue("operator").wait_watching(name)
    yield name
    release_runs(name)
    try:
        core.delete_namespace(name, propagation_policy="Background")
    except ApiException as err:
        if err.status != 404:
            raise


def release_runs(namespace: str, timeout: float = 20) -> None:
    """Delete the namespace's runs while the operator can still let go of them; free any it did not."""
    custom = client.CustomObjectsApi()
    group = ("selfbootstrap.dev", "v1alpha1", namespace, "selfbootstrapruns")
    custom.delete_collection_namespaced_custom_object(*group)
    deadline = time.monotonic() + timeout
    while (left := custom.list_namespaced_custom_object(*group)["items"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    for run in left:
        if run["metadata"].get("finalizers"):
            custom.patch_namespaced_custom_object(*group, run["metadata"]["name"], {"metadata": {"finalizers": None}})
