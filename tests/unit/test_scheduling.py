"""Fairness between namespaces: the ticks' executor serves namespaces in turn, and runs held back by their
namespace's bound wait without cost and are woken one at a time, oldest first."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfbootstrap.core.jsontypes import JsonObject
from selfbootstrap.scheduling import FairExecutor, Ledger


def gated() -> tuple[list[str], threading.Event, Callable[[str], str]]:
    """A job that waits for the gate, then notes its name: the order the executor served the jobs in."""
    order: list[str] = []
    gate = threading.Event()

    def job(name: str) -> str:
        gate.wait(5)
        order.append(name)
        return name

    return order, gate, job


def test_a_flooded_namespace_does_not_starve_another():
    order, gate, job = gated()

    async def main() -> list[str]:
        fair = FairExecutor(1)
        flood = [asyncio.ensure_future(fair.run("a", job, f"a{i}")) for i in range(50)]
        await asyncio.sleep(0.05)
        mine = [asyncio.ensure_future(fair.run("b", job, f"b{i}")) for i in range(3)]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*flood, *mine)
        fair.shutdown()
        return results

    results = asyncio.run(main())
    assert sorted(results) == sorted([f"a{i}" for i in range(50)] + ["b0", "b1", "b2"])
    # b's jobs arrived behind 49 queued a-jobs and were served in turn with them, not after them.
    assert max(order.index(f"b{i}") for i in range(3)) <= 8, order[:10]


def test_urgent_jobs_of_a_namespace_go_before_its_others_and_not_before_other_namespaces():
    order, gate, job = gated()

    async def main() -> None:
        fair = FairExecutor(1)
        first = asyncio.ensure_future(fair.run("a", job, "busy"))  # holds the one thread
        await asyncio.sleep(0.05)
        jobs = [fair.run("a", job, f"gate{i}") for i in range(3)]
        jobs += [fair.run("b", job, "b-gate"), fair.run("a", job, "deploy0", urgent=True),
                 fair.run("a", job, "deploy1", urgent=True)]
        waiting = [asyncio.ensure_future(j) for j in jobs]
        await asyncio.sleep(0.05)
        assert fair.waiting() == 6
        gate.set()
        await asyncio.gather(first, *waiting)
        fair.shutdown()

    asyncio.run(main())
    # a's deploys before its gate steps, each kind in order; b still gets its turn between a's jobs
    assert order == ["busy", "deploy0", "b-gate", "deploy1", "gate0", "gate1", "gate2"], order


def test_errors_reach_the_caller_and_the_executor_goes_on():
    def boom() -> None:
        raise KeyError("x")

    async def main() -> int:
        fair = FairExecutor(2)
        with pytest.raises(KeyError):
            await fair.run("a", boom)
        value = await fair.run("a", lambda: 7)
        fair.shutdown()
        return value

    assert asyncio.run(main()) == 7


def test_a_cancelled_caller_does_not_lose_a_thread():
    async def main() -> int:
        fair = FairExecutor(1)
        slow = asyncio.ensure_future(fair.run("a", time.sleep, 0.2))
        waiting = asyncio.ensure_future(fair.run("a", lambda: 1))
        waiting.cancel()
        await slow
        value = await fair.run("b", lambda: 2)
        fair.shutdown()
        return value

    assert asyncio.run(main()) == 2


def test_the_ledger_counts_runs_with_a_worker_per_namespace():
    ledger = Ledger()
    ledger.saw("a", "u1", active=True)
    ledger.saw("a", "u2", active=True)
    ledger.saw("a", "u3", active=False)
    ledger.saw("b", "u4", active=True)
    assert (ledger.active("a", "u3"), ledger.active("a", "u1"), ledger.active("b", "u9")) == (2, 1, 1)
    ledger.gone("a", "u1")
    assert ledger.active("a", "u3") == 1
    assert ledger.seen_seconds("u2") < 1 and ledger.seen_seconds("u1") == float("inf")


def bounded(limit: int) -> tuple[Ledger, list[str]]:
    admitted: list[str] = []

    def admit(namespace: str, name: str, uid: str, seen: JsonObject | None) -> None:
        admitted.append(f"{namespace}/{name}")

    return Ledger(limit=limit, admit=admit), admitted


def order(n: int, name: str) -> tuple[str, str]:
    return (f"2030-01-01T00:00:{n:02d}Z", name)


def test_beyond_the_bound_a_run_waits_in_line_and_asking_again_changes_nothing():
    ledger, admitted = bounded(2)
    assert [ledger.admits("a", f"u{i}", order(i, f"r{i}")) for i in range(4)] == [True, True, False, False]
    assert ledger.admits("a", "u3", order(3, "r3")) is False and ledger.admits("a", "u0", order(0, "r0"))
    assert ledger.admits("b", "u9", order(9, "r9")), "another namespace has slots of its own"
    assert (ledger.in_line(), admitted) == (2, [])


def test_a_freed_slot_goes_to_the_oldest_in_line_once():
    ledger, admitted = bounded(1)
    ledger.saw("a", "busy", active=True)
    for n, name in [(5, "late"), (1, "early"), (3, "middle")]:  # the watch's order is not the creation order
        assert not ledger.admits("a", name, order(n, name))
    ledger.gone("a", "busy")
    assert admitted == ["a/early"]
    assert ledger.admits("a", "early", order(1, "early")), "its event then spawns its worker"
    ledger.gone("a", "busy")  # a late DELETED event of a run already gone frees nothing
    assert admitted == ["a/early"]
    ledger.leave_line("a", "middle")  # being deleted
    ledger.gone("a", "early")
    assert admitted == ["a/early", "a/late"]


def test_a_run_is_admitted_with_what_was_last_seen_of_it_in_line_and_that_is_forgotten_after():
    seen: list[tuple[str, JsonObject | None]] = []
    ledger = Ledger(limit=1, admit=lambda namespace, name, uid, last: seen.append((name, last)))
    ledger.saw("a", "busy", active=True)
    ledger.note("busy", {"metadata": {"resourceVersion": "1"}})  # not in line: nothing kept
    for n, name in [(1, "first"), (2, "second"), (3, "third")]:
        assert not ledger.admits("a", name, order(n, name))
    ledger.note("first", {"metadata": {"resourceVersion": "7"}})
    ledger.note("first", {"metadata": {"resourceVersion": "9"}})
    ledger.note("third", {"metadata": {"resourceVersion": "4"}})
    ledger.gone("a", "busy")
    ledger.gone("a", "first")
    assert seen == [("first", {"metadata": {"resourceVersion": "9"}}), ("second", None)]
    ledger.leave_line("a", "third")
    assert not ledger.waits("third") and ledger._seen_in_line == {}


def test_a_run_found_in_flight_keeps_its_slot_even_over_the_bound():
    ledger, _ = bounded(1)
    ledger.saw("a", "one", active=True)
    ledger.saw("a", "two", active=True)  # after a restart: both past Pending
    assert ledger.active("a", "one") == 1 and ledger.admits("a", "two", order(1, "two"))
    blocked = asyncio.Event()
    ledger.wait_for_slot("a", "one", blocked)
    ledger.gone("a", "two")
    assert blocked.is_set(), "the run the gate held at the bound asks again"


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(st.sampled_from(["new", "end", "delete", "note"]),
                                             st.integers(0, 15)), max_size=60))
def test_the_line_never_exceeds_the_bound_and_admits_in_creation_order(limit, steps):
    """Random arrivals, ends, deletions and watch events: at most `limit` runs have a slot (none is found in
    flight from outside here), each run in line is admitted at most once, oldest first, with what its last
    watch event in line showed, no run in line waits while a slot is free, and nothing is kept of a run
    that left the line."""
    admitted: list[str] = []
    handed: dict[str, JsonObject | None] = {}

    def admit(namespace: str, name: str, uid: str, seen: JsonObject | None) -> None:
        admitted.append(f"{namespace}/{name}")
        handed[uid] = seen

    ledger = Ledger(limit=limit, admit=admit)
    created: dict[str, int] = {}
    waiting: set[str] = set()
    noted: dict[str, JsonObject] = {}
    for step, (what, n) in enumerate(steps):
        uid = f"r{n:02d}"
        if what == "new" and uid not in created:
            created[uid] = len(created)
            if not ledger.admits("a", uid, order(created[uid], uid)):
                waiting.add(uid)
        elif what == "note" and uid in created:
            ledger.note(uid, {"metadata": {"resourceVersion": str(step)}})
            if uid in waiting:
                noted[uid] = {"metadata": {"resourceVersion": str(step)}}
        elif what in ("end", "delete") and uid in created:
            if what == "delete":
                ledger.leave_line("a", uid)
            ledger.gone("a", uid)
            waiting.discard(uid)
        served = ledger.active("a", "")
        assert served <= limit
        newly = [name.split("/")[1] for name in admitted if name.split("/")[1] in waiting]
        for name in newly:
            waiting.discard(name)
            assert handed[name] == noted.get(name), "admitted with what its last event in line showed"
        assert served == limit or not waiting, "a run waits while a slot is free"
        if waiting and newly:
            assert max(created[u] for u in newly) < min(created[u] for u in waiting), "admitted out of order"
        assert set(ledger._seen_in_line) <= waiting, "kept what the watch showed of a run no longer in line"
    assert len(admitted) == len(set(admitted)), "a run was admitted twice"


def test_a_run_gone_is_never_admitted_again():
    """Kopf asks its daemon filter on a run's DELETED event too, after the run is gone from the ledger."""
    ledger, _ = bounded(1)
    ledger.gone("a", "deleted")
    assert not ledger.admits("a", "deleted", order(1, "deleted"))
    assert ledger.in_line() == 0 and ledger.admits("a", "next", order(2, "next"))


def test_a_run_whose_final_status_was_written_has_ended_until_the_watch_says_it_is_gone():
    ledger = Ledger()
    ledger.saw("a", "u", True)
    assert not ledger.has_ended("u")
    ledger.ended("u")
    assert ledger.has_ended("u") and ledger.serves("a", "u"), "its slot is kept until the watch says it ended"
    ledger.gone("a", "u")
    assert not ledger.has_ended("u") and not ledger.serves("a", "u")
    ledger.ended("u")  # the watch was first: nothing is kept for it
    assert not ledger.has_ended("u") and ledger._ended == set()
