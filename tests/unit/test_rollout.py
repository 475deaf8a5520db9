"""rollout.py: rollout progress judged as `kubectl rollout status` judges it."""

from __future__ import annotations

import pytest

from selfbootstrap.core.rollout import RolloutProgress, rollout_progress

from .factories import deployment

# A Deployment of 3 replicas, fully rolled out; each row changes what makes it not so.
DONE = dict(replicas=3, status_replicas=3, updated_replicas=3, available_replicas=3)


def waiting(message: str) -> RolloutProgress:
    return RolloutProgress(done=False, failed=False, message=message)


@pytest.mark.parametrize("fields, expected", [
    pytest.param(dict(generation=5, observed_generation=4),
                 waiting("waiting for the Deployment spec update to be observed"), id="generation-not-observed"),
    pytest.param(dict(generation=5, observed_generation=4, progressing_reason="ProgressDeadlineExceeded"),
                 waiting("waiting for the Deployment spec update to be observed"),
                 id="unobserved-generation-beats-deadline"),
    pytest.param(dict(progressing_reason="ProgressDeadlineExceeded", updated_replicas=1),
                 RolloutProgress(False, True, "deployment 'web' exceeded its progress deadline"),
                 id="progress-deadline-exceeded"),
    pytest.param(dict(progressing_reason="NewReplicaSetAvailable"),
                 RolloutProgress(True, False, "deployment 'web' successfully rolled out"),
                 id="other-progressing-reason-is-fine"),
    pytest.param(dict(updated_replicas=1, status_replicas=4),
                 waiting("1 of 3 new replicas have been updated"), id="updated-below-replicas"),
    pytest.param(dict(status_replicas=5), waiting("2 old replicas are pending termination"),
                 id="old-replicas-pending-termination"),
    pytest.param(dict(available_replicas=2), waiting("2 of 3 updated replicas are available"),
                 id="available-below-updated"),
    pytest.param(dict(generation=7, observed_generation=7),
                 RolloutProgress(True, False, "deployment 'web' successfully rolled out"), id="done"),
    pytest.param(dict(generation=3, observed_generation=4),
                 RolloutProgress(True, False, "deployment 'web' successfully rolled out"),
                 id="observed-ahead-of-generation-is-done"),
    pytest.param(dict(replicas=0, status_replicas=0, updated_replicas=0, available_replicas=0),
                 RolloutProgress(True, False, "deployment 'web' successfully rolled out"), id="scaled-to-zero"),
])
def test_rollout_progress(fields, expected):
    assert rollout_progress(deployment(**{**DONE, **fields})) == expected
