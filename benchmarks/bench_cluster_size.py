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
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, tests/support/ and the other benchmarks
from benchmarks import bench_watch as bw  # the control plane, namespaces, the operator's identity
from tests.support.operator_process import OperatorProcess
from tests.support.waiting import poll


@dataclass(frozen=True)
class Figures:
    idle: float  # MiB, no run in the measured namespace
    with_run: float  # MiB, a run of the measured namespace in flight (its workloads watched)
    peak: float


NAN = Figures(float("nan"), float("nan"), float("nan"))
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


def rss(op: OperatorProcess, samples: int) -> float:
    """The median VmRSS of `samples` samples at 10 Hz, in MiB."""
    found = []
    for _ in range(samples):
        found.append(op.mib("VmRSS"))
        time.sleep(0.1)
    return statistics.median(found)


def measure(prefix: str, ns: str, identity: bw.Identity, logs: Path, samples: int) -> Figures:
    """The operator serving every namespace of the prefix: idle while its warm-up run lives in a namespace of its
    own, then while a run of the measured namespace is in flight (its workloads are then watched)."""
    with bw.operator(identity.kubeconfig, f"{prefix}-*", logs / f"operator-{ns}.log") as op, \
            bw.namespace(f"{prefix}-warm") as warm:
        if not status_of(warm, "warm-up", bw.V2):
            bw.say(f"{ns}: the warm-up run got no status; measuring anyway")
        time.sleep(SETTLE)
        idle = rss(op, samples)
        bw.create_run(ns, "slow", "no-such-deployment", bw.V2)  # fails at once: its namespace lingers open
        if not poll(lambda: phase(ns, "slow") is not None, bw.LATENCY_TIMEOUT):
            bw.say(f"{ns}: the run in the namespace got no status; measuring anyway")
        time.sleep(SETTLE)  # its namespace's watches list everything meanwhile (they stay LINGER_SECONDS)
        busy = rss(op, samples)
        return Figures(idle, busy, op.mib("VmHWM"))


def phase(ns: str, name: str) -> str | None:
    found = client.CustomObjectsApi().get_namespaced_custom_object(bw.GROUP, bw.VERSION, ns, bw.PLURAL, name)
    return (found.get("status") or {}).get("phase")


def status_of(ns: str, name: str, image: str) -> bool:
    """A run's first status: the operator watches the runs of the prefix's namespaces."""
    bw.create_run(ns, name, "no-such-deployment", image)
    return poll(lambda: phase(ns, name) is not None, bw.LATENCY_TIMEOUT) is not None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 1000, 3000], metavar="K",
                        help="non-target Deployments per measurement (default: 0 1000 3000; 0 is the baseline)")
    parser.add_argument("--samples", type=int, default=50, help="RSS samples at 10 Hz per size (default: 50)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the figures there (bench_targets.py)")
    args = parser.parse_args()
    sizes = sorted({0, *args.sizes})

    bw.setup_cluster()
    sid, logs = uuid.uuid4().hex[:5], Path(tempfile.mkdtemp(prefix="bench-size-"))
    bw.say(f"session {sid}; operator logs in {logs}")
    results: dict[int, Figures] = {}
    with bw.operator_identity(sid, logs) as identity:
        for k in sizes:
            prefix = f"bench-size-{sid}-{k}"

            def one(ns: str, k: int = k, prefix: str = prefix) -> Figures:
                start = time.monotonic()
                create_deployments(ns, k)
                if not poll(lambda: pods_running(ns, k), 60 + k * 0.5, 2.0):
                    bw.say(f"{ns}: not all {k} pods ran; measuring what there is")
                bw.say(f"{ns}: {k} Deployments with their pods in {time.monotonic() - start:.0f}s")
                return measure(prefix, ns, identity, logs, args.samples)
            results[k] = bw.scenario(f"the operator with {k} non-target Deployments", f"{prefix}-apps", one, NAN,
                                     delete_timeout=max(120, k * 0.2))
    base = results[0]
    rows = []
    for k in sizes:
        f = results[k]
        rows.append([f"{k:,}", f"{f.idle:.1f}", f"{f.idle - base.idle:+.1f}",
                     "-" if not k else f"{(f.idle - base.idle) / k * 1000:.1f}", f"{f.with_run:.1f}",
                     "-" if not k else f"{(f.with_run - base.with_run) / k * 1000:.1f}", f"{f.peak:.1f}"])
    bw.print_table(f"operator RSS (MiB) by Deployments no run targets (each with a ReplicaSet and a pod) in a served "
                   f"namespace; baseline: none, this run; median of {args.samples} samples at 10 Hz",
                   ["Deployments", "idle", "vs none", "per 1,000", "a run there", "per 1,000", "peak"], rows)
    if args.json:
        args.json.write_text(json.dumps({str(k): vars(f) for k, f in results.items()}))
    print("idle: no run in that namespace (the operator serves it; a warm-up run lives in another). a run there: "
          "a run of that namespace in flight, so its workloads are watched.")


if __name__ == "__main__":
    main()
