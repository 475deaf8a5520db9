"""kubectl and the API as the tests and the benchmarks use them: the built kubectl (tools/localcluster.py)
against KUBECONFIG's cluster, a ServiceAccount's token and a kubeconfig with it, CRDs being served."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client
from tools import localcluster

from .waiting import wait_for


def kubectl(*args: str, input: str | None = None, timeout: float = 120, kubeconfig: Path | None = None) -> str:
    """Run the built kubectl against the session's cluster (or the kubeconfig's); its stdout, or
    AssertionError with its stderr."""
    config = kubeconfig or os.environ["KUBECONFIG"]
    try:
        done = localcluster.run_kubectl(config, *args, stdin=input, check=False, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"kubectl {' '.join(args)} did not finish within {timeout}s") from None
    if done.returncode:
        raise AssertionError(f"kubectl {' '.join(args)} failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def kubectl_as(user: str, *args: str, groups: Sequence[str] = (), **kwargs: Any) -> str:
    """kubectl as another user (impersonated by the admin: --as, --as-group), e.g. to be refused as them."""
    return kubectl(f"--as={user}", *[f"--as-group={g}" for g in groups], *args, **kwargs)


def refusal_of(user: str, *args: str, **kwargs: Any) -> str:
    """kubectl as the user: '' when admitted, else the refusal."""
    try:
        kubectl_as(user, *args, **kwargs)
    except AssertionError as refused:
        return str(refused)
    return ""


def wait_established(kubectl: Callable[..., str], *crds: str, timeout: float = 60) -> None:
    """Wait until the CRDs are served. Not `kubectl wait --for=condition=Established`: on a CRD created a
    moment before (a fresh control plane), whose status.conditions is still null, it fails at once."""
    def established(name: str) -> bool:
        conditions = json.loads(kubectl("get", "crd", name, "-o", "json")).get("status", {}).get("conditions") or []
        return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)

    wait_for(lambda: all(established(name) for name in crds), timeout, f"{', '.join(crds)} never became Established")


def token_kubeconfig(kubectl: Callable[..., str], token: str, path: Path) -> Path:
    """A kubeconfig for kubectl's cluster (its current context) that authenticates with the token instead."""
    config = json.loads(kubectl("config", "view", "--minify", "--flatten", "-o", "json"))
    config["users"] = [{"name": config["contexts"][0]["context"]["user"], "user": {"token": token}}]
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def service_account_token(namespace: str, name: str, seconds: int = 24 * 3600) -> str:
    """A token of the ServiceAccount from the TokenRequest API (a day outlasts any session)."""
    request = {"spec": {"expirationSeconds": seconds}}
    return client.CoreV1Api().create_namespaced_service_account_token(name, namespace, request).status.token
