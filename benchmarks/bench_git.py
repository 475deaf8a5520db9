"""Benchmark: git-mode runs against a real Gitea, beside a script doing the same git and API steps directly.

    SELFBOOTSTRAP_AUDIT_LOG=1 .venv/bin/python benchmarks/bench_git.py [--runs 1 10 50] [--repeats 2]
        [--files 10 1000 10000] [--history 500] [--json FILE]

Starts the local control plane if needed (tools/localcluster.py, as bench_watch.py does) and a Gitea of its own
(tests/support/gitea.py: built from its Go module, SQLite, on a free loopback port, with an access log). Then:

  1. N concurrent git runs, for each N of --runs, --repeats times: N app manifests (apps/app-<i>.yaml, in one
     repository each, see below), N Deployments at v1, N runs created at once, each deploying v2 by setImage on its
     manifest: branch, commit, push, pull request, CI, merge, deploy. A "CI bot" of the benchmark sets
     `success` on every pushed branch's head as soon as Gitea's push webhook reports it (the same bot on both
     sides, so CI takes equally long). Baseline: benchmarks/git_baseline.py, one thread per app doing the same
     steps directly (git clone as the operator clones, branch, edit, commit, push, pull request, status polled
     with the same backoff, merge, `kubectl set image`, `kubectl rollout status`).
  2. The checkout's cost as the repository grows: repositories of --files files (and the largest with
     --history more commits), the operator's own checkout (GitRemote.checkout, as a run's commit step calls it)
     timed and its packs' bytes summed, beside the full clone the operator used to make.

One repository per app by default (--layout per-app): an app's repository holds its deployment manifest, as most
teams that deploy from git keep it, and N runs then never share a branch. --layout shared puts all N manifests in
one repository (a GitOps configuration repository): every merge then moves the main branch under the runs still in
flight, and Gitea refuses a merge whose push to main raced another one with 409 "merge push out of date", which
the operator takes as a refused merge (MergeRefused) and the baseline script as a failure.

Figures (min / median / max of the repeats; ratio = operator median / baseline median):
  wall          create of the N runs -> all Succeeded, vs baseline start -> all rolled out (this benchmark's
                watches, time.monotonic() when the event arrives)
  CPU           the operator process with its git children (/proc/<pid>/stat utime+stime+cutime+cstime, in the
                window) vs the baseline process with its git and kubectl children (os.wait4's rusage); Gitea's
                CPU (with its git children) on each side as well
  requests      per run: Kubernetes API requests (the audit log: the operator's service account, vs the
                baseline's kubectl) and forge requests (Gitea's access log: git smart-HTTP requests and REST API
                requests, without the CI bot's and Gitea's internal hook calls)
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/, tests/support/ and the other benchmarks
from benchmarks import bench_watch as bw
from tests.support.gitea import USER, Gitea, running_gitea
from tests.support.operator_process import OperatorProcess, without_proxies
from tools import localcluster

from selfbootstrap.adapters.git import GitRemote

say = bw.say
BASELINE = Path(__file__).resolve().parent / "git_baseline.py"
CI = {"initialIntervalSeconds": 0.5, "factor": 2, "maxIntervalSeconds": 2, "timeoutSeconds": 600}
BOT = "bench-ci-bot"  # the CI bot's user agent: its requests are not counted
ACCESS = re.compile(r'^\S+ \S+ \S+ "(\S+) (\S+)" (\d+) (\d+) "(.*)"$')
CLOCK = os.sysconf("SC_CLK_TCK")


def manifest(app: str, image: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      containers:
        - name: app
          image: {image}
"""


def git_env(gitea: Gitea, user_agent: str | None = None) -> dict[str, str]:
    import base64
    basic = base64.b64encode(f"{USER}:{gitea.token}".encode()).decode()
    config = [("http.extraHeader", f"Authorization: Basic {basic}"), *([("http.userAgent", user_agent)]
                                                                         if user_agent else [])]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_CONFIG_GLOBAL": os.devnull, "HOME": tempfile.gettempdir(), "GIT_CONFIG_COUNT": str(len(config))}
    for i, (key, value) in enumerate(config):
        env.update({f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value})
    return env


def seed_repository(gitea: Gitea, name: str, files: dict[str, str], history: int = 0) -> str:
    """A Gitea repository whose main branch holds `files` in one commit, then `history` commits changing one
    file each (git fast-import, pushed over git); its clone URL."""
    url = gitea.create_empty_repo(name)
    stamp = 1_700_000_000
    chunks: list[bytes] = []

    def data(text: str) -> None:
        raw = text.encode()
        chunks.append(b"data %d\n" % len(raw) + raw + b"\n")

    def commit(message: str, changes: dict[str, str], at: int) -> None:
        chunks.append(f"commit refs/heads/main\ncommitter Seed <seed@example.com> {at} +0000\n".encode())
        data(message)
        for path, content in changes.items():
            chunks.append(f"M 100644 inline {path}\n".encode())
            data(content)

    commit("seed", files, stamp)
    for i in range(history):
        commit(f"change {i}", {"history.txt": f"change {i}\n"}, stamp + i + 1)
    with tempfile.TemporaryDirectory(prefix="bench-git-seed-") as tmp:
        env = git_env(gitea)
        subprocess.run(["git", "init", "-q", "--bare", tmp], check=True, env=env)
        subprocess.run(["git", "fast-import", "--quiet"], input=b"".join(chunks), cwd=tmp, check=True, env=env)
        subprocess.run(["git", "push", "-q", url, "refs/heads/main:refs/heads/main"], cwd=tmp, check=True, env=env,
                       capture_output=True)
    return url


def filler(n: int) -> dict[str, str]:
    """n small configuration files, 100 per directory."""
    return {f"config/{i // 100:03}/file-{i:05}.yaml": f"key: value-{i}\nindex: {i}\n" for i in range(n)}


# --- the CI bot and the forge's requests ------------------------------------------------------


class CIBot:
    """Sets `success` on the head of every branch but main as soon as Gitea reports its push: a webhook of the
    user's (every repository), delivered to this HTTP server."""

    def __init__(self, gitea: Gitea) -> None:
        self._api = httpx.Client(base_url=f"{gitea.api_url}/repos/{USER}", trust_env=False, timeout=30,
                                 headers={"Authorization": f"token {gitea.token}", "User-Agent": BOT})
        bot = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(204)
                self.end_headers()
                if self.headers.get("X-Gitea-Event") == "push":
                    bot.pushed(json.loads(body))

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="ci-bot", daemon=True)
        self._thread.start()
        gitea.api("POST", "/user/hooks", json={
            "type": "gitea", "active": True, "events": ["push"],
            "config": {"url": f"http://127.0.0.1:{self._server.server_address[1]}/", "content_type": "json"}})

    def pushed(self, event: dict[str, Any]) -> None:
        ref, sha, repo = event.get("ref", ""), event.get("after", ""), event["repository"]["name"]
        if ref == "refs/heads/main" or not sha.strip("0"):
            return
        with contextlib.suppress(httpx.HTTPError):  # httpx.Client is thread-safe; one request per push
            self._api.post(f"/{repo}/statuses/{sha}", json={"state": "success", "context": "ci/tests"}) \
                .raise_for_status()

    def close(self) -> None:
        self._server.shutdown()
        self._api.close()


class AccessLog:
    """Gitea's access log: requests from an offset on, by kind (git smart HTTP or REST API)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def requests(self, start: int) -> Counter[str]:
        counts: Counter[str] = Counter()
        with open(self.path, errors="replace") as f:
            f.seek(start)
            for line in f:
                m = ACCESS.match(line.strip())
                if not m:
                    continue
                _, path, _, _, agent = m.groups()
                if agent.startswith(BOT) or path.startswith("/api/internal/") or agent == "GiteaHttpLib":
                    continue
                counts["git" if ".git/" in path else "api"] += 1
        return counts


def cpu_with_children(pid: int) -> float:
    """utime + stime + cutime + cstime: the process's CPU and that of its children it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / CLOCK


# --- the runs -----------------------------------------------------------------------------------


@dataclass
class Sample:
    wall: float = float("nan")
    finished: int = 0
    cpu: float = float("nan")
    forge_cpu: float = float("nan")
    kube: Counter[str] = field(default_factory=Counter)
    forge: Counter[str] = field(default_factory=Counter)
    audited: bool = False


@dataclass(frozen=True)
class Context:
    gitea: Gitea
    access: AccessLog
    audit: bw.AuditLog | None
    identity: bw.Identity
    logs: Path
    shared: bool  # one repository for every app, else one each


def timeout(n: int) -> float:
    return 180 + 6.0 * n


def repository(ns: str, app: str, ctx: Context) -> str:
    """The repository of an app: named after the namespace (and the app, unless shared)."""
    return ns if ctx.shared else f"{ns}-{app}"


def prepare(ns: str, n: int, ctx: Context, marks: bw.Marks) -> tuple[list[str], dict[str, str]]:
    """The repositories holding apps/<app>.yaml, their token Secret, N Deployments at v1; clone URLs by app."""
    apps = [f"app-{i}" for i in range(n)]
    if ctx.shared:
        url = seed_repository(ctx.gitea, ns, {f"apps/{a}.yaml": manifest(a, bw.V1) for a in apps})
        urls = dict.fromkeys(apps, url)
    else:
        urls = {a: seed_repository(ctx.gitea, repository(ns, a, ctx), {f"apps/{a}.yaml": manifest(a, bw.V1)})
                for a in apps}
    client.CoreV1Api().create_namespaced_secret(ns, {
        "metadata": {"name": "git-token", "annotations": {"selfbootstrap.dev/allowed-urls": f"{ctx.gitea.base_url}/"}},
        "stringData": {"token": ctx.gitea.token}})
    if not bw.ready_deployments(ns, marks, apps, "git", timeout(n)):
        raise RuntimeError("the Deployments did not become available")
    return apps, urls


def requests_after(ctx: Context, start: bw.AuditMark | None, offset: int, sample: Sample, needle: str,
                   accept: Any) -> None:
    sample.forge = ctx.access.requests(offset)
    if ctx.audit and start:
        sample.kube = ctx.audit.requests(start, time.time(), needle, accept)
        sample.audited = True


def runs_operator(ns: str, n: int, ctx: Context, log: Path) -> Sample:
    out = Sample()
    with bw.observing(ns) as marks:
        apps, urls = prepare(ns, n, ctx, marks)
        workdir = Path(tempfile.mkdtemp(prefix="bench-git-operator-"))
        op = OperatorProcess(ctx.identity.kubeconfig, log.parent,
                             ("--standalone", f"--namespace={ns}", "--egress-allow=127.0.0.0/8"),
                             env={"NO_PROXY": "127.0.0.1,localhost", "SELFBOOTSTRAP_WORKDIR": str(workdir)},
                             environ=without_proxies(os.environ), settings={}, verbose=False, metrics=False,
                             alive_timeout=60, log_file=log)
        try:
            with op:
                assert op.proc is not None
                if not bw.warm_up(ns, marks):
                    return out
                cpu0, forge0 = cpu_with_children(op.proc.pid), cpu_with_children(ctx.gitea.pid)
                start, offset, t0 = (ctx.audit.mark() if ctx.audit else None), ctx.access.offset(), time.monotonic()
                for app in apps:
                    create_run(ns, app, urls[app], ctx.gitea)
                marks.wait([f"done:{a}" for a in apps], timeout(n))
                ends = [t for a in apps if (t := marks.get(f"Succeeded:{a}")) is not None]
                out.finished, out.wall = len(ends), (max(ends) - t0 if len(ends) == n else float("nan"))
                time.sleep(bw.SETTLE)
                out.cpu = cpu_with_children(op.proc.pid) - cpu0
                out.forge_cpu = cpu_with_children(ctx.gitea.pid) - forge0
                user = ctx.identity.username
                requests_after(ctx, start, offset, out, user, lambda e: e["user"]["username"] == user)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


def create_run(ns: str, app: str, url: str, gitea: Gitea) -> None:
    client.CustomObjectsApi().create_namespaced_custom_object(bw.GROUP, bw.VERSION, ns, bw.PLURAL, {
        "apiVersion": f"{bw.GROUP}/{bw.VERSION}", "kind": "SelfBootstrapRun", "metadata": {"name": app},
        "spec": {"target": {"deployment": app}, "release": {"image": bw.V2}, "restartWatchdog": {"enabled": False},
                 "git": {"repositoryUrl": url, "change": {"setImage": {"path": f"apps/{app}.yaml"}},
                         "credentials": {"secretRef": {"name": "git-token"}, "username": USER},
                         "forge": {"kind": "gitea", "apiUrl": gitea.api_url}, "ci": CI}}})


def runs_baseline(ns: str, n: int, ctx: Context, log: Path) -> Sample:
    out = Sample()
    with bw.observing(ns) as marks:
        apps, _ = prepare(ns, n, ctx, marks)
        template = repository(ns, "{app}", ctx)
        argv = [sys.executable, str(BASELINE), "--repository-url", f"{ctx.gitea.base_url}/{USER}/{template}.git",
                "--api-url", ctx.gitea.api_url, "--repository", template, "--username", USER, "--namespace", ns,
                "--apps", *apps, "--image", bw.V2,
                "--kubectl", str(localcluster.kubectl_path()), "--kubeconfig", os.environ["KUBECONFIG"],
                "--ci-initial", str(CI["initialIntervalSeconds"]), "--ci-factor", str(CI["factor"]),
                "--ci-max", str(CI["maxIntervalSeconds"]), "--ci-timeout", str(CI["timeoutSeconds"])]
        with log.open("w") as err:
            forge0 = cpu_with_children(ctx.gitea.pid)
            start, offset, t0 = (ctx.audit.mark() if ctx.audit else None), ctx.access.offset(), time.monotonic()
            proc = subprocess.Popen(argv, stdout=err, stderr=subprocess.STDOUT,
                                    env={**without_proxies(os.environ), "GITEA_TOKEN": ctx.gitea.token})
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode:
                say(f"{ns}: the baseline script failed (exit {proc.returncode}); see {log}")
            marks.wait([f"rolledout:{a}:{bw.V2}" for a in apps], 30)
            ends = [t for a in apps if (t := marks.get(f"rolledout:{a}:{bw.V2}")) is not None]
            out.finished, out.wall = len(ends), (max(ends) - t0 if len(ends) == n else float("nan"))
            out.cpu = usage.ru_utime + usage.ru_stime
            time.sleep(bw.SETTLE)
            out.forge_cpu = cpu_with_children(ctx.gitea.pid) - forge0
            requests_after(ctx, start, offset, out, "kubectl", lambda e: e.get("userAgent", "").startswith("kubectl"))
    return out


def run_rows(n: int, ours: list[Sample], base: list[Sample]) -> list[bw.Row]:
    def per(samples: list[Sample], value: Any) -> list[float]:
        return [value(s) / n for s in samples]

    rows = [
        bw.Row(f"N={n}: create -> all Succeeded (s)", [s.wall for s in ours], [s.wall for s in base], ".2f",
               f"git_baseline.py, {n} apps at once: start -> all rolled out"),
        bw.Row(f"N={n}: CPU s per run, with git", per(ours, lambda s: s.cpu), per(base, lambda s: s.cpu), ".3f",
               "the script with its git and kubectl children"),
        bw.Row(f"N={n}: Gitea CPU s per run", per(ours, lambda s: s.forge_cpu), per(base, lambda s: s.forge_cpu),
               ".3f", "the same, during the baseline"),
        bw.Row(f"N={n}: git requests per run", per(ours, lambda s: s.forge["git"]),
               per(base, lambda s: s.forge["git"]), ".1f", "the script's (Gitea's access log)"),
        bw.Row(f"N={n}: forge API requests per run", per(ours, lambda s: s.forge["api"]),
               per(base, lambda s: s.forge["api"]), ".1f", "the script's (Gitea's access log)"),
    ]
    if all(s.audited for s in ours + base):
        rows.append(bw.Row(f"N={n}: Kubernetes API requests per run", per(ours, lambda s: sum(s.kube.values())),
                           per(base, lambda s: sum(s.kube.values())), ".1f", "the script's kubectl (audit log)"))
    return rows


# --- the checkout's cost ---------------------------------------------------------------------------


@dataclass
class Clone:
    files: int
    history: int
    seconds: list[float] = field(default_factory=list)
    kib: list[float] = field(default_factory=list)
    full_seconds: list[float] = field(default_factory=list)
    full_kib: list[float] = field(default_factory=list)


def pack_kib(tree: Path) -> float:
    """The packs git received into the clone (the initial fetch and the blobs fetched on demand)."""
    return sum(p.stat().st_size for p in (tree / ".git" / "objects" / "pack").glob("*.pack")) / 1024


def clone_cost(gitea: Gitea, sid: str, sizes: list[int], history: int, repeats: int) -> list[Clone]:
    cases = [(f, 0) for f in sizes] + ([(max(sizes), history)] if history else [])
    out: list[Clone] = []
    env = git_env(gitea)
    for files, commits in cases:
        say(f"checkout cost: {files} files, {commits} more commits")
        url = seed_repository(gitea, f"clone-{sid}-{files}-{commits}",
                              {"apps/app-0.yaml": manifest("app-0", bw.V1), **filler(files)}, commits)
        case = Clone(files, commits)
        with tempfile.TemporaryDirectory(prefix="bench-git-clone-") as tmp:
            work = Path(tmp)
            remote = GitRemote(url, gitea.token, USER, work / "operator")
            for r in range(repeats):
                t0 = time.monotonic()
                tree = remote.checkout(f"c{r}", "main", "HEAD", "bench/x", ["apps/app-0.yaml"])
                case.seconds.append(time.monotonic() - t0)
                case.kib.append(pack_kib(tree))
                full = work / f"full-{r}"
                t0 = time.monotonic()
                subprocess.run(["git", "clone", "-q", "--no-tags", "--single-branch", "--branch", "main", url,
                                str(full)], env=env, check=True)
                subprocess.run(["git", "checkout", "-q", "-B", "bench/x", "HEAD"], cwd=full, env=env, check=True)
                case.full_seconds.append(time.monotonic() - t0)
                case.full_kib.append(pack_kib(full))
                shutil.rmtree(tree)
                shutil.rmtree(full)
        out.append(case)
    return out


def finite(x: float) -> float | None:
    """A figure for the JSON: None for a sample that did not finish (NaN is not JSON)."""
    return None if math.isnan(x) else round(x, 3)


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def clone_rows(cases: list[Clone]) -> list[list[str]]:
    rows = [[f"{c.files:,}", f"{c.history:,}", bw.spread(c.seconds, ".3f"), f"{median(c.kib):,.1f}",
             bw.spread(c.full_seconds, ".3f"), f"{median(c.full_kib):,.1f}"] for c in cases]
    flat = [c for c in cases if not c.history]
    if len(flat) >= 2:
        lo, hi = flat[0], flat[-1]
        per = (hi.files - lo.files) / 1000

        def slope(a: list[float], b: list[float], fmt: str) -> str:
            return f"{(median(b) - median(a)) / per:{fmt}} per 1,000 files ({median(b) / median(a):.2f}x)"

        rows.append([f"slope {lo.files:,} -> {hi.files:,}", "", slope(lo.seconds, hi.seconds, "+.4f") + " s",
                     slope(lo.kib, hi.kib, "+.1f") + " KiB", slope(lo.full_seconds, hi.full_seconds, "+.4f") + " s",
                     slope(lo.full_kib, hi.full_kib, "+.1f") + " KiB"])
    return rows


# --- main ------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="*", default=[1, 10, 50], metavar="N",
                        help="numbers of concurrent git runs (default: 1 10 50; none: skip the runs)")
    parser.add_argument("--repeats", type=int, default=2, help="samples of each N (default: 2)")
    parser.add_argument("--files", type=int, nargs="*", default=[10, 1000, 10000], metavar="F",
                        help="repository sizes for the checkout's cost (default: 10 1000 10000; none: skip)")
    parser.add_argument("--history", type=int, default=500,
                        help="more commits in a repository of the largest size (default: 500; 0: none)")
    parser.add_argument("--layout", choices=["per-app", "shared"], default="per-app",
                        help="one repository per app (default), or one for all N apps")
    parser.add_argument("--clone-repeats", type=int, default=3, help="checkouts of each size (default: 3)")
    parser.add_argument("--json", type=Path, metavar="FILE",
                        help="also write the samples there: {runs: {N: {operator: [wall s], baseline: [wall s]}}, "
                             "clone: {files: [checkout s]}} (a sample that did not finish is null)")
    args = parser.parse_args()

    sid, logs = uuid.uuid4().hex[:5], Path(tempfile.mkdtemp(prefix="bench-git-"))
    gitea_home = logs / "gitea"
    gitea_home.mkdir()
    say(f"session {sid}; logs in {logs}")
    with running_gitea(gitea_home, access_log=True, loopback_webhooks=True) as gitea:
        assert gitea.access_log is not None
        clones = clone_cost(gitea, sid, sorted(args.files), args.history, args.clone_repeats) if args.files else []
        rows: list[bw.Row] = []
        notes: list[str] = []
        walls: dict[str, dict[str, list[float | None]]] = {}
        audit_on = False
        if args.runs:
            bw.setup_cluster()
            audit_path = bw.audit_log_path()
            audit = bw.AuditLog(audit_path) if audit_path and audit_path.exists() else None
            audit_on = audit is not None
            bot = CIBot(gitea)
            with bw.operator_identity(sid, logs) as identity, contextlib.closing(bot):
                ctx = Context(gitea, AccessLog(gitea.access_log), audit, identity, logs, args.layout == "shared")
                for n in args.runs:
                    ours: list[Sample] = []
                    base: list[Sample] = []
                    for r in range(args.repeats):
                        base.append(bw.scenario(
                            f"N={n}, repeat {r + 1}/{args.repeats}: baseline script", f"bench-git-{sid}-base-n{n}-{r}",
                            functools.partial(runs_baseline, n=n, ctx=ctx, log=logs / f"base-{n}-{r}.log"),
                            Sample(), 120 + n))
                        ours.append(bw.scenario(
                            f"N={n}, repeat {r + 1}/{args.repeats}: operator", f"bench-git-{sid}-op-n{n}-{r}",
                            functools.partial(runs_operator, n=n, ctx=ctx, log=logs / f"op-{n}-{r}.log"),
                            Sample(), 120 + n))
                    rows += run_rows(n, ours, base)
                    walls[str(n)] = {"operator": [finite(s.wall) for s in ours],
                                     "baseline": [finite(s.wall) for s in base]}
                    notes += [f"N={n} repeat {r + 1}: operator {s.finished}/{n} Succeeded" for r, s in enumerate(ours)
                              if s.finished < n]
                    notes += [f"N={n} repeat {r + 1}: baseline {s.finished}/{n} rolled out" for r, s in enumerate(base)
                              if s.finished < n]
    if rows:
        bw.print_table(f"git runs against Gitea: operator vs git_baseline.py (min / median / max of {args.repeats} "
                       f"samples; ratio = operator median / baseline median)",
                       ["figure", "operator", "baseline", "ratio", "baseline is"], [r.cells() for r in rows])
    if clones:
        bw.print_table(f"the checkout's cost as the repository grows ({args.clone_repeats} checkouts each; "
                       "operator: GitRemote.checkout of one manifest; full: the clone the operator used to make)",
                       ["files", "more commits", "operator checkout (s)", "operator KiB", "full clone (s)",
                        "full clone KiB"], clone_rows(clones))
    for note in notes:
        print(f"incomplete: {note}")
    if args.json:
        clone = {str(c.files): [finite(x) for x in c.seconds] for c in clones if not c.history}
        args.json.write_text(json.dumps({"runs": walls, "clone": clone}, indent=2) + "\n")
    if rows:
        layout = "one repository for all apps" if args.layout == "shared" else "one repository per app"
        print(f"\nruns deploy v1 -> v2 by setImage on apps/app-<i>.yaml ({layout}), without restart watchdog; "
              f"CI: {CI}; the CI bot sets success when Gitea's push webhook arrives. Kubernetes requests: "
              f"{'the audit log' if audit_on else 'not counted (start the cluster with SELFBOOTSTRAP_AUDIT_LOG=1)'}. "
              f"Logs: {logs}")


if __name__ == "__main__":
    main()
