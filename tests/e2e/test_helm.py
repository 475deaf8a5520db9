"""The Helm chart, with the real helm (built from its Go module into the control plane's cache).

Rendering is compared with kustomize's manifests for the same install mode: the same RBAC, the
same CRDs, admission policy and user roles, the same operator container. Then the chart is
installed, upgraded (from one install mode to the other) and uninstalled on the local control plane.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from tools import localcluster

from .cluster import SESSION, wait_for

pytestmark = [pytest.mark.e2e]

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "selfbootstrap-operator"
MANIFESTS = ROOT / "manifests"
Docs = list[dict[str, Any]]


@pytest.fixture(scope="session")
def helm(request: pytest.FixtureRequest) -> Path:
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # its first build is shown as it happens
        return localcluster.build_helm()


def run_helm(helm: Path, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=timeout, check=False,
                          env={"HOME": "/tmp", "KUBECONFIG": os.environ["KUBECONFIG"],  # the session's
                               "HELM_CACHE_HOME": "/tmp/selfbootstrap-helm/cache",
                               "HELM_CONFIG_HOME": "/tmp/selfbootstrap-helm/config",
                               "HELM_DATA_HOME": "/tmp/selfbootstrap-helm/data"})
    if check and done.returncode:
        raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def template(helm: Path, *values: str) -> Docs:
    out = run_helm(helm, "template", "selfbootstrap-operator", str(CHART), "-n", "selfbootstrap-system",
                   *[a for v in values for a in ("--set", v)]).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def kustomize(kubectl, where: str) -> Docs:
    return [d for d in yaml.safe_load_all(kubectl("kustomize", str(MANIFESTS / where))) if d]


def one(docs: Docs, kind: str, name: str | None = None, namespace: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
             and (namespace is None or d["metadata"].get("namespace") == namespace)]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in {[(d['kind'], d['metadata']['name']) for d in docs]}"
    return found[0]


def kinds(docs: Docs) -> list[str]:
    return sorted(d["kind"] for d in docs)


# --- rendering --------------------------------------------------------------------


def test_lint_passes_in_both_modes(helm):
    run_helm(helm, "lint", "--strict", str(CHART))
    run_helm(helm, "lint", "--strict", str(CHART), "--set", "installMode=namespaced",
             "--set", "watchNamespaces={team-a,team-b}")


@pytest.mark.parametrize(("values", "message"), [
    (["installMode=everywhere"], "/installMode': value must be one of 'cluster', 'namespaced'"),
    (["installMode=namespaced"], "installMode namespaced needs at least one namespace in watchNamespaces"),
    (["replicaCount=2", "peering.enabled=false"], "replicaCount > 1 needs peering.enabled"),
    (["watchNamespaces={Team_A}"], "/watchNamespaces/0"),
    (["image.digest=latest"], "/image/digest"),
    (["operator.logFormat=xml"], "/operator/logFormat"),
    (["metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"], "needs metrics.service.enabled"),
    (["colour=blue"], "additional properties 'colour' not allowed"),
    (["egress.allow={10.0.0.0/8 https://x/}"], "/egress/allow/0"),
])
def test_bad_values_are_refused_naming_the_value(helm, values, message):
    done = run_helm(helm, "template", "x", str(CHART), *[a for v in values for a in ("--set", v)], check=False)
    assert done.returncode != 0 and message in done.stderr, done.stderr


def test_rbac_is_the_same_as_kustomize_cluster_wide(helm, kubectl):
    chart, kust = template(helm), kustomize(kubectl, ".")
    assert one(chart, "ClusterRole", "selfbootstrap-operator")["rules"] == \
        one(kust, "ClusterRole", "selfbootstrap-operator")["rules"]
    for docs in (chart, kust):
        binding = one(docs, "ClusterRoleBinding", "selfbootstrap-operator")
        assert binding["roleRef"]["name"] == "selfbootstrap-operator"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "selfbootstrap-operator",
                                        "namespace": "selfbootstrap-system"}]
    for docs in (chart, kust):  # the one Role: the operator's own pod, for its self-test
        assert [(d["kind"], d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs
                if d["kind"] in ("Role", "RoleBinding")] == [
            ("Role", "selfbootstrap-operator-self-test", "selfbootstrap-system"),
            ("RoleBinding", "selfbootstrap-operator-self-test", "selfbootstrap-system")]
    assert one(chart, "Role")["rules"] == one(kust, "Role")["rules"]


def test_rbac_is_the_same_as_kustomize_for_a_namespaced_install(helm, kubectl):
    chart, kust = template(helm, "installMode=namespaced", "watchNamespaces={team-a}"), kustomize(kubectl, "namespaced")
    assert one(chart, "Role", "selfbootstrap-operator", "team-a")["rules"] == \
        one(kust, "Role", "selfbootstrap-operator", "team-a")["rules"]
    assert one(chart, "ClusterRole", "selfbootstrap-operator-crd-reader")["rules"] == \
        one(kust, "ClusterRole", "selfbootstrap-operator-crd-reader")["rules"]
    for docs in (chart, kust):
        assert one(docs, "RoleBinding", "selfbootstrap-operator", "team-a")["subjects"] == \
            [{"kind": "ServiceAccount", "name": "selfbootstrap-operator", "namespace": "selfbootstrap-system"}]
        assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"
                and not d["metadata"]["name"].endswith(("-viewer", "-editor", "-approver"))] == [
        "selfbootstrap-operator-crd-reader"]
        args = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        assert [a for a in args if a.startswith("--namespace")] == ["--namespace=team-a"]


def test_the_operator_pod_is_the_same_as_kustomize(helm, kubectl):
    def container(docs: Docs) -> dict[str, Any]:
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        return {**c, "image": None, "imagePullPolicy": None, "pod": {k: v for k, v in pod.items()
                                                                     if k != "containers"}}
    chart, kust = container(template(helm)), container(kustomize(kubectl, "."))
    assert chart == kust
    chart_dep, kust_dep = one(template(helm), "Deployment"), one(kustomize(kubectl, "."), "Deployment")
    assert chart_dep["spec"]["strategy"] == kust_dep["spec"]["strategy"]
    assert one(template(helm), "Service")["spec"]["ports"] == one(kustomize(kubectl, "."), "Service")["spec"]["ports"]


def test_the_image_is_set_in_one_place(helm, kubectl):
    kust = one(kustomize(kubectl, "."), "Deployment")["spec"]["template"]
    chart = one(template(helm), "Deployment")["spec"]["template"]
    assert kust["spec"]["containers"][0]["image"] == chart["spec"]["containers"][0]["image"] == \
        "ghcr.io/selfbootstrap/selfbootstrap-operator:0.1.0"
    pinned = one(template(helm, "image.repository=registry.example.com/sbo", "image.tag=0.2.0"), "Deployment")
    assert pinned["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.example.com/sbo:0.2.0"
    assert pinned["spec"]["template"]["metadata"]["annotations"]["selfbootstrap.dev/release-id"] == "0.2.0"
    digest = "sha256:" + "a" * 64
    by_digest = one(template(helm, f"image.digest={digest}"), "Deployment")["spec"]["template"]["spec"]
    assert by_digest["containers"][0]["image"] == f"ghcr.io/selfbootstrap/selfbootstrap-operator@{digest}"


def test_crds_admission_policy_and_user_roles_are_kustomize_s(helm, kubectl):
    chart, kust = template(helm), kustomize(kubectl, ".")
    crds = {d["metadata"]["name"]: d for d in kust if d["kind"] == "CustomResourceDefinition"}
    for crd in (d for d in chart if d["kind"] == "CustomResourceDefinition"):
        assert crd["spec"] == crds.pop(crd["metadata"]["name"])["spec"], crd["metadata"]["name"]
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert crds == {}, "every CRD of kustomize's is in the chart"
    policies = [d["metadata"]["name"] for d in kust if d["kind"] == "ValidatingAdmissionPolicy"]
    assert policies == ["selfbootstrap-run-approvals", "selfbootstrap-run-author-rights",
                        "selfbootstrap-run-status-writers"]
    for theirs in policies:
        ours = theirs.replace("selfbootstrap-", "selfbootstrap-operator-", 1)
        assert one(chart, "ValidatingAdmissionPolicy", ours)["spec"] == \
            one(kust, "ValidatingAdmissionPolicy", theirs)["spec"]
        assert one(chart, "ValidatingAdmissionPolicyBinding", ours)["spec"] == \
            {**one(kust, "ValidatingAdmissionPolicyBinding", theirs)["spec"], "policyName": ours}
    for role in ("run-editor", "run-viewer", "run-approver"):
        ours, theirs = one(chart, "ClusterRole", f"selfbootstrap-operator-{role}"), one(kust, "ClusterRole",
                                                                                         f"selfbootstrap-{role}")
        assert ours["rules"] == theirs["rules"]
        aggregate = {k: v for k, v in theirs["metadata"]["labels"].items() if k.startswith("rbac.")}
        assert aggregate.items() <= ours["metadata"]["labels"].items()
    for copy in ("admission-policy.yaml", "user-roles.yaml"):
        assert (CHART / "files" / copy).read_text() == (MANIFESTS / "common" / copy).read_text(), (
            f"charts/selfbootstrap-operator/files/{copy} differs from manifests/common/{copy}: copy it over")
    assert (CHART / "files" / "crds" / "kopf.dev_peerings.yaml").read_text() == \
        (MANIFESTS / "common" / "peering.yaml").read_text()


def test_optional_parts(helm):
    assert "ServiceMonitor" not in kinds(template(helm))
    monitor = one(template(helm, "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom"),
                  "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    bare = template(helm, "crds.install=false", "peering.installCRDs=false", "admissionPolicy.enabled=false",
                    "userRoles.enabled=false", "metrics.enabled=false", "peering.enabled=false")
    assert kinds(bare) == ["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "ServiceAccount"]
    container = one(bare, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--metrics-bind-address=0" in container["args"]
    assert {"name": "SELFBOOTSTRAP_STANDALONE", "value": "1"} in container["env"]
    tuned = one(template(helm, "operator.env.SELFBOOTSTRAP_TICK_THREADS=8", "operator.shard=blue"), "Deployment")
    tuned_container = tuned["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "SELFBOOTSTRAP_TICK_THREADS", "value": "8"} in tuned_container["env"]
    assert "--shard=blue" in tuned_container["args"]
    walled = one(template(helm, "egress.allow={10.20.0.0/16,https://git.internal/acme/}",
                          "egress.deny={10.244.0.0/16}"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    walled = walled["env"]
    assert {"name": "SELFBOOTSTRAP_EGRESS_ALLOW", "value": "10.20.0.0/16,https://git.internal/acme/"} in walled
    assert {"name": "SELFBOOTSTRAP_EGRESS_DENY", "value": "10.244.0.0/16"} in walled


# --- on the cluster ---------------------------------------------------------------


@pytest.fixture
def namespaces(cluster) -> Iterator[tuple[str, str]]:
    """The release's namespace and a namespace a namespaced install serves (deleted afterwards)."""
    core = client.CoreV1Api()
    names = tuple(f"e2e-{SESSION}-helm-{uuid.uuid4().hex[:4]}" for _ in range(2))
    for name in names:
        core.create_namespace({"metadata": {"name": name, "labels": {"selfbootstrap.dev/e2e": "true"}}})
    yield names  # type: ignore[misc]
    for name in names:
        try:
            core.delete_namespace(name, propagation_policy="Background")
        except ApiException as err:
            if err.status != 404:
                raise


def exists(read, *args: str) -> bool:
    try:
        read(*args)
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


@pytest.mark.cluster_scoped("installs the chart (CRDs, ClusterRoles, admission policies) with helm")
def test_install_upgrade_uninstall(helm, crd, namespaces):
    namespace, served = namespaces
    release = f"sbo-{SESSION}"
    fullname = f"{release}-selfbootstrap-operator"
    rbac, apps, admission = client.RbacAuthorizationV1Api(), client.AppsV1Api(), client.AdmissionregistrationV1Api()
    base = [str(CHART), "-n", namespace, "--wait", "--timeout", "3m"]
    try:
        # The CRDs are there already (applied with kubectl, as from kustomize): the release adopts them.
        run_helm(helm, "install", release, *base, "--take-ownership")
        dep = apps.read_namespaced_deployment(fullname, namespace)
        assert dep.status.available_replicas == 1
        assert exists(rbac.read_cluster_role, fullname)
        assert exists(admission.read_validating_admission_policy, f"{fullname}-run-author-rights")
        assert exists(admission.read_validating_admission_policy, f"{fullname}-run-status-writers")
        crd_meta = client.ApiextensionsV1Api().read_custom_resource_definition(
            "selfbootstrapruns.selfbootstrap.dev").metadata
        assert crd_meta.annotations["meta.helm.sh/release-name"] == release
        assert crd_meta.annotations["helm.sh/resource-policy"] == "keep"

        # An upgrade to a new image that serves one namespace only: the ClusterRole gives way to a Role there.
        run_helm(helm, "upgrade", release, *base, "--reuse-values", "--set", "image.tag=0.1.1",
                 "--set", "installMode=namespaced", "--set", f"watchNamespaces={{{served}}}")
        dep = apps.read_namespaced_deployment(fullname, namespace)
        container = dep.spec.template.spec.containers[0]
        assert container.image == "ghcr.io/selfbootstrap/selfbootstrap-operator:0.1.1"
        assert f"--namespace={served}" in container.args
        assert dep.spec.template.metadata.annotations["selfbootstrap.dev/release-id"] == "0.1.1"
        assert dep.metadata.annotations["deployment.kubernetes.io/revision"] == "2"
        wait_for(lambda: apps.read_namespaced_deployment(fullname, namespace).status.updated_replicas == 1, 60,
                 "the upgraded operator pod never came up")
        assert exists(rbac.read_namespaced_role, fullname, served)
        assert not exists(rbac.read_cluster_role, fullname)
        assert exists(rbac.read_cluster_role, f"{fullname}-crd-reader")
        history = json.loads(run_helm(helm, "history", release, "-n", namespace, "-o", "json").stdout)
        assert [h["status"] for h in history] == ["superseded", "deployed"]
    finally:
        done = run_helm(helm, "uninstall", release, "-n", namespace, "--wait", "--timeout", "2m", check=False)
    assert done.returncode == 0, done.stderr
    assert not exists(apps.read_namespaced_deployment, fullname, namespace)
    assert not exists(rbac.read_namespaced_role, fullname, served)
    assert not exists(rbac.read_cluster_role, f"{fullname}-crd-reader")
    assert not exists(admission.read_validating_admission_policy, f"{fullname}-run-author-rights")
    assert exists(client.ApiextensionsV1Api().read_custom_resource_definition,
                  "selfbootstrapruns.selfbootstrap.dev"), "the CRD, and with it every run, outlives the release"
