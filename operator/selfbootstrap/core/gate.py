"""The gate before a run takes its workload: may it go now, must it wait, or is it no longer wanted?

Which run goes, when several want one workload:
- a run the workload's record says is older than one that already took it, or that already ran
  there under its name, never goes (replay safety, record.py);
- among the runs waiting, the newest intent wins (order: spec.release.sequence, creation time,
  name): an older waiting run ends Superseded, naming the newer one;
- the winner takes the workload once nobody holds it (the claim is a write the API server
  arbitrates, so two runs that both see it free cannot both take it);
- a sequenced run on a workload without a record (its first run, or a restore from git) first
  waits for a quiet moment, so that runs applied together are all seen before the newest goes;
- a namespace has at most `Limits.namespace_runs` runs in flight; the others wait in line, at no cost
  (they have no worker until a slot frees, scheduling.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import reasons
from .record import Claimant, Record, replayed
from .run import Run
from .world import Peer, World


@dataclass(frozen=True)
class Go:
    """Take the workload (or keep it: the run holds it already)."""


@dataclass(frozen=True)
class Wait:
    reason: str
    message: str
    seconds: float | None = None  # None: until a watch event wakes the run


@dataclass(frozen=True)
class Supersede:
    message: str


Verdict = Go | Wait | Supersede


def claimant(run: Run, release: str | None, previous: str | None = None) -> Claimant:
    return Claimant(run=run.name, uid=run.uid, release=release, sequence=run.spec.release.sequence,
                    created=run.created, previous=previous)


def _as_claimant(p: Peer) -> Claimant:
    return Claimant(run=p.name, uid=p.uid, release=None, sequence=p.sequence, created=p.created)


def _in_the_race(peer: Peer, record: Record, world: World) -> bool:
    """A newer run outranks this one while it is in flight and not a replay (a run that took the workload and
    let go is one, record.replayed). The watches show a run's end a moment after the write that ended it:
    a newer holder that ended without letting go yet, as the shell's read of it says, is out of the race, and
    a run of its second applied after its end is not older than it."""
    if replayed(record, _as_claimant(peer)):
        return False
    return world.holder_running or not record.held_by(peer.uid)


def namespace_bound(active: int, limit: int) -> Wait:
    return Wait(reasons.QUEUED, f"{active} runs of this namespace are in flight (the bound is {limit}); "
                                f"waiting for one to end")


ADMITTED = "a slot for runs in flight in this namespace is free: starting"


def replay_of(run: Run, release: str | None, record: Record) -> Supersede | None:
    """A run the workload's record says must not deploy (replay safety): asked first by a git run too, so
    that an old run made again never proposes, merges or pushes its old release to git."""
    if run.spec.release.redeploy:
        return None
    why = replayed(record, claimant(run, release))
    return Supersede(f"{why}; set spec.release.redeploy to deploy it anyway") if why else None


def verdict(run: Run, release: str | None, record: Record, world: World) -> Verdict:
    me = claimant(run, release)
    if record.held_by(run.uid):
        return Go()
    limit = world.limits.namespace_runs
    if limit and world.namespace_active >= limit:  # judged only once it has a slot: waiting costs nothing
        return namespace_bound(world.namespace_active, limit)
    replay = replay_of(run, release, record)
    if replay is not None:
        return replay
    newer = [p for p in world.peers if _as_claimant(p).key > me.key and _in_the_race(p, record, world)]
    if newer:
        winner = max(newer, key=lambda p: _as_claimant(p).key)
        return Supersede(f"run {winner.name!r} for the same workload is newer and was applied while this one waited")
    if run.spec.release.sequence is not None and record.newest is None:
        quiet = world.quiet_seconds
        if quiet < world.limits.settle_seconds:
            return Wait(reasons.SETTLING, "the workload has no record of runs yet: waiting a moment for runs "
                                          "applied together with this one", world.limits.settle_seconds - quiet)
    holder = record.holder
    if holder is not None and world.holder_running:
        return Wait(reasons.QUEUED, f"waiting for run {holder.run!r}, which holds the workload")
    return Go()
