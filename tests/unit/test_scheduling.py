"""Fairness between namespaces: the ticks' executor serves namespaces in turn, and runs held back by their
namespace's bound wait without cost and are woken one at a time, oldest first."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from selfbootstrap.scheduling import FairExecutor, Ledger


def test_a_flooded_namespace_does_not_starve_another():
    order: list[str] = []
    gate = threading.Event()

    def job(name: str) -> str:
        gate.wait(5)
        order.append(name)
        return name

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


def test_the_ledger_counts_runs_past_pending_per_namespace():
    ledger = Ledger()
    ledger.saw("a", "u1", active=True)
    ledger.saw("a", "u2", active=True)
    ledger.saw("a", "u3", active=False)
    ledger.saw("b", "u4", active=True)
    assert (ledger.active("a", "u3"), ledger.active("a", "u1"), ledger.active("b", "u9")) == (2, 1, 1)
    ledger.gone("a", "u1")
    assert ledger.active("a", "u3") == 1
    assert ledger.seen_seconds("u2") < 1 and ledger.seen_seconds("u1") == float("inf")


def waiters(ledger: Ledger, *names: str) -> dict[str, asyncio.Event]:
    events = {}
    for i, name in enumerate(names):
        events[name] = asyncio.Event()
        ledger.wait_for_slot("a", (f"2030-01-0{i + 1}", name), name, events[name])
    return events


def woken(events: dict[str, asyncio.Event]) -> list[str]:
    return [name for name, event in events.items() if event.is_set()]


def test_a_freed_slot_wakes_the_oldest_waiter_only():
    async def main() -> None:
        ledger = Ledger(limit=1)
        ledger.saw("a", "busy", active=True)
        events = waiters(ledger, "gave-up", "early", "late")
        ledger.let_go("a", "gave-up")
        ledger.gone("a", "busy")
        assert woken(events) == ["early"]

    asyncio.run(main())


def test_a_woken_run_that_does_not_take_its_slot_hands_it_on():
    async def main() -> None:
        ledger = Ledger(limit=1)
        ledger.saw("a", "busy", active=True)
        events = waiters(ledger, "first", "second", "third")
        ledger.gone("a", "busy")
        assert woken(events) == ["first"]
        ledger.gone("a", "first")  # it ended superseded without taking the slot
        assert woken(events) == ["first", "second"]
        ledger.let_go("a", "second")  # it waits for its Deployment's holder instead
        assert woken(events) == ["first", "second", "third"]
        ledger.saw("a", "third", active=True)  # it took the slot
        ledger.wait_for_slot("a", ("2030-01-09", "fourth"), "fourth", asyncio.Event())
        assert ledger.active("a", "fourth") == 1

    asyncio.run(main())


def test_a_run_that_takes_its_slot_keeps_it_reserved_until_the_watch_shows_it():
    async def main() -> None:
        ledger = Ledger(limit=1)
        ledger.saw("a", "busy", active=True)
        events = waiters(ledger, "first", "second")
        ledger.gone("a", "busy")
        ledger.stop_waiting("a", "first")  # past Pending in its own status, not yet in the watch
        assert woken(events) == ["first"], "the slot stays the first one's"
        ledger.saw("a", "first", active=True)
        assert woken(events) == ["first"]

    asyncio.run(main())
