"""rollout.py: rollout progress judged as `kubectl rollout status` judges it."""

from __future__ import annotations

import pytest

from selfbootstrap.core.rollout import RolloutProgress, release_available, rollout_progress

from .factories import REV1, deployment, rev

# A Deployment of 3 replicas, fully rolled out; each row changes what makes it not so.
DONE = dict(replicas=3, status_replicas=3, updated_replicas=3, available_replicas=3)


def waiting(message: str) -> RolloutProgress:
    return RolloutProgress(done=False, failed=False, message=message)


NOT_OBSERVED = RolloutProgress(False, False, "waiting for the Deployment spec update to be observed", observed=False)


@pytest.mark.parametrize("fields, expected", [
    pytest.param(dict(generation=5, observed_generation=4), NOT_OBSERVED, id="generation-not-observed"),
    pytest.param(dict(generation=5, observed_generation=4, progressing_reason="ProgressDeadlineExceeded"),
                 NOT_OBSERVED, id="unobserved-generation-beats-deadline"),
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


# The rollback target rs-2 re-adopted with all 3 replicas updated and available, while 2 pods of the bad
# release still terminate; each row changes what makes the target not (or still) available.
BACK = dict(replicas=3, status_replicas=5, updated_replicas=3, available_replicas=3)


@pytest.mark.parametrize("fields, target_available, expected", [
    pytest.param({}, 3, True, id="available-while-old-pods-terminate"),
    pytest.param(dict(status_replicas=3), 3, True, id="fully-rolled-out"),
    pytest.param({}, 2, False, id="old-available-pods-do-not-count"),
    pytest.param(dict(updated_replicas=2), 3, False, id="deployment-not-updated-yet"),
    pytest.param(dict(generation=5, observed_generation=4), 3, False, id="generation-not-observed"),
    pytest.param(dict(progressing_reason="ProgressDeadlineExceeded"), 3, False, id="progress-deadline-exceeded"),
    pytest.param(dict(replicas=0, status_replicas=1, updated_replicas=0, available_replicas=0), 0, True,
                 id="scaled-to-zero"),
])
def test_release_available(fields, target_available, expected):
    dep = deployment(**{**BACK, **fields, "revisions": (REV1, rev("rs-2", 4, "v2", available=target_available))})
    assert release_available(dep, "rs-2") is expected


def test_a_replica_set_the_deployment_does_not_own_is_not_available():
    assert release_available(deployment(**BACK, revisions=(REV1,)), "rs-2") is False
