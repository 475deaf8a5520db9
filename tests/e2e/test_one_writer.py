"""End-to-end: one writer per Deployment, the newest intent wins, and replay safety for any history and for
restores. Runs created at the same instant race for real (threads against the real API server); the
Recorder (invariants.py) replays every change in the API server's order and checks the promises."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from kubernetes import client

from .cluster import NAMESPACES, wait_for
from .invariants import Recorder
from .kube_helpers import (
    at_once,
    create_deployment,
    create_run,
    deployment,
    deployment_image,
    get_run,
    replica_sets,
    wait_phase,
)
from .operator_fixtures import OperatorProcess

pytestmark = pytest.mark.usefixtures("operator")

FINISHED = {"Succeeded", "Failed", "RolledBack", "Superseded"}
WATCHDOG = {"retries": 1, "intervalSeconds": 0.5}


def image(version: str) -> str:
    return f"registry.example.com/app:{version}"


def spec(version: str, sequence: int | None = None) -> dict:
    release: dict = {"id": version, "image": image(version)}
    if sequence is not None:
        release["sequence"] = sequence
    return {"target": {"deployment": "app"}, "release": release, "restartWatchdog": WATCHDOG}


@pytest.fixture
def recorder(namespace) -> Iterator[Recorder]:
    create_deployment(namespace, "app", image("v0"), "v0", replicas=1)
    rec = Recorder(namespace, "app").start()
    yield rec
    rec.stop()


def rounds(namespace: str, recorder: Recorder, count: int, size: int, shard: str | None = None,
           spread: float = 0.0) -> None:
    """Rounds of runs created at the same instant on one Deployment. A run the operator saw before the others
    arrived may take the Deployment (the rest then wait for it); a waiting run ends Superseded by a newer one;
    the newest goes last, so the Deployment always ends on the newest intent (of the newest's second: creation
    times have a resolution of a second). The recorder checks that no two runs were ever past Pending at once
    and that each template change was its holder's. A failure names every run's creation time and end."""
    succeeded, created = 0, dict[str, str]()
    for r in range(count):
        # Rounds often share a creation second, where the name orders runs: names sort as the rounds go
        # (with "r9" and "r10", round 9's runs would be the newer intent of a shared second).
        names = [f"r{r:02d}-{i:02d}" for i in range(size)]
        labels = [{"selfbootstrap.dev/shard": shard} if shard and i % 2 else None for i in range(size)]
        at_once(namespace, [(n, spec(f"v{r}-{i}"), labels[i]) for i, n in enumerate(names)], spread)
        created |= {n: get_run(namespace, n)["metadata"]["creationTimestamp"] for n in names}
        newest = max(names, key=lambda n: (created[n], n))  # the order without a sequence: creation, then name
        ends = {n: wait_phase(namespace, n, FINISHED, timeout=120) for n in names}
        seen = "\n".join(f"{n} created {created[n]}: {st['phase']}: {st.get('message')}" for n, st in ends.items())
        assert ends[newest]["phase"] == "Succeeded", f"the newest, {newest}, did not succeed:\n{seen}"
        for n in names:  # a run ends Superseded only by a newer one
            newer = [m for m in created if (created[m], m) > (created[n], n) and f"run {m!r}" in ends[n]["message"]]
            assert ends[n]["phase"] == "Succeeded" or (ends[n]["phase"] == "Superseded" and newer), \
                f"{n} ended {ends[n]['phase']} without naming a newer run:\n{seen}"
        succeeded += sum(st["phase"] == "Succeeded" for st in ends.values())
        # Creation times have a resolution of a second: a run of the newest's second that arrives after the
        # newest took the Deployment is not older by its name, and goes after it.
        last = {image(f"v{r}-{i}") for i, n in enumerate(names) if created[n] == created[newest]
                and ends[n]["phase"] == "Succeeded"}
        assert deployment_image(namespace, "app") in last, seen
    assert recorder.violations() == []
    assert len(recorder.deploys()) == succeeded, recorder.deploys()


def test_twenty_rounds_of_two_runs_created_at_the_same_instant(namespace, recorder):
    rounds(namespace, recorder, 20, 2)


def test_twenty_rounds_of_ten_runs_created_at_the_same_instant(namespace, recorder):
    rounds(namespace, recorder, 20, 10)


def test_twenty_rounds_of_ten_runs_created_across_second_boundaries(namespace, recorder):
    """Creation times have a resolution of a second: runs created over two seconds, in any order of names,
    are ordered by the second first."""
    rounds(namespace, recorder, 20, 10, spread=1.5)


def test_a_run_applied_the_moment_the_previous_one_ended_goes_though_its_name_is_older(namespace, recorder):
    """`web-v10` applied the moment `web-v9` ended: often of the same second, where the name orders runs and
    "web-v9" is the later one; the watches may still show web-v9 in flight. It is not older: it deploys."""
    same_second = 0
    for k in range(15):
        first, then = f"p{k:02d}-9", f"p{k:02d}-10"
        create_run(namespace, first, spec(f"v{k}-9"))
        assert wait_phase(namespace, first, FINISHED, timeout=60)["phase"] == "Succeeded"
        create_run(namespace, then, spec(f"v{k}-10"))
        st = wait_phase(namespace, then, FINISHED, timeout=60)
        assert st["phase"] == "Succeeded", (then, st)
        created = [get_run(namespace, n)["metadata"]["creationTimestamp"] for n in (first, then)]
        same_second += created[0] == created[1]
    print(f"{same_second} of 15 pairs were made in one second")
    assert deployment_image(namespace, "app") == image("v14-10")
    assert recorder.violations() == []


@pytest.fixture
def second_operator(operator, tmp_path) -> Iterator[OperatorProcess]:
    """Another operator instance serving the same namespaces: the runs labelled shard b."""
    other = OperatorProcess(operator.kubeconfig, tmp_path, ("--standalone", f"--namespace={NAMESPACES}",
                                                            "--shard=b"), name="operator-b", env=operator.env)
    other.start()
    yield other
    other.stop()


def test_two_operator_instances_still_serve_one_writer_at_a_time(namespace, recorder, second_operator):
    second_operator.wait_watching(namespace)
    rounds(namespace, recorder, 10, 4, shard="b")
    served = second_operator.log()
    assert any(f"{namespace}/r{r:02d}-01 " in served for r in range(10)), "the second instance served its shard"


@pytest.mark.parametrize("sequenced", [False, True], ids=["by-name", "by-sequence"])
def test_re_creating_any_of_twenty_five_sequential_runs_changes_nothing(namespace, recorder, sequenced):
    def body(i: int) -> dict:
        return spec(f"v{i}", sequence=i if sequenced else None)

    # Runs one after the other often share a creation second: names sort as they go (r09 before r10).
    for i in range(1, 26):
        create_run(namespace, f"r{i:02d}", body(i))
        assert wait_phase(namespace, f"r{i:02d}", FINISHED, timeout=120)["phase"] == "Succeeded"
    template = deployment(namespace, "app").spec.template
    for i in random.sample(range(1, 26), 25):
        client.CustomObjectsApi().delete_namespaced_custom_object("selfbootstrap.dev", "v1alpha1", namespace,
                                                                  "selfbootstrapruns", f"r{i:02d}")
        wait_for(lambda i=i: _gone(namespace, f"r{i:02d}"), 30, f"r{i} was not deleted")
        create_run(namespace, f"r{i:02d}", body(i))
        st = wait_phase(namespace, f"r{i:02d}", FINISHED, timeout=60)
        assert st["phase"] == "Superseded", (i, st)
    assert deployment(namespace, "app").spec.template == template, "no re-created run changed the template"
    assert deployment_image(namespace, "app") == image("v25")
    assert recorder.violations() == []


def _gone(namespace: str, name: str) -> bool:
    try:
        get_run(namespace, name)
    except client.exceptions.ApiException as err:
        return err.status == 404
    return False


def restore(namespace: str) -> list[str]:
    """Every run file of a GitOps repository applied at once, in a random order."""
    order = list(range(1, 26))
    random.shuffle(order)
    at_once(namespace, [(f"r{i}", spec(f"v{i}", sequence=i), None) for i in order])
    ends = {i: wait_phase(namespace, f"r{i}", FINISHED, timeout=120) for i in order}
    return [f"r{i}" for i, st in ends.items() if st["phase"] == "Succeeded"]


def test_a_restore_over_a_deployment_at_v0_rolls_out_only_the_newest(namespace, recorder):
    assert restore(namespace) == ["r25"]
    assert deployment_image(namespace, "app") == image("v25")
    assert sorted(replica_sets(namespace, "app")) == [image("v0"), image("v25")], "no other release rolled out"
    assert recorder.deploys() == [("r25", "v25")]
    assert recorder.violations() == []


def test_a_restore_over_a_deployment_at_v25_rolls_out_nothing(namespace):
    create_deployment(namespace, "app", image("v25"), "v25", replicas=1)
    template = deployment(namespace, "app").spec.template
    rec = Recorder(namespace, "app").start()
    try:
        assert restore(namespace) == ["r25"]
    finally:
        rec.stop()
    assert deployment(namespace, "app").spec.template == template
    assert list(replica_sets(namespace, "app")) == [image("v25")]
    assert rec.deploys() == [] and rec.violations() == []
