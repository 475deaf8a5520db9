"""The control plane the end-to-end tests run against, kubectl, and a bounded wait.

By default a session starts a control plane of its own (tools/localcluster.py: state in
<state root>/e2e-<session>, every port picked free) and stops and removes it at its end; the
built binaries stay in the cache. So the tests never touch what they did not create: not the
default local cluster (scripts/demo's), not another session's.

SELFBOOTSTRAP_TEST_CLUSTER=reuse runs them on the developer's default local cluster instead
(started if needed, left running). SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 runs them on
KUBECONFIG's cluster, where tests that would change cluster-scoped objects are refused
(refuse_unless_owned) and nothing outside the session's namespaces is written.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import localcluster  # noqa: E402  (tools/ is not a package)

T = TypeVar("T")
SESSION = os.environ.get("SELFBOOTSTRAP_E2E_SESSION") or os.urandom(3).hex()  # names this session's namespaces
NAMESPACES = f"e2e-{SESSION}-*"  # what this session's operators watch
MODES = ("private", "reuse")


@contextlib.contextmanager
def serving(argv: Sequence[str], log: Path, what: str, ready_url: str, ready_status: int,
            timeout: float) -> Iterator[subprocess.Popen[bytes]]:
    """A server the tests start (Prometheus, the registry): its output to `log`, up once `ready_url` answers
    `ready_status`, stopped afterwards; a failure to start says why with the end of its log."""
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == ready_status:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout:g}s:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


free_port = localcluster.free_port


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path  # admin kubeconfig (the user's own with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)
    plane: localcluster.LocalCluster | None  # the local control plane; None: KUBECONFIG's cluster
    owned: bool  # started by this session: stopped and removed at its end

    @property
    def existing(self) -> bool:
        """A cluster the tests did not start and may not change beyond their own namespaces."""
        return self.plane is None


def start() -> Cluster:
    """Start the session's control plane (or find the one asked for) and point KUBECONFIG at it;
    SystemExit says what failed."""
    mode = os.environ.get("SELFBOOTSTRAP_TEST_CLUSTER") or "private"
    if mode not in MODES:
        raise SystemExit(f"SELFBOOTSTRAP_TEST_CLUSTER={mode}: expected one of {', '.join(MODES)}")
    if localcluster.use_existing():
        localcluster.up()
        cluster = Cluster(localcluster.kubeconfig_path(), None, owned=False)
    elif mode == "reuse":
        plane = localcluster.LocalCluster.default()
        plane.up()
        cluster = Cluster(plane.kubeconfig, plane, owned=False)
    else:
        localcluster.reap_orphans()
        plane = localcluster.LocalCluster.private(f"e2e-{SESSION}")
        try:
            plane.up()
        except BaseException:
            plane.down(purge=True)
            raise
        cluster = Cluster(plane.kubeconfig, plane, owned=True)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)  # for kubectl() and every process the tests start
    return cluster


def stop(cluster: Cluster) -> None:
    if cluster.owned and cluster.plane is not None:
        cluster.plane.down(purge=True)


def refuse_unless_owned(cluster: Cluster | None, what: str) -> None:
    """Tests change cluster-scoped objects (CRDs, ClusterRoles, admission policies, Helm and kustomize
    installs) only on a control plane the session or the developer owns: on SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1's
    they are refused, saying what they would have changed."""
    if cluster.existing if cluster is not None else localcluster.use_existing():
        pytest.skip(f"refused on an existing cluster (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1): this test {what}, "
                    "and the tests change nothing cluster-scoped on a cluster they did not start")


def kubectl(*args: str, input: str | None = None, timeout: float = 120, kubeconfig: Path | None = None) -> str:
    """Run the built kubectl against the session's cluster (or the kubeconfig's); its stdout, or
    AssertionError with its stderr."""
    config = kubeconfig or os.environ["KUBECONFIG"]
    argv = [str(localcluster.kubectl_path()), f"--kubeconfig={config}", *args]
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kubectl {' '.join(args)} did not finish within {timeout}s") from None
    if done.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def kubectl_as(user: str, *args: str, groups: Sequence[str] = (), **kwargs: Any) -> str:
    """kubectl as another user (impersonated by the admin: --as, --as-group), e.g. to be refused as them."""
    return kubectl(f"--as={user}", *[f"--as-group={g}" for g in groups], *args, **kwargs)


def wait_for(predicate: Callable[[], T], timeout: float, message: str | Callable[[], str],
             interval: float = 0.25) -> T:
    """Poll until predicate() is truthy and return its value; fail after timeout seconds.

    message may be a callable, evaluated only on failure, to say what was seen instead.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:g}s: {text}")
        time.sleep(interval)


def holds(predicate: Callable[[], Any], seconds: float, message: str | Callable[[], str],
          interval: float = 0.5) -> None:
    """Fail as soon as predicate() is falsy during the next `seconds` (something that must not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not predicate():
            text = message() if callable(message) else message
            raise AssertionError(text)
        time.sleep(interval)
