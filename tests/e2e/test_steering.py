"""End-to-end: steering a run takes the rights its effect needs, status is never an instruction, and a
retry made by the operator as shipped records who asked for it.

The operator runs as its shipped ServiceAccount; people are impersonated (kubectl --as). The editor
is bound to the aggregated selfbootstrap-run-editor role only: they may patch runs, not the Deployment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.support.kube import refusal_of

from .cluster import holds, localcluster, wait_for
from .kube_helpers import (
    GROUP,
    PLURAL,
    VERSION,
    create_deployment,
    create_run,
    deployment,
    events_of,
    get_run,
    replica_sets,
    status,
    wait_phase,
)
from .operator_fixtures import service_account_token, token_kubeconfig

pytestmark = [pytest.mark.e2e,
              pytest.mark.cluster_scoped("installs the admission policies and the roles for people")]

V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
SPEC = {"target": {"deployment": "app"}, "release": {"id": "v2", "image": V2},
        "restartWatchdog": {"retries": 2, "intervalSeconds": 1}}
FINISHED = {"Succeeded", "Failed", "RolledBack"}


@pytest.fixture
def editor(kubectl, namespace, author_rights) -> str:
    """erin, with selfbootstrap-run-editor in the namespace, and a run `r` there (made by the admin)."""
    kubectl("-n", namespace, "create", "rolebinding", "erin", "--clusterrole=selfbootstrap-run-editor",
            "--user=erin")
    create_run(namespace, "r", SPEC)
    # The policies take effect a moment after they are created: wait until they refuse erin (a dry run).
    wait_for(lambda: "may not patch" in refusal_of("erin", "-n", namespace, "annotate", "--dry-run=server", "sbr",
                                                   "r", "selfbootstrap.dev/abort=probe"),
             30, "the admission policy never took effect")
    settled(namespace, "r")
    return namespace


def settled(namespace: str, name: str, quiet: float = 2.0, timeout: float = 60) -> None:
    """Until the run stops changing (an operator serving the namespace may still be writing its status)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        version = get_run(namespace, name)["metadata"]["resourceVersion"]
        if version != last:
            last, since = version, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise AssertionError(f"run {name} kept changing for {timeout}s")


@pytest.mark.parametrize(("change", "field"), [
    (("label", "sbr", "r", "selfbootstrap.dev/shard=b"), "metadata.labels[selfbootstrap.dev/shard]"),
    (("annotate", "sbr", "r", "selfbootstrap.dev/abort=stop"), "metadata.annotations[selfbootstrap.dev/abort]"),
    (("annotate", "sbr", "r", "selfbootstrap.dev/abort="), "metadata.annotations[selfbootstrap.dev/abort]"),
    (("annotate", "sbr", "r", "selfbootstrap.dev/retry=1", "selfbootstrap.dev/retry-requested-by=erin"),
     "metadata.annotations[selfbootstrap.dev/retry]"),
    (("annotate", "sbr", "r", "selfbootstrap.dev/retry-of=other"), "metadata.annotations[selfbootstrap.dev/retry-of]"),
    (("annotate", "sbr", "r", "selfbootstrap.dev/requested-by=erin"),
     "metadata.annotations[selfbootstrap.dev/requested-by]"),
], ids=["shard", "abort", "empty-abort", "retry", "retry-of", "requested-by"])
def test_an_editor_may_not_steer_a_run_of_a_deployment_they_may_not_patch(editor, change, field):
    before = get_run(editor, "r")["metadata"]["resourceVersion"]

    refusal = refusal_of("erin", "-n", editor, *change)

    assert f"{field}: erin may not patch" in refusal, refusal
    assert get_run(editor, "r")["metadata"]["resourceVersion"] == before, "nothing was written"


def test_an_editor_may_neither_remove_a_shard_nor_an_abort_but_may_annotate_as_they_like(kubectl, editor):
    kubectl("-n", editor, "label", "sbr", "r", "selfbootstrap.dev/shard=a")
    kubectl("-n", editor, "annotate", "sbr", "r", "selfbootstrap.dev/abort=stop")
    assert "metadata.labels[selfbootstrap.dev/shard]: erin" in refusal_of(
        "erin", "-n", editor, "label", "sbr", "r", "selfbootstrap.dev/shard-")
    assert "metadata.annotations[selfbootstrap.dev/abort]: erin" in refusal_of(
        "erin", "-n", editor, "annotate", "sbr", "r", "selfbootstrap.dev/abort-")
    assert refusal_of("erin", "-n", editor, "annotate", "sbr", "r", "example.com/note=mine", "--overwrite") == ""
    assert refusal_of("erin", "-n", editor, "label", "sbr", "r", "team=payments") == ""


def test_who_may_patch_the_deployment_may_steer_but_names_only_themselves_and_records_nothing(kubectl, editor):
    kubectl("-n", editor, "create", "rolebinding", "bob", "--clusterrole=edit", "--user=bob")
    wait_for(lambda: refusal_of("bob", "-n", editor, "annotate", "--dry-run=server", "sbr", "r",
                                "selfbootstrap.dev/abort=probe") == "", 60, "edit never let bob abort")
    retry_as = ("annotate", "--dry-run=server", "sbr", "r", "selfbootstrap.dev/retry=1")

    assert refusal_of("bob", "-n", editor, *retry_as, "selfbootstrap.dev/retry-requested-by=bob") == ""
    assert "metadata.annotations[selfbootstrap.dev/retry-requested-by]: bob may not ask for a retry on behalf " \
           "of alice" in refusal_of("bob", "-n", editor, *retry_as, "selfbootstrap.dev/retry-requested-by=alice")
    refusal = refusal_of("bob", "-n", editor, "annotate", "sbr", "r", "selfbootstrap.dev/retry-of=other")
    assert "metadata.annotations[selfbootstrap.dev/retry-of]: bob may not patch selfbootstrapruns/status" in refusal
    forged = json.dumps({"apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun",
                         "metadata": {"name": "r-retry-9", "annotations": {"selfbootstrap.dev/retry-of": "r"}},
                         "spec": SPEC})
    refusal = refusal_of("bob", "-n", editor, "create", "-f", "-", input=forged)
    assert "metadata.annotations[selfbootstrap.dev/retry-of]: bob may not patch selfbootstrapruns/status" in refusal


def test_a_forged_status_is_refused_and_nothing_is_patched(operator, kubectl, namespace, author_rights):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "done", SPEC)
    assert wait_phase(namespace, "done", FINISHED)["phase"] == "Succeeded"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "mallory"},
            "rules": [{"apiGroups": [GROUP], "resources": ["selfbootstrapruns/status"], "verbs": ["patch"]}]}
    kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(role))
    kubectl("-n", namespace, "create", "rolebinding", "mallory", "--role=mallory", "--user=mallory")
    old = replica_sets(namespace, "app")[V1]
    before, generation = status(namespace, "done"), deployment(namespace, "app").metadata.generation
    forged = {"status": {"phase": "RollingBack", "reason": "RestartWatchdogFailed", "message": "forged",
                         "rollbackPolicyStatus": "allowed", "rollbackPolicyReason": "rollbackTargetValidated",
                         "rollbackTargetValid": True, "rollbackFailureClass": "restartWatchdogFailure",
                         "rollbackTargetReleaseId": "v1", "rollbackTargetReplicaSet": old["name"],
                         "rollbackTargetRevision": old["revision"]}}
    as_mallory = client.ApiClient()  # only the PATCH, with no GET first as kubectl would need
    as_mallory.set_default_header("Impersonate-User", "mallory")

    def forge(**dry_run: str) -> str:
        """'' when admitted, else the refusal."""
        try:
            client.CustomObjectsApi(as_mallory).patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, "done", forged, **dry_run)
        except ApiException as err:
            return f"{err.status} {err.body}"
        return ""

    # The policies take effect a moment after they are created: wait until a dry run is refused.
    wait_for(lambda: forge(dry_run="All"), 30, "the status policy never took effect")
    refusal = forge()
    assert refusal.startswith("403 ") and "status: mallory may not patch deployments/app" in refusal, refusal
    holds(lambda: status(namespace, "done") == before and deployment(namespace, "app").metadata.generation
          == generation, 5, lambda: f"something moved: {status(namespace, 'done').get('phase')}")
    assert deployment(namespace, "app").spec.template.spec.containers[0].image == V2


def sbr_as(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`kubectl sbr ARGS` as whoever the kubeconfig logs in."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "KUBECONFIG": str(kubeconfig)}
    return subprocess.run([str(localcluster.kubectl_path()), "sbr", *args], capture_output=True, text=True,
                          timeout=120, env=env, check=False)


def test_a_retry_works_as_shipped_and_says_who_asked(operator, kubectl, namespace, author_rights, tmp_path):
    create_deployment(namespace, "app", V1, "v1")
    create_run(namespace, "flaky", {**SPEC, "release": {"id": "v2", "image": f"{V2}-crashloop"}})
    assert wait_phase(namespace, "flaky", FINISHED)["phase"] == "RolledBack"
    # alice is a real user (a ServiceAccount's token, not impersonation) with `edit` in the namespace.
    kubectl("-n", namespace, "create", "serviceaccount", "alice")
    alice = f"system:serviceaccount:{namespace}:alice"
    kubectl("-n", namespace, "create", "rolebinding", "alice", "--clusterrole=edit",
            f"--serviceaccount={namespace}:alice")
    wait_for(lambda: refusal_of(alice, "auth", "can-i", "patch", "selfbootstrapruns.selfbootstrap.dev", "-n",
                                namespace) == "", 60, "the run roles were never aggregated into edit")
    as_alice = token_kubeconfig(kubectl, service_account_token(namespace, "alice"), tmp_path / "alice")

    done = sbr_as(as_alice, "-n", namespace, "retry", "flaky")

    assert done.returncode == 0 and "retried as flaky-retry-1" in done.stdout, done.stderr
    made = get_run(namespace, "flaky-retry-1")["metadata"]["annotations"]
    assert (made["selfbootstrap.dev/retry-of"], made["selfbootstrap.dev/requested-by"]) == ("flaky", alice)
    assert ("Normal", "Retried", f"retried as run flaky-retry-1 on behalf of {alice}") in events_of(namespace, "flaky")

    # Whoever asks next without saying who they are must take the name away (it is alice's, not theirs).
    with pytest.raises(AssertionError, match=f"admin may not ask for a retry on behalf of {alice}"):
        kubectl("-n", namespace, "annotate", "--overwrite", "sbr", "flaky", "selfbootstrap.dev/retry=2")
    kubectl("-n", namespace, "annotate", "--overwrite", "sbr", "flaky", "selfbootstrap.dev/retry=2",
            "selfbootstrap.dev/retry-requested-by-")
    wait_for(lambda: status(namespace, "flaky").get("retriedAs") == ["flaky-retry-1", "flaky-retry-2"], 30,
             lambda: f"no second retry: {status(namespace, 'flaky')}")
    assert "selfbootstrap.dev/requested-by" not in get_run(namespace, "flaky-retry-2")["metadata"]["annotations"]
    assert ("Normal", "Retried", "retried as run flaky-retry-2 on behalf of an unnamed user") in \
        events_of(namespace, "flaky")
    refused = [line for line in operator.log().splitlines() if "orbidden" in line and namespace in line]
    assert not refused, refused[:3]
