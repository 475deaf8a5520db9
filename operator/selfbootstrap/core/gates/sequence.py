"""The gates after the rollout, in the order they judge a release; a gate kind is registered here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from ...models import GatePhase, GateStatus, Phase, RunSpec
from ..actions import Action
from . import analysis, http, restarts, selftest
from .protocol import Gate, entry

SEQUENCE: Final[tuple[Gate, ...]] = (http.GATE, selftest.GATE, analysis.GATE, restarts.GATE)


def enabled(spec: RunSpec) -> tuple[Gate, ...]:
    return tuple(g for g in SEQUENCE if g.enabled(spec))


def first(spec: RunSpec) -> Gate | None:
    return next(iter(enabled(spec)), None)


def after(gate: Gate, spec: RunSpec) -> Gate | None:
    """The gate that judges after this one, if the run asks for one."""
    gates = enabled(spec)
    return gates[gates.index(gate) + 1] if gate in gates and gates.index(gate) + 1 < len(gates) else None


def of_phase(phase: Phase, spec: RunSpec, statuses: Sequence[GateStatus]) -> Gate | None:
    """The gate a run in this phase is at: the first of the phase's enabled gates not passed yet."""
    return next((g for g in enabled(spec) if g.phase == phase and not _passed(g, statuses)), None)


def _passed(gate: Gate, statuses: Sequence[GateStatus]) -> bool:
    known = entry(statuses, gate.kind)
    return known is not None and known.phase == GatePhase.PASSED


def owner(action: Action) -> Gate | None:
    """The gate whose action this is (its result goes back to it)."""
    return next((g for g in SEQUENCE if g.owns(action)), None)
