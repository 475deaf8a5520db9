"""The validation Job: rendered from the core's action, created, read and deleted in the run's namespace.

The Job runs with the author's choice of service account and image, never the operator's:
a `checkout` init container fetches the pushed branch and verifies it is at the recorded
commit (the git token, when the run has one, is mounted into that step only), then the
`validate` container runs the spec's command in the checkout, with no credentials at all.
"""

from __future__ import annotations

from typing import assert_never

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from .. import models as m
from ..core import credentials, reasons
from ..core.actions import (
    CheckValidationJob,
    CreateValidationJob,
    DeleteValidationJob,
    Failed,
    JobAction,
    ValidationJobDeleted,
    ValidationJobObserved,
    ValidationJobStarted,
)
from ..core.jsontypes import JsonObject, obj, objects, path, strings, text
from ..core.run import Run
from ..models import ValidationState
from .kube import RETRYABLE_STATUS, Kube, SecretUnavailableError, api_message

RUN_UID_LABEL = f"{m.GROUP}/run-uid"
COMMIT_LABEL = f"{m.GROUP}/commit"
MESSAGE_LIMIT = 1024

# The checkout step: ours, never the author's. It fetches the branch, insists on the recorded
# commit, and sends the token (if any) as a header from the environment, never in a URL or argv;
# it follows no redirect (the header would go along). Its output becomes the Job's termination
# message, read into the run's status: lines the remote wrote ("remote: ...") are left out.
# It runs as a non-root user in the root-owned emptyDir, which git refuses as "dubious ownership"
# unless the directory is declared safe in the global config (in HOME, shared with the validate step).
CHECKOUT_SCRIPT = r"""set -eu
git config --global --add safe.directory /workspace
git init -q /workspace
cd /workspace
if [ -f /credentials/token ]; then
  basic=$(printf '%s:%s' "$GIT_USERNAME" "$(cat /credentials/token)" | base64 | tr -d '\n')
  export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=http.extraHeader GIT_CONFIG_VALUE_0="Authorization: Basic $basic"
fi
export GIT_ALLOW_PROTOCOL=http:https GIT_TERMINAL_PROMPT=0
if ! err=$(git -c core.hooksPath=/dev/null -c protocol.allow=never -c protocol.https.allow=always \
  -c protocol.http.allow=always -c http.followRedirects=false \
  fetch -q --depth=1 "$REPO_URL" "refs/heads/$BRANCH" 2>&1); then
  printf '%s\n' "$err" | grep -v '^remote:' >&2 || true
  exit 1
fi
head=$(git rev-parse FETCH_HEAD)
if [ "$head" != "$SHA" ]; then
  echo "branch $BRANCH is at $head, not at the pushed commit $SHA" >&2
  exit 1
fi
git -c core.hooksPath=/dev/null -c core.symlinks=false checkout -q --detach FETCH_HEAD
"""


HOME = "/home/validation"  # an emptyDir: the image's HOME may not exist, or not be writable, for runAsUser
CHECKOUT_RESOURCES: JsonObject = {"requests": {"cpu": "50m", "memory": "64Mi"},
                                  "limits": {"cpu": "500m", "memory": "256Mi"}}
# The restricted Pod Security Standard, for each container (the pod says runAsNonRoot and seccomp too).
LOCKED_DOWN: JsonObject = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                           "runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}


def labels_of(run: Run, sha: str) -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "selfbootstrap-operator", RUN_UID_LABEL: run.uid,
            COMMIT_LABEL: sha[:40]}


def render_job(run: Run, action: CreateValidationJob, checkout_image: str) -> JsonObject:
    """The Job manifest for an action (pure)."""
    labels = labels_of(run, action.sha)
    volumes: list[JsonObject] = [{"name": "workspace", "emptyDir": {}}, {"name": "home", "emptyDir": {}}]
    mounts: list[JsonObject] = [{"name": "workspace", "mountPath": "/workspace"}, {"name": "home", "mountPath": HOME}]
    checkout_mounts = list(mounts)
    if action.secret_name:
        volumes.append({"name": "credentials", "secret": {
            "secretName": action.secret_name, "defaultMode": 0o400,
            "items": [{"key": action.secret_key or "token", "path": "token"}]}})
        checkout_mounts.append({"name": "credentials", "mountPath": "/credentials", "readOnly": True})
    env = {"HOME": HOME, "REPO_URL": action.repository_url, "BRANCH": action.branch, "SHA": action.sha,
           "GIT_USERNAME": action.username}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": action.name, "namespace": run.namespace, "labels": labels,
            "annotations": {f"{m.GROUP}/run": run.name},
            "ownerReferences": [{"apiVersion": f"{m.GROUP}/{m.VERSION}", "kind": m.KIND, "name": run.name,
                                 "uid": run.uid, "controller": True, "blockOwnerDeletion": False}],
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": action.timeout_seconds,
            "ttlSecondsAfterFinished": action.ttl_seconds_after_finished,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": action.service_account_name,
                    "automountServiceAccountToken": action.automount_service_account_token,
                    "enableServiceLinks": False,
                    # fsGroup: the secret's token file (mode 0400) becomes group-readable for the checkout.
                    "securityContext": {"runAsNonRoot": True, "runAsUser": action.run_as_user,
                                        "fsGroup": action.run_as_user,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "volumes": volumes,
                    "initContainers": [{
                        "name": "checkout", "image": checkout_image, "command": ["/bin/sh", "-c", CHECKOUT_SCRIPT],
                        "env": [{"name": k, "value": v} for k, v in env.items()],
                        "volumeMounts": checkout_mounts, "securityContext": LOCKED_DOWN,
                        "resources": CHECKOUT_RESOURCES, "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                    "containers": [{
                        "name": "validate", "image": action.image, "command": list(action.command),
                        "workingDir": "/workspace", "env": [{"name": "HOME", "value": HOME}],
                        "volumeMounts": mounts, "securityContext": LOCKED_DOWN,
                        "resources": action.resources.dump(), "terminationMessagePolicy": "FallbackToLogsOnError",
                    }],
                },
            },
        },
    }


def job_outcome(job: JsonObject, pods: list[JsonObject]) -> tuple[ValidationState, str]:
    """How a Job stands, from its conditions and its pods' termination messages (pure)."""
    conditions = {text(c.get("type")): c for c in objects(path(job, "status", "conditions"))
                  if c.get("status") == "True"}
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return ValidationState.SUCCEEDED, "validation passed"
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is None:
        return ValidationState.RUNNING, "validation Job running"
    state = ValidationState.TIMED_OUT if failed.get("reason") == "DeadlineExceeded" else ValidationState.FAILED
    detail = _termination_message(pods) or text(failed.get("message")) or text(failed.get("reason")) or "failed"
    return state, detail[:MESSAGE_LIMIT]


def _termination_message(pods: list[JsonObject]) -> str | None:
    for pod in pods:
        statuses = objects(path(pod, "status", "initContainerStatuses")) + \
            objects(path(pod, "status", "containerStatuses"))
        for cs in statuses:
            done = obj(path(cs, "state", "terminated"))
            if done and done.get("exitCode") not in (0, None):
                message = (text(done.get("message")) or "").strip()
                where = f"{text(cs.get('name'))} exited {done.get('exitCode')}"
                return f"{where}: {message}" if message else where
    return None


class JobExecutor:
    def __init__(self, kube: Kube, checkout_image: str) -> None:
        self.kube = kube
        self.checkout_image = checkout_image

    def perform(self, run: Run, action: JobAction) -> ValidationJobStarted | ValidationJobObserved \
            | ValidationJobDeleted | Failed:
        try:
            match action:
                case CreateValidationJob():
                    return self.create(run, action)
                case CheckValidationJob():
                    job = self.kube.read_job(run.namespace, action.name)
                    if job is None:
                        return Failed(reasons.VALIDATION_FAILED, f"the validation Job {action.name} was deleted "
                                                                 "before its outcome was read (by someone, or by its "
                                                                 "ttlSecondsAfterFinished)")
                    state, message = job_outcome(job, self.kube.pods_of_job(run.namespace, action.name))
                    return ValidationJobObserved(state, message)
                case DeleteValidationJob():
                    self.kube.delete_job(run.namespace, action.name)
                    return ValidationJobDeleted()
                case _:
                    assert_never(action)
        except ApiException as err:
            return Failed(reasons.VALIDATION_FAILED, f"{err.status}: {api_message(err)}",
                          retryable=err.status in RETRYABLE_STATUS)
        except (TransportError, OSError) as err:
            return Failed(reasons.RETRYING, f"the API server could not be reached ({type(err).__name__})",
                          retryable=True)

    def create(self, run: Run, action: CreateValidationJob) -> ValidationJobStarted | Failed:
        if action.secret_name:  # the Job sends the token to the repository: the Secret must allow it
            try:
                secret = self.kube.read_secret(run.namespace, action.secret_name, action.secret_key or "token")
            except SecretUnavailableError as err:
                return Failed(reasons.CREDENTIALS_UNAVAILABLE, str(err))
            refused = credentials.refusal(action.secret_name, secret.allowed_urls, [action.repository_url])
            if refused:
                return Failed(reasons.CREDENTIALS_NOT_ALLOWED, refused)
        job = render_job(run, action, self.checkout_image)
        existing = self.kube.create_job(run.namespace, job)
        if existing is not None:  # already there: ours only if made for this run and this commit
            found = strings(path(existing, "metadata", "labels"))
            if (found.get(RUN_UID_LABEL), found.get(COMMIT_LABEL)) != (run.uid, action.sha[:40]):
                return Failed(reasons.VALIDATION_FAILED, f"a Job named {action.name} exists and was not made by "
                                                         f"this run for commit {action.sha[:12]}")
        return ValidationJobStarted(action.name)

