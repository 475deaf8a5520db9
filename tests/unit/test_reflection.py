"""Author text and remote answers are stored as data: no hidden character and nothing over the bounds
reaches status, conditions, history or Events; identifiers with hidden characters are refused."""

from __future__ import annotations

from dataclasses import replace

import pytest
from pydantic import ValidationError

from selfbootstrap.core import machine
from selfbootstrap.core.text import MESSAGE_LIMIT, has_hidden
from selfbootstrap.models import CHANGE_LIMIT, RunSpec, RunStatus

from .factories import T0, deployment, run, spec, world

HOSTILE = "\x1b[2J\r\nFAKE: you are pwned \u202e" + "A" * 5000


def _texts(status: RunStatus) -> list[str]:
    out = [status.message or "", status.reason or "", status.failure_message or ""]
    out += [c.message for c in status.conditions] + [h.message for h in status.history]
    out += [e.message for e in status.last_events]
    return out


def test_an_abort_reason_is_stored_escaped_and_bounded():
    r = replace(run(RunStatus(phase="Pending", reason="Accepted")), abort=HOSTILE)
    decision, events = machine.decide_chained(r, world(deployment()), T0)
    assert decision.status.phase == "Failed"
    for text in [*_texts(decision.status), *(e.message for e in events)]:
        assert not has_hidden(text) and len(text) <= MESSAGE_LIMIT
    assert "\\x1b[2J\\x0d\\x0aFAKE" in (decision.status.message or "")
    assert len(RunStatus.model_validate(decision.status.dump()).model_dump_json()) < 64 * 1024


@pytest.mark.parametrize(("field", "key"), [("message", "message"), ("failure_message", "failureMessage"),
                                            ("reason", "reason"), ("deployed_release_id", "deployedReleaseId"),
                                            ("retry_of", "retryOf")])
def test_a_status_written_by_anyone_is_escaped_when_read(field, key):
    value = getattr(RunStatus.model_validate({"phase": "Pending", key: HOSTILE}), field)
    assert not has_hidden(value) and len(value) <= 1024


@pytest.mark.parametrize(("section", "value"), [
    ({"release": {"id": "v2\x1b[2J"}}, "release.id"),
    ({"release": {"id": "v2\nX-Injected: 1"}}, "release.id"),
    ({"release": {"id": "v\u202e2"}}, "release.id"),
    ({"release": {"image": "registry.example.com/app:v2\r\n"}}, "release.image"),
    ({"release": {"previousReleaseId": "v1\x07"}}, "release.previousReleaseId"),
    ({"release": {"rollbackReleaseId": "v1\x9b"}}, "release.rollbackReleaseId"),
    ({"release": {"expectedCurrentReleaseId": "v1\u2028"}}, "release.expectedCurrentReleaseId"),
    ({"health": {"http": {"url": "http://example.com/\x1b"}}}, "health.http.url"),
])
def test_identifiers_with_hidden_characters_are_refused(section, value):
    with pytest.raises(ValidationError) as err:
        spec(**section)
    assert value.split(".")[-1] in str(err.value)


def test_the_files_of_a_change_are_bounded_together():
    git = {"repositoryUrl": "https://git.example.com/acme/web.git"}
    files = [{"path": f"f{i}", "content": "x" * (CHANGE_LIMIT // 4)} for i in range(5)]
    with pytest.raises(ValidationError, match="together exceed"):
        RunSpec.model_validate({"target": {"deployment": "web"}, "release": {"image": "r/web:v2"},
                                "git": {**git, "change": {"files": files}}})
    RunSpec.model_validate({"target": {"deployment": "web"}, "release": {"image": "r/web:v2"},
                            "git": {**git, "change": {"files": files[:4]}}})
