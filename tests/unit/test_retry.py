"""Retry: the successor a retry makes and the Event that names who asked for it."""

from __future__ import annotations

from selfbootstrap import retry

RUN: dict = {"apiVersion": "selfbootstrap.dev/v1alpha1", "kind": "SelfBootstrapRun",
       "metadata": {"name": "web-v2", "namespace": "shop", "labels": {"selfbootstrap.dev/shard": "a"},
                    "annotations": {"selfbootstrap.dev/retry": "1"}},
       "spec": {"target": {"deployment": "web"}, "release": {"id": "v2", "image": "web:v2"}},
       "status": {"phase": "RolledBack"}}


def asked_by(name: str | None) -> dict:
    annotations = dict(RUN["metadata"]["annotations"])
    if name is not None:
        annotations["selfbootstrap.dev/retry-requested-by"] = name
    return {**RUN, "metadata": {**RUN["metadata"], "annotations": annotations}}


def test_the_successor_records_the_run_it_retries_and_who_asked():
    new = retry.successor(asked_by("alice"), 1)
    assert new["metadata"]["name"] == "web-v2-retry-1"
    assert new["metadata"]["annotations"] == {"selfbootstrap.dev/retry-of": "web-v2",
                                              "selfbootstrap.dev/requested-by": "alice"}
    assert new["metadata"]["labels"] == {"selfbootstrap.dev/shard": "a"}
    assert new["spec"] == RUN["spec"]


def test_a_retry_nobody_named_is_made_on_behalf_of_an_unnamed_user():
    for run in (asked_by(None), asked_by("")):
        assert "selfbootstrap.dev/requested-by" not in retry.successor(run, 2)["metadata"]["annotations"]
    assert retry.retried_message("web-v2-retry-2", None) == "retried as run web-v2-retry-2 on behalf of an unnamed user"


def test_the_event_names_who_asked_with_hidden_characters_shown():
    assert retry.retried_message("r-1", "alice") == "retried as run r-1 on behalf of alice"
    assert retry.retried_message("r-1", "al\x1b[31mice") == "retried as run r-1 on behalf of al\\x1b[31mice"
