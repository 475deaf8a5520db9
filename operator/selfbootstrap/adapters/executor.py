"""The shell's one entry point for side effects: each action goes to the adapter that performs it."""

from __future__ import annotations

from typing import assert_never

from ..core.actions import (
    Action,
    CheckCI,
    CheckPullRequest,
    CheckValidationJob,
    CommitChange,
    CreateValidationJob,
    DeleteStuckPods,
    DeleteValidationJob,
    MeasureMetric,
    MergePullRequest,
    OpenPullRequest,
    OpenRevertPullRequest,
    PatchDeployment,
    ProbeHttp,
    PushBranch,
    ReleaseWorkload,
    ResolveBranch,
    ResolveImage,
    Result,
    RollbackDeployment,
)
from ..core.run import Run
from .gitexec import GitExecutor
from .http import HttpExecutor
from .jobs import JobExecutor
from .kube import KubeExecutor
from .metricproviders import MetricExecutor
from .registry import ImageExecutor


class Executor:
    def __init__(self, kube: KubeExecutor, http: HttpExecutor, git: GitExecutor, jobs: JobExecutor,
                 metrics: MetricExecutor, images: ImageExecutor) -> None:
        self.kube, self.http, self.git, self.jobs, self.metrics = kube, http, git, jobs, metrics
        self.images = images

    def perform(self, run: Run, action: Action) -> Result:
        match action:
            case PatchDeployment() | RollbackDeployment() | ReleaseWorkload() | DeleteStuckPods():
                return self.kube.perform(run, action)
            case ProbeHttp():
                return self.http.perform(action)
            case MeasureMetric():
                return self.metrics.perform(run, action)
            case ResolveImage():
                return self.images.perform(run, action)
            case ResolveBranch() | CommitChange() | PushBranch() | OpenPullRequest() | CheckCI() \
                    | MergePullRequest() | CheckPullRequest() | OpenRevertPullRequest():
                return self.git.perform(run, action)
            case CreateValidationJob() | CheckValidationJob() | DeleteValidationJob():
                return self.jobs.perform(run, action)
            case _:
                assert_never(action)
