"""Fixtures that install the CRD, the operator's RBAC and the admission policy, and run the operator
as a real subprocess with the identity it is shipped with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from .cluster import NAMESPACES, free_port, refuse_unless_owned, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "selfbootstrap.dev_selfbootstrapruns.yaml"
COMMON = ROOT / "manifests" / "common"
POLICY = COMMON / "admission-policy.yaml"
USER_ROLES = COMMON / "user-roles.yaml"
# How long a new namespace may take to be watched: a namespace watch that stalls silently is
# re-established after the server's and then the client's timeout (30 s + 60 s in the tests), and a
# machine busy deleting other tests' namespaces adds to that.
WATCH_ALLOWANCE = 150
# How long a new namespace may take to be watched: a namespace watch that stalls silently is
# re-established after the server's and then the client's timeout (30 s + 60 s in the tests), and a
# machine busy deleting another test's namespaces adds to it.
WATCH_ALLOWANCE = 150
OPERATOR_NS, OPERATOR_SA = "selfbootstrap-system", "selfbootstrap-operator"


class OperatorProcess:
    """`python -m selfbootstrap` against the test cluster; killable and restartable.

    By default it watches only this test session's namespaces; its liveness and metrics
    endpoints listen on ports that are free when it starts.
    """

    def __init__(self, kubeconfig: str, log_dir: Path,
                 args: tuple[str, ...] = ("--standalone", f"--namespace={NAMESPACES}"),
                 name: str = "operator", env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.log_dir = log_dir
        self.args = args
        self.name = name
        self.env = env or {}
        self.port = 0
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def metrics(self) -> str:
        import httpx
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "operator already running"
        self.starts += 1
        self.port, self.metrics_port = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "PYTHONUNBUFFERED": "1",
               "SELFBOOTSTRAP_WATCH_SERVER_TIMEOUT": "30", "SELFBOOTSTRAP_PEERING_LIFETIME": "10", **self.env}
        log = open(self.log_path, "wb")  # noqa: SIM115  (the operator's stdout for its life)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "selfbootstrap", *self.args, "--verbose",
             f"--liveness=http://127.0.0.1:{self.port}/healthz",
             f"--metrics-bind-address=127.0.0.1:{self.metrics_port}"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_alive()

    def _wait_alive(self, timeout: float = 30.0) -> None:
        import httpx
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise RuntimeError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"operator not alive within {timeout}s:\n{self.tail()}")

    def watching(self, namespace: str) -> bool:
        """Whether this run of the operator watches the namespace's runs yet (its log says so)."""
        needle = f"Starting the watch-stream for selfbootstrapruns.v1alpha1.selfbootstrap.dev in '{namespace}'"
        try:
            return needle in self.log_path.read_text(errors="replace")
        except OSError:
            return False

    def wait_watching(self, *namespaces: str) -> None:
        """Wait until it watches every namespace's runs, or fail with the end of its log."""
        wait_for(lambda: all(self.watching(ns) for ns in namespaces), WATCH_ALLOWANCE,
                 lambda: self.not_watching(", ".join(namespaces)))

    def not_watching(self, namespace: str) -> str:
        """What to say when it never watched the namespace: the end of its log, to see why."""
        try:
            tail = self.log_path.read_text(errors="replace")[-4000:]
        except OSError as err:
            tail = f"(no log: {err})"
        return f"{self.name} never watched {namespace}; its log ends:\n{tail}"

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob(f"{self.name}-*.log")))

    def kill(self) -> None:
        """SIGKILL: no cleanup, no finalizers released; exactly what a node failure does."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def wait_established(kubectl, *crds: str, timeout: float = 60) -> None:
    """Wait until the CRDs are served. Not `kubectl wait --for=condition=Established`: on a CRD created a
    moment before (a fresh control plane), whose status.conditions is still null, it fails at once."""
    def established(name: str) -> bool:
        conditions = json.loads(kubectl("get", "crd", name, "-o", "json")).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    wait_for(lambda: all(established(name) for name in crds), timeout, f"{', '.join(crds)} never became Established")


def token_kubeconfig(kubectl, token: str, path: Path) -> Path:
    """A kubeconfig for the session's cluster that authenticates with the token instead."""
    config = json.loads(kubectl("config", "view", "--minify", "--flatten", "-o", "json"))
    config["users"] = [{"name": config["contexts"][0]["context"]["user"], "user": {"token": token}}]
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def service_account_token(namespace: str, name: str, seconds: int = 24 * 3600) -> str:
    """A token of the ServiceAccount from the TokenRequest API (a day outlasts any session)."""
    request = {"spec": {"expirationSeconds": seconds}}
    return client.CoreV1Api().create_namespaced_service_account_token(name, namespace, request).status.token


@pytest.fixture(scope="session")
def crd(cluster, kubectl) -> None:
    """The runs' CRD, applied on a control plane of ours; on an existing cluster it must be there already."""
    if cluster.existing:
        try:
            kubectl("get", "crd/selfbootstrapruns.selfbootstrap.dev")
        except AssertionError:
            pytest.skip("SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1: the tests do not install CRDs on a cluster they "
                        f"did not start; install it first (kubectl apply --server-side -f {CRD.relative_to(ROOT)})")
    else:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kubectl, "selfbootstrapruns.selfbootstrap.dev")


@pytest.fixture(scope="session")
def operator_kubeconfig(cluster, kubectl, tmp_path_factory) -> str:
    """A kubeconfig as the shipped ServiceAccount selfbootstrap-system/selfbootstrap-operator, bound to the
    shipped ClusterRole (manifests/cluster-rbac.yaml): the operator in the tests has exactly its
    installed rights, not the admin's. On an existing cluster: that ServiceAccount if it is installed
    there, else the kubeconfig's own user (the tests install no RBAC there)."""
    if cluster.existing:
        try:
            kubectl("get", "clusterrolebinding", OPERATOR_SA)
            kubectl("-n", OPERATOR_NS, "get", "serviceaccount", OPERATOR_SA)
        except AssertionError:
            return str(cluster.kubeconfig)
    else:
        kubectl("apply", "-f", str(COMMON / "namespace.yaml"))
        kubectl("-n", OPERATOR_NS, "apply", "-f", str(COMMON / "serviceaccount.yaml"),
                "-f", str(ROOT / "manifests" / "cluster-rbac.yaml"))
    path = tmp_path_factory.mktemp("identity") / "operator-kubeconfig"
    return str(token_kubeconfig(kubectl, service_account_token(OPERATOR_NS, OPERATOR_SA), path))


@pytest.fixture(scope="session")
def operator(cluster, crd, operator_kubeconfig, tmp_path_factory) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, tmp_path_factory.mktemp("operator"),
                           ("--standalone", f"--namespace={NAMESPACES}", "--egress-allow=127.0.0.0/8"))
    proc.start()
    yield proc
    proc.stop()
    print(f"operator logs: {proc.log_dir}")


@pytest.fixture(scope="session")
def author_rights(cluster, kubectl, crd) -> None:
    """The admission policies (a run can do no more than its author; status is never an instruction) and
    the roles for people, as shipped."""
    refuse_unless_owned(cluster, "installs the admission policies and the ClusterRoles for people")
    kubectl("apply", "-f", str(POLICY), "-f", str(USER_ROLES))
