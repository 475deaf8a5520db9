"""End-to-end: the Kubernetes adapter's status writes against the real API server.

The status is written as a JSON patch guarded by a test of the stored status (or, when Go would
encode it otherwise, of the run's resourceVersion): a field
the core clears is removed on the server (a merge patch of a dump without it could not
clear it), and a write based on a stale read is refused instead of overwriting.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from kubernetes import client

from selfbootstrap.adapters.kube import Kube, StatusConflictError
from selfbootstrap.core.text import printable
from selfbootstrap.models import Phase, RunStatus

from .cluster import SESSION
from .kube_helpers import create_run, get_run

pytestmark = pytest.mark.e2e

SPEC = {"target": {"deployment": "app"}, "release": {"id": "v2", "image": "registry.example.com/app:v2"}}


@pytest.fixture
def unwatched_namespace(cluster, crd) -> Iterator[str]:
    """A namespace no operator of this session watches (e2e-raw-<session>-*, not e2e-<session>-*): the test is
    the only writer."""
    name = f"e2e-raw-{SESSION}-{uuid.uuid4().hex[:6]}"
    core = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture
def kube(cluster) -> Kube:
    return Kube(client.ApiClient())


def test_a_cleared_field_is_removed_on_the_server(kube, unwatched_namespace):
    run = create_run(unwatched_namespace, "r", SPEC)
    first = RunStatus(phase=Phase.ROLLING_BACK, reason="RestartWatchdogFailed", message="pods crash",
                      rollback_healthy=False, rollback_target_replica_set="app-1")
    run = kube.write_status(run, first.dump())
    assert run["status"]["rollbackHealthy"] is False

    cleared = first.model_copy(update={"rollback_healthy": None, "rollback_target_replica_set": None,
                                       "message": None})
    kube.write_status(run, cleared.dump())

    stored = get_run(unwatched_namespace, "r")["status"]
    assert "rollbackHealthy" not in stored and "rollbackTargetReplicaSet" not in stored
    assert "message" not in stored
    assert (stored["phase"], stored["reason"]) == ("RollingBack", "RestartWatchdogFailed")


def test_a_write_based_on_a_stale_read_is_refused(kube, unwatched_namespace):
    run = create_run(unwatched_namespace, "r", SPEC)
    run = kube.write_status(run, RunStatus(phase=Phase.PENDING, reason="Accepted").dump())
    kube.write_status(run, RunStatus(phase=Phase.DEPLOYING, reason="Started").dump())  # another writer

    with pytest.raises(StatusConflictError):
        kube.write_status(run, RunStatus(phase=Phase.FAILED, reason="Stale").dump())
    assert get_run(unwatched_namespace, "r")["status"]["phase"] == "Deploying"


def test_the_first_write_is_refused_when_someone_wrote_first(kube, unwatched_namespace):
    run = create_run(unwatched_namespace, "r", SPEC)
    kube.write_status(run, RunStatus(phase=Phase.PENDING, reason="Accepted").dump())
    with pytest.raises(StatusConflictError):
        kube.write_status(run, RunStatus(phase=Phase.PENDING, reason="Other").dump())


def test_an_unchanged_status_is_not_written(kube, unwatched_namespace):
    run = create_run(unwatched_namespace, "r", SPEC)
    run = kube.write_status(run, RunStatus(phase=Phase.PENDING, reason="Accepted").dump())
    version = run["metadata"]["resourceVersion"]
    again = kube.write_status(run, RunStatus.model_validate(run["status"]).dump())
    assert again["metadata"]["resourceVersion"] == version
    assert get_run(unwatched_namespace, "r")["metadata"]["resourceVersion"] == version


@pytest.mark.parametrize("text", ["é 🚀", "a=1&b=<2>", "line\nbreak \"quoted\" \u2028"])
def test_a_status_with_any_characters_can_be_written_again(kube, unwatched_namespace, text):
    run = create_run(unwatched_namespace, "r", SPEC)
    run = kube.write_status(run, RunStatus(phase=Phase.DEPLOYING, reason="Started", message=text).dump())
    run = kube.write_status(run, RunStatus(phase=Phase.VERIFYING_HEALTH, reason="Deployed", message=text).dump())
    stored = get_run(unwatched_namespace, "r")["status"]
    assert (stored["phase"], stored["message"]) == ("VerifyingHealth", printable(text)), "stored as data"


@pytest.mark.parametrize(("message", "refused"), [("plain", False), ("é", True)])
def test_a_change_of_the_run_s_metadata_counts_as_a_conflict_only_when_status_cannot_be_tested(
        kube, unwatched_namespace, message, refused):
    run = create_run(unwatched_namespace, "r", SPEC)
    run = kube.write_status(run, RunStatus(phase=Phase.PENDING, reason="Accepted", message=message).dump())
    client.CustomObjectsApi().patch_namespaced_custom_object(
        "selfbootstrap.dev", "v1alpha1", unwatched_namespace, "selfbootstrapruns", "r",
        {"metadata": {"annotations": {"example.com/note": "kopf or a person"}}})
    if refused:
        with pytest.raises(StatusConflictError):
            kube.write_status(run, RunStatus(phase=Phase.DEPLOYING, reason="Started").dump())
    else:
        kube.write_status(run, RunStatus(phase=Phase.DEPLOYING, reason="Started").dump())
        assert get_run(unwatched_namespace, "r")["status"]["phase"] == "Deploying"
