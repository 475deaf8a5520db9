"""Randomized schedules against the real control plane, checked for the promises of one writer per workload.

Hypothesis draws schedules of steps: runs created in bursts (healthy or crash-looping releases, optionally
labelled for a second operator instance), git runs (branch, commit, push, pull request, CI, merge against a
real git server), finished runs deleted and applied again (a GitOps engine
re-creating pruned runs), aborts, the operator killed (SIGKILL) and restarted, a second instance started and
stopped. After every step the Recorder (invariants.py) replays what the API server saw and checks:
- at most one run of the workload past Pending at any moment;
- every change of the template made by the run the workload's record names as holder, never twice to
  the same release by one run (no side effect twice);
- no deploy takes the workload to a release older than one deployed before it (replay safety);
- no run's branch is merged twice (a git run applied again proposes nothing);
and at the end every run has ended within its deadlines.

Reproduce a failure with the seed Hypothesis prints (`@reproduce_failure` / `--hypothesis-seed=N`). The test
command runs a short budget; a longer one:

    SELFBOOTSTRAP_INVARIANT_EXAMPLES=25 SELFBOOTSTRAP_INVARIANT_STEPS=20 \\
        scripts/test tests/e2e/test_invariants.py --hypothesis-show-statistics
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from kubernetes import client

from .cluster import NAMESPACES, wait_for
from .conftest import release_runs
from .git_fixtures import MANIFEST, TOKEN
from .invariants import Recorder
from .kube_helpers import GROUP, PLURAL, VERSION, create_deployment, run_body
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")

FINISHED = {"Succeeded", "Failed", "RolledBack", "Superseded"}
EXAMPLES = int(os.environ.get("SELFBOOTSTRAP_INVARIANT_EXAMPLES", "3"))
STEPS = int(os.environ.get("SELFBOOTSTRAP_INVARIANT_STEPS", "8"))
SHARD = "selfbootstrap.dev/shard"


def api() -> Any:
    return client.CustomObjectsApi()


class Schedules(RuleBasedStateMachine):
    """One workload, a run per drawn step, and the operator instances that serve it (the main one serves
    runs labelled `inv`, the second the ones labelled `inv-b`)."""

    main: OperatorProcess
    second: OperatorProcess
    second_up: bool = True
    git_server: Any
    forge: Any

    def __init__(self) -> None:
        super().__init__()
        self.namespace = f"e2e-{NAMESPACES.split('-')[1]}-{uuid.uuid4().hex[:6]}"
        self.made: dict[str, dict[str, Any]] = {}  # run name -> its manifest, to apply again
        self.keys: dict[str, tuple[int, str, str]] = {}  # run name -> its order key when first made
        self.counter = 0

    @initialize(sequenced=st.booleans())
    def workload(self, sequenced: bool) -> None:
        self.sequenced = sequenced
        client.CoreV1Api().create_namespace({"metadata": {"name": self.namespace}})
        self.main.wait_watching(self.namespace)
        create_deployment(self.namespace, "app", "registry.example.com/app:v0", "v0", replicas=1)
        self.repo = f"acme/{self.namespace}"
        self.repo_url = self.git_server.create_repo(self.repo, {"deploy/app.yaml": MANIFEST})
        client.CoreV1Api().create_namespaced_secret(self.namespace, {
            "metadata": {"name": "git-token", "annotations": {
                "selfbootstrap.dev/allowed-urls": f"{self.git_server.base_url}/, {self.forge.api_url}/"}},
            "stringData": {"token": TOKEN}})
        self.recorder = Recorder(self.namespace, "app").start()

    def _git(self) -> dict[str, Any]:
        return {"repositoryUrl": self.repo_url, "change": {"setImage": {"path": "deploy/app.yaml"}},
                "credentials": {"secretRef": {"name": "git-token"}},
                "forge": {"apiUrl": self.forge.api_url, "repository": self.repo},
                "ci": {"initialIntervalSeconds": 0.5, "maxIntervalSeconds": 1, "timeoutSeconds": 30}}

    def _manifest(self, crash: bool, second: bool, git: bool = False) -> dict[str, Any]:
        self.counter += 1
        n = self.counter
        release: dict[str, Any] = {"id": f"v{n}", "image": f"registry.example.com/app:v{n}"
                                                             f"{'-crashloop' if crash else ''}"}
        if self.sequenced:
            release["sequence"] = n
        body = run_body(f"r{n:03d}", {"target": {"deployment": "app"}, "release": release,
                                      "restartWatchdog": {"retries": 2, "intervalSeconds": 1},
                                      "health": {"progressDeadlineSeconds": 60}})
        body["metadata"]["labels"] = {SHARD: "inv-b" if second else "inv"}
        if git:
            body["spec"]["git"] = self._git()
        return body

    def _create(self, body: dict[str, Any]) -> None:
        made = api().create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        name = body["metadata"]["name"]
        self.made[name] = body
        self.keys.setdefault(name, (body["spec"]["release"].get("sequence") or 0,
                                    made["metadata"]["creationTimestamp"], name))

    def _runs(self) -> dict[str, dict[str, Any]]:
        items = api().list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)["items"]
        return {r["metadata"]["name"]: r for r in items}

    @rule(crashing=st.lists(st.booleans(), min_size=1, max_size=4), second=st.booleans())
    def burst(self, crashing: list[bool], second: bool) -> None:
        """Runs created together (from one thread, as `kubectl apply -f dir` does)."""
        for crash in crashing:
            self._create(self._manifest(crash, second and self.second_up))

    @rule(crash=st.booleans())
    def git_run(self, crash: bool) -> None:
        """A run that proposes its release in git, merges it when CI passes, then deploys."""
        self._create(self._manifest(crash, False, git=True))

    @rule(data=st.data())
    def apply_again(self, data: st.DataObject) -> None:
        """A finished run deleted and applied again, as a GitOps engine re-creates what it pruned."""
        done = sorted(n for n, r in self._runs().items() if (r.get("status") or {}).get("phase") in FINISHED)
        if not done:
            return
        name = data.draw(st.sampled_from(done))
        api().delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        wait_for(lambda: name not in self._runs(), 30, f"{name} was not deleted")
        body = self.made[name]
        self._create({**body, "metadata": {k: v for k, v in body["metadata"].items() if k in ("name", "labels")}})

    @rule(data=st.data())
    def abort(self, data: st.DataObject) -> None:
        live = sorted(n for n, r in self._runs().items() if (r.get("status") or {}).get("phase") not in FINISHED)
        if live:
            name = data.draw(st.sampled_from(live))
            api().patch_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name, {
                "metadata": {"annotations": {"selfbootstrap.dev/abort": "drawn by the schedule"}}})

    @rule()
    def kill_the_operator(self) -> None:
        self.main.kill()
        self.main.start()

    @rule()
    def toggle_the_second_instance(self) -> None:
        if self.second_up:
            self.second.stop()
        else:
            self.second.start()
        self.second_up = not self.second_up

    @rule(seconds=st.sampled_from([0.2, 1.0, 3.0]))
    def wait(self, seconds: float) -> None:
        time.sleep(seconds)

    @invariant()
    def one_writer_and_no_replay(self) -> None:
        if hasattr(self, "recorder"):
            assert self.recorder.violations() == []
            highest: tuple[int, str] | None = None
            for holder, release in self.recorder.deploys():
                if self.made.get(holder, {}).get("spec", {}).get("release", {}).get("id") != release:
                    continue  # a rollback: the holder restoring the release before its own
                # As first made (a run applied again is no newer for it), by sequence and creation time: the
                # name orders runs of one second only among those that waited together (core/record.py).
                key = self.keys[holder][:2]
                assert highest is None or key >= highest, f"{holder} deployed over a newer release"
                highest = key

    @invariant()
    def no_branch_merged_twice(self) -> None:
        if hasattr(self, "repo"):
            merged = [p["head"]["ref"] for p in self.forge.pulls.get(self.repo, []) if p.get("merged")]
            assert len(merged) == len(set(merged)), f"a run's branch was merged twice: {sorted(merged)}"

    def teardown(self) -> None:
        try:
            if not self.second_up:
                self.second.start()  # its runs must end too
                self.second_up = True
            if hasattr(self, "recorder"):
                wait_for(lambda: all((r.get("status") or {}).get("phase") in FINISHED
                                     for r in self._runs().values()), 240,
                         lambda: f"runs still in flight: {self._unfinished()}", interval=1)
                assert self.recorder.violations() == []
                self.recorder.stop()
        finally:
            release_runs(self.namespace, timeout=60)
            client.CoreV1Api().delete_namespace(self.namespace, propagation_policy="Background")

    def _unfinished(self) -> dict[str, Any]:
        return {n: (r.get("status") or {}).get("reason") for n, r in self._runs().items()
                if (r.get("status") or {}).get("phase") not in FINISHED}


def test_random_schedules_keep_one_writer_and_replay_safety(operator, tmp_path, git_server, forge):
    args = ("--standalone", f"--namespace={NAMESPACES}", "--egress-allow=127.0.0.0/8")
    main = OperatorProcess(operator.kubeconfig, tmp_path, (*args, "--shard=inv"), name="operator-inv",
                           env=operator.env)
    second = OperatorProcess(operator.kubeconfig, tmp_path, (*args, "--shard=inv-b"), name="operator-inv-b",
                             env=operator.env)
    Schedules.git_server, Schedules.forge = git_server, forge
    forge.set_ci(None, ["success"])
    main.start()
    second.start()
    Schedules.main, Schedules.second = main, second
    Schedules.second_up = True
    try:
        run_state_machine_as_test(Schedules, settings=settings(
            max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None, print_blob=True,
            suppress_health_check=list(HealthCheck)))
    finally:
        main.stop()
        second.stop()
