"""End-to-end: runs that are safe to keep in git, conditions pipelines can wait on, Argo CD and Flux health,
abort and retry, labels and Events.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.gitops import argocd_health, kstatus

from .cluster import kubectl as run_kubectl
from .cluster import wait_for
from .git_fixtures import FINISHED, V1, git_spec
from .kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    create_deployment,
    create_run,
    deployment_image,
    get_run,
    replica_sets,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

WATCHDOG = {"retries": 2, "intervalSeconds": 1}


def release(version: str, image: str | None = None, **extra) -> dict:
    return {"target": {"deployment": "app"}, "restartWatchdog": WATCHDOG,
            "release": {"id": version, "image": image or f"registry.example.com/app:{version}", **extra}}


def delete_run(namespace: str, name: str) -> None:
    client.CustomObjectsApi().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    def gone() -> bool:
        try:
            get_run(namespace, name)
        except ApiException as err:
            return err.status == 404
        return False

    wait_for(gone, 30, f"run {name} was not deleted")


def test_a_finished_run_made_again_by_a_gitops_engine_does_not_go_back_in_time(namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "web-v2", release("v2"))
    assert wait_phase(namespace, "web-v2", FINISHED)["phase"] == "Succeeded"
    create_run(namespace, "web-v3", release("v3"))
    assert wait_phase(namespace, "web-v3", FINISHED)["phase"] == "Succeeded"
    delete_run(namespace, "web-v2")
    create_run(namespace, "web-v2", release("v2"))  # the engine syncs it back from git

    st = wait_phase(namespace, "web-v2", FINISHED)

    assert (st["phase"], st["reason"]) == ("Superseded", "Superseded"), st
    assert "run named 'web-v2' already deployed release v2" in st["message"]
    assert deployment_image(namespace, "app") == "registry.example.com/app:v3"
    create_run(namespace, "back-to-v2", release("v2"))
    st = wait_phase(namespace, "back-to-v2", FINISHED)
    assert st["phase"] == "Superseded" and "run 'web-v3'" in st["message"]
    create_run(namespace, "v2-on-purpose", release("v2", redeploy=True))
    assert wait_phase(namespace, "v2-on-purpose", FINISHED)["phase"] == "Succeeded"
    assert deployment_image(namespace, "app") == "registry.example.com/app:v2"


def test_a_run_expecting_another_current_release_does_not_deploy(namespace):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "guarded", release("v2", expectedCurrentReleaseId="v0"))
    st = wait_phase(namespace, "guarded", FINISHED)
    assert (st["phase"], st["reason"]) == ("Failed", "CurrentReleaseMismatch")
    assert deployment_image(namespace, "app") == V1


def test_a_rolled_back_git_run_merges_its_revert_so_git_agrees_with_the_cluster(namespace, repo, git_server, forge):
    spec = git_spec(repo, forge, image="registry.example.com/app:v2-crashloop", revertMode="Merge")
    create_run(namespace, "reverted", spec)

    st = wait_phase(namespace, "reverted", FINISHED, timeout=120)

    assert st["phase"] == "RolledBack", st
    g = st["git"]
    assert (g["revertStatus"], g["revertCiStatus"]) == ("merged", "success")
    main = git_server.read_file(repo["name"], "main", "deploy/app.yaml")
    assert f"image: {V1}" in main and "crashloop" not in main, "the base branch is back at the old release"
    assert git_server.branches(repo["name"])["main"] == g["revertMergeCommitSha"]
    assert deployment_image(namespace, "app") == V1


def waiter(namespace: str, name: str, condition: str, out: dict) -> threading.Thread:
    def wait() -> None:
        try:
            run_kubectl("-n", namespace, "wait", f"sbr/{name}", f"--for=condition={condition}", "--timeout=120s",
                        timeout=130)
            out[condition] = time.time()
        except AssertionError as err:
            out[condition] = err

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("image, ends, conditions", [
    ("registry.example.com/app:v2", "Succeeded", ("Complete", "Ready", "Reconciling=False")),
    ("registry.example.com/app:v2-crashloop", "RolledBack", ("Failed", "Stalled", "Reconciling=False")),
    ("registry.example.com/app:v2-notready", "Failed", ("Failed", "Stalled", "Reconciling=False")),
], ids=["success", "rollback", "failure"])
def test_kubectl_wait_returns_as_the_run_ends(namespace, image, ends, conditions):
    create_deployment(namespace, "app", V1, "v1")
    spec = release("v2", image)
    if ends == "Failed":
        spec["rollbackPolicy"] = {"onRestartWatchdogFailure": False}
    create_run(namespace, "waited", spec)
    seen: dict = {}
    threads = [waiter(namespace, "waited", c, seen) for c in conditions]
    st = wait_phase(namespace, "waited", FINISHED)
    for thread in threads:
        thread.join(timeout=10)

    assert st["phase"] == ends, st
    finished = datetime.fromisoformat(st["finishedAt"]).timestamp()
    for c in conditions:
        assert isinstance(seen.get(c), float), f"kubectl wait --for=condition={c}: {seen.get(c)}"
        assert seen[c] - finished < 1.5, f"{c} took {seen[c] - finished:.2f}s after the end"


def test_argocd_and_flux_read_real_runs(namespace, kubectl):
    for app in ("a", "b"):
        create_deployment(namespace, app, V1, "v1", replicas=1)

    def on(app: str, version: str, image: str, retries: int = 2) -> dict:
        spec = release(version, image)
        spec["target"]["deployment"] = app
        spec["restartWatchdog"] = {"retries": retries, "intervalSeconds": 1}
        return spec

    create_run(namespace, "long", on("a", "v2", "registry.example.com/app:v2", retries=60))
    wait_phase(namespace, "long", "WatchingRestarts")
    create_run(namespace, "queued", on("a", "v3", "registry.example.com/app:v3"))
    wait_for(lambda: status(namespace, "queued").get("reason") == "Queued", 30, "not queued")
    create_run(namespace, "good", on("b", "v2", "registry.example.com/app:v2"))
    wait_phase(namespace, "good", FINISHED)
    create_run(namespace, "bad", on("b", "v3", "registry.example.com/app:v3-crashloop"))
    wait_phase(namespace, "bad", FINISHED)

    expected = {"long": ("Progressing", "InProgress"), "queued": ("Suspended", "InProgress"),
                "good": ("Healthy", "Current"), "bad": ("Degraded", "Failed")}
    for name, (health, flux) in expected.items():
        obj = get_run(namespace, name)
        assert (argocd_health(obj)[0], kstatus(obj)) == (health, flux), (name, obj["status"]["phase"])


def test_abort_mid_watchdog_rolls_back(namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1")
    spec = release("v2")
    spec["restartWatchdog"] = {"retries": 60, "intervalSeconds": 1}
    create_run(namespace, "stopped", spec)
    wait_phase(namespace, "stopped", "WatchingRestarts")

    kubectl("-n", namespace, "annotate", "sbr", "stopped", "selfbootstrap.dev/abort=the release notes are wrong")
    st = wait_phase(namespace, "stopped", FINISHED)

    assert (st["phase"], st["rollbackFailureClass"]) == ("RolledBack", "aborted"), st
    assert "the release notes are wrong" in st["failureMessage"]
    assert deployment_image(namespace, "app") == V1


def test_retry_makes_a_linked_run(namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "flaky", release("v2", "registry.example.com/app:v2-crashloop"))
    assert wait_phase(namespace, "flaky", FINISHED)["phase"] == "RolledBack"

    kubectl("-n", namespace, "annotate", "sbr", "flaky", "selfbootstrap.dev/retry=1")
    retried = wait_for(lambda: status(namespace, "flaky").get("retriedAs"), 30, "no retry was made")

    assert retried == ["flaky-retry-1"]
    st = wait_phase(namespace, "flaky-retry-1", FINISHED)
    assert (st["retryOf"], st["phase"]) == ("flaky", "RolledBack")
    assert get_run(namespace, "flaky-retry-1")["spec"] == get_run(namespace, "flaky")["spec"]
    kubectl("-n", namespace, "annotate", "--overwrite", "sbr", "flaky", "selfbootstrap.dev/retry=1")
    time.sleep(2)
    assert status(namespace, "flaky")["retriedAs"] == ["flaky-retry-1"], "the same request retries once"


def test_runs_are_labelled_with_their_deployment_and_not_in_all(namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "labelled", release("v2"))
    wait_phase(namespace, "labelled", FINISHED)
    assert kubectl("-n", namespace, "get", "sbr", "-l", "selfbootstrap.dev/deployment=app", "-o", "name").split() == [
        "selfbootstraprun.selfbootstrap.dev/labelled"]
    assert "selfbootstrap" not in kubectl("-n", namespace, "get", "all", "-o", "name")
    run = get_run(namespace, "labelled")
    assert not run["metadata"].get("finalizers"), "a finished run keeps no finalizer"
    label_owners = [f["manager"] for f in run["metadata"]["managedFields"]
                    if "f:selfbootstrap.dev/deployment" in json.dumps(f.get("fieldsV1"))]
    assert label_owners == ["kopf"], "the label came in kopf's own patch (with the finalizer), not a request of its own"


def test_events_sort_as_they_happened_and_key_steps_show_on_the_deployment(namespace, kubectl):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "told", release("v2"))
    wait_phase(namespace, "told", FINISHED)
    raw = client.EventsV1Api().list_namespaced_event(namespace, _preload_content=False)
    events = json.loads(raw.data)["items"]
    ours = sorted((e for e in events if e["regarding"]["name"] == "told"), key=lambda e: e["eventTime"])
    assert [e["reason"] for e in ours] == ["Started", "Deployed", "Healthy", "Succeeded"]
    on_deployment = [e["reason"] for e in events if e["regarding"]["kind"] == "Deployment"
                     and e.get("reportingController") == "selfbootstrap.dev/operator"]
    assert on_deployment == ["Deployed"]
    described = kubectl("-n", namespace, "describe", "deployment", "app")
    assert "Deployed" in described and "release v2 deployed" in described
    assert len(replica_sets(namespace, "app")) == 2
