"""A run's worker: which copy of the run it trusts, when it trusts the caches, backoff, and what it
says when the run is deleted mid-flight. Ticks are autospec'd; the loop is a real asyncio loop."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from unittest.mock import create_autospec

import pytest
from kubernetes.client.exceptions import ApiException

from selfbootstrap import worker as w
from selfbootstrap.adapters import cache
from selfbootstrap.adapters.executor import Executor
from selfbootstrap.adapters.kube import Kube
from selfbootstrap.config import Settings
from selfbootstrap.core import record
from selfbootstrap.core.world import PodState, World
from selfbootstrap.models import Phase, RunStatus
from selfbootstrap.reconciler import Reconciler, Tick
from selfbootstrap.scheduling import FairExecutor
from selfbootstrap.services import Services, Wakeups
from tests.adapters.test_cache import DEPLOYMENT, a_run, indices

from .factories import deployment

RUN: dict = {"metadata": {"name": "r", "namespace": "apps", "uid": "u", "resourceVersion": "10",
                    "creationTimestamp": "2030-01-01T00:00:00Z", "finalizers": ["selfbootstrap.dev/finalizer"]},
       "spec": {"target": {"deployment": "web"}, "release": {"image": "reg/web:v3"}}, "status": {}}


@pytest.fixture
def services():
    pool, ticks = ThreadPoolExecutor(2), FairExecutor(2)
    yield Services(Settings(), create_autospec(Kube, instance=True), create_autospec(Executor, instance=True), pool,
                   ticks)
    pool.shutdown()
    ticks.shutdown()


def make_worker(services, live=None, idx=None) -> w.RunWorker:
    worker = w.RunWorker(services, Wakeups(), idx or indices(), live or RUN, logging.getLogger("test"))
    worker.reconciler = create_autospec(Reconciler, instance=True)
    worker.reposted = True
    return worker


def with_rv(rv: str) -> dict:
    return {**RUN, "metadata": {**RUN["metadata"], "resourceVersion": rv}}


def test_the_newest_copy_of_the_run_wins(services):
    worker = make_worker(services, live=with_rv("10"))
    assert worker.current()["metadata"]["resourceVersion"] == "10"
    worker.written = with_rv("12")
    assert worker.current()["metadata"]["resourceVersion"] == "12", "the watch has not caught up with our write"
    worker.live = with_rv("15")
    assert worker.current()["metadata"]["resourceVersion"] == "15", "someone wrote after us"
    assert worker.written is None, "the watch caught up: the worker's own copy is let go"


def test_a_tick_runs_on_the_cached_world(services):
    worker = make_worker(services)
    worker.reconciler.tick.return_value = Tick(2.0, with_rv("11"))
    assert asyncio.run(worker.step()) == 2.0
    _, world = worker.reconciler.tick.call_args.args
    assert world.deployment.resource_version == "42"
    services.kube.observe.assert_not_called()
    assert worker.written["metadata"]["resourceVersion"] == "11"


def test_the_cache_is_not_trusted_while_it_shows_the_deployment_before_our_patch(services, monkeypatch):
    worker = make_worker(services)
    worker.reconciler.tick.return_value = Tick(0.0, with_rv("11"), patched_from="42")
    asyncio.run(worker.step())
    worker.reconciler.tick.reset_mock()
    assert asyncio.run(worker.step()) == w.STALE_SECONDS
    worker.reconciler.tick.assert_not_called()

    worker.guard_since -= w.STALE_SECONDS  # the watch never caught up: ask the API
    services.kube.observe.return_value = World(deployment=deployment(resource_version="43"))
    worker.reconciler.tick.return_value = Tick(1.0, with_rv("12"))
    assert asyncio.run(worker.step()) == 1.0
    assert worker.reconciler.tick.call_args.args[1].deployment.resource_version == "43"


def test_a_cache_further_behind_than_the_view_patched_from_is_not_trusted_either(services):
    """A patch from a stale cache is refused (409); the next, from the API's view, goes through; the cache
    may still show the first view, older than the second: it is behind this run's own writes all the same."""
    worker = make_worker(services)  # the cache shows the Deployment at resourceVersion 42
    worker.reconciler.tick.return_value = Tick(0.0, with_rv("11"), patched_from="42")  # the 409: stale
    asyncio.run(worker.step())
    worker.guard_since -= w.STALE_SECONDS
    services.kube.observe.return_value = World(deployment=deployment(resource_version="50"))
    worker.reconciler.tick.return_value = Tick(0.0, with_rv("12"), patched_from="50")  # the deploy patch
    asyncio.run(worker.step())
    worker.reconciler.tick.reset_mock()
    assert asyncio.run(worker.step()) == w.STALE_SECONDS, "the cache, still at 42, is not trusted"
    worker.reconciler.tick.assert_not_called()


def test_a_deployment_missing_from_the_cache_is_read_from_the_api(services):
    worker = make_worker(services, idx=indices(deployments={}))
    services.kube.observe.return_value = World(deployment=None)
    worker.reconciler.tick.return_value = Tick(None, with_rv("11"))
    assert asyncio.run(worker.step()) is None
    services.kube.observe.assert_called_once()


def test_api_errors_back_off_exponentially_and_recover(services):
    worker = make_worker(services)
    worker.reconciler.tick.side_effect = ApiException(status=503)
    assert [asyncio.run(worker.step()) for _ in range(4)] == [1.0, 2.0, 4.0, 8.0]
    worker.reconciler.tick.side_effect = None
    worker.reconciler.tick.return_value = Tick(3.0, with_rv("11"))
    assert asyncio.run(worker.step()) == 3.0 and worker.failures == 0


class Stopped:
    """What kopf hands a daemon: true once it is to stop, and awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


@pytest.mark.parametrize("phase, reads", [("VerifyingHealth", 1), ("Pending", 0)])
def test_a_long_sleep_still_ends_for_the_safety_resync(services, phase, reads):
    """A run waiting on the watches (no change for minutes) still reads its world from the API now and then;
    a run that only waits in Pending (for a slot, a holder) never pays for that read."""
    in_phase = {**with_rv("11"), "status": {"phase": phase}}

    async def scenario() -> list[float]:
        services.ledger.saw("apps", "u", False)  # the watch has seen it (how long it has been quiet: the gate)
        worker, stopped, ticks = make_worker(services, live=in_phase), Stopped(), []

        def tick(run: dict, world: World) -> Tick:
            ticks.append(time.monotonic())
            if len(ticks) == 2:
                stopped.event.set()
            return Tick(3600.0, in_phase)

        reconciler: Any = worker.reconciler  # an autospec'd mock
        reconciler.tick.side_effect = tick
        worker.resync_at = time.monotonic() + 0.2
        services.kube.observe.return_value = World(deployment=deployment(resource_version="43"))
        await asyncio.wait_for(worker.run(stopped), timeout=10)
        return ticks

    ticks = asyncio.run(scenario())
    assert len(ticks) == 2 and ticks[1] - ticks[0] < 5, "woke for the resync, not after the hour"
    assert services.kube.observe.call_count == reads


class HeardWatches:
    """The namespaces' watches as the worker asks them: ready, and heard from within `seconds` or not."""

    def __init__(self, heard: bool) -> None:
        self.heard, self.asked = heard, 0

    def heard_within(self, namespace: str, seconds: float) -> bool:
        self.asked += 1
        return self.heard

    def need(self, namespace: str) -> None: ...

    def release(self, namespace: str) -> None: ...


@pytest.mark.parametrize("heard, reads", [(True, 0), (False, 1)])
def test_the_resync_reads_the_api_only_when_the_watches_have_gone_quiet(services, heard, reads):
    """A thousand runs in flight would read their worlds at once every period: while the namespace's watches keep
    hearing from the API server, the cache serves the resync; a quiet watch (stalled, failing) is read past."""
    in_flight = {**with_rv("11"), "status": {"phase": "VerifyingHealth"}}
    watches = HeardWatches(heard)
    services = dataclasses.replace(services, watches=watches)
    worker = make_worker(services, live=in_flight)
    worker.reconciler.tick.return_value = Tick(30.0, in_flight)
    services.kube.observe.return_value = World(deployment=deployment(resource_version="43"))
    worker.resync_at = time.monotonic() - 1
    asyncio.run(worker.step())
    assert services.kube.observe.call_count == reads
    assert watches.asked == 1
    if heard:
        assert worker.resync_at > time.monotonic() + services.settings.resync_seconds - 5, "the next one is a period on"
        asyncio.run(worker.step())
        assert watches.asked == 1, "not asked again before the next period"


def test_events_of_the_latest_decision_are_posted_again_once_after_a_start(services):
    worker = make_worker(services)
    worker.reposted = False
    worker.reconciler.tick.return_value = Tick(5.0, with_rv("11"))
    asyncio.run(worker.step())
    asyncio.run(worker.step())
    worker.reconciler.repost.assert_called_once()


NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("status, says", [
    (RunStatus(phase=Phase.DEPLOYING), "before it changed the Deployment; the Deployment is as it was"),
    (RunStatus(phase=Phase.WATCHING_RESTARTS, deploy_patched_at=NOW, deployed_release_id="v3"),
     "release v3 stays deployed and no rollback was performed"),
    (RunStatus(phase=Phase.ROLLING_BACK, deploy_patched_at=NOW, rollback_patched_at=NOW,
               rollback_target_replica_set="web-1", rollback_target_release_id="v2"),
     "after it rolled the Deployment back to web-1 (release v2)"),
], ids=["before-the-deploy", "deployed", "undone"])
def test_a_deleted_run_says_truthfully_what_it_left(status, says):
    message = w.deletion_message("web-v3", status)
    assert message.startswith(f"SelfBootstrapRun web-v3 was deleted in phase {status.phase}") and says in message


def test_wakeups_reach_the_workers_waiting_on_a_key():
    async def scenario() -> list[bool]:
        wakeups, a, b = Wakeups(), asyncio.Event(), asyncio.Event()
        wakeups.add([("deployment", "apps", "web")], a)
        wakeups.add([("deployment", "apps", "api")], b)
        wakeups.wake(("deployment", "apps", "web"))
        wakeups.remove([("deployment", "apps", "web")], a)
        wakeups.wake(("deployment", "apps", "web"))
        return [a.is_set(), b.is_set()]

    assert asyncio.run(scenario()) == [True, False]




def test_the_operator_starts_watching_once_discovery_lists_the_runs(services, monkeypatch):
    from selfbootstrap import handlers
    from selfbootstrap.services import memo_with
    services.kube.serves_runs.side_effect = [False, False, True]
    monkeypatch.setattr(asyncio, "sleep", _no_sleep)
    asyncio.run(handlers.await_discovery(memo_with(services), logging.getLogger("test")))
    assert services.kube.serves_runs.call_count == 3


def test_the_operator_goes_on_without_the_crd_after_a_while_saying_so(services, monkeypatch, caplog):
    from selfbootstrap import handlers
    from selfbootstrap.services import memo_with
    services.kube.serves_runs.return_value = False
    monkeypatch.setattr(handlers, "DISCOVERY_WAIT_SECONDS", 0.0)
    asyncio.run(handlers.await_discovery(memo_with(services), logging.getLogger("test")))
    assert "is the CRD installed?" in caplog.text


async def _no_sleep(_: float) -> None:
    return None


def test_nothing_is_done_before_kopf_has_added_the_finalizer(services):
    """kopf's finalizer patch is guarded by the run's resourceVersion: a status written first would void it
    (and a deleted run must be noticed, so nothing happens without it)."""
    bare = {**RUN, "metadata": {k: v for k, v in RUN["metadata"].items() if k != "finalizers"}}
    worker = make_worker(services, live=bare)
    assert asyncio.run(worker.step()) == w.FINALIZER_WAIT_SECONDS
    worker.reconciler.tick.assert_not_called()  # type: ignore[attr-defined]
    services.kube.observe.assert_not_called()


def _not_listed(services, monkeypatch, ready):
    from dataclasses import replace
    with_watches = replace(services, watches=object())  # the worker only asks whether there are any
    return make_worker(with_watches, idx=replace(indices(), ready=lambda namespace: ready[0]))


def test_a_run_waits_for_its_namespace_to_list_rather_than_reading_the_api(services, monkeypatch):
    ready = [False]
    worker = _not_listed(services, monkeypatch, ready)
    worker.reconciler.tick.return_value = Tick(2.0, with_rv("11"))

    async def go() -> float | None:
        step = asyncio.ensure_future(worker.step())
        await asyncio.sleep(0.05)
        assert not step.done(), "it waits for the listing"
        ready[0] = True
        worker.wakeups.wake(("listed", "apps", ""))
        return await step

    assert asyncio.run(go()) == 2.0
    services.kube.observe.assert_not_called()
    _, world = worker.reconciler.tick.call_args.args
    assert world.deployment.resource_version == "42", "the listed cache serves it"


def test_a_slow_listing_is_not_waited_for_long(services, monkeypatch):
    monkeypatch.setattr(w, "LIST_WAIT_SECONDS", 0.05)
    worker = _not_listed(services, monkeypatch, [False])
    worker.reconciler.tick.return_value = Tick(2.0, with_rv("11"))
    services.kube.observe.return_value = World(deployment=deployment())
    assert asyncio.run(worker.step()) == 2.0
    services.kube.observe.assert_called_once()
    asyncio.run(worker.step())
    assert services.kube.observe.call_count == 2, "read from the API, without waiting again"


def _in_flight(rv: str) -> dict:
    return {**with_rv(rv), "status": {"phase": "VerifyingHealth"}}


def test_a_wake_that_changes_nothing_the_tick_reads_decides_nothing(services):
    """The echo of the run's own status write, or a change the world does not keep: the last decision stands
    until its requeue runs out (the machine's requeue is the time to its next step when nothing changes)."""
    worker = make_worker(services, live=_in_flight("11"))
    worker.reconciler.tick.return_value = Tick(30.0, _in_flight("12"))  # the tick wrote the run
    assert asyncio.run(worker.step()) == 30.0
    worker.live = _in_flight("12")  # its echo
    left = asyncio.run(worker.step())
    assert worker.reconciler.tick.call_count == 1 and 29.0 < left <= 30.0, "slept on, for what is left"


@pytest.mark.parametrize("change", ["run", "world", "time"])
def test_a_change_of_the_run_or_its_world_or_the_requeue_running_out_decides_again(services, change):
    worker = make_worker(services, live=_in_flight("11"))
    worker.reconciler.tick.return_value = Tick(30.0, _in_flight("11"))
    asyncio.run(worker.step())
    match change:
        case "run":
            worker.live = _in_flight("13")  # e.g. someone annotated it (abort, an approval)
        case "world":
            worker.indices = indices(pods={("apps", "rs-1"): [cache.PodEntry.of(PodState("web-abc-1", ready=False))]})
        case "time":
            assert worker.decided is not None
            worker.decided = dataclasses.replace(worker.decided, due=time.monotonic())
    asyncio.run(worker.step())
    assert worker.reconciler.tick.call_count == 2


def test_at_the_gate_every_wake_decides(services):
    """Before the deploy the gate reads how long the workload's runs have been quiet, which changes with time:
    a run there decides on every wake."""
    pending = {**with_rv("11"), "status": {"phase": "Pending"}}
    services.ledger.saw("apps", "u", False)
    worker = make_worker(services, live=pending)
    worker.reconciler.tick.return_value = Tick(30.0, pending)
    asyncio.run(worker.step())
    asyncio.run(worker.step())
    assert worker.reconciler.tick.call_count == 2


def test_a_failed_tick_forgets_what_it_decided(services):
    worker = make_worker(services, live=_in_flight("11"))
    worker.reconciler.tick.return_value = Tick(30.0, _in_flight("11"))
    asyncio.run(worker.step())
    before = worker.indices
    worker.indices = indices(pods={("apps", "rs-1"): [cache.PodEntry.of(PodState("web-abc-1", ready=False))]})
    worker.reconciler.tick.side_effect = ApiException(status=503)
    asyncio.run(worker.step())
    worker.indices, worker.reconciler.tick.side_effect = before, None  # the world as first decided on
    asyncio.run(worker.step())
    assert worker.reconciler.tick.call_count == 3, "a failure leaves no decision standing"


def test_runs_measuring_with_a_template_read_it_once_a_moment_between_them(services):
    """Every tick of a run with templates asks for them; within TEMPLATE_SECONDS the runs of a namespace share one
    read of each (a cluster template, one read for every namespace); that a template is not there is not
    kept: one created after a run failed for want of it is seen by the next run at once."""
    services.kube.read_analysis_template.side_effect = \
        lambda namespace, name, cluster: None if name == "gone" else {"name": name, "from": namespace or "cluster"}
    refs = [{"templateName": "rate"}, {"templateName": "errors", "clusterScope": True}, {"templateName": "gone"}]
    elsewhere = {**RUN, "metadata": {**RUN["metadata"], "namespace": "other", "uid": "u2"}}
    seen = [make_worker(services, live=run)._templates(run, refs) for run in (RUN, RUN, elsewhere)]
    assert seen[0] == seen[1] and seen[0]["rate"] == {"name": "rate", "from": "apps"}
    assert seen[2]["rate"] == {"name": "rate", "from": "other"}, "a namespaced template is the run's namespace's"
    assert seen[0]["gone"] is None
    asked = [c.args for c in services.kube.read_analysis_template.call_args_list]
    assert sorted(asked) == sorted([("apps", "rate", False), ("apps", "errors", True), ("other", "rate", False),
                                    *[("apps", "gone", False)] * 2, ("other", "gone", False)]), \
        "one read of each template there, in each namespace; one at every ask of a template not there"


def _held_by(holder: str, uid: str) -> cache.Indices:
    """The workload held by `holder`, which the watches show in flight beside the worker's run."""
    claim = record.claimed(record.Record(), record.Claimant(holder, uid, "v2", None, "2030-01-01T00:00:00Z"),
                           datetime(2030, 1, 1, tzinfo=UTC))
    dep = {**DEPLOYMENT, "metadata": {**DEPLOYMENT["metadata"],
                                      "annotations": {"selfbootstrap.dev/runs": record.render(claim)}}}
    return indices(deployments={("apps", "web"): [cache.deployment_entry(dep)]},
                   runs={("apps", "web"): [cache.run_entry(a_run(holder, uid, "WatchingRestarts"))]})


@pytest.mark.parametrize("holder, its_phase, reads, running", [
    ("s", "Succeeded", 1, False),  # newer (its second, a later name): its end may not have reached the watches
    ("s", "WatchingRestarts", 1, True),
    ("q", "Succeeded", 0, True),  # older: in flight as the watches show it, the run waits for it either way
], ids=["newer-holder-ended", "newer-holder-running", "older-holder"])
def test_a_newer_holder_the_watches_show_in_flight_is_asked_for(services, holder, its_phase, reads, running):
    """A newer holder outranks a waiting run: before the run ends Superseded for it, the API says whether it
    is still running (a run of its second applied the moment it ended is not older)."""
    worker = make_worker(services, idx=_held_by(holder, f"u-{holder}"))
    services.kube.read_run.return_value = {"metadata": {"name": holder, "uid": f"u-{holder}"},
                                           "status": {"phase": its_phase}}
    run = worker.current()
    world = asyncio.run(worker._with_gate(run, cache.world_from(worker.indices, run, None)))
    assert services.kube.read_run.call_count == reads
    assert world.holder_running is running


def test_a_run_whose_final_status_this_operator_wrote_is_no_peer_though_the_watches_still_show_it(services):
    """Its final status written, the watches show it a moment later: it outranks nobody, and as the holder it
    is waited for without a read (its letting go follows, and the record then says how it ended)."""
    worker = make_worker(services, idx=_held_by("s", "u-s"))
    services.ledger.ended("u-s")
    run = worker.current()
    world = asyncio.run(worker._with_gate(run, cache.world_from(worker.indices, run, None)))
    assert world.peers == () and world.holder_running is True
    services.kube.read_run.assert_not_called()


def test_a_worker_that_writes_its_run_s_final_status_says_the_run_ended(services):
    worker = make_worker(services)
    ended = {**with_rv("11"), "status": {"phase": "Succeeded"}}
    worker.reconciler.tick.return_value = Tick(None, ended, wrote=True)
    asyncio.run(worker.step())
    assert services.ledger.has_ended("u")
