"""Every side effect the core can ask for, and every result it can get back.

This is the contract between `decide` (which returns at most one action),
the executors in `adapters/` (each performs its actions with an exhaustive
`match`) and `settle` (one exhaustive `match` on the result). Adding an action
means: its type here, its executor case, its settle case; mypy finds the rest.

Each action lists its results in its docstring. Any action may also end in
`Failed`: the side effect did not happen (or cannot be known to have happened),
with a reason for status and whether trying again later may help.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, TypeAlias

from ..models import CIStatus, HttpCheck, JobMetric, PrometheusMetric, Validation, ValidationState, WebMetric
from .jsontypes import JsonObject, JsonPatch, JsonValue

# --- Kubernetes -------------------------------------------------------------------


@dataclass(frozen=True)
class PatchDeployment:
    """Deploy the release: a strategic-merge patch guarded by resourceVersion, so that of two runs that read
    the same workload one wins. -> Deployed"""

    patch: JsonObject
    takes: bool = False  # the patch also makes the run the holder in the workload's record


@dataclass(frozen=True)
class ReleaseWorkload:
    """Let go of the workload, the record saying how the run ended: a JSON patch that applies only to the record
    as it was read. -> Released"""

    patch: JsonPatch


@dataclass(frozen=True)
class RollbackDeployment:
    """`kubectl rollout undo`: a JSON patch restoring a ReplicaSet's template, guarded by resourceVersion.
    -> Undone"""

    replica_set: str
    patch: JsonPatch


@dataclass(frozen=True)
class DeleteStuckPods:
    """A StatefulSet's forced rollback: delete the pods of a bad revision the controller waits for forever, each
    only while it is still the pod seen (its uid). -> PodsDeleted"""

    revision: str  # the revision rolled back to, whose pods are never deleted
    pods: tuple[tuple[str, str], ...]  # (name, uid)


# --- HTTP health check --------------------------------------------------------------


@dataclass(frozen=True)
class ProbeHttp:
    """One GET of the health check's URL. -> Probed"""

    check: HttpCheck


# --- git and the forge --------------------------------------------------------------


@dataclass(frozen=True)
class ResolveBranch:
    """Read the base branch's head and whether the run's branch already exists on the remote.
    -> BranchResolved"""

    branch: str
    base_branch: str
    trailer: str


@dataclass(frozen=True)
class CommitChange:
    """Clone at base_sha, apply the change, commit deterministically (same inputs, same sha).
    -> Committed | NothingToCommit"""

    branch: str
    base_sha: str
    message: str
    trailer: str


@dataclass(frozen=True)
class PushBranch:
    """Create the remote branch at the recorded commit, never forced. -> Pushed"""

    commit: CommitChange
    commit_sha: str


@dataclass(frozen=True)
class OpenPullRequest:
    """Open the branch's pull request, or find the one it has. -> PullRequestOpened"""

    head: str
    base: str
    title: str
    body: str


@dataclass(frozen=True)
class CheckCI:
    """Read the CI state of exactly this commit. -> CIReported"""

    sha: str


@dataclass(frozen=True)
class MergePullRequest:
    """Merge, guarded by the tested head sha. -> Merged"""

    number: int
    sha: str
    method: str
    title: str


@dataclass(frozen=True)
class CheckPullRequest:
    """Read whether a person merged or closed the pull request. -> PullRequestObserved"""

    number: int


@dataclass(frozen=True)
class OpenRevertPullRequest:
    """After a rollback: push a branch reverting the merge and open its pull request. -> RevertOpened"""

    branch: str
    base: str
    merge_sha: str
    title: str
    body: str


# --- the validation Job ---------------------------------------------------------------


@dataclass(frozen=True)
class CreateValidationJob:
    """Start the Job that checks out `sha` and runs the spec's command, or find the one this run already
    started for it. -> ValidationJobStarted"""

    name: str
    sha: str
    branch: str
    repository_url: str
    image: str
    command: tuple[str, ...]
    service_account_name: str
    automount_service_account_token: bool
    timeout_seconds: int
    secret_name: str | None  # the run's git credentials, mounted only into the checkout step
    secret_key: str | None
    username: str
    run_as_user: int
    resources: Validation.Resources  # the validate container's
    ttl_seconds_after_finished: int


@dataclass(frozen=True)
class CheckValidationJob:
    """Read how the Job went, with its container's termination message. -> ValidationJobObserved"""

    name: str


@dataclass(frozen=True)
class DeleteValidationJob:
    """Delete the Job and its pods. -> ValidationJobDeleted"""

    name: str


# --- the registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class ResolveImage:
    """Ask the image's registry what the reference names, with the Deployment's pull secrets (else its
    ServiceAccount's). -> ImageResolved | ImageUnresolved"""

    image: str
    pull_secrets: tuple[str, ...]
    service_account: str
    check_crd: bool = False  # a self-update: check the CRD the new version ships against the runs in flight


# --- metric analysis ----------------------------------------------------------------


@dataclass(frozen=True)
class MeasureMetric:
    """Take one measurement of a metric: its provider's settings, the args substituted. -> Measured"""

    metric: str
    provider: PrometheusMetric | WebMetric | JobMetric
    job_name: str | None = None  # a job metric's Job for this measurement: found again when it is looked at later


KubeAction: TypeAlias = PatchDeployment | RollbackDeployment | ReleaseWorkload | DeleteStuckPods
HttpAction: TypeAlias = ProbeHttp
GitAction: TypeAlias = (ResolveBranch | CommitChange | PushBranch | OpenPullRequest | CheckCI | MergePullRequest
                        | CheckPullRequest | OpenRevertPullRequest)
JobAction: TypeAlias = CreateValidationJob | CheckValidationJob | DeleteValidationJob
Action: TypeAlias = KubeAction | HttpAction | GitAction | JobAction | MeasureMetric | ResolveImage
# Questions: actions with no side effect in the cluster or elsewhere. One is asked and answered within the tick
# that decides it, and its answer is written with the next step, never alone: a restart has nothing to recognise.
# A git run asks twice: where its branch stands (then commits in the same tick) and whether CI passed on its commit
# (then merges in the same tick); each answer saves a status write and a turn for a tick thread.
QUESTIONS: Final = (ResolveImage, ResolveBranch, CheckCI)


# --- results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """The deploy patch was accepted; the digest of the pod template the API server now holds."""

    template_digest: str


@dataclass(frozen=True)
class Released:
    """The run let go of the workload."""


@dataclass(frozen=True)
class Undone:
    """The undo patch was accepted."""

    replica_set: str


@dataclass(frozen=True)
class PodsDeleted:
    """The stuck pods are deleted (or were gone already)."""

    pods: tuple[str, ...]


@dataclass(frozen=True)
class Probed:
    healthy: bool
    detail: str  # e.g. "GET http://web/healthz returned 503, expected 200"


@dataclass(frozen=True)
class ImageResolved:
    """What the registry says the reference names: the digest and the image's own release metadata."""

    digest: str
    registry: str
    version: str | None = None
    revision: str | None = None
    source: str | None = None
    created: str | None = None
    crd_problems: tuple[str, ...] = ()  # what the new version's CRD would break of the runs in flight
    crd_note: str | None = None  # how the CRD was checked, or why it was not


@dataclass(frozen=True)
class ImageUnresolved:
    """The registry could not be asked (unreachable, refused by the egress policy): no verdict on the image."""

    why: str


@dataclass(frozen=True)
class Measured:
    """What a provider got: a result (a Prometheus scalar or vector as numbers, a web answer's JSON), or
    why there is none (a fixed description: never the server's own words)."""

    metric: str
    result: JsonValue = None
    error: str | None = None
    pending: bool = False  # no result yet (a job metric's Job runs): look again later, nothing is counted


@dataclass(frozen=True)
class BranchResolved:
    base_sha: str
    exists: bool
    run_commit: str | None  # the newest commit on the branch carrying the run's trailer


@dataclass(frozen=True)
class Committed:
    sha: str


@dataclass(frozen=True)
class NothingToCommit:
    """The base branch already holds the change."""


@dataclass(frozen=True)
class Pushed:
    already: bool  # the branch was already at the commit (a resumed run)


@dataclass(frozen=True)
class PullRequestOpened:
    number: int
    url: str


@dataclass(frozen=True)
class CIReported:
    state: CIStatus  # pending, success or failure
    description: str


@dataclass(frozen=True)
class Merged:
    merge_sha: str


@dataclass(frozen=True)
class PullRequestObserved:
    open: bool
    merged: bool
    merge_sha: str | None


@dataclass(frozen=True)
class RevertOpened:
    branch: str
    number: int
    url: str
    sha: str  # the revert commit


@dataclass(frozen=True)
class ValidationJobStarted:
    name: str


@dataclass(frozen=True)
class ValidationJobObserved:
    state: ValidationState  # running, succeeded, failed or timedOut
    message: str  # why it failed (the container's termination message, bounded), or how it stands


@dataclass(frozen=True)
class ValidationJobDeleted:
    pass


@dataclass(frozen=True)
class Failed:
    """The side effect did not happen. `reason` is a status reason (see reasons.py); the message is
    safe to show (never a credential); `retryable`: a conflict or a passing fault, decide again later."""

    reason: str
    message: str
    retryable: bool = False
    stale: bool = False  # decided on a view that changed since (a conflict): again as soon as it is fresh


GitResult: TypeAlias = (BranchResolved | Committed | NothingToCommit | Pushed | PullRequestOpened | CIReported
                        | Merged | PullRequestObserved | RevertOpened)
JobResult: TypeAlias = ValidationJobStarted | ValidationJobObserved | ValidationJobDeleted
Result: TypeAlias = (Deployed | Undone | Released | PodsDeleted | Probed | Measured | ImageResolved
                     | ImageUnresolved | GitResult | JobResult | Failed)
