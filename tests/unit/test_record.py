"""The workload's record: parsing anything, the holder, the watermark of the newest run, names, and
what it says about a run at the gate."""

from __future__ import annotations

import json

import pytest

from selfbootstrap.core import record
from selfbootstrap.core.record import Claimant, Record

from .factories import T0, at


def claim(rec: Record, name: str, uid: str, release: str, seq: int | None = None,
          created: str = "2030-01-01T00:00:00Z", outcome: str = record.SUCCEEDED) -> Record:
    """A run that took the workload, deployed and ended with `outcome`."""
    rec = record.claimed(rec, Claimant(name, uid, release, seq, created), T0)
    rec = record.deployed(rec, uid, T0)
    return record.outcome(rec, uid, outcome, at(1), release=True)


def history(n: int, sequenced: bool = True) -> Record:
    rec = Record()
    for i in range(1, n + 1):
        rec = claim(rec, f"r{i}", f"u{i}", f"v{i}", seq=i if sequenced else None,
                    created=f"2030-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
    return rec


def test_it_reads_back_what_it_wrote():
    rec = record.claimed(history(3), Claimant("r4", "u4", "v4", 4, "2030-01-02T00:00:00Z", "rs-3"), T0)
    assert record.parse(record.render(rec)) == rec
    assert rec.held_by("u4") and rec.newest is not None and rec.newest.run == "r4"


@pytest.mark.parametrize("annotation", ["not json", '{"holder": 3}', '[1, {"run": 2}]', "", "null", '"x"'])
def test_anything_that_is_not_a_record_counts_as_an_empty_one(annotation):
    rec = record.parse(annotation)
    assert rec.holder is None and rec.newest is None and rec.runs == ()


def test_the_first_version_a_list_of_entries_is_read():
    old = json.dumps([{"run": "web-v2", "uid": "u2", "release": "v2", "outcome": "deployed", "at": "x"}])
    rec = record.parse(old)
    assert [e.run for e in rec.runs] == ["web-v2"] and rec.knows_name("web-v2")


def test_the_detail_is_bounded_but_the_history_is_compacted_not_lost():
    rec = history(record.RECORD_LIMIT + 15)
    assert len(rec.runs) == record.RECORD_LIMIT and rec.runs[0].run == "r16"
    assert rec.newest is not None and rec.newest.run == "r25"
    assert all(rec.knows_name(f"r{i}") for i in range(1, 26)), "every name that ran is known"
    assert len(record.render(rec)) < 4096


def test_names_are_bounded():
    rec = history(record.NAMES_LIMIT + 10, sequenced=False)
    assert len(rec.names) == record.NAMES_LIMIT and not rec.knows_name("r1") and rec.knows_name("r1034")


def test_letting_go_records_the_outcome_and_frees_the_workload():
    rec = record.claimed(Record(), Claimant("r", "u", "v1"), T0)
    assert rec.held_by("u")
    rec = record.outcome(rec, "u", record.ROLLED_BACK, at(1), release=False)
    assert rec.held_by("u") and rec.entry("u").outcome == "rolledBack"
    rec = record.outcome(rec, "u", record.FAILED, at(2), release=True)
    assert rec.holder is None and rec.entry("u").outcome == "failed"


def test_another_runs_release_does_not_free_the_holder():
    rec = record.claimed(Record(), Claimant("r", "u", "v1"), T0)
    assert record.outcome(rec, "other", record.SUCCEEDED, at(1), release=True).held_by("u")


@pytest.mark.parametrize("rec, run, why", [
    (Record(), Claimant("r1", "u1", "v1", 1), None),
    (history(12), Claimant("r1", "u-new", "v1", 1), "a run named 'r1' already ran"),
    (history(12, sequenced=False), Claimant("r1", "u-new", "v1", None, "2030-02-01T00:00:00Z"),
     "a run named 'r1' already ran"),
    (history(12), Claimant("renamed", "u-x", "v5", 5), "run 'r12' (release v12, sequence 12) is newer"),
    (history(12), Claimant("r13", "u13", "v13", 13), None),
    (history(12), Claimant("r12b", "u-y", "v12", 12, "2030-02-01T00:00:00Z"), None),
    (history(3, sequenced=False), Claimant("back", "u-b", "v2", None, "2030-02-01T00:00:00Z"),
     "release v2 is older than release v3, which run 'r3' deployed after it"),
    (claim(history(3, sequenced=False), "r4", "u4", "v4", created="2030-01-01T00:00:04Z",
           outcome=record.ROLLED_BACK), Claimant("back", "u-b", "v3", None, "2030-02-01T00:00:00Z"), None),
], ids=["empty", "re-created-sequenced", "re-created-unsequenced", "older-sequence", "newer-sequence",
        "same-sequence-later", "older-release", "newer-was-rolled-back"])
def test_what_the_record_says_about_a_run_at_the_gate(rec, run, why):
    got = record.replayed(rec, run)
    assert (got is None) if why is None else (why in (got or "")), got


def test_a_run_that_holds_the_workload_is_not_a_replay_of_itself():
    rec = record.claimed(Record(), Claimant("r", "u", "v1"), T0)
    assert record.replayed(rec, Claimant("r", "u", "v1")) is None


def test_the_newest_is_kept_by_order_not_by_time():
    rec = claim(Record(), "r9", "u9", "v9", seq=9)
    rec = claim(rec, "redo", "u-r", "v3", seq=3)  # an older release deployed again on purpose (redeploy)
    assert rec.newest is not None and rec.newest.run == "r9"


@pytest.mark.parametrize(("created", "sequence", "older"), [
    ("2030-01-01T00:00:09Z", None, False),  # the same second as the newest, a name that sorts lower: not older
    ("2030-01-01T00:00:08Z", None, True),  # a second earlier
    ("2030-01-01T00:00:10Z", None, False),
    ("2030-01-01T00:00:09Z", 1, False),  # any sequence is newer than none
])
def test_a_run_of_the_same_second_as_the_newest_is_not_older_by_its_name(created, sequence, older):
    """Creation times have a resolution of a second: `kubectl apply` of r10 just after r9 ended, in the same
    second, must deploy."""
    rec = claim(Record(), "r9", "u9", "v9", created="2030-01-01T00:00:09Z")
    why = record.replayed(rec, Claimant("r10", "u10", "v10", sequence, created))
    assert (why is not None) == older, why


def test_the_runs_that_waited_when_the_newest_took_the_workload_never_go():
    """r9-0 waited with r9-1 (made in the same second), without a worker (in line for its namespace's slot):
    r9-1 passed it over when it took the workload, so r9-0 never goes, however late it asks."""
    rec = record.claimed(Record(), Claimant("r9-1", "u1", "v9-1", None, "2030-01-01T00:00:09Z"), T0,
                         passed_over=("r9-0", "r8-5", "r9-0"))
    assert len(rec.passed) == 2, "each name once"
    why = record.replayed(record.parse(record.render(rec)), Claimant("r9-0", "u0", "v9-0", None,
                                                                     "2030-01-01T00:00:09Z"))
    assert why is not None and "'r9-1' took this workload while this run waited" in why
    assert record.replayed(rec, Claimant("r10-0", "u2", "v10", None, "2030-01-01T00:00:09Z")) is None


def test_the_passed_over_names_are_bounded():
    rec = Record()
    for i in range(3):
        rec = record.claimed(rec, Claimant(f"c{i}", f"u{i}", "v"), T0,
                             passed_over=tuple(f"p{i}-{j}" for j in range(record.NAMES_LIMIT)))
    assert len(record.parse(record.render(rec)).passed) == record.NAMES_LIMIT
    assert rec.passed_over(f"p2-{record.NAMES_LIMIT - 1}") and not rec.passed_over("p0-0"), "the oldest go first"
