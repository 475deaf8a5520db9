"""A real Kubernetes control plane on loopback, without a container runtime.

    python tools/localcluster.py build|up|down [--purge]|env|status

etcd, kube-apiserver, kube-controller-manager (the real Deployment and ReplicaSet
controllers) and kube-scheduler run as local processes; kwok simulates the nodes
and the kubelet's pod status, with stages that make pods misbehave by image name
(hack/kwok/stages.yaml). Binaries are built once from pinned Go modules (hack/k8s,
hack/etcd, kwok) into a cache keyed by version.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING or __package__:  # imported as tools.localcluster
    from . import gotoolchain
else:  # run as a script, or imported with tools/ on sys.path
    import gotoolchain

ROOT = Path(__file__).resolve().parents[1]
K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.5.35"
KWOK_VERSION = "v0.8.0"
HELM_VERSION = "v3.22.0"
HELM_K8S_MINOR = "37"  # the Kubernetes its client-go (v0.37) speaks: `helm template`'s default kube version
CACHE = Path(os.environ.get("SELFBOOTSTRAP_CACHE", Path.home() / ".cache" / "selfbootstrap"))
STATE = Path(os.environ.get("SELFBOOTSTRAP_STATE", Path.home() / ".local" / "state" / "selfbootstrap" / "cluster"))
API_PORT = int(os.environ.get("SELFBOOTSTRAP_API_PORT", "16443"))
ETCD_PORT = int(os.environ.get("SELFBOOTSTRAP_ETCD_PORT", "12379"))
USE_EXISTING = os.environ.get("SELFBOOTSTRAP_USE_EXISTING_CLUSTER") == "1"
NODES = ("kwok-node-0", "kwok-node-1")
LOG_MARK = "==== local-cluster started "  # a line written to a component's log before each start


def k8s_bin() -> Path:
    return CACHE / f"k8s-{K8S_VERSION}" / "bin"


def etcd_bin() -> Path:
    return CACHE / f"etcd-{ETCD_VERSION}" / "bin"


def kwok_bin() -> Path:
    return CACHE / f"kwok-{KWOK_VERSION}" / "bin"


def helm_path() -> Path:
    return CACHE / f"helm-{HELM_VERSION}" / "bin" / "helm"


def kubectl_path() -> Path:
    return k8s_bin() / "kubectl"


def kubeconfig_path() -> Path:
    if USE_EXISTING:
        return Path(os.environ["KUBECONFIG"])
    return STATE / "kubeconfig"


def log(message: str) -> None:
    print(f"local-cluster: {message}", file=sys.stderr, flush=True)


# --- build ----------------------------------------------------------------------


def _go(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    go = gotoolchain.go_command(CACHE)
    path = os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])  # for tools that run `go` again
    done = subprocess.run([go, *args], cwd=cwd, env={**os.environ, "PATH": path, **(env or {})}, check=False)
    if done.returncode:
        raise SystemExit(f"go {' '.join(args)} failed with exit code {done.returncode} (its output is above)")


def build() -> None:
    """Build whatever is missing; Go's build cache makes a rebuild cheap."""
    k8s = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"]
    stamp = k8s_bin() / ".built"  # written last: a build cut short is redone
    if not stamp.exists() or not all((k8s_bin() / b).exists() for b in k8s):
        log(f"building Kubernetes {K8S_VERSION} (first time: about 10 minutes on 2 cores)")
        k8s_bin().mkdir(parents=True, exist_ok=True)
        minor = K8S_VERSION.split(".")[1]
        ldflags = " ".join(["-s", "-w",
                            f"-X k8s.io/component-base/version.gitVersion={K8S_VERSION}",
                            "-X k8s.io/component-base/version.gitMajor=1",
                            f"-X k8s.io/component-base/version.gitMinor={minor}",
                            "-X k8s.io/component-base/version.gitTreeState=clean",
                            f"-X k8s.io/client-go/pkg/version.gitVersion={K8S_VERSION}"])
        _go("build", "-trimpath", f"-ldflags={ldflags}", "-o", f"{k8s_bin()}/",
            *[f"k8s.io/kubernetes/cmd/{b}" for b in k8s], cwd=ROOT / "hack" / "k8s")
        stamp.write_text(K8S_VERSION)
    if not (etcd_bin() / "etcd").exists():
        log(f"building etcd {ETCD_VERSION}")
        etcd_bin().mkdir(parents=True, exist_ok=True)
        _go("build", "-trimpath", "-ldflags=-s -w", "-o", str(etcd_bin() / "etcd"), "go.etcd.io/etcd/server/v3",
            cwd=ROOT / "hack" / "etcd")
    if not (kwok_bin() / "kwok").exists():
        log(f"building kwok {KWOK_VERSION}")
        kwok_bin().mkdir(parents=True, exist_ok=True)
        _go("install", "-trimpath", "-ldflags=-s -w", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}",
            env={"GOBIN": str(kwok_bin())})


def build_helm() -> Path:
    """Helm, built from its Go module on first use (only the chart's tests and Helm installs need it)."""
    if not helm_path().exists():
        log(f"building helm {HELM_VERSION}")
        helm_path().parent.mkdir(parents=True, exist_ok=True)
        flags = ["-s", "-w", f"-X helm.sh/helm/v3/internal/version.version={HELM_VERSION}"]
        for package in ("pkg/chartutil", "pkg/lint/rules"):  # as helm's Makefile sets them
            flags += [f"-X helm.sh/helm/v3/{package}.k8sVersionMajor=1",
                      f"-X helm.sh/helm/v3/{package}.k8sVersionMinor={HELM_K8S_MINOR}"]
        _go("install", "-trimpath", f"-ldflags={' '.join(flags)}", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}",
            env={"GOBIN": str(helm_path().parent)})
    return helm_path()


# --- processes --------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]


def _credentials() -> tuple[str, Path, Path]:
    STATE.mkdir(parents=True, exist_ok=True)
    token_file, key = STATE / "token", STATE / "sa.key"
    if not token_file.exists():
        token_file.write_text(secrets.token_hex(24))
        token_file.chmod(0o600)
    token = token_file.read_text().strip()
    (STATE / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(STATE / "sa.pub")],
                       check=True, capture_output=True)
    return token, key, STATE / "sa.pub"


def _write_kubeconfig(token: str) -> None:
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "selfbootstrap-local",
        "clusters": [{"name": "selfbootstrap-local", "cluster": {
            "server": f"https://127.0.0.1:{API_PORT}",
            "certificate-authority": str(STATE / "certs" / "apiserver.crt")}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "selfbootstrap-local",
                      "context": {"cluster": "selfbootstrap-local", "user": "admin", "namespace": "default"}}],
    }
    path = STATE / "kubeconfig"
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


def components() -> list[Component]:
    _, key, pub = _credentials()
    kubeconfig = str(STATE / "kubeconfig")
    etcd_url = f"http://127.0.0.1:{ETCD_PORT}"
    audit = [f"--audit-policy-file={ROOT / 'hack' / 'audit-policy.yaml'}", f"--audit-log-path={STATE / 'audit.log'}",
             "--audit-log-format=json", "--audit-log-maxsize=512", "--audit-log-maxbackup=4"] \
        if os.environ.get("SELFBOOTSTRAP_AUDIT_LOG") == "1" else []  # every request, for benchmarks/bench_watch.py
    return [
        Component("etcd", [str(etcd_bin() / "etcd"), "--data-dir", str(STATE / "etcd"),
                           "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                           "--listen-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 1}",
                           "--initial-advertise-peer-urls", f"http://127.0.0.1:{ETCD_PORT + 1}",
                           "--initial-cluster", f"default=http://127.0.0.1:{ETCD_PORT + 1}",
                           "--listen-metrics-urls", f"http://127.0.0.1:{ETCD_PORT + 2}",
                           "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3)]),
        Component("kube-apiserver", [
            str(k8s_bin() / "kube-apiserver"), f"--etcd-servers={etcd_url}", f"--secure-port={API_PORT}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--cert-dir={STATE / 'certs'}",
            f"--token-auth-file={STATE / 'tokens.csv'}", "--authorization-mode=RBAC",
            f"--service-account-key-file={pub}", f"--service-account-signing-key-file={key}",
            "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false", *audit]),
        Component("kube-controller-manager", [
            str(k8s_bin() / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            f"--service-account-private-key-file={key}", f"--root-ca-file={STATE / 'certs' / 'apiserver.crt'}",
            "--use-service-account-credentials=false",
            "--secure-port=0", "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"]),
        Component("kube-scheduler", [
            str(k8s_bin() / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
            f"--secure-port={API_PORT + 2}", "--bind-address=127.0.0.1"]),
        Component("kwok", [
            str(kwok_bin() / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--config={ROOT / 'hack' / 'kwok' / 'stages.yaml'}", f"--server-address=127.0.0.1:{API_PORT + 3}"]),
    ]


def _pidfile(name: str) -> Path:
    return STATE / f"{name}.pid"


def _binary(name: str) -> Path:
    return {"etcd": etcd_bin(), "kwok": kwok_bin()}.get(name, k8s_bin()) / name


def _running(name: str) -> int | None:
    try:
        pid = int(_pidfile(name).read_text())
    except (FileNotFoundError, ValueError):
        return None
    with contextlib.suppress(ChildProcessError):  # reap our own child that exited (a test session starts it)
        os.waitpid(pid, os.WNOHANG)
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return pid if state not in ("Z", "X") and argv0 == str(_binary(name)) else None


def _start(component: Component) -> None:
    if _running(component.name):
        return
    with open(STATE / f"{component.name}.log", "ab") as logfile:
        logfile.write(f"{LOG_MARK}{time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(component.argv)}\n".encode())
        logfile.flush()
        proc = subprocess.Popen(component.argv, stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    _pidfile(component.name).write_text(str(proc.pid))
    time.sleep(0.3)
    if proc.poll() is not None:
        raise SystemExit(f"{component.name} exited at once:\n{_tail(component.name)}")


def _tail(name: str, lines: int = 15) -> str:
    """The end of the component's log since it was last started."""
    try:
        text = (STATE / f"{name}.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.rpartition(LOG_MARK)[2].splitlines()[1:][-lines:]) or "(empty log)"


def _wait(what: str, check: Callable[[], bool], timeout: float, component: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _running(component):
            raise SystemExit(f"{component} died while waiting for {what}:\n{_tail(component)}")
        if check():
            return
        time.sleep(0.25)
    raise SystemExit(f"timed out after {timeout}s waiting for {what}; {component} log:\n{_tail(component)}")


def _api_ok(path: str = "/readyz") -> bool:
    token = (STATE / "token").read_text().strip()
    ctx = ssl.create_default_context(cafile=str(STATE / "certs" / "apiserver.crt"))
    req = urllib.request.Request(f"https://127.0.0.1:{API_PORT}{path}", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ssl.SSLError):
        return False


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(kubectl_path()), f"--kubeconfig={kubeconfig_path()}", *args], input=stdin,
                          capture_output=True, text=True, check=check)


def _nodes_manifest() -> str:
    nodes = []
    for name in NODES:
        nodes.append({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "2500"},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": "2500"}}})
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})


def _ready() -> bool:
    return all(_running(c) for c in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")) \
        and _api_ok()


@contextmanager
def _exclusive(timeout: float = 1800) -> Iterator[None]:
    """One up/down/restart at a time per state dir: concurrent test sessions share the cluster."""
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / ".lock", "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"another local-cluster command held {STATE / '.lock'} for {timeout:g}s") from None
                time.sleep(0.2)
        yield


def up() -> None:
    if USE_EXISTING:
        if "KUBECONFIG" not in os.environ:
            raise SystemExit("SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 needs KUBECONFIG")
        if not kubectl_path().exists():
            raise SystemExit(f"{kubectl_path()} is missing: run scripts/local-cluster build")
        result = kubectl("get", "--raw", "/readyz", check=False)
        if result.returncode:
            raise SystemExit(f"the configured cluster is not reachable: {result.stderr.strip()}")
        log("using the existing cluster from KUBECONFIG")
        return
    with _exclusive():
        _up()


def _up() -> None:
    build()
    if _ready():
        log("already running")
        return
    started = time.monotonic()
    token, _, _ = _credentials()
    comps = {c.name: c for c in components()}
    _start(comps["etcd"])
    _start(comps["kube-apiserver"])
    _wait("the API server certificate", (STATE / "certs" / "apiserver.crt").exists, 60, "kube-apiserver")
    _write_kubeconfig(token)
    _wait("the API server to be ready", _api_ok, 90, "kube-apiserver")
    for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
        _start(comps[name])
    nodes = kubectl("apply", "-f", "-", stdin=_nodes_manifest(), check=False)
    if nodes.returncode:
        raise SystemExit(f"could not create the kwok nodes: {nodes.stderr.strip()}")
    _wait("the default service account", lambda: kubectl("get", "serviceaccount", "default", check=False)
          .returncode == 0, 60, "kube-controller-manager")
    _wait("the nodes to be Ready", lambda: kubectl(
        "wait", "--for=condition=Ready", "node", "--all", "--timeout=2s", check=False).returncode == 0, 60, "kwok")
    log(f"up in {time.monotonic() - started:.1f}s; use it with: eval \"$(scripts/local-cluster env)\"")


def restart_control_plane() -> None:
    """Crash and restart everything but etcd, as a control-plane node reboot does (resilience tests).

    SIGKILL, as a crash: a graceful API server stop drains for about a minute.
    The controllers are restarted with the API server because their informers
    take a minute or more to notice a crashed one on their own.
    """
    with _exclusive():
        for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver"):
            _stop(name, grace=0)
        _wait_port_free(API_PORT)
        comps = {c.name: c for c in components()}
        _start(comps["kube-apiserver"])
        _wait("the API server to be ready", _api_ok, 90, "kube-apiserver")
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            _start(comps[name])
        wait_functional()


@contextmanager
def scheduler_paused() -> Iterator[None]:
    """Stop kube-scheduler for a while (tests of pods that are not scheduled yet), then start it again."""
    with _exclusive():
        _stop("kube-scheduler", grace=0)
    try:
        yield
    finally:
        with _exclusive():
            _start({c.name: c for c in components()}["kube-scheduler"])


def _wait_port_free(port: int, timeout: float = 30) -> None:
    """Wait until nothing listens on the port (a killed process's socket can outlive it for a moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return
            except OSError:
                time.sleep(0.2)
    raise SystemExit(f"port {port} is still in use {timeout:g}s after its server was stopped")


def wait_functional(timeout: float = 180) -> None:
    """Wait until the controllers, scheduler and kwok act again: a probe Deployment becomes available."""
    name = f"probe-{secrets.token_hex(3)}"
    kubectl("-n", "default", "create", "deployment", name, "--image=registry.example.com/probe:v1")
    try:
        _wait("a probe Deployment to become available", lambda: kubectl(
            "-n", "default", "rollout", "status", f"deployment/{name}", "--timeout=5s", check=False)
            .returncode == 0, timeout, "kube-controller-manager")
    finally:
        kubectl("-n", "default", "delete", "deployment", name, "--wait=false", check=False)


def _stop(name: str, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after the grace period (at once with grace=0); returns once the process is gone."""
    pid = _running(name)
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        if not pid or not wait:
            continue
        os.killpg(pid, sig)
        deadline = time.monotonic() + wait
        while (pid := _running(name)) and time.monotonic() < deadline:
            time.sleep(0.1)
    if pid:
        raise SystemExit(f"{name} (pid {pid}) did not stop")
    _pidfile(name).unlink(missing_ok=True)


def down(purge: bool = False) -> None:
    with _exclusive():
        for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            _stop(name)
        if purge:
            shutil.rmtree(STATE, ignore_errors=True)
    log("stopped" + (" and purged" if purge else ""))


def env_text() -> str:
    return f"export KUBECONFIG={kubeconfig_path()}\nexport PATH={k8s_bin()}:$PATH\n"


def status() -> int:
    for name in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
        pid = _running(name)
        print(f"{name:24} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
    healthy = _ready()
    print(f"{'api':24} {'ready' if healthy else 'not ready'}")
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the binaries if missing")
    sub.add_parser("helm", help="build helm if missing and print its path")
    sub.add_parser("up", help="start the control plane (reuses a running one)")
    d = sub.add_parser("down", help="stop it")
    d.add_argument("--purge", action="store_true", help="also delete its state (etcd data, keys)")
    sub.add_parser("env", help="print shell exports for kubectl")
    sub.add_parser("status", help="show what runs")
    args = parser.parse_args(argv)
    if args.command == "build":
        build()
    elif args.command == "helm":
        print(build_helm())
    elif args.command == "up":
        up()
        print(env_text(), end="")
    elif args.command == "down":
        down(args.purge)
    elif args.command == "env":
        print(env_text(), end="")
    else:
        return status()
    return 0


if __name__ == "__main__":
    sys.exit(main())
