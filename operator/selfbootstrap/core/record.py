"""The workload's record of runs: who holds it, and what was deployed to it, kept on the workload itself.

One annotation (selfbootstrap.dev/runs) on the Deployment, written only in the patches that claim,
deploy to, roll back and release it, each guarded so that the API server lets one writer win:

- `holder`: the run that holds the workload, from its claim (which rides in its deploy patch, or in
  a patch of its own when the release is there already) until it ends. A run deploys or rolls back
  only while it holds the workload, so two runs never write it at once, and a status that says
  otherwise (forged, or left over) is never acted on.
- `newest`: the run with the highest order key (spec.release.sequence, then creation time, then name)
  that ever claimed the workload. A run older than it is superseded, however long ago it ran: this
  one entry stands for the whole history (it is what the record compacts to).
- `names`: short digests of the names of the last NAMES_LIMIT runs that claimed the workload, so that
  a run made again under its old name (a GitOps engine re-creating a pruned run) is recognised even
  without a sequence.
- `passed`: short digests of the names of the runs that waited for the workload, older than the run that
  took it, when it took it (the last NAMES_LIMIT): they never go, however late they get to ask (a run in
  line for its namespace's slot, say). Creation times have a resolution of a second: this, not the name,
  tells a run that waited with the newest from one applied the moment the newest ended.
- `runs`: the last RECORD_LIMIT entries in full (run, uid, release, outcome, when), for people
  (`kubectl sbr history`) and for the release-based check below.

Pure: the patches that write it are built in patches.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

RECORD_LIMIT = 10
NAMES_LIMIT = 1024
CLAIMED = "claimed"  # holds the workload, has not deployed yet
DEPLOYED = "deployed"  # its release is live (deployed by it, or there already when it claimed)
ROLLED_BACK = "rolledBack"
SUCCEEDED = "succeeded"
FAILED = "failed"  # ended in failure with its release still live
NOT_DEPLOYED = "notDeployed"  # ended before its release went live
KEPT = frozenset({DEPLOYED, SUCCEEDED, FAILED})  # the release stayed after the run

OrderKey = tuple[int, str, str]  # (sequence, creationTimestamp, name): which of two runs is newer


def order_key(sequence: int | None, created: str, name: str) -> OrderKey:
    """Runs without a sequence count as sequence 0: older than every sequenced one."""
    return (sequence or 0, created, name)


@dataclass(frozen=True)
class Holder:
    run: str
    uid: str
    since: str


@dataclass(frozen=True)
class Entry:
    run: str
    uid: str
    release: str | None
    outcome: str
    at: str
    sequence: int | None = None
    created: str = ""
    previous: str | None = None  # the ReplicaSet that ran before this run's deploy: the undo's default target

    @property
    def key(self) -> OrderKey:
        return order_key(self.sequence, self.created, self.run)


@dataclass(frozen=True)
class Record:
    holder: Holder | None = None
    newest: Entry | None = None
    names: tuple[str, ...] = ()
    passed: tuple[str, ...] = ()
    runs: tuple[Entry, ...] = ()

    def entry(self, uid: str) -> Entry | None:
        return next((e for e in self.runs if e.uid == uid), None)

    def held_by(self, uid: str) -> bool:
        return self.holder is not None and self.holder.uid == uid

    def knows_name(self, name: str) -> bool:
        return digest(name) in self.names

    def passed_over(self, name: str) -> bool:
        return digest(name) in self.passed


def digest(name: str) -> str:
    """8 characters naming a run name (48 bits: a collision among a workload's runs is not a concern)."""
    return base64.urlsafe_b64encode(hashlib.sha256(name.encode()).digest()[:6]).decode()


# --- reading and writing --------------------------------------------------------


def parse(annotation: str | None) -> Record:
    """The record; anything that is not one counts as no record (never a crash). The first version's
    plain list of entries is read as its `runs`."""
    try:
        raw: Any = json.loads(annotation or "{}")
    except ValueError:
        return Record()
    if isinstance(raw, list):  # version 1: the entries alone
        runs = _entries(raw)
        return Record(runs=runs, names=tuple(digest(e.run) for e in runs))
    if not isinstance(raw, dict):
        return Record()
    holder = raw.get("holder")
    newest = _entries([raw.get("newest")])
    names = raw.get("names")
    return Record(
        holder=Holder(holder["run"], holder["uid"], str(holder.get("since") or ""))
        if isinstance(holder, dict) and isinstance(holder.get("run"), str) and isinstance(holder.get("uid"), str)
        else None,
        newest=newest[0] if newest else None,
        names=_digests(names),
        passed=_digests(raw.get("passed")),
        runs=_entries(raw.get("runs")),
    )


def _digests(raw: Any) -> tuple[str, ...]:
    return tuple(n for n in raw.split(",") if n) if isinstance(raw, str) else ()


def _entries(raw: Any) -> tuple[Entry, ...]:
    out = []
    for item in raw if isinstance(raw, list) else ():
        if isinstance(item, dict) and isinstance(item.get("run"), str) and isinstance(item.get("uid"), str):
            release, seq, prev = item.get("release"), item.get("sequence"), item.get("previous")
            out.append(Entry(item["run"], item["uid"], release if isinstance(release, str) else None,
                             str(item.get("outcome") or DEPLOYED), str(item.get("at") or ""),
                             seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                             str(item.get("created") or ""), prev if isinstance(prev, str) else None))
    return tuple(out)


def render(record: Record) -> str:
    def entry(e: Entry) -> dict[str, Any]:
        return {k: v for k, v in asdict(e).items() if v not in (None, "")}

    out: dict[str, Any] = {}
    if record.holder is not None:
        out["holder"] = asdict(record.holder)
    if record.newest is not None:
        out["newest"] = entry(record.newest)
    out["names"] = ",".join(record.names[-NAMES_LIMIT:])
    if record.passed:
        out["passed"] = ",".join(record.passed[-NAMES_LIMIT:])
    out["runs"] = [entry(e) for e in record.runs[-RECORD_LIMIT:]]
    return json.dumps(out, separators=(",", ":"))


# --- what the patches write ------------------------------------------------------------


@dataclass(frozen=True)
class Claimant:
    """A run as the record knows it."""

    run: str
    uid: str
    release: str | None
    sequence: int | None = None
    created: str = ""
    previous: str | None = None
    at: datetime | None = field(default=None, compare=False)

    @property
    def key(self) -> OrderKey:
        return order_key(self.sequence, self.created, self.run)


def claimed(record: Record, c: Claimant, at: datetime, passed_over: Iterable[str] = ()) -> Record:
    """The record once the run holds the workload: from now on it is the newest run that took it (or an
    older one that redeploys on purpose), its name is known, and so are the older runs that waited
    (`passed_over`, their names)."""
    entry = Entry(c.run, c.uid, c.release, CLAIMED, at.isoformat(), c.sequence, c.created, c.previous)
    newest = entry if record.newest is None or entry.key >= record.newest.key else record.newest
    names = record.names if digest(c.run) in record.names else (*record.names, digest(c.run))[-NAMES_LIMIT:]
    fresh = dict.fromkeys(d for d in (digest(n) for n in passed_over) if d not in record.passed)
    passed = (*record.passed, *fresh)
    return Record(holder=Holder(c.run, c.uid, at.isoformat()), newest=newest, names=names,
                  passed=passed[-NAMES_LIMIT:], runs=_with(record.runs, entry))


def deployed(record: Record, uid: str, at: datetime) -> Record:
    """The record once the holder's release is live."""
    entry = record.entry(uid)
    if entry is None:
        return record
    return replace(record, runs=_with(record.runs, replace(entry, outcome=DEPLOYED, at=at.isoformat())))


def outcome(record: Record, uid: str, result: str, at: datetime, *, release: bool) -> Record:
    """The record with the run's entry saying how it ended (or that it rolled back), and the hold let go
    of when `release`."""
    entry = record.entry(uid)
    runs = record.runs if entry is None else _with(record.runs, replace(entry, outcome=result, at=at.isoformat()))
    holder = None if release and record.held_by(uid) else record.holder
    return replace(record, holder=holder, runs=runs)


def _with(runs: tuple[Entry, ...], entry: Entry) -> tuple[Entry, ...]:
    """The entries with this run's (replaced in place if it has one, else added last), bounded."""
    if any(e.uid == entry.uid for e in runs):
        return tuple(entry if e.uid == entry.uid else e for e in runs)
    return (*runs, entry)[-RECORD_LIMIT:]


# --- what the record says about a run at the gate -------------------------------------------


def replayed(record: Record, run: Claimant) -> str | None:
    """Why this run must not deploy because of what already ran here (naming the newer run), or None."""
    if record.knows_name(run.run) and not record.held_by(run.uid):
        entry = next((e for e in reversed(record.runs) if e.run == run.run), None)
        what = f"deployed release {entry.release}" if entry and entry.outcome != CLAIMED else "ran"
        return f"a run named {run.run!r} already {what} on this workload (it was deleted and made again)"
    newest = record.newest
    if record.passed_over(run.run) and not record.held_by(run.uid):
        newer = f"run {newest.run!r}" if newest is not None else "a newer run"
        return f"{newer} took this workload while this run waited, as the newer of the two"
    if newest is not None and newest.uid != run.uid and _older(run, newest):
        return (f"run {newest.run!r} (release {newest.release}{_seq(newest.sequence)}) is newer and already "
                f"deployed")
    return _older_release(record, run)


def _older(run: Claimant, newest: Entry) -> bool:
    """Was the run meant before the newest run that took the workload? By sequence, then creation time.
    Creation times have a resolution of a second, so a run of the same second is not older by its name:
    the runs the newest passed over when it took the workload are in `passed`."""
    return run.key[:2] < newest.key[:2]


def _older_release(record: Record, run: Claimant) -> str | None:
    """A release that a later run replaced (and that replacement stayed), among the detailed entries."""
    last = max((i for i, e in enumerate(record.runs) if e.release == run.release and e.uid != run.uid), default=None)
    if last is None:
        return None
    newer = [e for e in record.runs[last + 1:] if e.outcome in KEPT and e.release != run.release
             and e.uid != run.uid]
    if not newer:
        return None
    return f"release {run.release} is older than release {newer[-1].release}, which run {newer[-1].run!r} deployed " \
           f"after it"


def _seq(sequence: int | None) -> str:
    return f", sequence {sequence}" if sequence is not None else ""
