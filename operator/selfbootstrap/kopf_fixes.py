"""A fix for kopf (1.45): a namespace deleted while the operator fills its indices froze it for good.

Kopf holds every handler until each watch has listed its objects and each listed object has been
indexed once (one "toggle" per watch and per object in a set that must empty). When a watched
namespace goes away (a pattern like `--namespace 'e2e-*'` and a deleted namespace), kopf stops
that namespace's watch and its per-object workers, but never drops their toggles if they had
not finished yet: the set never empties and the operator handles nothing again, silently.

Here the watch and the worker drop their own toggle when they end, however they end. A toggle
already dropped is discarded again harmlessly. Remove this module once kopf does it itself.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from kopf._core.reactor import queueing

_MARK = "_selfbootstrap_drops_its_toggle"


def _dropping_its_toggle(fn: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            await fn(*args, **kwargs)
        finally:
            toggles, toggle = kwargs.get("operator_indexed"), kwargs.get("resource_indexed")
            if toggles is not None and toggle is not None:
                await toggles.drop_toggle(toggle)

    setattr(wrapper, _MARK, True)
    return wrapper


def apply() -> None:
    """Wrap kopf's watcher and worker (both are looked up in their module when called); idempotent."""
    for name in ("watcher", "worker"):
        fn = getattr(queueing, name)
        if not getattr(fn, _MARK, False):
            setattr(queueing, name, _dropping_its_toggle(fn))
