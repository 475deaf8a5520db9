"""Benchmark against the local control plane: run latency, throughput, operator memory.

    .venv/bin/python benchmarks/bench_e2e.py [--runs 20] [--replicas 2]

Starts the control plane if needed, runs the operator as a subprocess, creates
`--runs` Deployments with one healthy run each (all at once), and prints how long
runs took from creation to Succeeded, and the operator's resident memory before
and after. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from kubernetes import client, config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ and tests/support/, shared with the tests
from tests.support.operator_process import OperatorProcess  # noqa: E402
from tools import localcluster  # noqa: E402

GROUP, VERSION, PLURAL = "selfbootstrap.dev", "v1alpha1", "selfbootstrapruns"


def _ts(stamp: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def deployment(name: str, replicas: int) -> dict:
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [{"name": "app", "image": "registry.example.com/app:v1"}]}}}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--replicas", type=int, default=2)
    args = parser.parse_args()

    localcluster.up()
    config.load_kube_config(str(localcluster.kubeconfig_path()))
    localcluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                         str(ROOT / "crds" / "selfbootstrap.dev_selfbootstrapruns.yaml"))
    ns = f"bench-{uuid.uuid4().hex[:6]}"
    core, apps, custom = client.CoreV1Api(), client.AppsV1Api(), client.CustomObjectsApi()
    core.create_namespace({"metadata": {"name": ns}})
    names = [f"app-{i}" for i in range(args.runs)]
    for name in names:
        apps.create_namespaced_deployment(ns, deployment(name, args.replicas))

    log = ROOT / "benchmarks" / ".operator.log"
    operator = OperatorProcess(localcluster.kubeconfig_path(), log.parent, ("--standalone", "-n", ns),
                               environ={"PATH": "/usr/bin:/bin"}, settings={}, verbose=False, metrics=False,
                               log_file=log)
    operator.start()
    try:
        time.sleep(3)
        idle = operator.mib("VmRSS")
        created = {}
        for name in names:
            custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun", "metadata": {"name": name},
                "spec": {"target": {"deployment": name}, "release": {"image": "registry.example.com/app:v2"},
                         "restartWatchdog": {"retries": 2, "intervalSeconds": 1}}})
            created[name] = time.monotonic()
        done: dict[str, float] = {}
        peak = idle
        deadline = time.monotonic() + 300
        while len(done) < len(names) and time.monotonic() < deadline:
            for item in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]:
                name, phase = item["metadata"]["name"], (item.get("status") or {}).get("phase")
                if phase in ("Succeeded", "Failed", "RolledBack") and name not in done:
                    done[name] = time.monotonic() - created[name]
            peak = max(peak, operator.mib("VmRSS"))
            time.sleep(0.2)
        latencies = sorted(done.values())
        total = max(done.values()) if done else float("nan")
        print(f"runs: {len(done)}/{len(names)} finished, {args.replicas} replicas each, "
              f"watchdog 2 observations 1 s apart (1 s of each run is that wait)")
        if latencies:
            p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)]
            print(f"creation -> Succeeded: median {statistics.median(latencies):.2f} s, p95 {p95:.2f} s, "
                  f"max {latencies[-1]:.2f} s")
            print(f"throughput: {len(done) / total:.2f} runs/s with {len(names)} concurrent runs")
        print(f"operator RSS: idle {idle:.0f} MiB, peak {peak:.0f} MiB")
        slowest = max(done, key=lambda n: done[n]) if done else None
        if slowest:
            item = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, slowest)
            print(f"slowest run {slowest}, time per phase:")
            history = item["status"]["history"]
            start = _ts(history[0]["at"])
            for entry in history:
                print(f"  +{_ts(entry['at']) - start:6.2f} s  {entry['phase']:<17} {entry['reason']}")
    finally:
        operator.stop()
        core.delete_namespace(ns)


if __name__ == "__main__":
    main()
