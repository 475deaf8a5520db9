"""kopf's readiness must not wait for a watch or an object worker that ended before it was indexed
(a namespace deleted while the operator starts froze it for good); the other fixes and the savings
of kopf_trim; and none of them is applied to a kopf other than the one they were written against."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import kopf
import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients import api, watching
from kopf._cogs.configs.configuration import OperatorSettings
from kopf._cogs.structs import references
from kopf._core.engines import daemons
from kopf._core.reactor import inventory, observation, queueing

from selfbootstrap import __main__ as entry
from selfbootstrap import kopf_fixes, kopf_trim

RESOURCE = references.Resource(group="", version="v1", plural="pods", namespaced=True)
ALL = (*kopf_fixes.FIXES, *kopf_trim.PATCHES)
PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


@pytest.fixture(autouse=True)
def kopf_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """kopf as it was before each test, unpatched (the operator's tests apply the patches for good)."""
    for patch in ALL:
        owner, name = kopf_fixes.located(patch.target)
        fn = getattr(owner, name)
        monkeypatch.setattr(owner, name, fn.__wrapped__ if getattr(fn, kopf_fixes._MARK, False) else fn)


def patched() -> list[str]:
    """The kopf functions wrapped now."""
    return [f"{p.target.module}.{p.target.name}" for p in ALL
            if getattr(getattr(*kopf_fixes.located(p.target), None), kopf_fixes._MARK, False)]


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


RUNS = references.Resource(group="selfbootstrap.dev", version="v1alpha1", plural="selfbootstrapruns", namespaced=True)


def watched(*objects: Any) -> list[Any]:
    """What kopf's watch stream yields for these objects once the fix is applied."""
    async def listed(*, settings: Any, resource: Any, namespace: Any, operator_paused: Any = None,
                     _iterations: int | None = None) -> AsyncIterator[Any]:  # kopf's own signature
        for o in objects:
            yield {"type": "ADDED", "object": o}
        yield watching.Bookmark.LISTED

    async def collect(resource: references.Resource) -> list[Any]:
        return [e async for e in watching.infinite_watch(settings=OperatorSettings(), resource=resource,
                                                         namespace=references.NamespaceName("apps"))]

    original = watching.infinite_watch
    watching.infinite_watch = listed  # type: ignore[assignment]
    try:
        kopf_fixes.apply(*kopf_trim.PATCHES)
        return asyncio.run(collect(RUNS))
    finally:
        watching.infinite_watch = original


def test_watched_objects_lose_what_nothing_reads() -> None:
    run = {"kind": "SelfBootstrapRun", "metadata": {"name": "r1", "managedFields": [{"manager": "kubectl"}]},
           "spec": {"target": {"deployment": "web"}}, "status": {"phase": "Pending"}}
    events = watched(run)
    assert events == [{"type": "ADDED", "object": {"kind": "SelfBootstrapRun", "metadata": {"name": "r1"},
                                                    "spec": {"target": {"deployment": "web"}},
                                                    "status": {"phase": "Pending"}}},
                      watching.Bookmark.LISTED]


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
        kopf_fixes._writes = kopf_fixes.WriteTurns(kopf_fixes.KOPF_WRITES)
        bounded = kopf_fixes._bounded(write)
        return list(await asyncio.gather(*(bounded(n) for n in range(200))))

    assert asyncio.run(main()) == list(range(200))
    assert most == kopf_fixes.KOPF_WRITES and sorted(done) == list(range(200))


def test_a_run_s_finalizer_goes_before_newer_runs_statuses() -> None:
    """Kopf's second write of a run (its finalizer, which its worker waits for) does not queue behind the first
    writes of every run that came after it; each kind keeps its order; every turn is given back."""
    order: list[str] = []

    async def write(url: str, **_: object) -> None:
        await asyncio.sleep(0.001)
        order.append(url)

    async def run(n: int, bounded: Any) -> None:
        await bounded(f"/apis/x/runs/r{n}/status")
        await bounded(f"/apis/x/runs/r{n}")

    async def main() -> None:
        kopf_fixes._writes = kopf_fixes.WriteTurns(2)
        bounded = kopf_fixes._bounded(write)
        await asyncio.gather(*(run(n, bounded) for n in range(20)))
        assert kopf_fixes._writes.free == 2

    asyncio.run(main())
    finalizers = [order.index(f"/apis/x/runs/r{n}") for n in range(20)]
    statuses = [order.index(f"/apis/x/runs/r{n}/status") for n in range(20)]
    assert statuses == sorted(statuses) and finalizers == sorted(finalizers), "each kind in the order it came"
    assert max(f - s for f, s in zip(finalizers, statuses, strict=True)) <= 4, \
        "a finalizer waits for the writes in flight, not for every newer run's status"


def test_a_write_cancelled_while_it_waits_gives_its_turn_on() -> None:
    async def main() -> None:
        turns = kopf_fixes.WriteTurns(1)
        await turns.take(first=True)
        waiting = asyncio.ensure_future(turns.take(first=False))
        behind = asyncio.ensure_future(turns.take(first=False))
        await asyncio.sleep(0)
        turns.give()  # handed to `waiting` ...
        waiting.cancel()  # ... as it is cancelled
        await asyncio.wait_for(behind, 1)  # the turn went on to the next one waiting
        assert waiting.cancelled()
        turns.give()
        assert turns.free == 1

    asyncio.run(main())


def test_apply_bounds_kopf_s_writes() -> None:
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
    original = getattr(observation.process_discovered_namespace_event, "__wrapped__",
                       observation.process_discovered_namespace_event)
    fn = kopf_fixes._seeing_listed_namespaces(original)
    insights = references.Insights()

    async def scenario() -> None:
        await _process(fn, insights, _namespace_event("e2e-new", None))
        await _process(fn, insights, _namespace_event("e2e-new", "DELETED", deleted=True))

    asyncio.run(scenario())
    assert insights.namespaces == set()


# --- the savings of kopf_trim: a module of their own, applied by the same apply() -----------------


def test_the_savings_are_applied_with_the_fixes() -> None:
    kopf_fixes.apply(*kopf_trim.PATCHES)
    assert patched() == [f"{p.target.module}.{p.target.name}" for p in ALL]


@pytest.mark.parametrize("running", [False, True], ids=["no-daemon", "a-daemon-runs"])
def test_an_idle_body_is_let_go_once_no_daemon_of_it_runs(running: bool) -> None:
    body = object()

    async def scenario() -> object:
        memory = inventory.ResourceMemory()
        memory.daemons_memory.live_fresh_body = body  # type: ignore[assignment]
        if running:
            memory.daemons_memory.running_daemons["reconcile"] = object()  # type: ignore[index,assignment]

        async def spawning(**_: Any) -> list[float]:
            return []

        await kopf_trim._releasing_idle_bodies(spawning)(memory=memory)
        return memory.daemons_memory.live_fresh_body

    assert asyncio.run(scenario()) is (body if running else None)


RUN = {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
       "metadata": {"name": "r", "resourceVersion": "7", "labels": {"a": "b"}, "finalizers": ["other"]},
       "spec": {"target": {"deployment": "web"}}, "status": {"phase": "Pending", "history": [{"phase": "Pending"}]}}


def _finalizer(body: dict[str, Any]) -> None:
    body["metadata"].setdefault("finalizers", []).append("selfbootstrap.dev/finalizer")


def _label(body: dict[str, Any]) -> None:
    body.setdefault("metadata", {}).setdefault("labels", {})["selfbootstrap.dev/deployment"] = "web"


def _spec(body: dict[str, Any]) -> None:
    body["spec"] = {"changed": True}


@pytest.mark.parametrize("fns", [[_finalizer], [_finalizer, _label], [_spec], [_label, _spec]],
                         ids=["finalizer", "finalizer-and-label", "spec", "label-and-spec"])
def test_a_finalizer_patch_is_the_same_diffed_from_metadata_alone(fns: list[Any]) -> None:
    """The ops kopf would send, whether the callables change only metadata (diffed from it alone) or more."""
    from kopf._cogs.structs.patches import Patch
    own: Any = Patch.as_json_patch
    while getattr(own, "__wrapped__", None) is not None:
        own = own.__wrapped__
    expected = own(Patch(fns=fns), dict(RUN))
    seen: list[dict[str, Any]] = []

    def recording(self: Any, body: Any = None) -> Any:
        seen.append(dict(body))
        return own(self, body)

    ops = kopf_trim._diffing_metadata(recording)(Patch(fns=fns), RUN)
    assert ops == expected and ops, ops
    assert RUN["spec"] == {"target": {"deployment": "web"}}, "the object itself is never changed"
    metadata_only = all(fn in (_finalizer, _label) for fn in fns)
    assert (list(seen[0]) == ["metadata"]) is metadata_only, "only metadata was copied and diffed"


@pytest.mark.parametrize(("ahead", "kept"), [(None, True), (-1.0, True), (5.0, False)],
                         ids=["consistent", "waited-out", "awaiting-kopf-s-own-write"])
def test_an_event_older_than_kopf_s_own_write_patches_nothing(ahead: float | None, kept: bool) -> None:
    from kopf._cogs.structs.patches import Patch

    async def scenario() -> list[Any]:
        patch = Patch()

        async def causes(**kwargs: Any) -> tuple[list[float], bool]:
            kwargs["patch"].fns.append(_finalizer)  # kopf: the event's body lacks the finalizer
            return [], True

        awaited = None if ahead is None else asyncio.get_running_loop().time() + ahead
        await kopf_trim._no_patch_from_stale_events(causes)(patch=patch, consistency_time=awaited)
        return list(patch.fns)

    assert asyncio.run(scenario()) == ([_finalizer] if kept else [])


@pytest.mark.parametrize(("version", "kept"), [("11", False), ("12", True), ("13", True), (None, True)],
                         ids=["older-than-the-worker-s-write", "that-write", "newer", "never-written"])
def test_an_event_older_than_the_worker_s_own_write_patches_nothing(version: str | None, kept: bool) -> None:
    from kopf._cogs.structs.bodies import Body
    from kopf._cogs.structs.patches import Patch

    uid = f"run-{version}"
    if version is not None:
        kopf_trim.wrote(uid, "12")  # the worker's last status write returned version 12

    async def scenario() -> list[Any]:
        patch = Patch()

        async def causes(**kwargs: Any) -> tuple[list[float], bool]:
            kwargs["patch"].fns.append(_finalizer)  # kopf: the run finished, its finalizer goes
            return [], True

        body = Body({"metadata": {"uid": uid, "resourceVersion": version or "11"}, "status": {"phase": "Succeeded"}})
        await kopf_trim._no_patch_from_stale_events(causes)(patch=patch, body=body, consistency_time=None,
                                                            raw_event={"type": "MODIFIED", "object": dict(body)})
        return list(patch.fns)

    assert asyncio.run(scenario()) == ([_finalizer] if kept else [])


@pytest.mark.parametrize(("event", "light"), [
    ({"type": "MODIFIED", "version": "12", "phase": "VerifyingHealth"}, True),
    ({"type": "MODIFIED", "version": "13", "phase": "VerifyingHealth"}, False),  # someone wrote after the worker
    ({"type": "MODIFIED", "version": "11", "phase": "VerifyingHealth"}, False),
    ({"type": "MODIFIED", "version": "12", "phase": "Succeeded"}, False),  # its daemon stops, its finalizer goes
    ({"type": "MODIFIED", "version": "12", "phase": "VerifyingHealth", "deleting": True}, False),
    ({"type": None, "version": "12", "phase": "VerifyingHealth"}, False),  # listed (a restart of the watch)
    ({"type": "DELETED", "version": "12", "phase": "VerifyingHealth"}, False),
], ids=["the-echo", "newer", "older", "finished", "being-deleted", "listed", "deleted"])
def test_the_echo_of_the_worker_s_own_write_of_a_run_in_flight_is_handled_lightly(event: dict[str, Any],
                                                                                    light: bool) -> None:
    """Kopf's filters, daemons and finalizer checks find nothing to do in the event of the version the worker's
    last write returned, of a run still in flight: they are skipped (kopf still keeps the body and its index)."""
    from kopf._cogs.structs.bodies import Body
    from kopf._cogs.structs.patches import Patch

    uid = f"echo-{event['version']}-{event['phase']}-{event['type']}-{event.get('deleting')}"
    kopf_trim.wrote(uid, "12")
    metadata: dict[str, Any] = {"uid": uid, "resourceVersion": event["version"]}
    if event.get("deleting"):
        metadata["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    raw: Any = {"metadata": metadata, "status": {"phase": event["phase"]}}
    handled: list[bool] = []

    async def causes(**kwargs: Any) -> tuple[list[float], bool]:
        handled.append(True)
        return [1.0], True

    async def scenario() -> Any:
        return await kopf_trim._no_patch_from_stale_events(causes)(
            patch=Patch(), body=Body(raw), consistency_time=None, raw_event={"type": event["type"], "object": raw})

    result = asyncio.run(scenario())
    assert (not handled) is light
    assert result == (([], False) if light else ([1.0], True))


def test_the_writes_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf_trim, "_written", {})
    for i in range(kopf_trim.WRITES_KEPT + 10):
        kopf_trim.wrote(f"u{i}", str(i))
    kopf_trim.wrote("u0", "not-a-number")
    assert len(kopf_trim._written) == kopf_trim.WRITES_KEPT and "u9" not in kopf_trim._written
    assert "u10" in kopf_trim._written


# --- each patched function is checked against the kopf it was written for -----------------------


def test_the_installed_kopf_is_the_one_the_patches_were_written_for() -> None:
    assert kopf_fixes.problems(ALL) == []
    pins = [d for d in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"] if d.startswith("kopf")]
    assert len(pins) == 1 and pins[0].startswith(f"kopf=={kopf_fixes.KOPF_MINOR}.")  # the pin is that kopf
    kopf_fixes.apply(*kopf_trim.PATCHES)
    assert len(patched()) == len(ALL)


async def _other(url: str, *, settings: Any, payload: Any = None, logger: Any) -> None:
    """A kopf function as a later kopf might have it: a parameter gone, another renamed."""


@pytest.mark.parametrize("patch", ALL, ids=lambda p: p.target.name)
def test_a_changed_signature_is_named_and_nothing_is_patched(monkeypatch: pytest.MonkeyPatch,
                                                             patch: kopf_fixes.Patch) -> None:
    monkeypatch.setattr(*kopf_fixes.located(patch.target), _other)
    with pytest.raises(kopf_fixes.KopfChangedError) as raised:
        kopf_fixes.apply(*kopf_trim.PATCHES)
    message = str(raised.value)
    assert f"{patch.target.module}.{patch.target.name}: expected {patch.target.shape}, " \
           f"found async def (url, *, settings, payload, logger)" in message
    assert f"kopf {kopf_fixes.installed_kopf()} is installed" in message and "nothing was patched" in message
    assert message.count("\n  - ") == 1  # only what changed is named
    assert patched() == []


def test_a_coroutine_become_a_plain_function_is_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    def worker(*, signaller: Any, settings: Any, processor: Any, resource_indexed: Any = None,
               operator_indexed: Any = None, streams: Any, key: Any) -> None:
        """Same parameters; not awaitable, so the wrapper would break it."""

    monkeypatch.setattr(queueing, "worker", worker)
    with pytest.raises(kopf_fixes.KopfChangedError, match=r"queueing\.worker: expected async def \(\*, signaller.*"
                                                     r"found def \(\*, signaller"):
        kopf_fixes.apply()
    assert patched() == []


def test_a_missing_function_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(api, "post")
    with pytest.raises(kopf_fixes.KopfChangedError, match=r"kopf\._cogs\.clients\.api\.post: expected async def .*, "
                                                     r"found no attribute post in kopf\._cogs\.clients\.api"):
        kopf_fixes.apply()
    assert patched() == []


def test_what_a_wrapper_calls_is_checked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    def revise_namespaces(*, insights: Any, namespaces: Any, raw_events: Any = ()) -> None:
        """raw_bodies gone."""

    monkeypatch.setattr(observation, "revise_namespaces", revise_namespaces)
    with pytest.raises(kopf_fixes.KopfChangedError, match=r"observation\.revise_namespaces: expected "
                                                     r"def \(\*, insights, namespaces, raw_events, raw_bodies\), "
                                                     r"found def \(\*, insights, namespaces, raw_events\)"):
        kopf_fixes.apply()
    assert patched() == []


def test_a_field_a_saving_reads_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    @dataclasses.dataclass
    class DaemonsMemory:
        live_fresh_body: Any = None  # running_daemons renamed

    monkeypatch.setattr(daemons, "DaemonsMemory", DaemonsMemory)
    with pytest.raises(kopf_fixes.KopfChangedError, match=r"daemons\.DaemonsMemory: expected a dataclass with the "
                                                     r"fields live_fresh_body, running_daemons, found none named "
                                                     r"running_daemons"):
        kopf_fixes.apply(*kopf_trim.PATCHES)
    assert patched() == []


@pytest.mark.parametrize("version", ["1.46.0", "2.0.0", "1.4.5"])
def test_another_kopf_version_is_refused(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    monkeypatch.setattr(kopf_fixes, "installed_kopf", lambda: version)
    with pytest.raises(kopf_fixes.KopfChangedError) as raised:
        kopf_fixes.apply(*kopf_trim.PATCHES)
    assert f"kopf version: expected 1.45.x, found {version}" in str(raised.value)
    assert f"kopf {version} is installed" in str(raised.value)
    assert patched() == []


def test_a_patch_release_of_the_pinned_minor_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf_fixes, "installed_kopf", lambda: "1.45.9")
    kopf_fixes.apply(*kopf_trim.PATCHES)
    assert len(patched()) == len(ALL)


def test_the_operator_does_not_start_on_a_changed_kopf(monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up error is the message, on stderr, with a non-zero exit (SystemExit with a text)."""
    monkeypatch.setattr(kopf_fixes, "installed_kopf", lambda: "1.46.0")
    monkeypatch.setattr(entry, "limit_malloc_arenas", lambda: None)
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    monkeypatch.delenv("SELFBOOTSTRAP_METRICS_BIND_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as raised:
        entry.main([])
    assert isinstance(raised.value.code, str)
    assert raised.value.code.startswith("cannot start: kopf 1.46.0 is installed")
    assert "kopf version: expected 1.45.x, found 1.46.0" in raised.value.code
    assert patched() == []
