"""Every reason a run reports, in one place: `status.reason`, condition reasons, Event reasons.

Reasons are CamelCase words, as Kubernetes conditions and Events use them; a
pipeline or an alert may match on them, so they are part of the API.
"""

from __future__ import annotations

from typing import Final

# --- Pending ----------------------------------------------------------------
ACCEPTED: Final = "Accepted"
QUEUED: Final = "Queued"  # another run holds the workload, or the namespace has its bound of runs in flight
SETTLING: Final = "Settling"  # runs applied together (a restore): waiting until they have all arrived
CLAIMED: Final = "Claimed"  # the run holds the workload
STARTED: Final = "Started"

# --- the git workflow -----------------------------------------------------------
BRANCH_READY: Final = "BranchReady"
BRANCH_EXISTS: Final = "BranchExists"
RESUMED: Final = "Resumed"
COMMITTED: Final = "Committed"
NOTHING_TO_COMMIT: Final = "NothingToCommit"
PUSHED: Final = "Pushed"
PULL_REQUEST_OPENED: Final = "PullRequestOpened"
AWAITING_CI: Final = "AwaitingCI"
CI_PENDING: Final = "CIPending"
CI_PASSED: Final = "CIPassed"
CI_FAILED: Final = "CIFailed"
CI_TIMED_OUT: Final = "CITimedOut"
READY_TO_MERGE: Final = "ReadyToMerge"
READY_TO_DEPLOY: Final = "ReadyToDeploy"
AWAITING_MERGE: Final = "AwaitingMerge"
MERGED: Final = "Merged"
PULL_REQUEST_CLOSED: Final = "PullRequestClosed"
VALIDATION_STARTED: Final = "ValidationStarted"
VALIDATION_RUNNING: Final = "ValidationRunning"
VALIDATION_PASSED: Final = "ValidationPassed"
VALIDATION_TIMED_OUT: Final = "ValidationTimedOut"
VALIDATION_JOB_DELETE_FAILED: Final = "ValidationJobDeleteFailed"
REVERT_PULL_REQUEST_OPENED: Final = "RevertPullRequestOpened"
REVERT_PULL_REQUEST_FAILED: Final = "RevertPullRequestFailed"
REVERT_MERGED: Final = "RevertMerged"

# failures of git and forge steps (Failed.reason from the git executor)
BRANCH_FAILED: Final = "BranchFailed"
BASE_BRANCH_NOT_FOUND: Final = "BaseBranchNotFound"
COMMIT_FAILED: Final = "CommitFailed"
CHANGE_FAILED: Final = "ChangeFailed"
VALIDATION_FAILED: Final = "ValidationFailed"
CLONE_FAILED: Final = "CloneFailed"
GIT_FAILED: Final = "GitFailed"
REMOTE_UNREACHABLE: Final = "RemoteUnreachable"
PUSH_FAILED: Final = "PushFailed"
PUSH_REJECTED: Final = "PushRejected"
COMMIT_NOT_REPRODUCIBLE: Final = "CommitNotReproducible"
PULL_REQUEST_FAILED: Final = "PullRequestFailed"
CI_CHECK_FAILED: Final = "CICheckFailed"
MERGE_REFUSED: Final = "MergeRefused"
REVERT_FAILED: Final = "RevertFailed"
CREDENTIALS_UNAVAILABLE: Final = "CredentialsUnavailable"
CREDENTIALS_NOT_ALLOWED: Final = "CredentialsNotAllowed"
INVALID_BRANCH: Final = "InvalidBranch"
UNSAFE_PATH: Final = "UnsafePath"
FORGE_FAILED: Final = "ForgeFailed"

# --- Deploying --------------------------------------------------------------------
RELEASES_RESOLVED: Final = "ReleasesResolved"
RELEASE_ID_UNKNOWN: Final = "ReleaseIdUnknown"
INVALID_TARGET: Final = "InvalidTarget"
TARGET_NOT_FOUND: Final = "TargetNotFound"
DEPLOYMENT_PAUSED: Final = "DeploymentPaused"
DEPLOYMENT_CHANGED: Final = "DeploymentChanged"
DEPLOYED: Final = "Deployed"
IMAGE_NOT_FOUND: Final = "ImageNotFound"  # the registry has no such image (or not for the platform): nothing patched
IMAGE_PULL_REFUSED: Final = "ImagePullRefused"  # the registry wants credentials the Deployment does not give it
IMAGE_REVISION_MISMATCH: Final = "ImageRevisionMismatch"  # the image was not built from the commit the run merged
DEPLOY_REFUSED: Final = "DeployRefused"
CLAIM_LOST: Final = "ClaimLost"  # the workload's record does not show this run holding it: its status is not acted on

# --- VerifyingHealth and WatchingRestarts ---------------------------------------
ROLLOUT_IN_PROGRESS: Final = "RolloutInProgress"
ROLLOUT_TIMED_OUT: Final = "RolloutTimedOut"
PROGRESS_DEADLINE_EXCEEDED: Final = "ProgressDeadlineExceeded"  # the Deployment controller's own reason
CHECKING_HTTP: Final = "CheckingHttp"
HEALTH_CHECK_FAILED: Final = "HealthCheckFailed"
HEALTHY: Final = "Healthy"
OBSERVING: Final = "Observing"
RESTART_WATCHDOG_FAILED: Final = "RestartWatchdogFailed"

# --- SelfTesting (a selfHosted run: the new operator's pods report their self-test) ---
CRD_INCOMPATIBLE: Final = "CRDIncompatible"  # a self-update's new CRD drops or refuses what runs in flight hold
SELF_TESTING: Final = "SelfTesting"
SELF_TEST_FAILED: Final = "SelfTestFailed"
SELF_TEST_TIMED_OUT: Final = "SelfTestTimedOut"

# --- Analyzing (a failed metric's reason is Argo's: MetricFailed, MetricError, MetricInconclusive) ---
ANALYZING: Final = "Analyzing"
MEASURED: Final = "Measured"
ANALYSIS_PASSED: Final = "AnalysisPassed"

# --- AwaitingApproval ------------------------------------------------------------------
AWAITING_APPROVAL: Final = "AwaitingApproval"
APPROVED: Final = "Approved"
APPROVAL_TIMED_OUT: Final = "ApprovalTimedOut"

# --- RollingBack --------------------------------------------------------------------
ROLLING_BACK: Final = "RollingBack"
ROLLBACK_PATCHED: Final = "RollbackPatched"
ROLLBACK_SKIPPED: Final = "RollbackSkipped"
ROLLBACK_IN_PROGRESS: Final = "RollbackInProgress"
ROLLBACK_REFUSED: Final = "RollbackRefused"
ROLLBACK_TARGET_GONE: Final = "RollbackTargetGone"
ROLLBACK_UNHEALTHY: Final = "RollbackUnhealthy"
STUCK_PODS_DELETED: Final = "StuckPodsDeleted"  # a StatefulSet's forced rollback

# --- endings ---------------------------------------------------------------------
SUCCEEDED: Final = "Succeeded"
ROLLED_BACK: Final = "RolledBack"
FAILED: Final = "Failed"
INVALID_SPEC: Final = "InvalidSpec"

# --- anywhere --------------------------------------------------------------------
RETRYING: Final = "Retrying"
RETRIES_EXHAUSTED: Final = "RetriesExhausted"
INTERNAL_ERROR: Final = "InternalError"
INVALID_REPOSITORY: Final = "InvalidRepository"
EGRESS_REFUSED: Final = "EgressRefused"  # the operator's egress policy refuses a URL the run names
REDIRECT_REFUSED: Final = "RedirectRefused"  # a server holding a run's token redirected: never followed
SELF_BOOTSTRAP_RUN_DELETED: Final = "SelfBootstrapRunDeleted"  # Event on the Deployment

# --- conditions ---------------------------------------------------------------------
AS_EXPECTED: Final = "AsExpected"
NOT_ROLLED_BACK: Final = "NotRolledBack"
FINISHED: Final = "Finished"
NOT_COMPLETE: Final = "NotComplete"
NOT_STALLED: Final = "NotStalled"
NOT_FAILED: Final = "NotFailed"

# --- GitOps: replay safety, abort, retry --------------------------------------------
SUPERSEDED: Final = "Superseded"
CURRENT_RELEASE_MISMATCH: Final = "CurrentReleaseMismatch"
ABORTED: Final = "Aborted"
RETRIED: Final = "Retried"
