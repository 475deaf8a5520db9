"""SIGUSR1: the operator writes where each of its tasks waits, to its log (`kill -USR1 <pid>`).

For an operator that looks frozen: kopf's watchers, workers and daemons are asyncio tasks, and a
thread dump shows only the event loop idling.
"""

from __future__ import annotations

import asyncio
import io
import logging
import signal

logger = logging.getLogger(__name__)


def dump_tasks(*_: object) -> None:
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # the signal came before the loop runs, or after
        logger.warning("SIGUSR1: no event loop is running")
        return
    out = io.StringIO()
    for task in sorted(tasks, key=lambda t: t.get_name()):
        out.write(f"--- {task.get_name()}\n")
        for where in _awaiting(task.get_coro()):
            out.write(f"    {where}\n")
    logger.warning("%d tasks on SIGUSR1:\n%s", len(tasks), out.getvalue())


def _awaiting(coro: object) -> list[str]:
    """Where a task waits, outermost first: the chain of coroutines each awaits (a task's own stack
    shows only its outermost frame while it is suspended)."""
    chain = []
    for _ in range(64):
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None) or getattr(coro, "gi_yieldfrom", None)
        if coro is None:
            break
    return chain


def install() -> None:
    """Dump the tasks on SIGUSR1. From the main thread, which runs the loop: Python runs the handler
    there between two steps of the loop, where the running loop is known."""
    signal.signal(signal.SIGUSR1, dump_tasks)
