"""Benchmark: the operator against baselines measured in the same run, as seen from outside.

    SELFBOOTSTRAP_AUDIT_LOG=1 .venv/bin/python benchmarks/bench_watch.py [--runs 10 200 1000] [--repeats 3]

Starts the local control plane if needed (tools/localcluster.py; SELFBOOTSTRAP_STATE and the port
variables choose which one), installs the CRD, runs the operator as a subprocess under a service
account of its own, and prints min / median / max of each figure beside a baseline taken the same way:

  1. create -> first status.phase        operator vs an echo controller (a watch that patches Pending)
  2. crash signal -> rollback patch      operator vs a watcher running `kubectl rollout undo`
  3. crash signal -> RolledBack          operator vs that Deployment available again
  4. N healthy runs, create -> all done  operator vs `kubectl set image` on N Deployments until rolled out
  5. API requests per run                operator (audit log) vs the Deployment + ReplicaSet controllers
  6. peak RSS, CPU seconds, CPU per run  operator (/proc) vs its idle RSS and kube-controller-manager's CPU
  7. N runs created in a burst           operator vs `kubectl set image` on N and two floor controllers: each
                                         deploy patch, requests, RSS at 10 Hz, and the CPU the operator and
                                         each control-plane process used until the p95 deploy (/proc)

Every time is taken by this script's own watches (time.monotonic() when an event arrives); nothing is
read from the operator but /proc/<pid>. Prints figures; asserts nothing. Row 5 needs the API server's
audit log: start the cluster with SELFBOOTSTRAP_AUDIT_LOG=1 (otherwise the row is skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Self, TypeVar

from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tools/ and tests/support/, shared with the tests
from tests.support.kube import kubectl, service_account_token, token_kubeconfig, wait_established  # noqa: E402
from tests.support.operator_process import OperatorProcess, proc_cpu_seconds, without_proxies  # noqa: E402
from tests.support.waiting import poll  # noqa: E402
from tools import localcluster  # noqa: E402

Json = dict[str, Any]
T = TypeVar("T")
GROUP, VERSION, PLURAL = "selfbootstrap.dev", "v1alpha1", "selfbootstrapruns"
CRD = ROOT / "crds" / "selfbootstrap.dev_selfbootstrapruns.yaml"
V1, V2 = "registry.example.com/app:v1", "registry.example.com/app:v2"
CRASH_IMAGE = "registry.example.com/app:v2-crashloop"  # kwok makes it crash-loop (hack/kwok/stages.yaml)
WATCHDOG = {"retries": 2, "intervalSeconds": 1}
TERMINAL = ("Succeeded", "Failed", "RolledBack")
ROLLOUT_CONTROLLERS = ("/deployment-controller", "/replicaset-controller")  # kube-controller-manager user agents
SETTLE = 2.0  # seconds after the last run ends that still count as its requests and CPU
LATENCY_TIMEOUT = 120.0
FINALIZER_GRACE = 10.0  # seconds a deleted namespace's runs may keep their finalizer before the benchmark drops it


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --- what the watches saw -------------------------------------------------------------


class Marks:
    """The first time (time.monotonic()) each named observation was made by a watch; waitable."""

    def __init__(self) -> None:
        self._times: dict[str, float] = {}
        self._cond = threading.Condition()

    def mark(self, key: str, at: float) -> None:
        with self._cond:
            if key not in self._times:
                self._times[key] = at
                self._cond.notify_all()

    def get(self, key: str) -> float | None:
        with self._cond:
            return self._times.get(key)

    def wait(self, keys: list[str], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: all(k in self._times for k in keys), timeout)


class Watcher:
    """One watch in its own thread; every ADDED/MODIFIED object goes to handle(type, object, arrival time)."""

    def __init__(self, name: str, list_fn: Callable[..., Any], args: tuple[str, ...],
                 handle: Callable[[str, Json, float], None]) -> None:
        self.list_fn, self.args, self.handle = list_fn, args, handle
        self._stopping = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Watcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._watch:
            self._watch.stop()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            self._watch = watch.Watch()
            kwargs: Json = {"timeout_seconds": 15, "_request_timeout": 60, "allow_watch_bookmarks": True,
                            "deserialize": False}
            if version:
                kwargs["resource_version"] = version
            try:
                for event in self._watch.stream(self.list_fn, *self.args, **kwargs):
                    at = time.monotonic()
                    obj = event.get("object") or {}
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        self.handle(event["type"], obj, at)
                    if self._stopping.is_set():
                        break
            except (ApiException, KeyError):  # 410 Gone (the client raises KeyError for it without deserialize)
                version = None
            except Exception as err:  # a stopped or broken stream: start again unless stopping
                if not self._stopping.is_set():
                    say(f"watch {self._thread.name}: {type(err).__name__}: {err}; restarting")
                    time.sleep(0.5)


@contextlib.contextmanager
def running(*watchers: Watcher) -> Iterator[None]:
    for w in watchers:
        w.start()
    try:
        yield
    finally:
        for w in watchers:
            w.stop()


def image_of(deployment: Json) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


def available(dep: Json) -> bool:
    """observedGeneration current, updatedReplicas and availableReplicas equal to replicas."""
    spec, st = dep.get("spec") or {}, dep.get("status") or {}
    want = spec.get("replicas", 1)
    return st.get("observedGeneration", 0) >= dep["metadata"].get("generation", 0) \
        and st.get("updatedReplicas", 0) == want and st.get("availableReplicas", 0) == want


def rolled_out(dep: Json) -> bool:
    """As `kubectl rollout status`: available, and no old replicas left."""
    return available(dep) and (dep.get("status") or {}).get("replicas", 0) == (dep.get("spec") or {}).get("replicas", 1)


def crash_signal(pod: Json) -> bool:
    """A pod of the crash-looping template with a container waiting in CrashLoopBackOff."""
    if not any("crashloop" in c.get("image", "") for c in pod["spec"]["containers"]):
        return False
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return any(((s.get("state") or {}).get("waiting") or {}).get("reason") == "CrashLoopBackOff" for s in statuses)


def on_run(marks: Marks) -> Callable[[str, Json, float], None]:
    def handle(_: str, run: Json, at: float) -> None:
        name, phase = run["metadata"]["name"], (run.get("status") or {}).get("phase")
        if phase:
            marks.mark(f"phase:{name}", at)
            marks.mark(f"{phase}:{name}", at)
            if phase in TERMINAL:
                marks.mark(f"done:{name}", at)
                if not run["metadata"].get("finalizers"):
                    marks.mark(f"released:{name}", at)  # the operator's last request for the run
    return handle


def on_pod(marks: Marks) -> Callable[[str, Json, float], None]:
    def handle(_: str, pod: Json, at: float) -> None:
        app = (pod["metadata"].get("labels") or {}).get("app")
        if app and crash_signal(pod):
            marks.mark(f"crash:{app}", at)
    return handle


def on_deployment(marks: Marks) -> Callable[[str, Json, float], None]:
    def handle(_: str, dep: Json, at: float) -> None:
        name, image = dep["metadata"]["name"], image_of(dep)
        if image == V2:
            marks.mark(f"patched:{name}", at)
        if rolled_out(dep):
            marks.mark(f"rolledout:{name}:{image}", at)
        if "crashloop" in image:
            marks.mark(f"crashing:{name}", at)
        elif marks.get(f"crashing:{name}") is not None:
            marks.mark(f"reverted:{name}", at)
            if available(dep):
                marks.mark(f"recovered:{name}", at)
    return handle


@contextlib.contextmanager
def observing(namespace: str) -> Iterator[Marks]:
    """The benchmark's own watches on the namespace's runs, pods and Deployments."""
    marks = Marks()
    custom = client.CustomObjectsApi(client.ApiClient())
    core, apps = client.CoreV1Api(client.ApiClient()), client.AppsV1Api(client.ApiClient())
    with running(Watcher("runs", custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL),
                         on_run(marks)),
                 Watcher("pods", core.list_namespaced_pod, (namespace,), on_pod(marks)),
                 Watcher("deployments", apps.list_namespaced_deployment, (namespace,), on_deployment(marks))):
        time.sleep(0.5)  # the watches are established
        yield marks


# --- baselines: tiny controllers of our own ---------------------------------------------------


def echo_controller(namespace: str) -> Watcher:
    """The least a controller can do: on ADDED, patch status {"phase": "Pending"}."""
    custom = client.CustomObjectsApi(client.ApiClient())

    def handle(kind: str, run: Json, _: float) -> None:
        if kind == "ADDED" and not (run.get("status") or {}).get("phase"):
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, run["metadata"]["name"], {"status": {"phase": "Pending"}},
                _content_type="application/merge-patch+json")

    return Watcher("echo", custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL), handle)


FLOOR_THREADS = 8  # as many as the operator's tick threads (SELFBOOTSTRAP_TICK_THREADS)


def floor_controller(namespace: str, status_first: bool) -> tuple[Watcher, ThreadPoolExecutor]:
    """The least a controller that deploys runs can do, the floor of figure 7: on a run's ADDED event, patch its
    Deployment's image from FLOOR_THREADS threads; status_first: after writing the run's status
    {"phase": "Pending"}, as a controller whose first status comes before its work must."""
    custom, apps = client.CustomObjectsApi(client.ApiClient()), client.AppsV1Api(client.ApiClient())
    pool = ThreadPoolExecutor(FLOOR_THREADS)

    def deploy(run: Json) -> None:
        if status_first:
            custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, run["metadata"]["name"], {"status": {"phase": "Pending"}},
                _content_type="application/merge-patch+json")
        image = {"name": "app", "image": run["spec"]["release"]["image"]}
        apps.patch_namespaced_deployment(run["spec"]["target"]["deployment"], namespace,
                                         {"spec": {"template": {"spec": {"containers": [image]}}}},
                                         _content_type="application/strategic-merge-patch+json")

    def handle(kind: str, run: Json, _: float) -> None:
        if kind == "ADDED" and not (run.get("status") or {}).get("phase"):
            pool.submit(deploy, run)

    return Watcher("floor", custom.list_namespaced_custom_object, (GROUP, VERSION, namespace, PLURAL), handle), pool


def undo_on_crash(namespace: str) -> Watcher:
    """A bare watcher: `kubectl rollout undo` at the first crash signal of each Deployment's pods."""
    core = client.CoreV1Api(client.ApiClient())
    undone: set[str] = set()

    def handle(_: str, pod: Json, __: float) -> None:
        app = (pod["metadata"].get("labels") or {}).get("app")
        if app and app not in undone and crash_signal(pod):
            undone.add(app)
            kubectl("-n", namespace, "rollout", "undo", f"deployment/{app}")

    return Watcher("undo", core.list_namespaced_pod, (namespace,), handle)


# --- cluster objects ---------------------------------------------------------------------------


def _exists(read: Callable[[], Any]) -> bool:
    try:
        read()
    except ApiException as err:
        if err.status == 404:
            return False
        raise
    return True


@contextlib.contextmanager
def namespace(name: str, delete_timeout: float = 120) -> Iterator[str]:
    """A fresh namespace (with its default service account, which pods need), deleted afterwards."""
    core = client.CoreV1Api()
    core.create_namespace({"metadata": {"name": name, "labels": {"selfbootstrap.dev/bench": "watch"}}})
    try:
        poll(lambda: _exists(lambda: core.read_namespaced_service_account("default", name)), 30)
        yield name
    finally:
        delete_namespace(name, delete_timeout)


def delete_namespace(name: str, timeout: float) -> None:
    """Delete it; runs whose finalizer nobody removes within a grace period are released by force."""
    core = client.CoreV1Api()
    with contextlib.suppress(ApiException):
        core.delete_namespace(name)

    def gone() -> bool:
        return not _exists(lambda: core.read_namespace(name))

    if poll(gone, FINALIZER_GRACE, 0.5):
        return
    released = release_runs(name)
    if released:
        say(f"{name}: {released} runs kept their finalizer {FINALIZER_GRACE:.0f}s after the namespace was deleted; "
            "removed it")
    if not poll(gone, timeout, 0.5):
        say(f"namespace {name} still terminating after {timeout:.0f}s; going on")


def release_runs(ns: str) -> int:
    custom = client.CustomObjectsApi()
    held = [r["metadata"]["name"] for r in custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
            if r["metadata"].get("finalizers")]
    for name in held:
        with contextlib.suppress(ApiException):
            custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, {"metadata": {"finalizers": None}},
                                                  _content_type="application/merge-patch+json")
    return len(held)


def create_deployments(ns: str, names: list[str], group: str) -> None:
    apps = client.AppsV1Api()
    for name in names:
        apps.create_namespaced_deployment(ns, {
            "metadata": {"name": name, "labels": {"app": name, "bench": group}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": V1}]}}}})


def ready_deployments(ns: str, marks: Marks, names: list[str], group: str, timeout: float) -> bool:
    create_deployments(ns, names, group)
    ok = marks.wait([f"rolledout:{n}:{V1}" for n in names], timeout)
    if not ok:
        say(f"{ns}: not every Deployment became available within {timeout:.0f}s")
    return ok


def create_run(ns: str, name: str, deployment: str, image: str) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SelfBootstrapRun", "metadata": {"name": name},
        "spec": {"target": {"deployment": deployment}, "release": {"image": image}, "restartWatchdog": WATCHDOG}})


def warm_up(ns: str, marks: Marks, operator_side: bool = True) -> bool:
    """A run whose status appears shows that the controller's watch of the namespace is live; the measurement
    starts once the operator is done with it (its last request, the finalizer's removal, is not counted; the
    echo controller only writes a status)."""
    create_run(ns, "warm-up", "no-such-deployment", V2)
    ok = marks.wait(["released:warm-up" if operator_side else "phase:warm-up"], LATENCY_TIMEOUT)
    if not ok:
        say(f"{ns}: the warm-up run got no status within {LATENCY_TIMEOUT:.0f}s")
    return ok


def since(marks: Marks, start: str | float | None, end: str) -> float:
    """Seconds from one mark (or a time) to another; nan when either was never seen."""
    t0 = marks.get(start) if isinstance(start, str) else start
    t1 = marks.get(end)
    return t1 - t0 if t0 is not None and t1 is not None else float("nan")


# --- the operator as a process -------------------------------------------------------------------


def operator(kubeconfig: Path, namespace: str, log_path: Path) -> OperatorProcess:
    """`python -m selfbootstrap --standalone` under the benchmark's service account, as shipped (none of the
    tests' settings, not verbose), without the proxy variables; `with operator(...) as op:` runs it."""
    return OperatorProcess(kubeconfig, log_path.parent, ("--standalone", f"--namespace={namespace}"),
                           env={"NO_PROXY": "127.0.0.1,localhost"}, environ=without_proxies(os.environ), settings={},
                           verbose=False, metrics=False, alive_timeout=60, log_file=log_path)


@dataclass(frozen=True)
class Identity:
    """A service account bound to cluster-admin, and a kubeconfig with its token, for the operator."""

    namespace: str
    name: str
    kubeconfig: Path

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    def requests(self, audit: AuditLog, start: AuditMark) -> Counter[str]:
        """What the operator asked of the API server from `start` until now."""
        return audit.requests(start, time.time(), self.username, lambda e: e["user"]["username"] == self.username)


@contextlib.contextmanager
def operator_identity(sid: str, workdir: Path) -> Iterator[Identity]:
    ns, name, binding = f"selfbootstrap-bench-{sid}", "operator", f"selfbootstrap-bench-{sid}"
    core, rbac = client.CoreV1Api(), client.RbacAuthorizationV1Api()
    core.create_namespace({"metadata": {"name": ns}})
    try:
        core.create_namespaced_service_account(ns, {"metadata": {"name": name}})
        rbac.create_cluster_role_binding({
            "metadata": {"name": binding},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]})
        token = service_account_token(ns, name)
        yield Identity(ns, name, token_kubeconfig(kubectl, token, workdir / "operator-kubeconfig"))
    finally:
        with contextlib.suppress(ApiException):
            rbac.delete_cluster_role_binding(binding)
        with contextlib.suppress(ApiException):
            core.delete_namespace(ns)


# --- the control plane's own processes and its audit log ------------------------------------


def component_pid(name: str) -> int | None:
    """The pid of the local control plane's component, if it runs here."""
    return None if localcluster.use_existing() else localcluster.LocalCluster.default().running(name)


def audit_log_path() -> Path | None:
    """The audit log the running kube-apiserver writes (SELFBOOTSTRAP_AUDIT_LOG=1 at `up`), if any."""
    pid = component_pid("kube-apiserver")
    if pid is None:
        return None
    for arg in Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0"):
        if arg.startswith("--audit-log-path="):
            return Path(arg.split("=", 1)[1])
    return None


@dataclass(frozen=True)
class AuditMark:
    wall: float
    inode: int
    offset: int


class AuditLog:
    """Requests from the API server's audit log (JSON lines, rotated as audit-<time>.log)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> AuditMark:
        st = self.path.stat()
        return AuditMark(time.time(), st.st_ino, st.st_size)

    def _lines(self, start: AuditMark) -> Iterator[str]:
        files = [p for p in self.path.parent.glob(f"{self.path.stem}*{self.path.suffix}")
                 if p.stat().st_mtime >= start.wall - 1]
        for p in sorted(files, key=lambda p: p.stat().st_mtime):
            with open(p, errors="replace") as f:
                if os.fstat(f.fileno()).st_ino == start.inode:
                    f.seek(start.offset)
                yield from f

    def requests(self, start: AuditMark, end: float, needle: str, accept: Callable[[Json], bool]) -> Counter[str]:
        """'verb resource[/subresource]' -> count, for requests received in [start, end] that accept() takes."""
        seen: set[str] = set()
        counts: Counter[str] = Counter()
        for line in self._lines(start):
            if needle not in line:
                continue
            event = json.loads(line)
            received = datetime.fromisoformat(event["requestReceivedTimestamp"]).timestamp()
            if event["auditID"] in seen or not start.wall <= received <= end or not accept(event):
                continue
            seen.add(event["auditID"])
            counts[request_kind(event)] += 1
        return counts


def request_kind(event: Json) -> str:
    ref = event.get("objectRef")
    if not ref:
        return f"{event['verb']} {event['requestURI'].split('?')[0]}"
    sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
    return f"{event['verb']} {ref.get('resource', '?')}{sub}"


# --- scenarios ----------------------------------------------------------------------------------


def create_latency(ns: str, repeats: int, operator_side: bool) -> list[float]:
    """Client create -> the run's status.phase first seen by the benchmark's watch."""
    samples: list[float] = []
    with observing(ns) as marks, running(*([] if operator_side else [echo_controller(ns)])):
        if not warm_up(ns, marks, operator_side):
            return samples
        for r in range(repeats):
            name = f"create-{r}"
            if operator_side and not ready_deployments(ns, marks, [name], "create", LATENCY_TIMEOUT):
                continue
            t0 = time.monotonic()
            create_run(ns, name, name, V2)
            marks.wait([f"phase:{name}"], LATENCY_TIMEOUT)
            samples.append(since(marks, t0, f"phase:{name}"))
            if operator_side:  # the operator idle again before the next sample
                marks.wait([f"done:{name}"], LATENCY_TIMEOUT)
        time.sleep(SETTLE)  # the last run's Events are posted before the namespace goes
    return samples


def crash_operator(ns: str, repeats: int) -> tuple[list[float], list[float]]:
    """A run deploying a crash-looping image: crash signal -> rollback patch, and -> RolledBack."""
    to_patch: list[float] = []
    to_done: list[float] = []
    with observing(ns) as marks:
        if not warm_up(ns, marks):
            return to_patch, to_done
        for r in range(repeats):
            name = f"crash-{r}"
            if not ready_deployments(ns, marks, [name], "crash", LATENCY_TIMEOUT):
                continue
            create_run(ns, name, name, CRASH_IMAGE)
            marks.wait([f"crash:{name}", f"done:{name}"], LATENCY_TIMEOUT)
            to_patch.append(since(marks, f"crash:{name}", f"reverted:{name}"))
            to_done.append(since(marks, f"crash:{name}", f"RolledBack:{name}"))
        time.sleep(SETTLE)
    return to_patch, to_done


def crash_baseline(ns: str, repeats: int) -> tuple[list[float], list[float]]:
    """`kubectl set image` to the crash-looping image, a watcher undoes it: crash -> patch, -> available."""
    to_patch: list[float] = []
    to_done: list[float] = []
    with observing(ns) as marks, running(undo_on_crash(ns)):
        for r in range(repeats):
            name = f"crash-{r}"
            if not ready_deployments(ns, marks, [name], "crash", LATENCY_TIMEOUT):
                continue
            kubectl("-n", ns, "set", "image", f"deployment/{name}", f"app={CRASH_IMAGE}")
            marks.wait([f"crash:{name}", f"recovered:{name}"], LATENCY_TIMEOUT)
            to_patch.append(since(marks, f"crash:{name}", f"reverted:{name}"))
            to_done.append(since(marks, f"crash:{name}", f"recovered:{name}"))
    return to_patch, to_done


@dataclass
class Throughput:
    """One repeat of N runs (operator) or N rollouts (baseline)."""

    wall: float = float("nan")
    finished: int = 0
    cpu: float = float("nan")  # the operator's, or kube-controller-manager's, CPU seconds in the window
    peak_mib: float = float("nan")
    idle_mib: float = float("nan")
    requests: Counter[str] = field(default_factory=Counter)
    audited: bool = False


def throughput_timeout(n: int) -> float:
    return 120 + 2.0 * n


def rollouts_baseline(ns: str, n: int, audit: AuditLog | None) -> Throughput:
    """`kubectl set image` on N Deployments (one command, by label) until all are rolled out."""
    out, names, kcm = Throughput(), [f"app-{i}" for i in range(n)], component_pid("kube-controller-manager")
    with observing(ns) as marks:
        if not ready_deployments(ns, marks, names, "rollout", throughput_timeout(n)):
            return out
        cpu0 = proc_cpu_seconds(kcm) if kcm else float("nan")
        start, t0 = (audit.mark() if audit else None), time.monotonic()
        kubectl("-n", ns, "set", "image", "deployment", "-l", "bench=rollout", f"app={V2}", timeout=600)
        marks.wait([f"rolledout:{x}:{V2}" for x in names], throughput_timeout(n))
        ends = [t for x in names if (t := marks.get(f"rolledout:{x}:{V2}")) is not None]
        out.finished, out.wall = len(ends), (max(ends) - t0 if len(ends) == n else float("nan"))
        time.sleep(SETTLE)
        out.cpu = proc_cpu_seconds(kcm) - cpu0 if kcm else float("nan")
        if audit and start:
            out.requests = audit.requests(start, time.time(), "kube-controller-manager/", lambda e: any(
                e.get("userAgent", "").endswith(c) for c in ROLLOUT_CONTROLLERS))
            out.audited = True
    return out


def runs_operator(ns: str, n: int, identity: Identity, audit: AuditLog | None, log: Path) -> Throughput:
    """N runs (v1 -> v2, each on its own Deployment) created at once, until all are Succeeded."""
    out, names = Throughput(), [f"app-{i}" for i in range(n)]
    with observing(ns) as marks:
        if not ready_deployments(ns, marks, names, "runs", throughput_timeout(n)):
            return out
        with operator(identity.kubeconfig, ns, log) as op:
            if not warm_up(ns, marks):
                return out
            out.idle_mib, cpu0 = op.mib("VmRSS"), op.cpu_seconds()
            start, t0 = (audit.mark() if audit else None), time.monotonic()
            for name in names:
                create_run(ns, name, name, V2)
            marks.wait([f"done:{x}" for x in names], throughput_timeout(n))
            ends = [t for x in names if (t := marks.get(f"Succeeded:{x}")) is not None]
            out.finished, out.wall = len(ends), (max(ends) - t0 if len(ends) == n else float("nan"))
            time.sleep(SETTLE)
            out.cpu, out.peak_mib = op.cpu_seconds() - cpu0, op.mib("VmHWM")
            if audit and start:
                out.requests = identity.requests(audit, start)
                out.audited = True
    return out


@dataclass
class Burst:
    """N runs created at once (operator) or one `kubectl set image` on N Deployments (baseline): per workload,
    the seconds from the burst's start to its deploy patch (the template at v2, seen by the benchmark's watch)."""

    to_patch: list[float] = field(default_factory=list)
    created: list[float] = field(default_factory=list)  # when each run's create returned (operator side)
    peak_mib: float = float("nan")  # the highest VmRSS sampled at 10 Hz (operator)
    hwm_mib: float = float("nan")  # VmHWM at the end: the kernel's own peak, for comparison with the samples
    idle_mib: float = float("nan")
    requests: Counter[str] = field(default_factory=Counter)
    audited: bool = False
    busy: dict[str, float] = field(default_factory=dict)  # CPU cores each process used, start -> p95 deploy


class Sampler:
    """Calls `take` at once and then every `interval` seconds, in a thread of its own, while in its `with`."""

    def __init__(self, interval: float, name: str) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def take(self) -> None:
        raise NotImplementedError

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(self.interval)


class RssSampler(Sampler):
    """VmRSS of a process every 0.1 s; `peak` is the highest sample."""

    def __init__(self, sample: Callable[[], float], interval: float = 0.1) -> None:
        super().__init__(interval, "rss")
        self.sample, self.peak = sample, float("nan")

    def take(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            value = self.sample()
            self.peak = value if math.isnan(self.peak) else max(self.peak, value)


class CpuSampler(Sampler):
    """Each process's CPU seconds every 0.5 s (and once more at the end); `cores` says how much CPU each used
    between two times, from the samples around them."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        super().__init__(interval, "cpu")
        self.pids = pids
        self.samples: list[tuple[float, dict[str, float]]] = []

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.take()

    def take(self) -> None:
        now: dict[str, float] = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError, ValueError):
                now[name] = proc_cpu_seconds(pid)
        self.samples.append((time.monotonic(), now))

    def cores(self, t0: float, t1: float) -> dict[str, float]:
        """The cores each process used from the last sample at or before t0 to the first at or after t1."""
        before = [s for s in self.samples if s[0] <= t0] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= t1] or self.samples[-1:]
        (ta, a), (tb, b) = before[-1], after[0]
        return {k: (b[k] - a[k]) / (tb - ta) for k in a if k in b} if tb > ta else {}


CONTROL_PLANE = ("kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok")
REST_OF_CONTROL_PLANE = "etcd, kube-controller-manager, kube-scheduler and kwok"


def busy_pids(operator_pid: int) -> dict[str, int]:
    """The operator and the local control plane's components (none when the cluster is not the local one)."""
    found = {name: pid for name in CONTROL_PLANE if (pid := component_pid(name)) is not None}
    return {"operator": operator_pid, **found}


BURST_CLIENTS = 32  # concurrent creates, as a GitOps engine's sync (Argo CD applies with many workers) does


def create_burst(ns: str, names: list[str]) -> list[float]:
    """Every run created at once: BURST_CLIENTS threads, each with its own connection; when each create returned."""
    def create(name: str) -> float:
        create_run(ns, name, name, V2)
        return time.monotonic()

    with ThreadPoolExecutor(BURST_CLIENTS) as pool:
        return list(pool.map(create, names))


def burst_operator(ns: str, n: int, identity: Identity, audit: AuditLog | None, log: Path) -> Burst:
    """N runs (v1 -> v2, each on its own Deployment) created in a burst: burst start -> each deploy patch."""
    out, names = Burst(), [f"app-{i}" for i in range(n)]
    with observing(ns) as marks:
        if not ready_deployments(ns, marks, names, "burst", throughput_timeout(n)):
            return out
        with operator(identity.kubeconfig, ns, log) as op:
            if not warm_up(ns, marks):
                return out
            out.idle_mib = op.mib("VmRSS")
            assert op.proc is not None
            with RssSampler(lambda: op.mib("VmRSS")) as rss, CpuSampler(busy_pids(op.proc.pid)) as cpu:
                start, t0 = (audit.mark() if audit else None), time.monotonic()
                out.created = [t - t0 for t in create_burst(ns, names)]
                marks.wait([f"done:{x}" for x in names], throughput_timeout(n))
                time.sleep(SETTLE)
            out.to_patch = [since(marks, t0, f"patched:{x}") for x in names]
            out.peak_mib, out.hwm_mib = rss.peak, op.mib("VmHWM")
            out.busy = cpu.cores(t0, t0 + percentile(out.to_patch, 0.95))
            if audit and start:
                out.requests = identity.requests(audit, start)
                out.audited = True
    return out


def burst_baseline(ns: str, n: int) -> Burst:
    """`kubectl set image` on N Deployments at once: its start -> each Deployment's template at v2."""
    out, names = Burst(), [f"app-{i}" for i in range(n)]
    with observing(ns) as marks:
        if not ready_deployments(ns, marks, names, "burst", throughput_timeout(n)):
            return out
        t0 = time.monotonic()
        kubectl("-n", ns, "set", "image", "deployment", "-l", "bench=burst", f"app={V2}", timeout=600)
        marks.wait([f"patched:{x}" for x in names], throughput_timeout(n))
        out.to_patch = [since(marks, t0, f"patched:{x}") for x in names]
    return out


def burst_floor(ns: str, n: int, status_first: bool) -> Burst:
    """N runs created in a burst as for the operator, deployed by floor_controller: burst start -> each deploy
    patch. What any controller deploying runs would take on this control plane."""
    out, names = Burst(), [f"app-{i}" for i in range(n)]
    with observing(ns) as marks:
        if not ready_deployments(ns, marks, names, "burst", throughput_timeout(n)):
            return out
        controller, pool = floor_controller(ns, status_first)
        try:
            with running(controller):
                time.sleep(0.5)  # the controller's watch is established
                t0 = time.monotonic()
                out.created = [t - t0 for t in create_burst(ns, names)]
                marks.wait([f"patched:{x}" for x in names], throughput_timeout(n))
        finally:
            pool.shutdown(cancel_futures=True)
        out.to_patch = [since(marks, t0, f"patched:{x}") for x in names]
    return out


def percentile(xs: list[float], q: float) -> float:
    ok = sorted(finite(xs))
    return ok[min(len(ok) - 1, math.ceil(q * len(ok)) - 1)] if ok else float("nan")


FLOORS = {False: "a floor controller: the deploy patch alone", True: "a floor controller: first status, then deploy"}


def burst_rows(n: int, ours: list[Burst], base: list[Burst],
               floors: dict[bool, list[Burst]] | None = None) -> list[Row]:
    rows = [Row(f"7. burst of {n}: start -> deploy patch, p{int(q * 100)} (s)",
                [percentile(b.to_patch, q) for b in ours], [percentile(b.to_patch, q) for b in base], ".2f",
                f"kubectl set image on {n} Deployments") for q in (0.5, 0.95)]
    for status_first, measured in (floors or {}).items():
        p95 = [percentile(b.to_patch, 0.95) for b in measured]
        rows.append(Row(f"7. burst of {n}: start -> deploy patch, p95 (s), vs the floor",
                        [percentile(b.to_patch, 0.95) for b in ours], p95, ".2f",
                        f"{FLOORS[status_first]} (bench_watch.floor_controller)"))
        rows.append(Row(f"7. burst of {n}: the floor's own p95 vs kubectl's (s)", p95,
                        [percentile(b.to_patch, 0.95) for b in base], ".2f",
                        f"{FLOORS[status_first]}; the operator's target: 2x kubectl"))
    rows.append(Row(f"7. burst of {n}: the runs' own creates, p95 (s)", [percentile(b.created, 0.95) for b in ours],
                    [percentile(b.to_patch, 0.95) for b in base], ".2f",
                    "the floor: no run deploys before it exists; beside kubectl's p95"))
    if all(b.audited for b in ours):
        rows.append(Row(f"7. burst of {n}: API requests per run", [sum(b.requests.values()) / n for b in ours], [],
                        ".1f", "target: <= 15"))
    if any(b.busy for b in ours):
        rows += [
            Row(f"7. burst of {n}: CPU cores, start -> p95 deploy: the operator vs kube-apiserver",
                [b.busy.get("operator", math.nan) for b in ours],
                [b.busy.get("kube-apiserver", math.nan) for b in ours],
                ".2f", f"who paces the burst, of the machine's {os.cpu_count()} cores"),
            Row(f"7. burst of {n}: CPU cores, start -> p95 deploy: the rest of the control plane",
                [sum(b.busy.get(c, 0.0) for c in CONTROL_PLANE[1:]) if b.busy else math.nan for b in ours], [],
                ".2f", REST_OF_CONTROL_PLANE),
        ]
    rows += [
        Row(f"7. burst of {n}: peak RSS, MiB (VmRSS at 10 Hz)", [b.peak_mib for b in ours],
            [b.idle_mib for b in ours], ".0f", "the same operator idle; target: <= 150"),
        Row(f"7. burst of {n}: VmHWM, MiB", [b.hwm_mib for b in ours], [b.idle_mib for b in ours], ".0f",
            "the kernel's peak, beside the samples"),
    ]
    return rows


def burst(sid: str, n: int, repeats: int, identity: Identity, audit: AuditLog | None, logs: Path,
          baselines: bool = True, operator_side: bool = True) -> list[Row]:
    ours: list[Burst] = []
    base: list[Burst] = []
    floors: dict[bool, list[Burst]] = {False: [], True: []} if baselines else {}
    for r in range(repeats):
        if baselines:
            base.append(scenario(f"7. burst N={n}, repeat {r + 1}/{repeats}: kubectl set image baseline",
                                 f"bench-{sid}-base-burst{n}-{r}", functools.partial(burst_baseline, n=n), Burst(),
                                 120 + n))
            for status_first, measured in floors.items():
                measured.append(scenario(f"7. burst N={n}, repeat {r + 1}/{repeats}: {FLOORS[status_first]}",
                                         f"bench-{sid}-floor{int(status_first)}-burst{n}-{r}",
                                         functools.partial(burst_floor, n=n, status_first=status_first), Burst(),
                                         120 + n))
        if operator_side:
            ours.append(scenario(f"7. burst N={n}, repeat {r + 1}/{repeats}: operator", f"bench-{sid}-op-burst{n}-{r}",
                                 functools.partial(burst_operator, n=n, identity=identity, audit=audit,
                                                   log=logs / f"operator-burst{n}-{r}.log"), Burst(), 120 + n))
    return burst_rows(n, ours, base, floors)


# --- figures -------------------------------------------------------------------------------------


def finite(xs: list[float]) -> list[float]:
    return [x for x in xs if not math.isnan(x)]


def spread(xs: list[float], fmt: str) -> str:
    ok = finite(xs)
    if not ok:
        return "n/a"
    cell = " / ".join(format(v, fmt) for v in (min(ok), statistics.median(ok), max(ok)))
    return cell + (f"  ({len(xs) - len(ok)} of {len(xs)} missing)" if len(ok) < len(xs) else "")


def ratio(ours: list[float], base: list[float]) -> str:
    a, b = finite(ours), finite(base)
    if not a or not b or statistics.median(b) == 0:
        return "n/a"
    return f"{statistics.median(a) / statistics.median(b):.2f}x"


@dataclass(frozen=True)
class Row:
    figure: str
    ours: list[float]
    base: list[float]
    fmt: str
    baseline: str

    def cells(self) -> list[str]:
        return [self.figure, spread(self.ours, self.fmt), spread(self.base, self.fmt), ratio(self.ours, self.base),
                self.baseline]


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    try:
        from rich.console import Console  # type: ignore[import-not-found]
        from rich.table import Table  # type: ignore[import-not-found]
    except ImportError:
        widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
        print(f"\n{title}")
        for r in [headers, ["-" * w for w in widths], *rows]:
            print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return
    table = Table(*headers, title=title, title_justify="left")
    for r in rows:
        table.add_row(*r)
    Console(width=max(160, shutil.get_terminal_size().columns)).print(table)


def throughput_rows(n: int, ours: list[Throughput], base: list[Throughput]) -> list[Row]:
    per = [t.cpu / n for t in ours]
    rows = [
        Row(f"4. {n} runs: create -> all Succeeded (s)", [t.wall for t in ours], [t.wall for t in base], ".2f",
            f"kubectl set image on {n} Deployments -> all rolled out"),
    ]
    if all(t.audited for t in ours + base):
        rows.append(Row(f"5. API requests per run (N={n})", [sum(t.requests.values()) / n for t in ours],
                        [sum(t.requests.values()) / n for t in base], ".1f",
                        "deployment + replicaset controllers, per rollout"))
    rows += [
        Row(f"6. operator peak RSS, MiB (N={n})", [t.peak_mib for t in ours], [t.idle_mib for t in ours], ".0f",
            "the same operator idle (VmRSS before the runs)"),
        Row(f"6. CPU seconds (N={n})", [t.cpu for t in ours], [t.cpu for t in base], ".2f",
            "kube-controller-manager during the baseline rollouts"),
        Row(f"6. CPU seconds per run (N={n})", per, [t.cpu / n for t in base], ".3f",
            "kube-controller-manager per rollout"),
    ]
    return rows


def completion_notes(n: int, ours: list[Throughput], base: list[Throughput]) -> list[str]:
    notes = [f"N={n} repeat {r + 1}: operator {o.finished}/{n} Succeeded" for r, o in enumerate(ours)
             if o.finished < n]
    return notes + [f"N={n} repeat {r + 1}: baseline {b.finished}/{n} rolled out" for r, b in enumerate(base)
                    if b.finished < n]


def print_breakdown(results: dict[int, list[Throughput]]) -> None:
    for n, runs in results.items():
        if not runs or not all(t.audited for t in runs):
            continue
        total: Counter[str] = sum((t.requests for t in runs), Counter())
        rows = [[kind, f"{count / (n * len(runs)):.2f}", str(count)] for kind, count in total.most_common()]
        print_table(f"operator API requests by verb/resource in the window, N={n} ({len(runs)} samples)",
                    ["verb resource", "per run", "total"], rows)


# --- main ----------------------------------------------------------------------------------------


def setup_cluster() -> None:
    localcluster.up()
    os.environ["KUBECONFIG"] = str(localcluster.kubeconfig_path())  # kubectl()'s cluster
    config.load_kube_config(os.environ["KUBECONFIG"])
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    wait_established(kubectl, "selfbootstrapruns.selfbootstrap.dev")


def attempt(what: str, fn: Callable[[], T], default: T) -> T:
    try:
        return fn()
    except Exception as err:  # one scenario that fails leaves the others' figures
        say(f"{what} failed: {type(err).__name__}: {err}")
        return default


def scenario(what: str, ns: str, fn: Callable[[str], T], default: T, delete_timeout: float = 120) -> T:
    """fn in a fresh namespace, deleted afterwards; default if anything fails."""
    say(what)

    def go() -> T:
        with namespace(ns, delete_timeout) as name:
            return fn(name)

    return attempt(what, go, default)


def latency_rows(sid: str, repeats: int, identity: Identity, logs: Path) -> list[Row]:
    no_samples: list[float] = []
    none: tuple[list[float], list[float]] = ([], [])
    none3: tuple[list[float], list[float], list[float]] = ([], [], [])

    def operator_side() -> tuple[list[float], list[float], list[float]]:
        with operator(identity.kubeconfig, f"bench-{sid}-op-*", logs / "operator-latency.log"):
            create = scenario("1. create -> first status (operator)", f"bench-{sid}-op-create",
                              functools.partial(create_latency, repeats=repeats, operator_side=True), no_samples)
            patch, done = scenario("2/3. crash signal -> rollback (operator)", f"bench-{sid}-op-crash",
                                   functools.partial(crash_operator, repeats=repeats), none)
        return create, patch, done

    create_op, patch_op, done_op = attempt("the operator", operator_side, none3)
    create_echo = scenario("1. create -> first status (echo controller)", f"bench-{sid}-echo-create",
                           functools.partial(create_latency, repeats=repeats, operator_side=False), no_samples)
    patch_base, done_base = scenario("2/3. crash signal -> rollback (watcher + kubectl rollout undo)",
                                     f"bench-{sid}-base-crash", functools.partial(crash_baseline, repeats=repeats),
                                     none)
    return [
        Row("1. create -> first status.phase (s)", create_op, create_echo, ".3f",
            "echo controller: watch, patch status Pending"),
        Row("2. crash signal -> rollback patch (s)", patch_op, patch_base, ".3f",
            "watcher runs kubectl rollout undo"),
        Row("3. crash signal -> RolledBack (s)", done_op, done_base, ".3f",
            "same rollback: Deployment available again"),
    ]


def throughput(sid: str, n: int, repeats: int, identity: Identity, audit: AuditLog | None,
               logs: Path, baselines: bool = True) -> tuple[list[Throughput], list[Throughput]]:
    ours: list[Throughput] = []
    base: list[Throughput] = []
    delete_timeout = 120 + n
    for r in range(repeats):
        if baselines:
            base.append(scenario(f"4-6. N={n}, repeat {r + 1}/{repeats}: kubectl set image baseline",
                                 f"bench-{sid}-base-n{n}-{r}", functools.partial(rollouts_baseline, n=n, audit=audit),
                                 Throughput(), delete_timeout))
        ours.append(scenario(f"4-6. N={n}, repeat {r + 1}/{repeats}: operator", f"bench-{sid}-op-n{n}-{r}",
                             functools.partial(runs_operator, n=n, identity=identity, audit=audit,
                                               log=logs / f"operator-n{n}-{r}.log"),
                             Throughput(), delete_timeout))
    return ours, base


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="*", default=[10], metavar="N",
                        help="numbers of concurrent runs for figures 4-6 (default: 10)")
    parser.add_argument("--repeats", type=int, default=3, help="samples of each figure (default: 3)")
    parser.add_argument("--throughput-repeats", type=int, default=None, metavar="R",
                        help="samples of figures 4-6 for each N (default: --repeats)")
    parser.add_argument("--burst", type=int, nargs="*", default=[], metavar="N",
                        help="figure 7: N runs created at once, start -> deploy patch vs kubectl set image")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write every row's samples there (bench_targets.py)")
    parser.add_argument("--operator-only", action="store_true",
                        help="figures 4-6 of the operator alone: no baselines, no latency figures 1-3 (quicker)")
    parser.add_argument("--baselines-only", action="store_true",
                        help="figure 7's baselines alone: kubectl and the floor controllers, no operator")
    args = parser.parse_args()

    setup_cluster()
    audit_path = audit_log_path()
    audit = AuditLog(audit_path) if audit_path and audit_path.exists() else None
    sid, logs = uuid.uuid4().hex[:5], Path(tempfile.mkdtemp(prefix="bench-watch-"))
    say(f"session {sid}; operator logs in {logs}; audit log: {audit_path if audit else 'off'}")
    with operator_identity(sid, logs) as identity:
        rows = [] if args.operator_only or args.baselines_only else latency_rows(sid, args.repeats, identity, logs)
        results: dict[int, list[Throughput]] = {}
        notes: list[str] = []
        for n in args.runs:
            ours, base = throughput(sid, n, args.throughput_repeats or args.repeats, identity, audit, logs,
                                    baselines=not args.operator_only)
            results[n] = ours
            rows += throughput_rows(n, ours, base)
            notes += completion_notes(n, ours, base)
        for n in args.burst:
            rows += burst(sid, n, args.throughput_repeats or args.repeats, identity, audit, logs,
                          baselines=not args.operator_only, operator_side=not args.baselines_only)
    print_table(f"selfbootstrap operator vs baselines (min / median / max of {args.repeats} samples, figures 4-6: "
                f"{args.throughput_repeats or args.repeats} per N; ratio = operator median / baseline median)",
                ["figure", "operator", "baseline", "ratio", "baseline is"], [r.cells() for r in rows])
    print_breakdown(results)
    if args.json:
        args.json.write_text(json.dumps([{"figure": r.figure, "operator": r.ours, "baseline": r.base} for r in rows]))
    for note in notes:
        print(f"incomplete: {note}")
    print(f"\nruns deploy v1 -> v2 with restartWatchdog {{retries: 2, intervalSeconds: 1}}: about 1 s of each "
          f"run is that wait. 1 replica per Deployment. Requests: "
          f"{'from ' + str(audit_path) if audit else 'not counted (start the cluster with SELFBOOTSTRAP_AUDIT_LOG=1)'}"
          f". Operator logs: {logs}")


if __name__ == "__main__":
    main()
