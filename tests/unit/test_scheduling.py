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


def test_a_freed_slot_wakes_the_oldest_waiter_only():
    async def main() -> list[bool]:
        ledger = Ledger()
        ledger.saw("a", "busy", active=True)
        events = {name: asyncio.Event() for name in ("late", "early", "gave-up")}
        ledger.wait_for_slot("a", ("2030-01-03", "late"), "late", events["late"])
        ledger.wait_for_slot("a", ("2030-01-01", "early"), "early", events["early"])
        ledger.wait_for_slot("a", ("2030-01-00", "gave-up"), "gave-up", events["gave-up"])
        ledger.stop_waiting("gave-up")
        ledger.gone("a", "busy")
        return [events[n].is_set() for n in ("early", "late", "gave-up")]

    assert asyncio.run(main()) == [True, False, False]
