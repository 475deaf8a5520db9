"""The baseline of benchmarks/bench_git.py: the git workflow's steps done directly, for N apps at once.

    GITEA_TOKEN=... python benchmarks/git_baseline.py --repository-url URL --api-url URL --namespace NS \\
        --apps app-0 app-1 ... --image IMAGE [--ci-initial 0.5 --ci-factor 2 --ci-max 2]

One thread per app, each doing what a run of the operator does, and nothing more: clone the base branch the way
the operator's checkout does (depth 1, no blobs, a sparse checkout of the one manifest), branch, set the image in
`apps/<app>.yaml`, commit, push (negotiating, as the operator pushes), open the pull request (Gitea's API), poll
the commit's combined status (first at once, then the same backoff as the runs' spec.git.ci) until it is
success, merge the pull request guarded by the tested commit (a 405 while Gitea still checks it is tried again
with the same backoff), `kubectl set image`, and `kubectl rollout status` until the Deployment is rolled out.
Prints nothing but failures; exits 1 if any app failed. Its CPU time, with its children's (git, kubectl), is what
the benchmark measures."""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

BASE = "main"


class StepError(Exception):
    pass


def run(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode:
        raise StepError(f"{' '.join(argv[:4])}: {done.stderr.strip()[-500:]}")
    return done.stdout


class App:
    def __init__(self, args: argparse.Namespace, app: str, token: str, workdir: Path) -> None:
        self.args, self.app, self.workdir = args, app, workdir / app
        basic = base64.b64encode(f"{args.username}:{token}".encode()).decode()
        self.git_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir),
                        "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
                        "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.extraHeader",
                        "GIT_CONFIG_VALUE_0": f"Authorization: Basic {basic}",
                        "GIT_AUTHOR_NAME": "baseline", "GIT_AUTHOR_EMAIL": "baseline@example.com",
                        "GIT_COMMITTER_NAME": "baseline", "GIT_COMMITTER_EMAIL": "baseline@example.com"}
        self.url = args.repository_url.replace("{app}", app)
        self.api = httpx.Client(base_url=f"{args.api_url}/repos/{args.owner}/{args.repository.replace('{app}', app)}",
                                headers={"Authorization": f"token {token}"}, timeout=60, trust_env=False)

    def git(self, *argv: str, cwd: Path | None = None) -> str:
        return run("git", *argv, cwd=cwd, env=self.git_env)

    def kubectl(self, *argv: str) -> str:
        return run(self.args.kubectl, f"--kubeconfig={self.args.kubeconfig}", "-n", self.args.namespace, *argv)

    def backoff(self) -> Iterator[float]:
        """The waits after each pending answer: initial, times factor, capped."""
        wait = self.args.ci_initial
        while True:
            yield min(wait, self.args.ci_max)
            wait = min(wait * self.args.ci_factor, self.args.ci_max)

    def perform(self) -> None:
        branch, path, tree = f"bench/{self.app}", f"apps/{self.app}.yaml", self.workdir
        self.git("clone", "-q", "--no-tags", "--single-branch", "--branch", BASE, "--depth=1", "--filter=blob:none",
                 "--no-checkout", self.url, str(tree))
        self.git("config", "core.sparseCheckout", "true", cwd=tree)
        (tree / ".git" / "info").mkdir(exist_ok=True)
        (tree / ".git" / "info" / "sparse-checkout").write_text(f"/{path}\n")
        self.git("checkout", "-q", "-B", branch, "HEAD", cwd=tree)
        manifest = tree / path
        manifest.write_text(re.sub(r"(?m)^(\s+image:).*$", rf"\g<1> {self.args.image}", manifest.read_text()))
        self.git("commit", "-q", "-am", f"Deploy {self.args.image} to {self.app}", cwd=tree)
        sha = self.git("rev-parse", "HEAD", cwd=tree).strip()
        self.git("-c", "push.negotiate=true", "push", "-q", self.url, f"HEAD:refs/heads/{branch}",
                 cwd=tree)

        waits = self.backoff()
        deadline = time.monotonic() + self.args.ci_timeout
        while (pr := self.api.post("/pulls", json={"head": branch, "base": BASE, "title": f"Deploy {self.app}"})
               ).status_code == 404 and time.monotonic() < deadline:  # Gitea has not seen the branch yet
            time.sleep(next(waits))
        pr.raise_for_status()
        number = pr.json()["number"]
        waits = self.backoff()
        while (state := self.api.get(f"/commits/{sha}/status").raise_for_status().json()["state"]) != "success":
            if state in ("failure", "error") or time.monotonic() > deadline:
                raise StepError(f"CI {state}")
            time.sleep(next(waits))
        waits = self.backoff()
        while True:
            merged = self.api.post(f"/pulls/{number}/merge", json={"Do": "merge", "head_commit_id": sha})
            if merged.status_code != 405 or time.monotonic() > deadline:
                merged.raise_for_status()
                break
            time.sleep(next(waits))

        self.kubectl("set", "image", f"deployment/{self.app}", f"app={self.args.image}")
        self.kubectl("rollout", "status", f"deployment/{self.app}", f"--timeout={self.args.rollout_timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository-url", required=True, help="{app} in it stands for the app's name")
    parser.add_argument("--api-url", required=True, help="Gitea's API, e.g. http://127.0.0.1:3000/api/v1")
    parser.add_argument("--owner", default="acme")
    parser.add_argument("--repository", required=True, help="the repository's name on the forge ({app}: the app's)")
    parser.add_argument("--username", default="acme")
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--apps", nargs="+", required=True, help="Deployments; each has apps/<app>.yaml")
    parser.add_argument("--image", required=True)
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG", ""))
    parser.add_argument("--ci-initial", type=float, default=0.5)
    parser.add_argument("--ci-factor", type=float, default=2.0)
    parser.add_argument("--ci-max", type=float, default=2.0)
    parser.add_argument("--ci-timeout", type=float, default=600.0)
    parser.add_argument("--rollout-timeout", type=int, default=600)
    args = parser.parse_args()
    token = os.environ["GITEA_TOKEN"]  # never in the argument list

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="git-baseline-") as tmp:
        def one(app: str) -> None:
            try:
                App(args, app, token, Path(tmp)).perform()
            except Exception as err:  # one app's failure is reported, the others go on
                failures.append(f"{app}: {type(err).__name__}: {err}")

        threads = [threading.Thread(target=one, args=(app,)) for app in args.apps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for failure in failures:
        print(f"git-baseline: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
