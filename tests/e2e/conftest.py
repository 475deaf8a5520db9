"""End-to-end fixtures: the real local control plane, a namespace per test, kubectl.

The control plane starts once per session (or is reused when already running,
or is the user's own with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 and KUBECONFIG).
It is left running for the next session unless SELFBOOTSTRAP_CLUSTER_TEARDOWN=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import localcluster  # noqa: E402

from .operator_fixtures import crd, operator  # noqa: E402,F401  (fixtures)


@dataclass(frozen=True)
class Cluster:
    kubeconfig: Path
    bin_dir: Path


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    try:
        localcluster.up()
    except (SystemExit, subprocess.CalledProcessError) as err:
        pytest.fail(f"the local control plane did not come up: {err}", pytrace=False)
    kubeconfig = localcluster.kubeconfig_path()
    os.environ["KUBECONFIG"] = str(kubeconfig)
    config.load_kube_config(str(kubeconfig))
    yield Cluster(kubeconfig, localcluster.k8s_bin())
    if os.environ.get("SELFBOOTSTRAP_CLUSTER_TEARDOWN") == "1" and not localcluster.USE_EXISTING:
        localcluster.down(purge=True)


@pytest.fixture(scope="session")
def kubectl(cluster: Cluster) -> Callable[..., str]:
    def run(*args: str) -> str:
        done = localcluster.kubectl(*args, check=False)
        if done.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout
    return run


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name, "labels": {"selfbootstrap.dev/e2e": "true"}}})
    yield name
    core.delete_namespace(name, propagation_policy="Background")
