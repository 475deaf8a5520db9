"""Benchmark: what the idle operator costs per object it serves but no run targets (the cluster-size axis).

    .venv/bin/python benchmarks/bench_cluster_size.py [--sizes 0 1000 3000] [--samples 50]

For each size K, a namespace holds K Deployments of one replica (each with its ReplicaSet and its kwok pod) and
no run. The operator starts serving that namespace (`--namespace`, as shipped, under a service account of its own),
serves a warm-up run (so its watches have listed everything), and idles; its RSS is then sampled at 10 Hz
(/proc/<pid>/status VmRSS) for --samples samples, and its peak (VmHWM) read. The baseline is the same operator
with K = 0 in the same run: the table prints each size's idle and peak RSS beside it, the growth, and the slope
per 1,000 Deployments. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, tests/support/ and the other benchmarks
from benchmarks import bench_watch as bw  # the control plane, namespaces, the operator's identity
from tests.support.waiting import poll

CREATORS = 8  # threads creating Deployments: the controllers, not the client, set the pace
SETTLE = 10.0  # seconds of idling after the warm-up run before sampling


def create_deployments(ns: str, count: int) -> None:
    names = [f"idle-{i:05d}" for i in range(count)]
    chunks = [names[i::CREATORS] for i in range(CREATORS)]
    threads = [threading.Thread(target=bw.create_deployments, args=(ns, chunk, "idle")) for chunk in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def pods_running(ns: str, count: int) -> bool:
    listed = client.CoreV1Api().list_namespaced_pod(ns, label_selector="app", field_selector="status.phase=Running",
                                                    _preload_content=False)
    return len(json.loads(listed.data)["items"]) >= count


def measure(ns: str, identity: bw.Identity, logs: Path, samples: int) -> tuple[float, float]:
    """(median idle VmRSS, VmHWM) of an operator serving the namespace, in MiB."""
    with bw.operator(identity.kubeconfig, ns, logs / f"operator-{ns}.log") as op:
        marks_ok = warm_up(ns)
        if not marks_ok:
            bw.say(f"{ns}: the warm-up run got no status; measuring anyway")
        time.sleep(SETTLE)
        rss = []
        for _ in range(samples):
            rss.append(op.mib("VmRSS"))
            time.sleep(0.1)
        return statistics.median(rss), op.mib("VmHWM")


def warm_up(ns: str) -> bool:
    """A run's first status: the operator has listed and is watching the namespace."""
    bw.create_run(ns, "warm-up", "no-such-deployment", bw.V2)
    custom = client.CustomObjectsApi()
    return poll(lambda: bool((custom.get_namespaced_custom_object(bw.GROUP, bw.VERSION, ns, bw.PLURAL, "warm-up")
                              .get("status") or {}).get("phase")), bw.LATENCY_TIMEOUT) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 3000], metavar="K",
                        help="non-target Deployments per measurement (default: 0 1000 3000; 0 is the baseline)")
    parser.add_argument("--samples", type=int, default=50, help="RSS samples at 10 Hz per size (default: 50)")
    args = parser.parse_args()
    sizes = sorted({0, *args.sizes})

    bw.setup_cluster()
    sid, logs = uuid.uuid4().hex[:5], Path(tempfile.mkdtemp(prefix="bench-size-"))
    bw.say(f"session {sid}; operator logs in {logs}")
    results: dict[int, tuple[float, float]] = {}
    with bw.operator_identity(sid, logs) as identity:
        for k in sizes:
            def one(ns: str, k: int = k) -> tuple[float, float]:
                start = time.monotonic()
                create_deployments(ns, k)
                if not poll(lambda: pods_running(ns, k), 60 + k * 0.5, 2.0):
                    bw.say(f"{ns}: not all {k} pods ran; measuring what there is")
                bw.say(f"{ns}: {k} Deployments with their pods in {time.monotonic() - start:.0f}s")
                return measure(ns, identity, logs, args.samples)
            results[k] = bw.scenario(f"idle operator with {k} non-target Deployments", f"bench-size-{sid}-{k}",
                                     one, (float("nan"), float("nan")), delete_timeout=max(120, k * 0.2))
    base_idle = results[0][0]
    rows = []
    for k in sizes:
        idle, peak = results[k]
        slope = (idle - base_idle) / k * 1000 if k else float("nan")
        rows.append([f"{k:,}", f"{idle:.1f}", f"{peak:.1f}", f"{idle - base_idle:+.1f}",
                     "-" if not k else f"{slope:.1f}"])
    bw.print_table(f"idle operator RSS (MiB) by non-target Deployments served (each with a ReplicaSet and a pod); "
                   f"baseline: the same operator with none, this run; median of {args.samples} samples at 10 Hz",
                   ["Deployments", "idle RSS", "peak RSS", "vs baseline", "per 1,000"], rows)


if __name__ == "__main__":
    main()
