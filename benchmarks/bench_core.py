"""Benchmark of the pure core: how fast a tick decides, how big a run's status gets.

    .venv/bin/python benchmarks/bench_core.py [--revisions 10] [--pods 50] [--seconds 3]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from datetime import UTC, datetime, timedelta

from selfbootstrap.core import machine
from selfbootstrap.core.run import Run
from selfbootstrap.core.world import ContainerState, DeploymentState, PodState, Revision, World
from selfbootstrap.models import Phase, RunSpec, RunStatus


def template(tag: str) -> dict:
    return {"metadata": {"labels": {"app": "web"}, "annotations": {"selfbootstrap.dev/release-id": tag}},
            "spec": {"containers": [{"name": "web", "image": f"registry.example.com/web:{tag}",
                                     "resources": {"requests": {"cpu": "10m"}}}]}}


def scenario(revisions: int, pods: int) -> tuple[Run, World]:
    revs = tuple(Revision(f"web-{i}", i, template(f"v{i}"), f"v{i}") for i in range(1, revisions + 1))
    dep = DeploymentState(name="web", resource_version="42", template=revs[-1].template, replicas=pods,
                          status_replicas=pods, updated_replicas=pods,
                          available_replicas=pods, revisions=revs)
    world = World(dep, tuple(PodState(f"web-{i}", containers=(ContainerState("web"),)) for i in range(pods)))
    spec = RunSpec.model_validate({"target": {"deployment": "web"},
                                   "release": {"id": f"v{revisions}",
                                               "image": f"registry.example.com/web:v{revisions}"},
                                   "restartWatchdog": {"retries": 1000, "intervalSeconds": 0.001}})
    start = datetime(2026, 1, 1, tzinfo=UTC)
    status = RunStatus(phase=Phase.WATCHING_RESTARTS, deployed_release_id=f"v{revisions}", deploy_patched_at=start,
                       release_metadata_source="deploymentRevisions", phase_started_at=start)
    return Run("bench", 1, spec, status), world


def bench_decide(run: Run, world: World, seconds: float) -> tuple[int, float]:
    now = run.status.phase_started_at or datetime.now(UTC)
    n, t0 = 0, time.perf_counter()
    first = run
    while time.perf_counter() - t0 < seconds:
        now += timedelta(seconds=1)
        decision = machine.decide(run, world, now)
        # Start over before the watchdog's 1000 observations end the run.
        run = first if decision.requeue_after is None else Run(run.name, run.generation, run.spec,
                                                                        decision.status)
        n += 1
    return n, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revisions", type=int, default=10)
    parser.add_argument("--pods", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    run, world = scenario(args.revisions, args.pods)

    n, elapsed = bench_decide(run, world, args.seconds)
    print(f"decide (WatchingRestarts, {args.revisions} revisions, {args.pods} pods): "
          f"{n / elapsed:,.0f} ticks/s, {elapsed / n * 1e6:,.1f} µs/tick")

    tracemalloc.start()
    bench_decide(run, world, 0.5)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"decide memory: peak {peak / 1024:,.0f} KiB traced over 0.5 s of ticks")

    decision = machine.decide(run, world, datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))
    size = len(json.dumps(decision.status.dump()))
    print(f"status size after a tick (history bounded to 20): {size:,} bytes of JSON")


if __name__ == "__main__":
    main()
