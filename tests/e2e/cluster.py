"""The control plane the end-to-end tests run against, kubectl, and a bounded wait.

`start()` brings up the local control plane (tools/localcluster.py) or reuses a
running one; with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 it only checks that the
cluster in KUBECONFIG answers. `stop()` tears the local one down only when
SELFBOOTSTRAP_CLUSTER_TEARDOWN=1, so the next session starts in seconds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import localcluster  # noqa: E402  (tools/ is not a package)

T = TypeVar("T")
SESSION = os.environ.get("SELFBOOTSTRAP_E2E_SESSION") or os.urandom(3).hex()  # names this session's namespaces
NAMESPACES = f"e2e-{SESSION}-*"  # what this session's operators watch


def free_port() -> int:
    """A TCP port nobody listens on right now (other programs and test sessions share the machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path  # admin kubeconfig (the user's own with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)
    bin_dir: Path  # kube-apiserver, kube-controller-manager, kube-scheduler, kubectl
    existing: bool  # not ours: never torn down


def start() -> Cluster:
    """Start (or reuse) the control plane and point KUBECONFIG at it; SystemExit says what failed."""
    localcluster.up()
    cluster = Cluster(localcluster.kubeconfig_path(), localcluster.k8s_bin(), localcluster.USE_EXISTING)
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    return cluster


def stop(cluster: Cluster) -> None:
    if os.environ.get("SELFBOOTSTRAP_CLUSTER_TEARDOWN") == "1" and not cluster.existing:
        localcluster.down(purge=True)


def kubectl(*args: str, input: str | None = None, timeout: float = 120) -> str:
    """Run the built kubectl against the cluster; its stdout, or AssertionError with its stderr."""
    argv = [str(localcluster.kubectl_path()), f"--kubeconfig={localcluster.kubeconfig_path()}", *args]
    try:
        done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kubectl {' '.join(args)} did not finish within {timeout}s") from None
    if done.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


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
