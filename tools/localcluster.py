"""A real Kubernetes control plane on loopback, without a container runtime.

    python tools/localcluster.py [--state DIR] build|up|down [--purge]|env|status

etcd, kube-apiserver, kube-controller-manager (the real Deployment and ReplicaSet
controllers) and kube-scheduler run as local processes; kwok simulates the nodes
and the kubelet's pod status, with stages that make pods misbehave by image name
(hack/kwok/stages.yaml). Binaries are built once from pinned Go modules (hack/k8s,
hack/etcd, kwok) into a cache keyed by version.

A control plane is its state directory and its ports (LocalCluster): the default one
(scripts/local-cluster, scripts/demo) lives in $SELFBOOTSTRAP_STATE on fixed ports; a
test session starts a private one on free ports under the same state root.
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
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
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
PROMETHEUS_MODULE = "v0.316.0"  # the Go module's version of Prometheus 3.16.0
PROMETHEUS_RELEASE = "3.16.0"
REGISTRY_VERSION = "v3.1.2"  # CNCF Distribution, the image registry of the registry release source's tests
GITEA_VERSION = "v1.26.0"  # the real forge of the git workflow's Gitea tests (hack/gitea pins its build)
ARGO_ROLLOUTS_VERSION = "v1.10.2"  # its AnalysisTemplate CRDs, for the tests of spec.analysis.templates
HELM_K8S_MINOR = "37"  # the Kubernetes its client-go (v0.37) speaks: `helm template`'s default kube version
NODES = ("kwok-node-0", "kwok-node-1")
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")  # in start order
LOG_MARK = "==== local-cluster started "  # a line written to a component's log before each start


# The environment is read when asked, not once at import: a test session points a control plane of
# its own elsewhere than the default one, in the same process.
def cache_dir() -> Path:
    return Path(os.environ.get("SELFBOOTSTRAP_CACHE") or Path.home() / ".cache" / "selfbootstrap")


def state_root() -> Path:
    """Where control planes keep their state: the default one in cluster/, test sessions' in e2e-<session>/."""
    return Path(os.environ.get("SELFBOOTSTRAP_STATE_ROOT") or Path.home() / ".local" / "state" / "selfbootstrap")


def use_existing() -> bool:
    return os.environ.get("SELFBOOTSTRAP_USE_EXISTING_CLUSTER") == "1"


def k8s_bin() -> Path:
    return cache_dir() / f"k8s-{K8S_VERSION}" / "bin"


def etcd_bin() -> Path:
    return cache_dir() / f"etcd-{ETCD_VERSION}" / "bin"


def kwok_bin() -> Path:
    return cache_dir() / f"kwok-{KWOK_VERSION}" / "bin"


def helm_path() -> Path:
    return cache_dir() / f"helm-{HELM_VERSION}" / "bin" / "helm"


def prometheus_path() -> Path:
    return cache_dir() / f"prometheus-{PROMETHEUS_MODULE}" / "bin" / "prometheus"


def kubectl_path() -> Path:
    return k8s_bin() / "kubectl"


def log(message: str) -> None:
    print(f"local-cluster: {message}", file=sys.stderr, flush=True)


def run_kubectl(kubeconfig: str | Path, *args: str, stdin: str | None = None, check: bool = True,
                timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """The built kubectl against the kubeconfig's cluster, its output captured as text: every kubectl that
    the control plane, the scripts, the tests (tests/support/kube.py) and the benchmarks run goes through here."""
    return subprocess.run([str(kubectl_path()), f"--kubeconfig={kubeconfig}", *args], input=stdin,
                          capture_output=True, text=True, check=check, timeout=timeout)


# --- build ----------------------------------------------------------------------


def _go(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> None:
    go = gotoolchain.go_command(cache_dir())
    path = os.pathsep.join([str(Path(go).parent), os.environ.get("PATH", "")])  # for tools that run `go` again
    done = subprocess.run([go, *args], cwd=cwd, env={**os.environ, "PATH": path, **(env or {})}, check=False)
    if done.returncode:
        raise SystemExit(f"go {' '.join(args)} failed with exit code {done.returncode} (its output is above)")


def build() -> None:
    """Build whatever is missing; Go's build cache makes a rebuild cheap. One build at a time per cache:
    two control planes started together (a test session's and the default one) wait for one build."""
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        _build()


def _build() -> None:
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
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        return _build_helm()


def _build_helm() -> Path:
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


def build_prometheus() -> Path:
    """Prometheus, built from its Go module on first use (the metric analysis tests and the demo need it).
    Without service discovery (the tests scrape static targets) and without the web UI's assets: the
    query API is all that is used. Its go.mod asks for a newer Go than the control plane's; the go
    command fetches that toolchain from the module proxy (GOTOOLCHAIN=auto)."""
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        if not prometheus_path().exists():
            log(f"building Prometheus {PROMETHEUS_RELEASE} (first time: a few minutes)")
            prometheus_path().parent.mkdir(parents=True, exist_ok=True)
            flags = ["-s", "-w", f"-X github.com/prometheus/common/version.Version={PROMETHEUS_RELEASE}"]
            _go("install", "-trimpath", "-tags=remove_all_sd", f"-ldflags={' '.join(flags)}",
                f"github.com/prometheus/prometheus/cmd/prometheus@{PROMETHEUS_MODULE}",
                env={"GOBIN": str(prometheus_path().parent), "GOTOOLCHAIN": "auto"})
        return prometheus_path()


def registry_path() -> Path:
    return cache_dir() / f"registry-{REGISTRY_VERSION}" / "bin" / "registry"


def build_registry() -> Path:
    """The CNCF Distribution registry, built from its Go module on first use (GOTOOLCHAIN=auto: its go.mod
    may ask for a newer Go than the control plane's)."""
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        if not registry_path().exists():
            log(f"building the Distribution registry {REGISTRY_VERSION} (first time: a few minutes)")
            registry_path().parent.mkdir(parents=True, exist_ok=True)
            _go("install", "-trimpath", "-ldflags=-s -w",
                f"github.com/distribution/distribution/v3/cmd/registry@{REGISTRY_VERSION}",
                env={"GOBIN": str(registry_path().parent), "GOTOOLCHAIN": "auto"})
        return registry_path()


def gitea_home() -> Path:
    return cache_dir() / f"gitea-{GITEA_VERSION.lstrip('v')}"


def build_gitea() -> Path:
    """Gitea, built from its Go module on first use (the git workflow's tests against a real forge): through the
    wrapper module hack/gitea, which copies Gitea's replace directives (a dependency's are not applied), with
    SQLite, without the web UI's bundled assets (the API needs none). Its templates and options (locales,
    licenses) are copied beside the binary from the module, where the server reads them (STATIC_ROOT_PATH).
    GOTOOLCHAIN=auto: its go.mod may ask for a newer Go than the control plane's."""
    binary = gitea_home() / "bin" / "gitea"
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        if not binary.exists():
            log(f"building Gitea {GITEA_VERSION} (first time: several minutes)")
            binary.parent.mkdir(parents=True, exist_ok=True)
            flags = f"-s -w -X main.Version={GITEA_VERSION.lstrip('v')}"
            _go("build", "-trimpath", f"-ldflags={flags}", "-tags=sqlite sqlite_unlock_notify", "-o",
                str(binary) + ".new", "code.gitea.io/gitea", cwd=ROOT / "hack" / "gitea",
                env={"GOTOOLCHAIN": "auto", "GOFLAGS": "-mod=mod"})
            source = _module_dir("code.gitea.io/gitea", GITEA_VERSION, ROOT / "hack" / "gitea")
            for part in ("templates", "options"):
                shutil.rmtree(gitea_home() / "share" / part, ignore_errors=True)
                shutil.copytree(source / part, gitea_home() / "share" / part)
            (Path(str(binary) + ".new")).rename(binary)  # last: a build cut short is redone
        return binary


def _module_dir(module: str, version: str, cwd: Path) -> Path:
    go = gotoolchain.go_command(cache_dir())
    done = subprocess.run([go, "list", "-m", "-json", f"{module}@{version}"], capture_output=True, text=True,
                          check=False, cwd=cwd, env={**os.environ, "GOTOOLCHAIN": "auto", "GOFLAGS": "-mod=mod"})
    found = json.loads(done.stdout or "{}").get("Dir")
    if done.returncode or not found:
        raise SystemExit(f"go list -m {module}@{version} failed: {done.stderr.strip()}")
    return Path(found)


def argo_rollouts_crds() -> list[Path]:
    """The AnalysisTemplate and ClusterAnalysisTemplate CRDs of Argo Rollouts, as its Go module ships them
    (manifests/crds), fetched with `go mod download` (checked against the sum database) and cached."""
    home = cache_dir() / f"argo-rollouts-{ARGO_ROLLOUTS_VERSION}" / "crds"
    names = ("analysis-template-crd.yaml", "cluster-analysis-template-crd.yaml")
    if all((home / n).exists() for n in names):
        return [home / n for n in names]
    with _locked(cache_dir() / ".build.lock", "a build", timeout=3600):
        go = gotoolchain.go_command(cache_dir())
        module = f"github.com/argoproj/argo-rollouts@{ARGO_ROLLOUTS_VERSION}"
        done = subprocess.run([go, "mod", "download", "-json", module], capture_output=True, text=True, check=False,
                              env={**os.environ, "GOTOOLCHAIN": "auto", "GOFLAGS": "-mod=mod"})
        info = json.loads(done.stdout or "{}")
        if not info.get("Zip"):
            raise SystemExit(f"go mod download {module} failed: {done.stderr or info.get('Error')}")
        home.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(info["Zip"]) as archive:
            for n in names:
                (home / n).write_bytes(archive.read(f"{module}/manifests/crds/{n}"))
    return [home / n for n in names]


# --- processes --------------------------------------------------------------------


@contextmanager
def _locked(path: Path, what: str, timeout: float = 1800) -> Iterator[None]:
    """Hold an exclusive lock on the file while the block runs; wait for whoever holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{what} held {path} for {timeout:g}s") from None
                time.sleep(0.2)
        yield


@dataclass(frozen=True)
class Component:
    name: str
    argv: list[str]


@dataclass(frozen=True)
class Ports:
    """Every port a control plane listens on (kube-controller-manager serves none: --secure-port=0)."""

    api: int
    etcd: int
    etcd_peer: int
    etcd_metrics: int
    scheduler: int
    kwok: int

    @classmethod
    def from_env(cls) -> Ports:
        """The default cluster's: SELFBOOTSTRAP_API_PORT and SELFBOOTSTRAP_ETCD_PORT, the others next to them."""
        api = int(os.environ.get("SELFBOOTSTRAP_API_PORT", "16443"))
        etcd = int(os.environ.get("SELFBOOTSTRAP_ETCD_PORT", "12379"))
        return cls(api, etcd, etcd + 1, etcd + 2, api + 2, api + 3)

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody listens on now, all different: the sockets stay bound until every one is picked."""
        with contextlib.ExitStack() as stack:
            sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in fields(cls)]
            for s in sockets:
                s.bind(("127.0.0.1", 0))
            return cls(*(int(s.getsockname()[1]) for s in sockets))


def free_port() -> int:
    """A TCP port nobody listens on right now (other programs and test sessions share the machine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LocalCluster:
    """One control plane: its state directory (etcd data, keys, kubeconfig, logs, pid files) and its ports."""

    state: Path
    ports: Ports

    @classmethod
    def default(cls) -> LocalCluster:
        """scripts/local-cluster's and scripts/demo's: $SELFBOOTSTRAP_STATE (<state root>/cluster), ports from
        the environment."""
        return cls(Path(os.environ.get("SELFBOOTSTRAP_STATE") or state_root() / "cluster"), Ports.from_env())

    @classmethod
    def at(cls, state: Path) -> LocalCluster:
        """The control plane kept there: a private one's ports from its ports.json, else the environment's."""
        try:
            ports = Ports(**json.loads((state / "ports.json").read_text()))
        except FileNotFoundError:
            ports = Ports.from_env()
        return cls(state, ports)

    @classmethod
    def private(cls, name: str) -> LocalCluster:
        """A new control plane of the caller's own, in <state root>/<name> on free ports (whatever was left
        there is stopped and removed first). Its ports and its owner's pid are written beside its state, for
        `scripts/local-cluster --state` and so that reap_orphans() stops it when its owner dies first."""
        state = state_root() / name
        if (owner := _owner(state)) not in (None, os.getpid()) and Path(f"/proc/{owner}").exists():
            raise SystemExit(f"{state} belongs to process {owner}, which still runs")
        if state.exists():
            cls.at(state).down(purge=True)
        state.mkdir(parents=True)
        plane = cls(state, Ports.free())
        (state / "ports.json").write_text(json.dumps(asdict(plane.ports)))
        (state / "owner.pid").write_text(str(os.getpid()))
        return plane

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports.api}"

    def _credentials(self) -> tuple[str, Path, Path]:
        self.state.mkdir(parents=True, exist_ok=True)
        token_file, key = self.state / "token", self.state / "sa.key"
        if not token_file.exists():
            token_file.write_text(secrets.token_hex(24))
            token_file.chmod(0o600)
        token = token_file.read_text().strip()
        (self.state / "tokens.csv").write_text(f"{token},admin,admin,system:masters\n")
        if not key.exists():
            subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
            subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(self.state / "sa.pub")],
                           check=True, capture_output=True)
        return token, key, self.state / "sa.pub"

    def _write_kubeconfig(self, token: str) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "selfbootstrap-local",
            "clusters": [{"name": "selfbootstrap-local", "cluster": {
                "server": self.server, "certificate-authority": str(self.state / "certs" / "apiserver.crt")}}],
            "users": [{"name": "admin", "user": {"token": token}}],
            "contexts": [{"name": "selfbootstrap-local",
                          "context": {"cluster": "selfbootstrap-local", "user": "admin", "namespace": "default"}}],
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)

    def components(self) -> list[Component]:
        _, key, pub = self._credentials()
        state, ports, kubeconfig = self.state, self.ports, str(self.kubeconfig)
        etcd_url, peer_url = f"http://127.0.0.1:{ports.etcd}", f"http://127.0.0.1:{ports.etcd_peer}"
        audit = [f"--audit-policy-file={ROOT / 'hack' / 'audit-policy.yaml'}",
                 f"--audit-log-path={state / 'audit.log'}", "--audit-log-format=json",
                 "--audit-log-maxsize=512", "--audit-log-maxbackup=4"] \
            if os.environ.get("SELFBOOTSTRAP_AUDIT_LOG") == "1" else []  # every request, for benchmarks/bench_watch.py
        return [
            Component("etcd", [str(etcd_bin() / "etcd"), "--data-dir", str(state / "etcd"),
                               "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                               "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                               "--initial-cluster", f"default={peer_url}",
                               "--listen-metrics-urls", f"http://127.0.0.1:{ports.etcd_metrics}",
                               "--unsafe-no-fsync", "--quota-backend-bytes", str(2 * 1024**3)]),
            Component("kube-apiserver", [
                str(k8s_bin() / "kube-apiserver"), f"--etcd-servers={etcd_url}", f"--secure-port={ports.api}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--cert-dir={state / 'certs'}",
                f"--token-auth-file={state / 'tokens.csv'}", "--authorization-mode=RBAC",
                f"--service-account-key-file={pub}", f"--service-account-signing-key-file={key}",
                "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false", *audit]),
            Component("kube-controller-manager", [
                str(k8s_bin() / "kube-controller-manager"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                f"--service-account-private-key-file={key}", f"--root-ca-file={state / 'certs' / 'apiserver.crt'}",
                "--use-service-account-credentials=false",
                "--secure-port=0", "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                "--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10"]),
            Component("kube-scheduler", [
                str(k8s_bin() / "kube-scheduler"), f"--kubeconfig={kubeconfig}", "--leader-elect=false",
                f"--secure-port={ports.scheduler}", "--bind-address=127.0.0.1"]),
            Component("kwok", [
                str(kwok_bin() / "kwok"), f"--kubeconfig={kubeconfig}", "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--config={ROOT / 'hack' / 'kwok' / 'stages.yaml'}", f"--server-address=127.0.0.1:{ports.kwok}"]),
        ]

    def _pidfile(self, name: str) -> Path:
        return self.state / f"{name}.pid"

    def running(self, name: str) -> int | None:
        """The component's pid while it runs (checked against the binary, so a reused pid does not count)."""
        try:
            pid = int(self._pidfile(name).read_text())
        except (FileNotFoundError, ValueError):
            return None
        with contextlib.suppress(ChildProcessError):  # reap our own child that exited (a test session starts it)
            os.waitpid(pid, os.WNOHANG)
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0].decode()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return None
        binary = {"etcd": etcd_bin(), "kwok": kwok_bin()}.get(name, k8s_bin()) / name
        return pid if state not in ("Z", "X") and argv0 == str(binary) else None

    def _start(self, component: Component) -> None:
        if self.running(component.name):
            return
        with open(self.state / f"{component.name}.log", "ab") as logfile:
            logfile.write(f"{LOG_MARK}{time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(component.argv)}\n".encode())
            logfile.flush()
            proc = subprocess.Popen(component.argv, stdout=logfile, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self._pidfile(component.name).write_text(str(proc.pid))
        time.sleep(0.3)
        if proc.poll() is not None:
            raise SystemExit(f"{component.name} exited at once:\n{self._tail(component.name)}")

    def _tail(self, name: str, lines: int = 15) -> str:
        """The end of the component's log since it was last started."""
        try:
            text = (self.state / f"{name}.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.rpartition(LOG_MARK)[2].splitlines()[1:][-lines:]) or "(empty log)"

    def _wait(self, what: str, check: Callable[[], bool], timeout: float, component: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running(component):
                raise SystemExit(f"{component} died while waiting for {what}:\n{self._tail(component)}")
            if check():
                return
            time.sleep(0.25)
        raise SystemExit(f"timed out after {timeout}s waiting for {what}; {component} log:\n{self._tail(component)}")

    def _api_ok(self, path: str = "/readyz") -> bool:
        try:
            token = (self.state / "token").read_text().strip()
            ctx = ssl.create_default_context(cafile=str(self.state / "certs" / "apiserver.crt"))
        except (OSError, ssl.SSLError):
            return False
        req = urllib.request.Request(f"{self.server}{path}", headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, ssl.SSLError):
            return False

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_kubectl(self.kubeconfig, *args, stdin=stdin, check=check)

    def ready(self) -> bool:
        return all(self.running(c) for c in COMPONENTS) and self._api_ok()

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        """One up/down/restart at a time per control plane: concurrent sessions may share the default one."""
        return _locked(self.state / ".lock", "another local-cluster command")

    def up(self) -> None:
        with self._exclusive():
            self._up()

    def _up(self) -> None:
        build()
        if self.ready():
            log("already running")
            return
        started = time.monotonic()
        token, _, _ = self._credentials()
        comps = {c.name: c for c in self.components()}
        self._start(comps["etcd"])
        self._start(comps["kube-apiserver"])
        self._wait("the API server certificate", (self.state / "certs" / "apiserver.crt").exists, 60,
                   "kube-apiserver")
        self._write_kubeconfig(token)
        self._wait("the API server to be ready", self._api_ok, 90, "kube-apiserver")
        for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
            self._start(comps[name])
        nodes = self.kubectl("apply", "-f", "-", stdin=_nodes_manifest(), check=False)
        if nodes.returncode:
            raise SystemExit(f"could not create the kwok nodes: {nodes.stderr.strip()}")
        self._wait("the default service account", lambda: self.kubectl(
            "get", "serviceaccount", "default", check=False).returncode == 0, 60, "kube-controller-manager")
        self._wait("the nodes to be Ready", lambda: self.kubectl(
            "wait", "--for=condition=Ready", "node", "--all", "--timeout=2s", check=False).returncode == 0, 60,
            "kwok")
        log(f"up in {time.monotonic() - started:.1f}s ({self.state}, API server {self.server})")

    def restart_control_plane(self) -> None:
        """Crash and restart everything but etcd, as a control-plane node reboot does (resilience tests).

        SIGKILL, as a crash: a graceful API server stop drains for about a minute.
        The controllers are restarted with the API server because their informers
        take a minute or more to notice a crashed one on their own.
        """
        with self._exclusive():
            for name in ("kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver"):
                self._stop(name, grace=0)
            _wait_port_free(self.ports.api)
            comps = {c.name: c for c in self.components()}
            self._start(comps["kube-apiserver"])
            self._wait("the API server to be ready", self._api_ok, 90, "kube-apiserver")
            for name in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._start(comps[name])
            self.wait_functional()

    @contextmanager
    def scheduler_paused(self) -> Iterator[None]:
        """Stop kube-scheduler for a while (tests of pods that are not scheduled yet), then start it again."""
        with self._exclusive():
            self._stop("kube-scheduler", grace=0)
        try:
            yield
        finally:
            with self._exclusive():
                self._start({c.name: c for c in self.components()}["kube-scheduler"])

    def wait_functional(self, timeout: float = 180) -> None:
        """Wait until the controllers, scheduler and kwok act again: a probe Deployment becomes available."""
        name = f"probe-{secrets.token_hex(3)}"
        self.kubectl("-n", "default", "create", "deployment", name, "--image=registry.example.com/probe:v1")
        try:
            self._wait("a probe Deployment to become available", lambda: self.kubectl(
                "-n", "default", "rollout", "status", f"deployment/{name}", "--timeout=5s", check=False)
                .returncode == 0, timeout, "kube-controller-manager")
        finally:
            self.kubectl("-n", "default", "delete", "deployment", name, "--wait=false", check=False)

    def _stop(self, name: str, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after the grace period (at once with grace=0); returns once the process is gone."""
        pid = self.running(name)
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
            if not pid or not wait:
                continue
            os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while (pid := self.running(name)) and time.monotonic() < deadline:
                time.sleep(0.1)
        if pid:
            raise SystemExit(f"{name} (pid {pid}) did not stop")
        self._pidfile(name).unlink(missing_ok=True)

    def down(self, purge: bool = False) -> None:
        with self._exclusive():
            for name in reversed(COMPONENTS):
                self._stop(name)
            if purge:  # the lock file goes too: whoever waits on it next finds a fresh directory
                shutil.rmtree(self.state, ignore_errors=True)
        log(f"stopped {self.state}" + (" and purged it" if purge else ""))

    def env_text(self) -> str:
        return f"export KUBECONFIG={self.kubeconfig}\nexport PATH={k8s_bin()}:$PATH\n"

    def status(self) -> int:
        for name in COMPONENTS:
            pid = self.running(name)
            print(f"{name:24} {'running (pid ' + str(pid) + ')' if pid else 'stopped'}")
        healthy = self.ready()
        print(f"{'api':24} {'ready at ' + self.server if healthy else 'not ready'}")
        return 0 if healthy else 1


def _owner(state: Path) -> int | None:
    """The pid of the process that made this private control plane (None: not a private one)."""
    try:
        return int((state / "owner.pid").read_text())
    except (OSError, ValueError):
        return None


def reap_orphans() -> None:
    """Stop and remove the private control planes whose owner is gone (a test session killed before its
    teardown): their processes run in sessions of their own and would outlive it."""
    for state in state_root().iterdir() if state_root().is_dir() else ():
        if (pid := _owner(state)) is not None and not Path(f"/proc/{pid}").exists():
            log(f"{state}: its owner (pid {pid}) is gone")
            LocalCluster.at(state).down(purge=True)


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


def _nodes_manifest() -> str:
    nodes = []
    for name in NODES:
        nodes.append({"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "2500"},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": "2500"}}})
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes})


# --- the default cluster (scripts/local-cluster, scripts/demo, the benchmarks) -------------------


def kubeconfig_path() -> Path:
    """The default cluster's kubeconfig: KUBECONFIG's cluster with SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1."""
    return Path(os.environ["KUBECONFIG"]) if use_existing() else LocalCluster.default().kubeconfig


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_kubectl(kubeconfig_path(), *args, stdin=stdin, check=check)


def up() -> None:
    """Start the default local cluster, or check that KUBECONFIG's answers (SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1)."""
    if not use_existing():
        LocalCluster.default().up()
        return
    if "KUBECONFIG" not in os.environ:
        raise SystemExit("SELFBOOTSTRAP_USE_EXISTING_CLUSTER=1 needs KUBECONFIG")
    if not kubectl_path().exists():
        raise SystemExit(f"{kubectl_path()} is missing: run scripts/local-cluster build")
    result = kubectl("get", "--raw", "/readyz", check=False)
    if result.returncode:
        raise SystemExit(f"the configured cluster is not reachable: {result.stderr.strip()}")
    log("using the existing cluster from KUBECONFIG")


def env_text() -> str:
    return f"export KUBECONFIG={kubeconfig_path()}\nexport PATH={k8s_bin()}:$PATH\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--state", type=Path, help="another control plane than the default one, by its state "
                        "directory (e.g. a test session's, <state root>/e2e-<session>)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the binaries if missing")
    sub.add_parser("helm", help="build helm if missing and print its path")
    sub.add_parser("up", help="start the control plane (reuses a running one)")
    d = sub.add_parser("down", help="stop it")
    d.add_argument("--purge", action="store_true", help="also delete its state (etcd data, keys)")
    sub.add_parser("env", help="print shell exports for kubectl")
    sub.add_parser("status", help="show what runs")
    args = parser.parse_args(argv)
    plane = LocalCluster.at(args.state) if args.state else LocalCluster.default()
    if args.command == "build":
        build()
    elif args.command == "helm":
        print(build_helm())
    elif args.command in ("up", "env"):
        if args.command == "up":
            plane.up() if args.state else up()  # the default one may be KUBECONFIG's (USE_EXISTING_CLUSTER)
        print(plane.env_text() if args.state else env_text(), end="")
    elif args.command == "down":
        plane.down(args.purge)
    else:
        return plane.status()
    return 0


@contextlib.contextmanager
def serving(argv: Sequence[str], log: Path, what: str, ready_url: str, ready_status: int,
            timeout: float) -> Iterator[subprocess.Popen[bytes]]:
    """A server the tests, the benchmarks or the demo start (Prometheus, the registry, Gitea): its output to
    `log`, up once `ready_url` answers `ready_status`, stopped afterwards; a failure to start says why with the end
    of its log."""
    import httpx

    with log.open("w") as out:
        proc = subprocess.Popen(list(argv), stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if httpx.get(ready_url, timeout=1).status_code == ready_status:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready within {timeout:g}s:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    sys.exit(main())

