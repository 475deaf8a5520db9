"""End-to-end: one namespace's flood costs the others little. An operator instance of its own (shard `fair`,
at most one run in flight per namespace) serves 1,000 runs queued in one namespace; a run in another
namespace must finish within twice its time on the same operator idle, and the operator's memory must
grow by less than 30 MiB for the queued runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from kubernetes import client

from selfbootstrap.core import gate

from .cluster import NAMESPACES, wait_for
from .conftest import release_runs
from .invariants import Recorder
from .kube_helpers import GROUP, PLURAL, VERSION, create_deployment, get_run, run_body, sbr, wait_phase
from .operator_fixtures import OperatorProcess

SHARD = {"selfbootstrap.dev/shard": "fair"}
FLOOD = 1000
FINISHED = {"Succeeded", "Failed", "RolledBack", "Superseded"}


@pytest.fixture
def fair_operator(operator, tmp_path: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator.kubeconfig, tmp_path, ("--standalone", f"--namespace={NAMESPACES}",
                                                           "--shard=fair"), name="operator-fair",
                           env={**operator.env, "SELFBOOTSTRAP_MAX_RUNS_PER_NAMESPACE": "1"})
    proc.start()
    yield proc
    proc.stop()


def create(namespace: str, name: str, version: str, watchdog: dict) -> None:
    body = run_body(name, {"target": {"deployment": "app"}, "restartWatchdog": watchdog,
                           "release": {"id": version, "image": f"registry.example.com/app:{version}"}})
    body["metadata"]["labels"] = SHARD
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)


def timed_run(namespace: str, n: int) -> float:
    """Seconds from creating a run to its end (it deploys v{n} with one watchdog observation)."""
    start = time.monotonic()
    create(namespace, f"quick-{n}", f"v{n}", {"retries": 1, "intervalSeconds": 0.5})
    assert wait_phase(namespace, f"quick-{n}", FINISHED, timeout=120)["phase"] == "Succeeded"
    return time.monotonic() - start


def test_a_flood_in_one_namespace_barely_slows_another(fair_operator, namespace):
    flooded = f"{namespace}-flood"[:63]
    client.CoreV1Api().create_namespace({"metadata": {"name": flooded}})
    try:
        fair_operator.wait_watching(namespace, flooded)
        create_deployment(namespace, "app", "registry.example.com/app:v0", "v0", replicas=1)
        create_deployment(flooded, "app", "registry.example.com/app:v0", "v0", replicas=1)
        idle = [timed_run(namespace, n) for n in range(1, 4)]
        idle_rss = fair_operator.mib("VmRSS")

        # One run holds the flooded namespace's slot for the whole test; a thousand more queue behind it.
        create(flooded, "holder", "h1", {"retries": 1000, "intervalSeconds": 1})
        wait_phase(flooded, "holder", {"WatchingRestarts"}, timeout=120)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda i: create(flooded, f"q-{i:04d}", f"q{i}", {"retries": 1}), range(FLOOD)))
        runs = client.CustomObjectsApi().list_namespaced_custom_object

        def all_queued() -> bool:
            items = runs(GROUP, VERSION, flooded, PLURAL)["items"]
            return sum((r.get("status") or {}).get("reason") == "Queued" for r in items) == FLOOD

        wait_for(all_queued, 300, "the flood's runs were not all queued", interval=2)
        time.sleep(5)  # the last writes settle: from now on no queued run does anything
        before = fair_operator.cpu_seconds()
        time.sleep(10)
        idle_cpu = fair_operator.cpu_seconds() - before
        flooded_rss = fair_operator.mib("VmRSS")
        busy = [timed_run(namespace, n) for n in range(4, 7)]

        assert get_run(flooded, "holder")["status"]["phase"] == "WatchingRestarts", "the flood was still there"
        print(f"idle {idle} s, during the flood {busy} s; RSS {idle_rss:.0f} -> {flooded_rss:.0f} MiB")
        # Twice the idle time, and a second more for a 2-core machine shared with other test sessions.
        assert statistics.median(busy) <= 2 * statistics.median(idle) + 1.0, (idle, busy)
        assert flooded_rss - idle_rss < 30, (idle_rss, flooded_rss)
        # The holder's watchdog looks every second; a thousand queued runs add nothing to that.
        assert idle_cpu < 1.0, f"{idle_cpu:.2f} s of CPU in 10 s with {FLOOD} runs queued"
    finally:
        release_runs(flooded, timeout=120)
        client.CoreV1Api().delete_namespace(flooded, propagation_policy="Background")


def test_runs_beyond_the_bound_wait_in_line_and_start_oldest_first(fair_operator, namespace):
    """At most one run of the namespace in flight (the bound is 1): the others wait Queued with no worker
    (no finalizer: the operator keeps nothing for them), a run deleted in line is skipped, and each slot
    that frees goes to the oldest run in line."""
    fair_operator.wait_watching(namespace)
    names = [f"line-{i}" for i in range(5)]
    for name in names:
        create_deployment(namespace, name, "registry.example.com/app:v0", "v0", replicas=1)
    recorder = Recorder(namespace, names[0]).start()
    try:
        for name in names:
            body = run_body(name, {"target": {"deployment": name},
                                   "restartWatchdog": {"retries": 2, "intervalSeconds": 1},
                                   "release": {"id": "v1", "image": "registry.example.com/app:v1"}})
            body["metadata"]["labels"] = SHARD
            client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
            time.sleep(0.05)  # distinct creation order (seconds resolution: the name breaks ties)
        wait_phase(namespace, names[-1], {"Pending"}, timeout=60)
        wait_for(lambda: get_run(namespace, names[-1]).get("status", {}).get("reason") == "Queued", 60,
                 "the last run never said it was Queued")
        queued = get_run(namespace, names[-1])
        assert "the bound is 1" in queued["status"]["message"], queued["status"]
        assert not queued["metadata"].get("finalizers"), "a run in line has no worker, so no finalizer"
        assert "selfbootstrap.dev/deployment" not in queued["metadata"].get("labels", {}), \
            "a run in line is labelled in the write that admits it, not in a write of its own"
        listed = sbr("-n", namespace, "list", "--deployment", names[-1])
        assert listed.returncode == 0 and names[-1] in listed.stdout, listed
        client.CustomObjectsApi().delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, names[2])
        for name in names[:2] + names[3:]:
            assert wait_phase(namespace, name, FINISHED, timeout=120)["phase"] == "Succeeded"
    finally:
        recorder.stop()
    started: list[str] = []
    phases: dict[str, str] = {}
    for change in recorder.ordered():
        if change.kind != "run":
            continue
        name, phase = change.body["metadata"]["name"], (change.body.get("status") or {}).get("phase") or "Pending"
        phases[name] = phase
        if phase not in ("Pending", *FINISHED) and name not in started:
            started.append(name)
        in_flight = [n for n, p in phases.items() if p not in ("Pending", *FINISHED)]
        assert len(in_flight) <= 1, f"at {change.rv} {in_flight} were all in flight"
    assert started == names[:2] + names[3:], started
    for name in names[1:2] + names[3:]:  # admitted from the line: finalizer and label in one write, before its worker
        first = next(c.body for c in recorder.ordered() if c.kind == "run" and c.body["metadata"]["name"] == name
                     and c.body["metadata"].get("finalizers"))
        assert first["metadata"]["labels"].get("selfbootstrap.dev/deployment") == name, first["metadata"]
        assert (first.get("status") or {}).get("phase") == "Pending", first.get("status")
    admitted_by_status = [c.body["metadata"]["name"] for c in recorder.ordered() if c.kind == "run"
                          and (c.body.get("status") or {}).get("message") == gate.ADMITTED]
    assert not admitted_by_status, "the finalizer's write admits a run seen in line; a status write is the fallback"
