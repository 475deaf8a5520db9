"""Benchmark: every figure the operator has a target for, measured in one run, each beside its baseline.

    SELFBOOTSTRAP_AUDIT_LOG=1 .venv/bin/python benchmarks/bench_targets.py [--quick]

Runs, one after the other on one local control plane (started unless running, as the others do):

- bench_watch.py: create -> first status against the echo controller, the crash-to-rollback latencies, N = 10
  healthy runs against `kubectl set image`, and a burst of 1,000 runs created at once (figure 7);
- bench_cluster_size.py: idle RSS with 0, 1,000 and 3,000 Deployments no run targets;
- bench_git.py: N = 1, 10 and 50 git runs against Gitea beside a script doing the same steps, and the checkout's
  cost as the repository grows.

Each prints its own tables (and its JSON into a temporary directory); this script then prints one table: the
figure, the operator's value, the baseline's, the target and whether it is met. Prints figures; asserts nothing.
`--quick` takes smaller samples (for trying the script, not for the record).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
Json = Any


def run(script: str, args: list[str], out: Path) -> Json:
    """The benchmark as a process of its own (its tables go to this one's output); its JSON, or None."""
    command = [sys.executable, str(HERE / script), *args, "--json", str(out)]
    print(f"\n$ {' '.join(command[1:])}", flush=True)
    done = subprocess.run(command, check=False, env=os.environ.copy())
    if done.returncode != 0 or not out.exists():
        print(f"bench_targets: {script} exited {done.returncode}; its figures are missing", file=sys.stderr)
        return None
    return json.loads(out.read_text())


def median(xs: list[float] | None) -> float:
    ok = [x for x in xs or [] if x is not None and not math.isnan(x)]
    return statistics.median(ok) if ok else math.nan


@dataclass(frozen=True)
class Target:
    figure: str
    ours: float
    base: float | None
    target: str
    met: Callable[[float, float | None], bool] | None  # None: a figure shown beside the targets, with none of its own
    fmt: str = ".2f"

    def cells(self) -> list[str]:
        def show(x: float | None) -> str:
            return "n/a" if x is None or math.isnan(x) else format(x, self.fmt)
        known = not math.isnan(self.ours) and (self.base is None or not math.isnan(self.base))
        if self.met is None:
            verdict = "no target"
        else:
            verdict = ("yes" if self.met(self.ours, self.base) else "NO") if known else "not measured"
        return [self.figure, show(self.ours), show(self.base), self.target, verdict]


def ratio(ours: float, base: float | None) -> float:
    return ours / base if base else math.nan


def _grows_at_most(limit: float, ours: float, base: float | None) -> bool:
    return base is not None and ours - base <= limit


def _within(factor: float, ours: float, base: float | None) -> bool:
    return factor == math.inf or ratio(ours, base) <= factor


def watch_targets(rows: Json) -> list[Target]:
    by = {r["figure"]: r for r in rows or []}

    def pick(prefix: str) -> tuple[float, float]:
        row = next((r for f, r in by.items() if f.startswith(prefix)), None)
        return (median(row["operator"]), median(row["baseline"])) if row else (math.nan, math.nan)

    first = pick("1. create -> first status")
    wall = pick("4. 10 runs")
    requests10 = pick("5. API requests per run (N=10)")
    cpu10 = pick("6. CPU seconds per run (N=10)")
    p95 = pick("7. burst of 1000: start -> deploy patch, p95")
    p50 = pick("7. burst of 1000: start -> deploy patch, p50")
    requests = pick("7. burst of 1000: API requests per run")
    peak = pick("7. burst of 1000: peak RSS")
    busy = pick("7. burst of 1000: CPU cores, start -> p95 deploy: the operator vs kube-apiserver")
    return [
        Target("create -> first status, median (s) vs echo controller", *first, "<= 1.5x",
               lambda a, b: ratio(a, b) <= 1.5, ".3f"),
        Target("10 runs, create -> all Succeeded (s) vs kubectl set image", *wall, "as before (1.0-1.5x)",
               lambda a, b: ratio(a, b) <= 1.5),
        Target("API requests per run, N = 10 (vs the rollout controllers)", *requests10, "<= 15",
               lambda a, b: a <= 15, ".1f"),
        Target("CPU seconds per run, N = 10 (vs kube-controller-manager)", *cpu10, "flat", lambda a, b: True, ".3f"),
        Target("burst of 1,000: start -> deploy patch p50 (s) vs kubectl", *p50, "", lambda a, b: True),
        Target("burst of 1,000: start -> deploy patch p95 (s) vs kubectl", *p95, "<= 2x kubectl's p95",
               lambda a, b: ratio(a, b) <= 2.0),
        Target("burst of 1,000: API requests per run", requests[0], None, "<= 15", lambda a, b: a <= 15, ".1f"),
        Target("burst of 1,000: peak RSS, MiB (10 Hz) vs idle", *peak, "<= 150", lambda a, b: a <= 150, ".0f"),
        Target("burst of 1,000: CPU cores until the p95 deploy, the operator vs kube-apiserver", *busy,
               "(who paces the burst)", None, ".2f"),
    ]


def size_targets(sizes: Json) -> list[Target]:
    if not sizes or "0" not in sizes:
        return [Target("idle RSS per 1,000 non-target Deployments", math.nan, None, "<= 5 MiB", lambda a, b: True)]
    base = sizes["0"]["idle"]
    out = []
    for k in sorted(int(k) for k in sizes if k != "0"):
        out.append(Target(f"idle RSS with {k:,} non-target Deployments, MiB (vs none)", sizes[str(k)]["idle"], base,
                          f"<= +{5 * k / 1000:.0f} (5 per 1,000)", functools.partial(_grows_at_most, 5 * k / 1000),
                          ".1f"))
    return out


def git_targets(figures: Json) -> list[Target]:
    if not figures:
        return [Target("git runs, N = 10, wall vs the baseline script", math.nan, None, "<= 1.3x", lambda a, b: True)]
    out = []
    for n, f in sorted(figures.get("runs", {}).items(), key=lambda kv: int(kv[0])):
        bounded = int(n) == 10
        out.append(Target(f"git runs, N = {n}: wall (s) vs the baseline script", median(f["operator"]),
                          median(f["baseline"]), "<= 1.3x" if bounded else "",
                          functools.partial(_within, 1.3 if bounded else math.inf)))
    clone = figures.get("clone", {})
    if clone:
        sizes = sorted(clone, key=int)
        smallest, largest = median(clone[sizes[0]]), median(clone[sizes[-1]])
        out.append(Target(f"checkout of {int(sizes[-1]):,} files (s) vs of {int(sizes[0]):,}", largest, smallest,
                          "flat (<= 1.5x)", lambda a, b: ratio(a, b) <= 1.5, ".3f"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller samples: for trying the script")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-targets-"))
    repeats = "1" if args.quick else "5"
    watch = run("bench_watch.py", ["--runs", "10", "--burst", "1000", "--repeats", repeats,
                                   "--throughput-repeats", "1"], out / "watch.json")
    sizes = run("bench_cluster_size.py", ["--sizes", "0", "1000", "3000"], out / "sizes.json")
    git = run("bench_git.py", ["--runs", "1", "10", "50", "--repeats", "1" if args.quick else "2"], out / "git.json")
    targets = watch_targets(watch) + size_targets(sizes) + git_targets(git)
    sys.path.insert(0, str(HERE.parent))
    from benchmarks.bench_watch import print_table
    print_table("selfbootstrap operator: every target, measured in this run (operator and baseline are medians)",
                ["figure", "operator", "baseline", "target", "met"], [t.cells() for t in targets])
    print(f"\nthe benchmarks' own tables are above; their JSON is in {out}")


if __name__ == "__main__":
    main()
