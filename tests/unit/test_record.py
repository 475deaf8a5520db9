"""The workload's record: parsing anything, the holder, the watermark of the newest run, names, and
what it says about a run at the gate."""

from __future__ import annotations

import dataclasses
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


@pytest.mark.parametrize(("created", "claimed_at", "sequence", "older"), [
    # r9 took the workload at 00:00:09.5; r10 sorts lower by name
    ("2030-01-01T00:00:09Z", "2030-01-01T00:00:09.500000+00:00", None, True),  # waited with r9: the name decides
    ("2030-01-01T00:00:08Z", "2030-01-01T00:00:09.500000+00:00", None, True),  # a second earlier
    ("2030-01-01T00:00:09Z", "2030-01-01T00:00:08.900000+00:00", None, False),  # made after r9's claim
    ("2030-01-01T00:00:09Z", "2030-01-01T01:00:08.900000+01:00", None, False),  # the same, written in +01:00
    ("2030-01-01T00:00:10Z", "2030-01-01T00:00:09.500000+00:00", None, False),
    ("2030-01-01T00:00:09Z", "2030-01-01T00:00:09.500000+00:00", 1, False),  # any sequence is newer than none
    ("2030-01-01T00:00:09Z", "garbled", None, True),  # an unreadable claim time: the name decides
])
def test_within_one_second_the_name_decides_only_among_runs_that_waited_together(created, claimed_at, sequence,
                                                                                  older):
    """Creation times have a resolution of a second: `kubectl apply` of r10 just after r9 ended, in the same
    second as r9 was made, must deploy; two runs made together are ordered by name."""
    rec = claim(Record(), "r9", "u9", "v9", created="2030-01-01T00:00:09Z")
    assert rec.newest is not None
    rec = Record(newest=dataclasses.replace(rec.newest, at=claimed_at), names=(), runs=())
    why = record.replayed(rec, Claimant("r10", "u10", "v10", sequence, created))
    assert (why is not None) == older, why
