"""The SelfBootstrapRun resource: spec and status as pydantic models.

These models are the one source of truth: the CRD's OpenAPI schema in crds/ is
generated from them (see crdgen.py), and the operator parses and writes the
resource through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel
from pydantic.config import JsonDict, JsonValue

from .core.text import MESSAGE_LIMIT, NAME_LIMIT, printable

GROUP = "selfbootstrap.dev"
VERSION = "v1alpha1"
KIND = "SelfBootstrapRun"
PLURAL = "selfbootstrapruns"
SINGULAR = "selfbootstraprun"
SHORT_NAMES = ["sbr"]

RELEASE_ANNOTATION = "selfbootstrap.dev/release-id"
RELEASE_IMAGES_ANNOTATION = "selfbootstrap.dev/release-images"  # the images the release id was set for
RUN_ANNOTATION = "selfbootstrap.dev/run"
RUNS_ANNOTATION = "selfbootstrap.dev/runs"  # on a Deployment: the runs that deployed to it (replay safety)
ABORT_ANNOTATION = "selfbootstrap.dev/abort"  # on a run: stop (and roll back, if it deployed)
RETRY_ANNOTATION = "selfbootstrap.dev/retry"  # on a finished run: start a new run with the same spec
RETRY_OF_ANNOTATION = "selfbootstrap.dev/retry-of"  # on a run made by a retry: the run it retries
# On a run to retry: who asks (admission: only that user may set it); copied to the successor as
# REQUESTED_BY_ANNOTATION, which, like retry-of, only the operator may write.
RETRY_REQUESTED_BY_ANNOTATION = "selfbootstrap.dev/retry-requested-by"
REQUESTED_BY_ANNOTATION = "selfbootstrap.dev/requested-by"
FINALIZER = "selfbootstrap.dev/finalizer"  # on a run in flight: kopf's, held while its worker runs


SHARD_LABEL: Final = f"{GROUP}/shard"  # which operator instances serve the run (--shard)


def finalizer_of(shard: str | None) -> str:
    """The finalizer of the instances serving a shard. One of their own, so that an instance of another
    shard (which also watches the run, for its indices) never takes it for one it may let go of."""
    return f"shard.{GROUP}/{shard}" if shard else FINALIZER

# On a run: who created it (admission: only that user, only at creation); a run that needs approval names it.
AUTHOR_ANNOTATION = "selfbootstrap.dev/author"
# On a run: approve.selfbootstrap.dev/<stage> = the user who approves (admission: that user, with the `approve`
# verb on selfbootstrapruns, not the author); stages: deploy, success.
APPROVAL_PREFIX = "approve.selfbootstrap.dev/"
DEPLOYMENT_LABEL = "selfbootstrap.dev/deployment"  # on a run: its target, for kubectl get sbr -l
CHANGE_CAUSE_ANNOTATION = "kubernetes.io/change-cause"

HISTORY_LIMIT = 20

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Characters that do not print as themselves (controls, bidi overrides, zero-width, separators): never part
# of an identifier, so nothing an author names can drive a terminal that shows it (core/text.py).
HIDDEN = r"\p{Cc}\p{Cf}\p{Zl}\p{Zp}"
PRINTABLE = rf"^[^{HIDDEN}]*$"  # an identifier: any text but hidden characters
IMAGE = rf"^[^\s{HIDDEN}]+$"  # an image reference: no whitespace either
URL = rf"^https?://[^\s{HIDDEN}]+$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


def cel(rule: str, message: str, field_path: str | None = None) -> JsonDict:
    """One x-kubernetes-validations entry."""
    entry: JsonDict = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", use_enum_values=True
    )

    def dump(self) -> dict[str, Any]:
        """The resource's JSON form: camelCase, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class StatusModel(Model):
    """Status the core builds field by field: every assignment is validated (a wrong type raises).
    The docstring under each field is its description in the CRD (`kubectl explain sbr.status`)."""

    model_config = ConfigDict(validate_assignment=True, use_attribute_docstrings=True)


# --- spec -------------------------------------------------------------------


SELF_TEST_CONDITION: Final = f"{GROUP}/SelfTestPassed"  # an operator pod's condition (and readiness gate)


class DeploymentContext(StrEnum):
    EXTERNAL = "external"
    SELF_HOSTED = "selfHosted"


class WorkloadKind(StrEnum):
    """The kinds of workload a run can change (core/targets: how each rolls out and is undone)."""

    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"
    DAEMON_SET = "DaemonSet"


WORKLOAD_RESOURCES: Final = {WorkloadKind.DEPLOYMENT: "deployments", WorkloadKind.STATEFUL_SET: "statefulsets",
                             WorkloadKind.DAEMON_SET: "daemonsets"}


class Target(Model):
    """The workload this run changes: `deployment: NAME`, or `kind` and `name` for any kind."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("has(self.deployment) != has(self.name)",
            "exactly one of spec.target.deployment or spec.target.name must be set"),
        cel("!has(self.deployment) || self.kind == 'Deployment'",
            "spec.target.deployment names a Deployment: name a StatefulSet or DaemonSet with spec.target.name",
            ".deployment"),
    ]})

    kind: Annotated[WorkloadKind, Field(
        default=WorkloadKind.DEPLOYMENT,
        description="Kind of the target workload (apps/v1): Deployment, StatefulSet or DaemonSet.")]
    name: Annotated[str | None, Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="Name of the target workload of that kind, in the run's namespace.")]
    deployment: Annotated[str | None, Field(
        default=None, min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
        description="Name of the target Deployment, in the run's namespace: shorthand for kind Deployment "
                    "and that name.")]
    container: Annotated[str | None, Field(
        default=None, max_length=63, pattern=DNS_LABEL,
        description="Container whose image is replaced. Optional when the pod has exactly one container.")]
    deployment_context: Annotated[DeploymentContext, Field(
        default=DeploymentContext.EXTERNAL,
        description="external: an ordinary workload; its rollback target must be identifiable. "
                    "selfHosted: the operator's own Deployment; a rollback may fall back to the previous revision.")]

    @model_validator(mode="after")
    def _one_name(self) -> Target:
        if (self.deployment is None) == (self.name is None):
            raise ValueError("exactly one of spec.target.deployment or spec.target.name must be set")
        if self.deployment is not None and self.kind != WorkloadKind.DEPLOYMENT:
            raise ValueError("spec.target.deployment names a Deployment: name a StatefulSet or DaemonSet with "
                             "spec.target.name")
        return self

    @property
    def workload(self) -> str:
        """The target's name, however the run gives it."""
        return self.name or self.deployment or ""


def target_of(run: Mapping[str, Any]) -> tuple[str, str]:
    """A run's target as (kind, name), read from its JSON as stored (the shell's indices and labels)."""
    spec = run.get("spec")
    target = spec.get("target") if isinstance(spec, Mapping) else None
    if not isinstance(target, Mapping):
        return WorkloadKind.DEPLOYMENT, ""
    kind, name = target.get("kind"), target.get("name") or target.get("deployment")
    return (kind if isinstance(kind, str) else WorkloadKind.DEPLOYMENT), (name if isinstance(name, str) else "")


def target_label(kind: str) -> str:
    """The label naming a run's target, per kind (`kubectl get sbr -l selfbootstrap.dev/statefulset=web`)."""
    return f"{GROUP}/{kind.lower()}"


def workload_key(kind: str, name: str) -> str:
    """How the shell keys a workload: a Deployment by its name (as before other kinds), others as kind/name
    (a StatefulSet and a Deployment of one name are two workloads)."""
    return name if kind == WorkloadKind.DEPLOYMENT else f"{kind}/{name}"


class Release(Model):
    """The release this run deploys, and optional overrides for release metadata."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("has(self.image) != has(self.podTemplatePatch)",
            "exactly one of spec.release.image or spec.release.podTemplatePatch must be set"),
        cel("has(self.image) || has(self.id)",
            "spec.release.id is required with spec.release.podTemplatePatch", ".id"),
        cel("!has(self.rollbackReleaseId) || !has(self.id) || self.rollbackReleaseId != self.id",
            "spec.release.rollbackReleaseId must differ from spec.release.id", ".rollbackReleaseId"),
    ]})

    id: Annotated[str | None, Field(
        default=None, min_length=1, max_length=128, pattern=PRINTABLE,
        description="Requested release id. Recorded on the pod template as the "
                    f"{RELEASE_ANNOTATION} annotation; defaults to the new image's tag.")]
    image: Annotated[str | None, Field(
        default=None, min_length=1, max_length=512, pattern=IMAGE,
        description="New image for the target container.")]
    pod_template_patch: Annotated[dict[str, Any] | None, Field(
        default=None,
        description="Strategic-merge patch applied to the Deployment's pod template "
                    "(spec.template), instead of an image.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})]
    previous_release_id: Annotated[str | None, Field(
        default=None, min_length=1, max_length=128, pattern=PRINTABLE,
        description="Override for the previous release id; default: read from the Deployment's revisions.")]
    rollback_release_id: Annotated[str | None, Field(
        default=None, min_length=1, max_length=128, pattern=PRINTABLE,
        description="Release to roll back to; default: the previous release.")]
    change_cause: Annotated[str | None, Field(
        default=None, max_length=1024,
        description="Recorded as kubernetes.io/change-cause on the Deployment; default names the run and release.")]
    expected_current_release_id: Annotated[str | None, Field(
        default=None, min_length=1, max_length=128, pattern=PRINTABLE,
        description="Deploy only if the Deployment runs this release now; otherwise the run fails "
                    "CurrentReleaseMismatch without touching it.")]
    sequence: Annotated[int | None, Field(
        default=None, ge=0, le=2**53 - 1,
        description="Orders this run among the runs of its workload: a higher sequence is newer (e.g. a CI build "
                    "number or a commit's time). A run older than one that already took the workload is superseded, "
                    "however long ago that was, and when several are applied at once (a restore from git) only the "
                    "newest deploys. Without it runs are ordered by creation time, then name; a run without one "
                    "counts as older than every run with one.")]
    pin_digest: Annotated[bool, Field(
        default=True,
        description="When the image's registry answers, deploy image@sha256:<digest> (the tag kept for people), so "
                    "what the release runs cannot change if the tag moves.")]
    redeploy: Annotated[bool, Field(
        default=False,
        description="Deploy even if the Deployment's record says a run of this name, or a newer release, was "
                    "deployed already (replay safety is skipped).")]


class HttpCheck(Model):
    """An HTTP health check run after the rollout completes."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("self.url.startsWith('http://') || self.url.startsWith('https://')",
            "spec.health.http.url must be an http:// or https:// URL", ".url"),
        cel("isURL(self.url) && url(self.url).getHostname() != ''",
            "spec.health.http.url must be a URL with a host", ".url"),
    ]})

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL,
                              description="URL probed with GET (no whitespace or control characters).")]
    expected_status: Annotated[int, Field(
        default=200, ge=100, le=599, description="HTTP status that counts as healthy.")]
    timeout_seconds: Annotated[float, Field(
        default=5.0, gt=0, le=300, description="Timeout of one request.")]
    retries: Annotated[int, Field(
        default=3, ge=1, le=1000,
        description="Total attempts (at least 1); the first healthy answer ends the check.")]
    interval_seconds: Annotated[float, Field(
        default=5.0, gt=0, le=3600, description="Wait between attempts; none after the last.")]


class Health(Model):
    """Health gating: the rollout must complete, then the optional HTTP check must pass."""

    progress_deadline_seconds: Annotated[int, Field(
        default=600, ge=1, le=86400,
        description="How long the rollout may take, from the deploy, before it counts as a deploy failure. "
                    "The Deployment's own ProgressDeadlineExceeded condition also ends it.")]
    http: Annotated[HttpCheck | None, Field(default=None, description="Optional HTTP health check.")]


class RestartWatchdog(Model):
    """Polls the new ReplicaSet's pods for restarts and crash loops after the deploy."""

    enabled: Annotated[bool, Field(default=True, description="Run the watchdog after the health gate.")]
    retries: Annotated[int, Field(
        default=3, ge=1, le=1000,
        description="Total observations (at least 1); any unstable one fails the run, all stable passes.")]
    interval_seconds: Annotated[float, Field(
        default=10.0, gt=0, le=3600, description="Wait between observations; none after the last.")]
    restart_threshold: Annotated[int, Field(
        default=0, ge=0, le=1000,
        description="Container restarts tolerated per pod; more is unstable.")]


class SelfTest(Model):
    """For a selfHosted run: the new operator must report its self-test passed on its own pods (the pod
    condition selfbootstrap.dev/SelfTestPassed, also the chart's readiness gate) within the deadline."""

    enabled: Annotated[bool, Field(
        default=True, description="Wait for the new operator's self-test after the rollout (selfHosted runs only).")]
    timeout_seconds: Annotated[int, Field(
        default=300, ge=1, le=86400,
        description="How long every pod of the new release may take to report its self-test passed.")]


class RollbackPolicy(Model):
    """Which failure classes roll back, and how long the rollback may take."""

    on_deploy_failure: Annotated[bool, Field(
        default=False, description="Roll back when the patch is refused or the rollout misses its deadline.")]
    on_health_failure: Annotated[bool, Field(
        default=True, description="Roll back when the HTTP health check fails.")]
    on_restart_watchdog_failure: Annotated[bool, Field(
        default=True, description="Roll back when the restart watchdog finds unstable pods.")]
    on_analysis_failure: Annotated[bool, Field(
        default=True, description="Roll back when a metric of the analysis fails.")]
    on_self_test_failure: Annotated[bool, Field(
        default=True, description="Roll back a selfHosted run whose new operator fails its self-test.")]
    on_abort: Annotated[bool, Field(
        default=True, description="Roll back when the run is aborted after it deployed.")]
    delete_stuck_pods: Annotated[bool, Field(
        default=True,
        description="A StatefulSet with OrderedReady pod management waits forever for a pod of the bad release "
                    "that never becomes ready, also after the undo (the Kubernetes docs' forced rollback): once "
                    "the undo is observed, delete those pods so that the controller recreates them from the "
                    "restored template. Never a pod of the revision rolled back to.")]
    timeout_seconds: Annotated[int, Field(
        default=600, ge=1, le=86400,
        description="How long the rolled-back workload may take to become available.")]


class RetryPolicy(Model):
    """How a step that meets a passing fault (a conflict, an unreachable server, a 5xx) is retried:
    with exponential backoff, at most maxAttempts times per phase; then the run ends RetriesExhausted."""

    max_attempts: Annotated[int, Field(
        default=8, ge=1, le=100, description="Attempts of a step per phase, the first one included.")]
    initial_backoff_seconds: Annotated[float, Field(
        default=2.0, gt=0, le=600, description="Wait after the first failed attempt; doubled after each.")]
    max_backoff_seconds: Annotated[float, Field(
        default=60.0, gt=0, le=3600, description="Cap of the growing wait.")]


def _defaults(model: type[Model]) -> dict[str, Any]:
    """A section's full defaults, so the API server fills it in when it is omitted
    (and CEL rules on the section see every field)."""
    return {"default": model().dump()}


# --- spec: the optional git workflow ------------------------------------------------

FILE_LIMIT = 262144  # characters of one file's content
CHANGE_LIMIT = 524288  # characters of every file's content together: a run is a change, not a data store
REPO_PATH = rf"^[^/\\{HIDDEN}]+(/[^/\\{HIDDEN}]+)*$"  # relative, no empty components, no backslashes


def _path_rules(field: str) -> list[JsonValue]:
    """A repository path must stay inside the tree and out of git's own files (core/paths.py checks again)."""
    return [
        cel(r"!self.path.matches('(^|/)\\.\\.?(/|$)')",
            f"{field} must not contain '.' or '..' components", ".path"),
        cel(r"!self.path.lowerAscii().matches('(^|/)(\\.git[. ]*|git~[0-9]+)(/|$)')",
            f"{field} must not name git's own files (.git)", ".path"),
    ]


# A git branch name, as `git check-ref-format --branch` accepts it (a safe subset).
BRANCH = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"


def _branch_rule(field: str, name: str) -> JsonDict:
    return cel(f"!has(self.{name}) || (!self.{name}.contains('..') && "
               f"!self.{name}.matches('(\\\\.lock|\\\\.)(/|$)'))",
               f"{field} must be a valid git branch name (no '..', no component ending in '.' or '.lock')",
               f".{name}")


class GitFile(Model):
    """A file the change writes, relative to the repository root."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _path_rules(
        "spec.git.change.files[].path")})

    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=REPO_PATH,
                               description="Path relative to the repository root.")]
    content: Annotated[str, Field(max_length=FILE_LIMIT, description="Full new content of the file.")]


class SetImage(Model):
    """A structured edit: set the new image in the target Deployment's manifest."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _path_rules(
        "spec.git.change.setImage.path")})

    path: Annotated[str, Field(min_length=1, max_length=1024, pattern=REPO_PATH,
                               description="YAML manifest (may hold several documents) with the Deployment.")]
    image: Annotated[str | None, Field(default=None, min_length=1, max_length=512, pattern=IMAGE,
                                       description="Image to set; default: spec.release.image.")]


class GitChange(Model):
    """What the run changes in the repository: files, or a structured edit."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("has(self.files) != has(self.setImage)",
            "exactly one of spec.git.change.files or spec.git.change.setImage must be set"),
        cel(f"!has(self.files) || self.files.map(f, size(f.content)).sum() <= {CHANGE_LIMIT}",
            f"spec.git.change.files: the contents together must not exceed {CHANGE_LIMIT} characters", ".files"),
    ]})

    files: Annotated[list[GitFile] | None, Field(default=None, min_length=1, max_length=100,
                                                  description="Files to write.")]

    @model_validator(mode="after")
    def _bounded(self) -> GitChange:
        if sum(len(f.content) for f in self.files or []) > CHANGE_LIMIT:
            raise ValueError(f"spec.git.change.files: the contents together exceed {CHANGE_LIMIT} characters")
        return self
    set_image: Annotated[SetImage | None, Field(default=None, description="Set the image in a manifest.")]


class JobDeletePolicy(StrEnum):
    ALWAYS = "Always"
    ON_SUCCESS = "OnSuccess"
    NEVER = "Never"


class Validation(Model):
    """A check of the pushed commit, run as a Job in the run's namespace (never inside the operator);
    the pull request opens only when it passes."""

    # Nested: these types describe the validation Job's container and nothing else.
    class Quantities(Model):
        """CPU and memory as Kubernetes quantities; a field left out is not set."""

        cpu: Annotated[str | None, Field(
            default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$",
            description="CPU, e.g. 100m or 2.")]
        memory: Annotated[str | None, Field(
            default=None, max_length=32, pattern=r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$",
            description="Memory, e.g. 128Mi or 1Gi.")]

    class Resources(Model):
        """The validate container's compute resources (the checkout step has small fixed ones); each map,
        when given, replaces its default whole."""

        # The API server would admit the Job and refuse its pod, and the run would wait for its deadline.
        model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
            cel(f"!has(self.requests.{q}) || !has(self.limits.{q}) || "
                f"quantity(self.requests.{q}).compareTo(quantity(self.limits.{q})) <= 0",
                f"spec.git.validation.resources.requests.{q} must not exceed its limit", f".requests.{q}")
            for q in ("cpu", "memory")]})

        requests: Annotated[Validation.Quantities, Field(
            default=Validation.Quantities(cpu="100m", memory="128Mi"),
            description="What the container is guaranteed.")]
        limits: Annotated[Validation.Quantities, Field(
            default=Validation.Quantities(cpu="1", memory="512Mi"),
            description="What the container may use at most.")]

    image: Annotated[str, Field(min_length=1, max_length=512, pattern=IMAGE,
                                description="Image of the check's container (e.g. your CI image).")]
    command: Annotated[list[str], Field(
        min_length=1, max_length=64,
        description="Argument list run in a checkout of the pushed commit (no shell), e.g. [make, check]; "
                    "it replaces the image's entrypoint.",
        json_schema_extra={"items": {"type": "string", "maxLength": 4096, "description": "One argument."}})]
    service_account_name: Annotated[str | None, Field(
        default=None, max_length=253, pattern=DNS_SUBDOMAIN,
        description="Service account of the Job's pod; default: the namespace's default service account.")]
    automount_service_account_token: Annotated[bool, Field(
        default=False, description="Mount the service account's token into the pod (off by default).")]
    timeout_seconds: Annotated[int, Field(
        default=300, ge=1, le=3600, description="The Job's activeDeadlineSeconds: it fails after this.")]
    delete_policy: Annotated[JobDeletePolicy, Field(
        default=JobDeletePolicy.ON_SUCCESS,
        description="When the operator deletes the Job: Always, OnSuccess (failed Jobs stay for inspection) "
                    "or Never. A Job it keeps goes after ttlSecondsAfterFinished, and with the run.")]
    ttl_seconds_after_finished: Annotated[int, Field(
        default=3600, ge=60, le=2592000,
        description="The Job's ttlSecondsAfterFinished: the Job controller deletes a finished Job the operator "
                    "kept after this long (at least a minute, so that the operator reads its outcome first).")]
    run_as_user: Annotated[int, Field(
        default=65532, ge=1, le=2147483647,
        description="UID of both containers and the pod's fsGroup (never root: the pod meets the restricted "
                    "Pod Security Standard).")]
    resources: Annotated[Validation.Resources, Field(
        default=Validation.Resources(), description="The validate container's requests and limits.")]


class CommitSettings(Model):
    message: Annotated[str | None, Field(default=None, max_length=4096,
                                         description="Commit message; default names the release and the run.")]
    author_name: Annotated[str, Field(default="selfbootstrap-operator", min_length=1, max_length=256, pattern=PRINTABLE,
                                      description="Author and committer name.")]
    author_email: Annotated[str, Field(default="selfbootstrap-operator@users.noreply.local", min_length=3,
                                       pattern=PRINTABLE, max_length=256, description="Author and committer email.")]


class SecretKeyRef(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                               description="Secret in the run's namespace.")]
    key: Annotated[str, Field(default="token", min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$",
                              description="Key holding the token.")]


class Credentials(Model):
    """A token for the git server and the forge API, read from a Secret; never written anywhere."""

    secret_ref: Annotated[SecretKeyRef, Field(description="Where the token is.")]
    username: Annotated[str, Field(default="x-access-token", min_length=1, max_length=256,
                                   pattern=rf"^[^:\s{HIDDEN}]+$",
                                   description="User name sent with the token to the git server.")]


class MergeMethod(StrEnum):
    MERGE = "merge"
    SQUASH = "squash"
    REBASE = "rebase"


class PullRequestSettings(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("!self.autoMerge || self.create",
            "spec.git.pullRequest.autoMerge requires spec.git.pullRequest.create", ".autoMerge"),
    ]})

    create: Annotated[bool, Field(default=True, description="Open a pull request for the branch.")]
    title: Annotated[str | None, Field(default=None, max_length=256, description="Default names the release.")]
    body: Annotated[str | None, Field(default=None, max_length=65536,
                                      description="Default names the run and what happens on merge.")]
    auto_merge: Annotated[bool, Field(default=True, description="Merge when CI is green.")]
    merge_method: Annotated[MergeMethod, Field(default=MergeMethod.MERGE, description="merge, squash or rebase.")]


class CISettings(Model):
    """Polling of the commit's CI status: first check at once, then exponential backoff."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("self.maxIntervalSeconds >= self.initialIntervalSeconds",
            "spec.git.ci.maxIntervalSeconds must be >= spec.git.ci.initialIntervalSeconds",
            ".maxIntervalSeconds"),
    ]})

    required: Annotated[bool, Field(default=True, description="Wait for green CI before merging and deploying.")]
    initial_interval_seconds: Annotated[float, Field(default=10.0, gt=0, le=3600,
                                                     description="Wait after the first pending answer.")]
    factor: Annotated[float, Field(default=2.0, ge=1, le=10, description="Growth of the wait after each pending.")]
    max_interval_seconds: Annotated[float, Field(default=60.0, gt=0, le=3600,
                                                 description="Cap of the growing wait.")]
    timeout_seconds: Annotated[float, Field(default=600.0, gt=0, le=86400, description="Overall limit.")]


# A '.' or '..' path segment, also percent-encoded: git and servers resolve them, so a URL could pass a
# credential's allowed prefix as written and reach another path (a CEL string: its \\ is one backslash).
DOT_SEGMENT = r"(?i)/(\\.|%2e){1,2}([/?#]|$)"


class ForgeKind(StrEnum):
    GITHUB = "github"
    GITLAB = "gitlab"
    GITEA = "gitea"


class ForgeSettings(Model):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("self.apiUrl.startsWith('https://') || self.apiUrl.startsWith('http://')",
            "spec.git.forge.apiUrl must be an http(s) URL", ".apiUrl"),
        cel(f"!self.apiUrl.matches('{DOT_SEGMENT}')",
            "spec.git.forge.apiUrl must not hold '.' or '..' path segments", ".apiUrl"),
        cel("!has(self.repository) || !self.repository.split('/').exists(p, p == '.' || p == '..')",
            "spec.git.forge.repository must not hold '.' or '..' segments", ".repository"),
        cel("self.kind != 'gitlab' || self.apiUrl != 'https://api.github.com'",
            "spec.git.forge.apiUrl: a gitlab forge needs its API URL, e.g. https://gitlab.example.com/api/v4",
            ".apiUrl"),
        cel("self.kind != 'gitea' || self.apiUrl != 'https://api.github.com'",
            "spec.git.forge.apiUrl: a gitea forge needs its API URL, e.g. https://gitea.example.com/api/v1",
            ".apiUrl"),
    ]})

    kind: Annotated[ForgeKind, Field(default=ForgeKind.GITHUB,
                                     description="The forge's API flavour: github, gitlab (its apiUrl then "
                                                 "ends in /api/v4) or gitea (also Forgejo; /api/v1).")]
    api_url: Annotated[str, Field(default="https://api.github.com", min_length=1, max_length=2048, pattern=URL,
                                  description="Base URL of the forge's REST API.")]
    repository: Annotated[str | None, Field(
        default=None, max_length=512, pattern=rf"^[^/\s{HIDDEN}]+(/[^/\s{HIDDEN}]+)+$",
        description="owner/name on GitHub, group/subgroup/project on GitLab; default: taken from the repository "
                    "URL.")]


class RevertMode(StrEnum):
    PULL_REQUEST = "PullRequest"
    MERGE = "Merge"


class GitWorkflow(Model):
    """Propose the change through git: branch, commit, push, pull request, CI, merge; then deploy."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("self.repositoryUrl.startsWith('https://') || self.repositoryUrl.startsWith('http://')",
            "spec.git.repositoryUrl must be an http(s) URL", ".repositoryUrl"),
        cel("!self.repositoryUrl.matches('^https?://[^/]*@')",
            "spec.git.repositoryUrl must not embed credentials; use spec.git.credentials", ".repositoryUrl"),
        cel(f"!self.repositoryUrl.matches('{DOT_SEGMENT}')",
            "spec.git.repositoryUrl must not hold '.' or '..' path segments", ".repositoryUrl"),
        cel("!has(self.branch) || self.branch != self.baseBranch",
            "spec.git.branch must differ from spec.git.baseBranch", ".branch"),
        _branch_rule("spec.git.branch", "branch"),
        _branch_rule("spec.git.baseBranch", "baseBranch"),
        cel("has(self.forge.repository) || self.repositoryUrl.matches('^https?://[^/?#]+/([^?#]*/)?[^/?#]+/[^/?#]+/?$')",
            "spec.git.forge.repository is required when spec.git.repositoryUrl does not end in <owner>/<name>",
            ".forge.repository"),
    ]})

    repository_url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL, description="Clone URL.")]
    base_branch: Annotated[str, Field(default="main", min_length=1, max_length=200, pattern=BRANCH,
                                      description="Branch the change starts from and merges into.")]
    branch: Annotated[str | None, Field(default=None, min_length=1, max_length=200, pattern=BRANCH,
                                        description="Branch to create; default selfbootstrap/<run name>.")]
    change: Annotated[GitChange, Field(description="The change to make.")]
    validation: Annotated[Validation | None, Field(
        default=None, description="Check of the pushed commit, run as a Job before the pull request opens.")]
    commit: Annotated[CommitSettings, Field(default_factory=CommitSettings, description="Commit message and author.",
                                            json_schema_extra=_defaults(CommitSettings))]
    credentials: Annotated[Credentials | None, Field(default=None, description="Token from a Secret.")]
    pull_request: Annotated[PullRequestSettings, Field(default_factory=PullRequestSettings,
                                                        description="Pull request and merge settings.",
                                                        json_schema_extra=_defaults(PullRequestSettings))]
    ci: Annotated[CISettings, Field(default_factory=CISettings, json_schema_extra=_defaults(CISettings))]
    forge: Annotated[ForgeSettings, Field(default_factory=ForgeSettings, description="Where pull requests and CI live.",
                                  json_schema_extra=_defaults(ForgeSettings))]
    revert_on_rollback: Annotated[bool, Field(
        default=True, description="After a rollback, open a pull request reverting the change in git.")]
    revert_mode: Annotated[RevertMode, Field(
        default=RevertMode.PULL_REQUEST,
        description="PullRequest: open the revert pull request for a person to merge. Merge: also wait for its "
                    "CI (per spec.git.ci) and merge it (guarded by the tested commit), so that a GitOps engine "
                    "that syncs from git does not deploy the rolled-back release again.")]




# --- spec: metric analysis (Argo Rollouts' field names, so its metrics can be pasted) ------------------

# A duration as Argo writes it (Go's time.ParseDuration, no sign): "30s", "5m", "1m30s", "500ms"; "0".
DURATION = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$"
ARG_NAME = r"^[A-Za-z_][A-Za-z0-9_-]*$"
QUERY_LIMIT = 8192
CONDITION_LIMIT = 1024


class AnalysisArg(Model):
    """A value substituted as {{args.NAME}} in queries, URLs, headers and bodies."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=ARG_NAME,
                               description="The argument's name; release, previousRelease, deployment, "
                                           "namespace and run are built in and cannot be redefined.")]
    value: Annotated[str, Field(max_length=1024, pattern=PRINTABLE, description="The argument's value.")]


class PrometheusMetric(Model):
    """An instant query to a Prometheus server's HTTP API (GET /api/v1/query)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("isURL(self.address) && url(self.address).getHostname() != ''",
            "provider.prometheus.address must be a URL with a host", ".address"),
    ]})

    address: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL,
                                  description="Base URL of the Prometheus server, e.g. http://prometheus:9090.")]
    query: Annotated[str, Field(min_length=1, max_length=QUERY_LIMIT,
                                description="PromQL; {{args.NAME}} is substituted. A scalar is result, a vector "
                                            "the list of its samples' values (result[0]).")]
    timeout: Annotated[int, Field(default=30, ge=1, le=300,
                                  description="Seconds the query may take (Argo's timeout).")]


class WebMethod(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"


class WebHeader(Model):
    """A request header."""

    key: Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                              description="Header name.")]
    value: Annotated[str, Field(max_length=4096, pattern=PRINTABLE,
                                description="Header value; {{args.NAME}} is substituted.")]


class WebMetric(Model):
    """A request to an HTTP endpoint whose JSON answer (or the part jsonPath selects) is the result."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("self.url.contains('{{') || (isURL(self.url) && url(self.url).getHostname() != '')",
            "provider.web.url must be a URL with a host", ".url"),
        cel("!has(self.body) || self.method != 'GET'", "provider.web.body needs method POST or PUT", ".body"),
    ]})

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL,
                              description="The endpoint; {{args.NAME}} is substituted.")]
    method: Annotated[WebMethod, Field(default=WebMethod.GET, description="GET, POST or PUT.")]
    headers: Annotated[list[WebHeader], Field(default_factory=list, max_length=32, description="Request headers.")]
    body: Annotated[str | None, Field(default=None, max_length=65536,
                                      description="Request body; {{args.NAME}} is substituted.")]
    json_path: Annotated[str | None, Field(
        default=None, max_length=512, pattern=PRINTABLE,
        description="The part of the JSON answer that is the result, as Argo writes it: {$.data.ok}.")]
    timeout_seconds: Annotated[int, Field(default=10, ge=1, le=300, description="Seconds the request may take.")]


class JobMetricMetadata(Model):
    """Labels and annotations of the metric's Jobs (the operator adds its own labels)."""

    labels: Annotated[dict[str, Annotated[str, Field(max_length=63, description="A label's value.")]], Field(
        default_factory=dict, max_length=32, description="Labels.")]
    annotations: Annotated[dict[str, Annotated[str, Field(max_length=4096, description="An annotation's value.")]],
                           Field(default_factory=dict, max_length=32, description="Annotations.")]


class JobMetric(Model):
    """A Job in the run's namespace for each measurement, as Argo's job provider: the measurement is
    Successful when the Job succeeds and Failed when it fails (conditions, if any, see true or false)."""

    metadata: Annotated[JobMetricMetadata, Field(default_factory=JobMetricMetadata,
                                                 description="Labels and annotations of the Jobs.")]
    spec: Annotated[dict[str, Any], Field(
        description="A batch/v1 JobSpec (template, backoffLimit, activeDeadlineSeconds, ...); run with the "
                    "service account it names, in the run's namespace, so its author must be allowed to create "
                    "Jobs there (admission checks).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})]


class MetricProvider(Model):
    """Where a measurement comes from: exactly one provider."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("[has(self.prometheus), has(self.web), has(self.job)].filter(x, x).size() == 1",
            "a metric's provider names exactly one of prometheus, web or job"),
    ]})

    prometheus: Annotated[PrometheusMetric | None, Field(default=None, description="A Prometheus query.")]
    web: Annotated[WebMetric | None, Field(default=None, description="An HTTP endpoint's JSON.")]
    job: Annotated[JobMetric | None, Field(default=None, description="A Job that succeeds or fails.")]


class AnalysisMetric(Model):
    """One metric, as in an Argo Rollouts AnalysisTemplate; conditions are CEL over `result`."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("!has(self.count) || self.count <= 1 || has(self.interval)",
            "a metric with count above 1 needs an interval", ".count"),
        cel("!has(self.count) || self.count == 0 || self.count >= self.failureLimit",
            "count must be at least failureLimit", ".count"),
        cel("!has(self.count) || self.count == 0 || self.count >= self.inconclusiveLimit",
            "count must be at least inconclusiveLimit", ".count"),
        cel("!has(self.interval) || self.interval != '0'", "interval must be longer than zero", ".interval"),
    ]})

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=DNS_LABEL, description="The metric's name.")]
    interval: Annotated[str | None, Field(
        default=None, max_length=64, pattern=DURATION,
        description="Time between measurements (30s, 5m); without it, one measurement.")]
    initial_delay: Annotated[str | None, Field(
        default=None, max_length=64, pattern=DURATION, description="Wait before the first measurement.")]
    count: Annotated[int | None, Field(
        default=None, ge=0, le=1000,
        description="Measurements to take; default 1 without an interval, else until the gate ends.")]
    failure_limit: Annotated[int, Field(default=0, ge=0, le=1000,
                                        description="Failed measurements tolerated.")]
    inconclusive_limit: Annotated[int, Field(default=0, ge=0, le=1000,
                                             description="Inconclusive measurements tolerated.")]
    consecutive_error_limit: Annotated[int, Field(default=4, ge=0, le=1000,
                                                  description="Errors in a row tolerated.")]
    success_condition: Annotated[str | None, Field(
        default=None, max_length=CONDITION_LIMIT, pattern=PRINTABLE,
        description="CEL over result that marks a measurement Successful, e.g. result[0] < 0.05.")]
    failure_condition: Annotated[str | None, Field(
        default=None, max_length=CONDITION_LIMIT, pattern=PRINTABLE,
        description="CEL over result that marks a measurement Failed; it wins over successCondition.")]
    provider: Annotated[MetricProvider, Field(description="Where the measurement comes from.")]


class AnalysisTemplateRef(Model):
    """An installed Argo Rollouts AnalysisTemplate (or ClusterAnalysisTemplate) whose metrics and args join
    the run's (its author must be allowed to get it; admission checks)."""

    template_name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN,
                                        description="The template's name.")]
    cluster_scope: Annotated[bool, Field(default=False,
                                         description="A ClusterAnalysisTemplate rather than an AnalysisTemplate "
                                                     "of the run's namespace.")]


class AnalysisStart(StrEnum):
    ROLLOUT_COMPLETE = "rolloutComplete"
    FIRST_NEW_POD = "firstNewPod"


class Analysis(Model):
    """Metric analysis after the rollout completes (and the HTTP check passed): every metric is measured
    until its count is reached or a limit is exceeded; the first failed metric fails the gate."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        cel("(has(self.metrics) ? size(self.metrics) : 0) + (has(self.templates) ? size(self.templates) : 0) > 0",
            "spec.analysis needs metrics or templates"),
        cel("!has(self.metrics) || self.metrics.all(m, self.metrics.exists_one(o, o.name == m.name))",
            "spec.analysis.metrics names must be unique", ".metrics"),
        cel("!has(self.args) || self.args.all(a, self.args.exists_one(o, o.name == a.name))",
            "spec.analysis.args names must be unique", ".args"),
        cel("!has(self.args) || self.args.all(a, !(a.name in "
            "['release', 'previousRelease', 'deployment', 'namespace', 'run']))",
            "spec.analysis.args cannot redefine a built-in argument", ".args"),
    ]})

    args: Annotated[list[AnalysisArg], Field(default_factory=list, max_length=32,
                                             description="Arguments beside the built-in ones.")]
    metrics: Annotated[list[AnalysisMetric], Field(default_factory=list, max_length=16, description="The metrics.")]
    start_after: Annotated[AnalysisStart, Field(
        default=AnalysisStart.ROLLOUT_COMPLETE,
        description="rolloutComplete: measure once the rollout completed and the HTTP check passed; firstNewPod: "
                    "begin as soon as a pod of the new release is ready, during the rollout (Argo's background "
                    "analysis), so a bad release fails before it has rolled out.")]
    templates: Annotated[list[AnalysisTemplateRef], Field(
        default_factory=list, max_length=8,
        description="Argo Rollouts AnalysisTemplates whose metrics join these (read when the run starts and "
                    "at each measurement; their args' values are defaults for spec.analysis.args).")]


class ApprovalStage(StrEnum):
    DEPLOY = "deploy"
    SUCCESS = "success"


class Approval(Model):
    """A person's approval, given with `kubectl sbr approve RUN` by someone other than the run's author who
    holds the `approve` verb on selfbootstrapruns (see the admission policy)."""

    before_deploy: Annotated[bool, Field(
        default=False, description="Wait for an approval before the Deployment is touched.")]
    before_success: Annotated[bool, Field(
        default=False, description="Wait for an approval after every gate passed, before the run succeeds; "
                                   "without one by the deadline the release is undone as an abort is.")]
    deadline_seconds: Annotated[int, Field(
        default=86400, ge=60, le=2592000, description="How long each approval may take.")]


class RunSpec(Model):
    """One change to one workload (a Deployment, StatefulSet or DaemonSet)."""

    target: Annotated[Target, Field(description="The workload to change.")]
    release: Annotated[Release, Field(description="What to deploy.")]
    health: Annotated[Health, Field(default_factory=Health, description="Health gating.",
                                    json_schema_extra=_defaults(Health))]
    restart_watchdog: Annotated[RestartWatchdog, Field(
        default_factory=RestartWatchdog, description="Restart watchdog.",
        json_schema_extra=_defaults(RestartWatchdog))]
    self_test: Annotated[SelfTest, Field(
        default_factory=SelfTest, description="The new operator's self-test (selfHosted runs only).",
        json_schema_extra=_defaults(SelfTest))]
    git: Annotated[GitWorkflow | None, Field(
        default=None, description="Optional git workflow before the deploy; without it the run is deploy-only.")]
    analysis: Annotated[Analysis | None, Field(
        default=None, description="Optional metric analysis gate after the rollout and the HTTP check.")]
    approval: Annotated[Approval | None, Field(
        default=None, description="Optional approvals by a person before the deploy and/or before success.")]
    rollback_policy: Annotated[RollbackPolicy, Field(
        default_factory=RollbackPolicy, description="Rollback policy per failure class.",
        json_schema_extra=_defaults(RollbackPolicy))]
    retry_policy: Annotated[RetryPolicy, Field(
        default_factory=RetryPolicy, description="Retries of steps that meet a passing fault.",
        json_schema_extra=_defaults(RetryPolicy))]


# --- status -----------------------------------------------------------------

URL_LIMIT = 2048


def _shown(limit: int) -> tuple[AfterValidator, Any]:
    """Status text is data: hidden characters escaped and the length bounded however it got there
    (core/text.py); the CRD says the bound too, so a status written by anyone else is refused beyond it."""
    return AfterValidator(lambda v: printable(v, limit)), Field(json_schema_extra={"maxLength": limit})


Message = Annotated[str, *_shown(MESSAGE_LIMIT)]  # for a person: what happened
Name = Annotated[str, *_shown(NAME_LIMIT)]  # an identifier shown back: a release id, a reason, a branch
Link = Annotated[str, *_shown(URL_LIMIT)]  # a URL a forge answered with


class Phase(StrEnum):
    PENDING = "Pending"
    BRANCHING = "Branching"
    COMMITTING = "Committing"
    PUSHING = "Pushing"
    VALIDATING = "Validating"
    OPENING_PULL_REQUEST = "OpeningPullRequest"
    AWAITING_CI = "AwaitingCI"
    MERGING = "Merging"
    DEPLOYING = "Deploying"
    VERIFYING_HEALTH = "VerifyingHealth"
    SELF_TESTING = "SelfTesting"
    ANALYZING = "Analyzing"
    AWAITING_APPROVAL = "AwaitingApproval"
    WATCHING_RESTARTS = "WatchingRestarts"
    ROLLING_BACK = "RollingBack"
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"


@dataclass(frozen=True)
class PhaseRule:
    """What a phase means to every part that asks (the one table: a new phase is one row here)."""

    terminal: bool = False  # the run has ended
    git: bool = False  # a step of the git workflow (core/gitflow.py decides it)
    at_gate: bool = False  # the run may take its workload next: the worker gathers the gate's view for it
    done: bool = False  # ended as asked (conditions Ready and Complete)
    failed: bool = False  # ended otherwise (conditions Stalled and Failed)


PHASES: Mapping[Phase, PhaseRule] = MappingProxyType({
    Phase.PENDING: PhaseRule(at_gate=True),
    Phase.BRANCHING: PhaseRule(git=True),
    Phase.COMMITTING: PhaseRule(git=True),
    Phase.PUSHING: PhaseRule(git=True),
    Phase.VALIDATING: PhaseRule(git=True),
    Phase.OPENING_PULL_REQUEST: PhaseRule(git=True),
    Phase.AWAITING_CI: PhaseRule(git=True),
    Phase.MERGING: PhaseRule(git=True),
    Phase.DEPLOYING: PhaseRule(at_gate=True),  # a git run that is ready waits here to take its workload
    Phase.VERIFYING_HEALTH: PhaseRule(),
    Phase.SELF_TESTING: PhaseRule(),
    Phase.ANALYZING: PhaseRule(),
    Phase.AWAITING_APPROVAL: PhaseRule(at_gate=True),  # before the deploy that takes the workload
    Phase.WATCHING_RESTARTS: PhaseRule(),
    Phase.ROLLING_BACK: PhaseRule(),
    Phase.SUCCEEDED: PhaseRule(terminal=True, done=True),
    Phase.ROLLED_BACK: PhaseRule(terminal=True, failed=True),
    Phase.FAILED: PhaseRule(terminal=True, failed=True),
    Phase.SUPERSEDED: PhaseRule(terminal=True, done=True),  # ended without touching the Deployment
})
TERMINAL_PHASES = frozenset(p for p, rule in PHASES.items() if rule.terminal)


def rule_of(phase: str) -> PhaseRule:
    """The rule of a phase as status spells it; an unknown phase (a status someone else wrote) has none."""
    try:
        return PHASES[Phase(phase)]
    except ValueError:
        return PhaseRule()
GIT_PHASES = tuple(p for p, rule in PHASES.items() if rule.git)


class CIStatus(StrEnum):
    NOT_RUN = "notRun"
    PENDING = "pending"
    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"


class HealthStatus(StrEnum):
    NOT_RUN = "notRun"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class WatchdogStatus(StrEnum):
    NOT_RUN = "notRun"
    STABLE = "stable"
    UNSTABLE = "unstable"


class PolicyStatus(StrEnum):
    NOT_EVALUATED = "notEvaluated"
    ALLOWED = "allowed"
    DENIED = "denied"


class FailureClass(StrEnum):
    DEPLOY = "deployFailure"
    HEALTH = "healthFailure"
    RESTART_WATCHDOG = "restartWatchdogFailure"
    ANALYSIS = "analysisFailure"
    SELF_TEST = "selfTestFailure"
    ABORTED = "aborted"  # a person asked the run to stop (the selfbootstrap.dev/abort annotation)


class Condition(Model):
    """A Kubernetes-style condition."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    type: Name
    """Reconciling, Progressing, Ready, Complete, Stalled, Failed, Degraded or RolledBack."""
    status: Annotated[str, Field(json_schema_extra={"enum": ["True", "False", "Unknown"]})]
    """True, False or Unknown."""
    reason: Name
    """Why, in one CamelCase word."""
    message: Message = ""
    """Why, for a person."""
    observed_generation: int | None = None
    """The run's metadata.generation the condition was set for."""
    last_transition_time: datetime
    """When status last changed."""


class RevertStatus(StrEnum):
    NOT_NEEDED = "notNeeded"
    DISABLED = "disabled"
    OPENED = "opened"
    MERGED = "merged"
    FAILED = "failed"


class ValidationState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timedOut"


class GitStatus(StatusModel):
    """Where the git workflow is; every remote side effect is recorded here."""

    branch: Name | None = None
    """The run's branch on the remote."""
    base_sha: Name | None = None
    """The base branch's head the change started from."""
    commit_sha: Name | None = None
    """The run's commit (deterministic: a resumed run rebuilds the same one)."""
    pushed_at: datetime | None = None
    """When the branch was pushed (or found already pushed)."""
    pull_request_number: int | None = None
    """The branch's pull request."""
    pull_request_url: Link | None = None
    """Its web address."""
    merge_commit_sha: Name | None = None
    """The commit the merge made on the base branch."""
    merged_at: datetime | None = None
    """When the pull request was merged."""
    ci_checks: int = 0
    """How often CI was asked about the commit."""
    ci_interval_seconds: float | None = None
    """The current wait between CI checks (it grows while CI is pending)."""
    ci_started_at: datetime | None = None
    """When the run began waiting for CI."""
    ci_checked_at: datetime | None = None
    """When CI was last asked."""
    ci_description: Message | None = None
    """What CI said last (e.g. which checks failed)."""
    validation_job: Name | None = None
    """The validation Job in the run's namespace."""
    validation_state: ValidationState | None = None
    """running, succeeded, failed or timedOut."""
    validation_message: Message | None = None
    """How the validation went: the container's termination message when it failed (at most 1 KiB)."""
    validation_started_at: datetime | None = None
    """When the Job was started."""
    validation_finished_at: datetime | None = None
    """When its outcome was seen."""
    validation_job_deleted: bool | None = None
    """True when the Job was deleted as the delete policy says; false when deleting it failed."""
    revert_status: RevertStatus | None = None
    """After a rollback: notNeeded (never merged), disabled, opened, merged or failed."""
    revert_branch: Name | None = None
    """The branch that reverts the run's merge."""
    revert_pull_request_number: int | None = None
    """Its pull request."""
    revert_pull_request_url: Link | None = None
    """Its web address."""
    revert_commit_sha: Name | None = None
    """The revert commit (the one CI is asked about before the revert is merged)."""
    revert_merge_commit_sha: Name | None = None
    """The commit the revert's merge made on the base branch."""
    revert_ci_checks: int = 0
    """How often CI was asked about the revert commit."""
    revert_ci_checked_at: datetime | None = None
    """When it was last asked."""
    revert_ci_interval_seconds: float | None = None
    """The current wait between those checks."""
    revert_ci_started_at: datetime | None = None
    """When the run began waiting for the revert's CI."""
    revert_ci_status: CIStatus | None = None
    """CI of the revert commit (revertMode Merge): pending, success, failure or timeout."""


class RetryStatus(StatusModel):
    """The retries of the current phase's step; cleared when the phase changes."""

    phase: Phase
    """The phase whose step is retried."""
    attempts: int = 0
    """Attempts that met a passing fault so far."""
    last_error: Message | None = None
    """What the last one met."""
    next_attempt_at: datetime | None = None
    """Not before then."""
    event_seq: int | None = None
    """The one Retrying Event of this phase, counted as a series."""


class EventRecord(StatusModel):
    """An Event of the latest status write, kept so that a restarted operator posts it (once) if it was lost."""

    seq: int
    """Its number among the run's Events (it names the Event)."""
    type: Name
    """Normal or Warning."""
    reason: Name
    """The Event's reason."""
    message: Message = ""
    """The Event's note."""
    count: int = 1
    """How often it happened (more than once: a series)."""
    on_deployment: bool = False
    """Also posted on the target Deployment."""


class Transition(Model):
    """One entry of the bounded phase history."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    phase: Phase
    """The phase entered (or stayed in, with a new reason)."""
    reason: Name
    """Why."""
    message: Message = ""
    """Why, for a person."""
    at: datetime
    """When."""


class GatePhase(StrEnum):
    RUNNING = "Running"
    PASSED = "Passed"
    FAILED = "Failed"


class MeasurementStatus(StatusModel):
    """One measurement, as Argo Rollouts keeps it."""

    phase: Name
    """Successful, Failed, Inconclusive or Error."""
    value: Name = ""
    """The result as Argo shows it ("0.5", "[0.5]"); a web answer's text or structure only by its size."""
    finished_at: datetime
    """When it was taken."""
    message: Message | None = None
    """Why it is an Error."""


class MetricStatus(StatusModel):
    """A metric's measurements so far: counters of all, the last ten measurements."""

    name: Name
    """The metric's name."""
    phase: Name = "Running"
    """Running, Successful, Failed, Inconclusive or Error."""
    message: Message | None = None
    """Why the metric ended as it did."""
    count: int = 0
    """Measurements that count towards the metric's count (all but errors)."""
    successful: int = 0
    """Successful measurements."""
    failed: int = 0
    """Failed measurements."""
    inconclusive: int = 0
    """Inconclusive measurements."""
    error: int = 0
    """Measurements that got no result."""
    consecutive_error: int = 0
    """Errors in a row, up to the last measurement."""
    measurements: Annotated[list[MeasurementStatus], Field(default_factory=list, max_length=10)]
    """The last ten measurements, oldest first."""


class GateStatus(StatusModel):
    """One gate the release passes through, in one shape for every kind."""

    name: Name
    """The gate's name (its kind, for the one gate of a kind)."""
    kind: Name
    """What judges: analysis."""
    phase: GatePhase = GatePhase.RUNNING
    """Running, Passed or Failed."""
    message: Message | None = None
    """How it goes, or why it ended as it did."""
    started_at: datetime | None = None
    """When the gate began."""
    finished_at: datetime | None = None
    """When it passed or failed."""
    metrics: Annotated[list[MetricStatus], Field(default_factory=list, max_length=16)]
    """An analysis gate's metrics."""


class RunStatus(StatusModel):
    """What the operator observed and did; every side effect is recorded here first."""

    phase: Phase | None = None
    """Where the run is: Pending, the git phases, Deploying, VerifyingHealth, WatchingRestarts, RollingBack;
    or how it ended: Succeeded, RolledBack, Failed, Superseded."""
    reason: Name | None = None
    """Why the run is in its phase, in one CamelCase word."""
    message: Message | None = None
    """Why, for a person; after a rollback it also names what failed."""
    observed_generation: int | None = None
    """The run's metadata.generation this status was written for."""
    started_at: datetime | None = None
    """When the run left Pending."""
    finished_at: datetime | None = None
    """When the run ended."""
    phase_started_at: datetime | None = None
    """When the run entered its current phase."""
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra={"maxItems": 16})
    """Kubernetes-style conditions: Job-style Complete/Failed, kstatus Reconciling/Ready/Stalled, and
    Progressing, Degraded (what failed) and RolledBack."""
    history: Annotated[list[Transition], Field(default_factory=list, max_length=HISTORY_LIMIT)]
    """The last transitions, oldest first (bounded)."""

    deployed_release_id: Name | None = None
    """The release this run deploys."""
    deployed_revision: int | None = None
    """The Deployment revision of that release."""
    deployed_replica_set: Name | None = None
    """The ReplicaSet that runs it."""
    previous_release_id: Name | None = None
    """The release that ran before this run."""
    previous_revision: int | None = None
    """Its revision, as recorded before the deploy."""
    previous_replica_set: Name | None = None
    """Its ReplicaSet."""
    rollback_target_release_id: Name | None = None
    """The release a rollback goes back to."""
    rollback_target_revision: int | None = None
    """Its revision, recorded before the undo (the controller renumbers it afterwards)."""
    rollback_target_replica_set: Name | None = None
    """Its ReplicaSet (a StatefulSet's or DaemonSet's ControllerRevision), by name (which the undo does not
    change)."""
    stuck_pods_deleted: Annotated[list[Name], Field(default_factory=list, max_length=64)]
    """The pods of the bad revision a StatefulSet's forced rollback deleted (rollbackPolicy.deleteStuckPods)."""
    release_metadata_source: Name | None = None
    """Where the release metadata came from: spec; deploymentRevisions when the workload's revisions (a
    Deployment's ReplicaSets, another kind's ControllerRevisions) were read for any of it; registry when the
    release id came from the image's registry."""
    retry_of: Name | None = None
    """The run this one retries (from its selfbootstrap.dev/retry-of annotation)."""
    retried_as: list[Name] = Field(default_factory=list)
    """The runs made to retry this one (selfbootstrap.dev/retry)."""
    retry_request: Name | None = None
    """The value of the last selfbootstrap.dev/retry annotation acted on (set it to a new value to retry again)."""
    failure_reason: Name | None = None
    """What failed first (it stays when a rollback follows)."""
    failure_message: Message | None = None
    """What failed, for a person."""
    retry: RetryStatus | None = None
    """Retries of the current phase's step after passing faults; cleared when the phase changes."""
    event_seq: int = 0
    """How many Events the run has posted (their numbers name them)."""
    last_events: list[EventRecord] = Field(default_factory=list, json_schema_extra={"maxItems": 64})
    """The Events of the latest status write, posted again (once) after an operator restart."""

    git: GitStatus | None = None
    """The git workflow's progress, and the revert after a rollback."""
    image_lookup: Message | None = None
    """What the image's registry said (or why it could not be asked), before the deploy."""
    image_digest: Name | None = None
    """The digest the release's image reference named at the deploy."""
    deployed_image: Name | None = None
    """The image reference patched into the Deployment (with the digest when pinned)."""
    image_version: Name | None = None
    """The image's org.opencontainers.image.version (annotation, else label)."""
    image_revision: Name | None = None
    """The image's org.opencontainers.image.revision: the source revision it was built from."""
    image_source: Link | None = None
    """The image's org.opencontainers.image.source."""
    image_created: Name | None = None
    """The image's org.opencontainers.image.created."""
    deploy_patched_at: datetime | None = None
    """When the deploy patch was accepted."""
    rollout_reported_at: datetime | None = None
    """When the rollout's progress was last written into message (refreshed at most every 10 s)."""
    deployed_template_digest: Name | None = None
    """A digest of the pod template this run deployed: any other template means someone changed it."""
    crd_generation_at_deploy: int | None = None
    """selfHosted: the generation of the operator's CRD at the deploy (no rollback across a CRD change)."""
    ci_status: CIStatus = CIStatus.NOT_RUN
    """CI of the run's commit: notRun, pending, success, failure or timeout."""
    health_status: HealthStatus = HealthStatus.NOT_RUN
    """The health gate: notRun, healthy or unhealthy."""
    health_attempts: int = 0
    """HTTP checks made."""
    health_checked_at: datetime | None = None
    """When the last HTTP check was made."""
    restart_watchdog_status: WatchdogStatus = WatchdogStatus.NOT_RUN
    """The restart watchdog: notRun, stable or unstable."""
    restart_watchdog_reason: Name | None = None
    """Its verdict: stable, crashLoopBackOff, oomKilled, imagePullBackOff, containerRestarted:<n> or
    podsNotReady."""
    restart_watchdog_attempts: int = 0
    """Observations made."""
    restart_watchdog_checked_at: datetime | None = None
    """When the last observation was made."""

    gates: Annotated[list[GateStatus], Field(default_factory=list, max_length=16)]
    """The gates the release passed or is passing through (metric analysis), with their measurements."""
    rollback_policy_status: PolicyStatus = PolicyStatus.NOT_EVALUATED
    """The rollback policy's outcome: notEvaluated, allowed or denied."""
    rollback_policy_reason: Name | None = None
    """The rule that decided it (e.g. rollbackTargetValidated, rollbackDisabledForDeployFailure)."""
    rollback_target_valid: bool | None = None
    """Whether the rollback target release was found and differs from the deployed one."""
    rollback_failure_class: FailureClass | None = None
    """What failed: deployFailure, healthFailure, restartWatchdogFailure or aborted."""
    rollback_deployment_context: DeploymentContext | None = None
    """external or selfHosted, as the policy saw it."""
    rollback_patched_at: datetime | None = None
    """When the undo patch was accepted (or found not needed)."""
    rollback_healthy: bool | None = None
    """Whether the rolled-back Deployment became available again."""


class SelfBootstrapRun(Model):
    """The whole resource as the operator reads it."""

    spec: RunSpec
    status: RunStatus = Field(default_factory=RunStatus)
