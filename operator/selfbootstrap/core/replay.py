"""Replay safety: a run kept in git and applied again must not take a Deployment back in time.

Each deploy adds an entry to a bounded record on the Deployment itself (the
selfbootstrap.dev/runs annotation: run name, uid, release, outcome, when), written in the
same patch as the deploy or the undo. Before a run deploys, the record is read:

- a run with the name of one that already deployed here, but another uid (a GitOps engine
  re-created a run that was deleted after it finished), is superseded;
- a run asking for a release that a later run replaced (and that replacement stayed) is
  superseded, naming the newer run;

unless the spec asks to redeploy. The record says "deployed" for a release that stayed after
its run (also when the run failed without rolling back), and "rolledBack" when the run undid it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime

RECORD_LIMIT = 10
DEPLOYED = "deployed"
ROLLED_BACK = "rolledBack"


@dataclass(frozen=True)
class Entry:
    run: str
    uid: str
    release: str | None
    outcome: str
    at: str


def parse(annotation: str | None) -> list[Entry]:
    """The record; an annotation that is not a list of entries counts as no record (never a crash)."""
    try:
        raw = json.loads(annotation or "[]")
    except ValueError:
        return []
    if not isinstance(raw, list):
        return []
    entries = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("run"), str) and isinstance(item.get("uid"), str):
            release = item.get("release")
            entries.append(Entry(item["run"], item["uid"], release if isinstance(release, str) else None,
                                 str(item.get("outcome") or DEPLOYED), str(item.get("at") or "")))
    return entries


def render(entries: list[Entry]) -> str:
    return json.dumps([asdict(e) for e in entries[-RECORD_LIMIT:]], separators=(",", ":"))


def recorded(entries: list[Entry], run: str, uid: str, release: str | None, outcome: str,
             at: datetime) -> list[Entry]:
    """The record with this run's entry (replaced if it has one, else added last)."""
    entry = Entry(run, uid, release, outcome, at.isoformat())
    if any(e.uid == uid for e in entries):
        return [entry if e.uid == uid else e for e in entries]
    return [*entries, entry][-RECORD_LIMIT:]


def superseded_by(entries: list[Entry], run: str, uid: str, release: str | None) -> str | None:
    """Why this run must not deploy (naming the newer run), or None."""
    for e in entries:
        if e.run == run and e.uid != uid:
            return (f"a run named {run!r} already deployed release {e.release} to this Deployment (it was "
                    f"deleted and made again); set spec.release.redeploy to deploy anyway")
    last = max((i for i, e in enumerate(entries) if e.release == release and e.uid != uid), default=None)
    if last is None:
        return None
    newer = [e for e in entries[last + 1:] if e.outcome == DEPLOYED and e.release != release and e.uid != uid]
    if not newer:
        return None
    return (f"release {release} is older than release {newer[-1].release}, which run {newer[-1].run!r} deployed "
            f"after it; set spec.release.redeploy to deploy it again")
