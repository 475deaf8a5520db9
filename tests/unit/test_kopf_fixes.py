"""kopf's readiness must not wait for a watch or an object worker that ended before it was indexed
(a namespace deleted while the operator starts froze it for good)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import watching
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._cogs.structs import references
from kopf._core.reactor import queueing

from selfbootstrap import kopf_fixes

RESOURCE = references.Resource(group="", version="v1", plural="pods", namespaced=True)


@pytest.fixture(autouse=True)
def kopf_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf as it was before each test (the operator's tests apply the fix for good)."""
    for name in ("watcher", "worker"):
        fn = getattr(queueing, name)
        monkeypatch.setattr(queueing, name, getattr(fn, "__wrapped__", fn))


def test_apply_wraps_once() -> None:
    kopf_fixes.apply()
    kopf_fixes.apply()
    assert getattr(queueing.watcher, "__wrapped__", None) is not None
    assert getattr(queueing.watcher.__wrapped__, "__wrapped__", None) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("wrap", [True, False], ids=["fixed", "kopf-as-is"])
def test_a_worker_stopped_before_indexing_releases_readiness(monkeypatch: pytest.MonkeyPatch, wrap: bool) -> None:
    if wrap:
        kopf_fixes.apply()

    async def scenario() -> bool:
        indexed = aiotoggles.ToggleSet(all)
        toggle = await indexed.make_toggle(name="an object of a deleted namespace")
        settings = OperatorSettings()
        settings.queueing.idle_timeout = 60
        key = (RESOURCE, queueing.ObjectUid("uid-1"))
        streams = {key: queueing.Stream(backlog=asyncio.Queue(), pressure=asyncio.Event())}

        async def never_called(**_: Any) -> None:
            raise AssertionError("no event was queued")

        task = asyncio.create_task(queueing.worker(
            signaller=asyncio.Condition(), settings=settings, processor=never_called, resource_indexed=toggle,
            operator_indexed=indexed, streams=streams, key=key))
        await asyncio.sleep(0.01)
        task.cancel()  # what kopf does to the workers of a watch it stops
        await asyncio.gather(task, return_exceptions=True)
        return indexed.is_on()

    assert asyncio.run(scenario()) is wrap


@pytest.mark.parametrize("wrap", [True, False], ids=["fixed", "kopf-as-is"])
def test_a_watch_stopped_before_its_listing_releases_readiness(monkeypatch: pytest.MonkeyPatch, wrap: bool) -> None:
    if wrap:
        kopf_fixes.apply()

    async def listing_forever(**_: Any) -> AsyncIterator[Any]:
        await asyncio.Event().wait()  # the namespace goes away before the list answers
        yield watching.Bookmark.LISTED

    monkeypatch.setattr(watching, "infinite_watch", listing_forever)

    async def scenario() -> bool:
        indexed = aiotoggles.ToggleSet(all)
        toggle = await indexed.make_toggle(name="pods@deleted-namespace")

        async def processor(**_: Any) -> None:
            raise AssertionError("nothing was listed")

        task = asyncio.create_task(queueing.watcher(
            namespace=references.NamespaceName("deleted-namespace"), resource=RESOURCE, processor=processor,
            settings=OperatorSettings(),
            operator_indexed=indexed, resource_indexed=toggle))
        await asyncio.sleep(0.01)
        task.cancel()  # kopf's terminate_redundancies, when the namespace is gone
        await asyncio.gather(task, return_exceptions=True)
        return indexed.is_on()

    assert asyncio.run(scenario()) is wrap


DEPLOYMENTS = references.Resource(group="apps", version="v1", plural="deployments", namespaced=True)


def watched(*objects: Any) -> list[Any]:
    """What kopf's watch stream yields for these objects once the fix is applied."""
    async def listed(**_: Any) -> AsyncIterator[Any]:
        for o in objects:
            yield {"type": "ADDED", "object": o}
        yield watching.Bookmark.LISTED

    async def collect(resource: references.Resource) -> list[Any]:
        return [e async for e in watching.infinite_watch(settings=OperatorSettings(), resource=resource,
                                                         namespace=references.NamespaceName("apps"))]

    original = watching.infinite_watch
    watching.infinite_watch = listed  # type: ignore[assignment]
    try:
        kopf_fixes.apply()
        return asyncio.run(collect(RESOURCE if objects and objects[0].get("kind") == "Pod" else DEPLOYMENTS))
    finally:
        watching.infinite_watch = original


def test_watched_objects_lose_what_nothing_reads() -> None:
    pod = {"kind": "Pod", "metadata": {"name": "web-1", "managedFields": [{"manager": "kubelet"}]},
           "spec": {"containers": [{"name": "app"}]}, "status": {"phase": "Running"}}
    events = watched(pod)
    assert events == [{"type": "ADDED", "object": {"kind": "Pod", "metadata": {"name": "web-1"},
                                                    "status": {"phase": "Running"}}},
                      watching.Bookmark.LISTED]


def test_other_resources_keep_their_spec() -> None:
    dep = {"kind": "Deployment", "metadata": {"name": "web", "managedFields": []}, "spec": {"replicas": 2}}
    assert watched(dep)[0]["object"] == {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 2}}


def test_an_error_event_passes_untouched() -> None:
    status = {"kind": "Status", "code": 410, "reason": "Expired"}
    assert watched(status)[0]["object"] == status


def test_kopf_s_own_writes_are_bounded_and_all_done() -> None:
    """A thousand runs at once must not become a thousand PATCHes in flight (the API server answers 429)."""
    in_flight, most, done = 0, 0, []

    async def write(n: int) -> int:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.001)
        in_flight -= 1
        done.append(n)
        return n

    async def main() -> list[int]:
        kopf_fixes._writes = asyncio.Semaphore(kopf_fixes.KOPF_WRITES)  # one of this test's own loop
        bounded = kopf_fixes._bounded(write)
        return list(await asyncio.gather(*(bounded(n) for n in range(200))))

    assert asyncio.run(main()) == list(range(200))
    assert most == kopf_fixes.KOPF_WRITES and sorted(done) == list(range(200))


def test_apply_bounds_kopf_s_writes() -> None:
    from kopf._cogs.clients import api

    kopf_fixes.apply()
    assert all(getattr(getattr(api, name), kopf_fixes._MARK, False)
               for name in ("patch", "post", "delete"))


# --- the second fix: namespaces listed by the namespace watch are seen -----------------------------


def _namespace_event(name: str, kind: str | None, deleted: bool = False) -> Any:
    meta: dict[str, Any] = {"name": name}
    if deleted:
        meta["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    return {"type": kind, "object": {"metadata": meta}}


async def _process(fn: Any, insights: references.Insights, event: Any) -> None:
    await fn(raw_event=event, namespaces=["e2e-*"], insights=insights)


@pytest.mark.parametrize("wrap", [False, True])
def test_a_namespace_first_seen_in_the_watch_s_own_listing_is_served(wrap: bool) -> None:
    """Without the fix a namespace created between kopf's two listings stays unserved (kopf's own
    behaviour, shown by wrap=False); with it, the watch's listing adds it."""
    from kopf._core.reactor import observation

    original = getattr(observation.process_discovered_namespace_event, "__wrapped__",
                       observation.process_discovered_namespace_event)
    fn = kopf_fixes._seeing_listed_namespaces(original) if wrap else original
    insights = references.Insights()

    async def scenario() -> None:
        await _process(fn, insights, _namespace_event("e2e-new", None))
        await _process(fn, insights, _namespace_event("other", None))

    asyncio.run(scenario())
    assert insights.namespaces == ({"e2e-new"} if wrap else set())


def test_a_listed_namespace_is_still_removed_by_its_deletion() -> None:
    from kopf._core.reactor import observation

    original = getattr(observation.process_discovered_namespace_event, "__wrapped__",
                       observation.process_discovered_namespace_event)
    fn = kopf_fixes._seeing_listed_namespaces(original)
    insights = references.Insights()

    async def scenario() -> None:
        await _process(fn, insights, _namespace_event("e2e-new", None))
        await _process(fn, insights, _namespace_event("e2e-new", "DELETED", deleted=True))

    asyncio.run(scenario())
    assert insights.namespaces == set()
