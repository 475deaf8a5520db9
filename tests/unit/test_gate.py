"""The gate: which run takes a workload when several want it, and which wait or end superseded."""

from __future__ import annotations

from dataclasses import replace

import pytest

from selfbootstrap.core import gate, machine, record
from selfbootstrap.core.record import Claimant, Record
from selfbootstrap.core.world import Limits, Peer, World

from .factories import T0, deployment, run, spec, status

ME_CREATED = "2030-01-01T11:00:00Z"  # factories.run()


def me(sequence: int | None = None, redeploy: bool = False):
    release = {"redeploy": redeploy, **({"sequence": sequence} if sequence is not None else {})}
    return run(status(phase="Pending"), spec(release=release))


def peer(name: str, created: str = ME_CREATED, sequence: int | None = None) -> Peer:
    return Peer(name, f"u-{name}", sequence, created)


def held_by(name: str, release: str = "v2", sequence: int | None = None) -> Record:
    return record.claimed(Record(), Claimant(name, f"u-{name}", release, sequence, "2030-01-01T10:00:00Z"), T0)


def verdict(r, rec: Record = Record(), **world):  # noqa: B008  (an empty record: immutable)
    fields = {"quiet_seconds": 60.0, **world}
    mine = (r.spec.release.sequence or 0, r.created, r.name)
    fields["peers"] = tuple(p for p in fields.get("peers", ()) if (p.sequence or 0, p.created, p.name) > mine)
    return gate.verdict(r, "v3", rec, World(deployment=deployment(), **fields))


def test_a_free_workload_is_taken():
    assert verdict(me()) == gate.Go()


def test_a_held_workload_is_waited_for_naming_the_holder():
    got = verdict(me(), held_by("run-0"))
    assert isinstance(got, gate.Wait) and got.reason == "Queued" and "run-0" in got.message
    assert got.seconds is None, "waiting costs nothing: the holder's end wakes the run"


def test_a_holder_that_ended_without_letting_go_is_taken_over():
    assert verdict(me(), held_by("run-0"), holder_running=False) == gate.Go()


def test_a_run_keeps_the_workload_it_holds():
    rec = record.claimed(Record(), Claimant("run-1", "u-1", "v3"), T0)
    assert verdict(me(), rec, peers=(peer("newer", "2030-01-01T12:00:00Z"),)) == gate.Go()


@pytest.mark.parametrize("mine, others, winner", [
    (None, [peer("b", "2030-01-01T11:00:01Z")], "b"),
    (None, [peer("a", "2030-01-01T10:59:59Z")], None),
    (None, [peer("run-2", ME_CREATED)], "run-2"),  # same second: the name decides
    (None, [peer("run-0", ME_CREATED)], None),
    (5, [peer("b", "2030-01-01T10:00:00Z", sequence=6)], "b"),  # a sequence outranks creation time
    (5, [peer("b", "2030-01-01T12:00:00Z", sequence=4)], None),
    (None, [peer("b", "2030-01-01T10:00:00Z", sequence=1)], "b"),  # any sequence outranks none
    (3, [peer("b", "2030-01-01T12:00:00Z"), peer("c", "2030-01-01T12:00:00Z", sequence=9)], "c"),
], ids=["younger", "older", "same-second-by-name", "same-second-older-name", "higher-sequence",
        "lower-sequence", "sequence-beats-none", "newest-of-several"])
def test_the_newest_intent_wins_and_older_waiting_runs_end(mine, others, winner):
    got = verdict(me(mine), peers=tuple(others))
    if winner is None:
        assert got == gate.Go()
    else:
        assert isinstance(got, gate.Supersede) and f"run {winner!r}" in got.message


def test_a_newer_run_that_is_itself_a_replay_does_not_win():
    rec = held_by("old-name")
    rec = record.outcome(rec, "u-old-name", record.SUCCEEDED, T0, release=True)
    got = verdict(me(), rec, peers=(peer("old-name", "2030-01-01T12:00:00Z"),))
    assert got == gate.Go()


def _newer_of_the_same_second(outcome: str | None, holds: bool) -> Record:
    """A record in which run-2 (of this run's second, newer by name, not a replay) took the workload when this
    run had not yet been made, and since then deployed or ended (`outcome`), holding it or having let go."""
    rec = record.claimed(held_by("run-0"), Claimant("run-2", "u-run-2", "v2", None, ME_CREATED), T0)
    if outcome is not None:
        rec = record.outcome(rec, "u-run-2", outcome, T0, release=not holds)
    return rec


@pytest.mark.parametrize("outcome, holds, running, superseded", [
    (None, True, True, True),  # in flight, holding: the newer intent outranks this run
    (record.ROLLED_BACK, True, True, True),  # still holding while it rolls back
    (record.SUCCEEDED, True, False, False),  # its final status written, its letting go not yet
    (record.SUCCEEDED, False, True, False),  # let go: the record says so, whatever the watches still show
    (record.NOT_DEPLOYED, False, True, False),
], ids=["holding", "rolling-back", "ended-not-yet-let-go", "ended-and-let-go", "ended-before-its-deploy"])
def test_a_newer_run_that_ended_is_out_of_the_race_though_the_watches_still_show_it(outcome, holds, running,
                                                                                 superseded):
    """`web-v10` applied the moment `web-v9` ended (one second, so the name orders them) is not older: the
    watches may still show web-v9 in flight for a moment, the record or a read of the holder does not."""
    rec = _newer_of_the_same_second(outcome, holds)
    got = verdict(me(), rec, peers=(peer("run-2"),), holder_running=running)
    if superseded:
        assert isinstance(got, gate.Supersede) and "run 'run-2'" in got.message
    else:
        assert not isinstance(got, gate.Supersede), got


def test_a_replayed_run_is_superseded_even_with_redeploy_off_and_goes_with_it_on():
    rec = record.outcome(held_by("run-1", release="v3"), "u-run-1", record.SUCCEEDED, T0, release=True)
    rec = replace(rec, holder=None)
    assert isinstance(verdict(me(), rec), gate.Supersede)
    assert verdict(me(redeploy=True), rec) == gate.Go()


def test_the_namespace_bound_holds_runs_back_at_no_cost():
    got = verdict(me(), namespace_active=3, limits=Limits(namespace_runs=3))
    assert isinstance(got, gate.Wait) and got.seconds is None and "3 runs" in got.message
    assert verdict(me(), namespace_active=2, limits=Limits(namespace_runs=3)) == gate.Go()
    assert verdict(me(), namespace_active=50, limits=Limits(namespace_runs=0)) == gate.Go()


@pytest.mark.parametrize("quiet, has_record, waits", [
    (0.5, False, 1.5),
    (60.0, False, None),
    (0.5, True, None),
], ids=["just-seen", "quiet", "workload-has-a-record"])
def test_a_sequenced_run_on_a_workload_without_a_record_waits_for_a_quiet_moment(quiet, has_record, waits):
    rec = record.outcome(held_by("earlier", sequence=1), "u-earlier", record.SUCCEEDED, T0, release=True) \
        if has_record else Record()
    got = verdict(me(sequence=5), rec, quiet_seconds=quiet, limits=Limits(settle_seconds=2.0))
    if waits is None:
        assert got == gate.Go()
    else:
        assert isinstance(got, gate.Wait) and got.reason == "Settling" and got.seconds == pytest.approx(waits)


def test_an_unsequenced_run_does_not_wait_for_a_quiet_moment():
    assert verdict(me(), quiet_seconds=0.0) == gate.Go()


@pytest.mark.parametrize(("phase", "retry_of", "expected"), [
    (None, "old-run", ("Pending", "Queued")),  # a new run: accepted and Queued at once, its lineage kept
    ("Pending", None, ("Pending", "Queued")),
    ("Deploying", None, ("Deploying", None)),  # in flight: it has a worker, nothing to hold back
])
def test_a_run_held_in_line_is_queued_and_nothing_else(phase, retry_of, expected):
    r = run(status(phase=phase) if phase else status())
    if retry_of:
        r = replace(r, retry_of=retry_of)
    decision = machine.held_back(r, T0, gate.namespace_bound(3, 3))
    assert (decision.status.phase, decision.status.reason if phase != "Deploying" else None) == expected
    assert decision.action is None, "a run in line does nothing before its worker starts"
    if expected[1] == "Queued":
        assert "the bound is 3" in (decision.status.message or "")
        assert [e.reason for e in decision.events] == ["Queued"]
        assert decision.status.retry_of == (retry_of if phase is None else None)
