"""The executor hands every action to the adapter that performs it, and returns its result as is."""

from __future__ import annotations

import typing
from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.executor import Executor
from selfbootstrap.adapters.gitexec import GitExecutor
from selfbootstrap.adapters.http import HttpExecutor
from selfbootstrap.adapters.jobs import JobExecutor
from selfbootstrap.adapters.kube import KubeExecutor
from selfbootstrap.adapters.metricproviders import MetricExecutor
from selfbootstrap.adapters.registry import ImageExecutor
from selfbootstrap.core import actions as a
from selfbootstrap.models import HttpCheck, PrometheusMetric, Validation
from tests.unit.factories import run

COMMIT = a.CommitChange("b", "s" * 40, "m", "t")
ACTIONS: dict[str, list[a.Action]] = {
    "kube": [a.PatchDeployment({}), a.RollbackDeployment("rs", []), a.ReleaseWorkload([]),
             a.DeleteStuckPods("db-5a1", (("db-2", "uid"),))],
    "http": [a.ProbeHttp(HttpCheck(url="http://web/"))],
    "metrics": [a.MeasureMetric("m", PrometheusMetric(address="http://prom:9090", query="up"))],
    "images": [a.ResolveImage("registry.example.com/app:v2", (), "default")],
    "jobs": [a.CreateValidationJob("j", "c" * 40, "b", "https://g/r.git", "img", ("make",), "default", False, 60,
                                   None, None, "", 65532, Validation.Resources(), 3600),
             a.CheckValidationJob("j"), a.DeleteValidationJob("j")],
    "git": [a.ResolveBranch("b", "main", "t"), COMMIT, a.PushBranch(COMMIT, "c" * 40),
            a.OpenPullRequest("b", "main", "t", "b"), a.CheckCI("c" * 40),
            a.MergePullRequest(1, "c" * 40, "merge", "t"),
            a.CheckPullRequest(1), a.OpenRevertPullRequest("b-revert", "main", "m" * 40, "t", "b")],
}


def test_every_action_type_has_a_route():
    routed = {type(action) for actions in ACTIONS.values() for action in actions}
    assert routed == set(typing.get_args(a.Action))


@pytest.mark.parametrize("adapter, action", [(k, x) for k, xs in ACTIONS.items() for x in xs],
                         ids=lambda v: v if isinstance(v, str) else type(v).__name__)
def test_each_action_goes_to_its_adapter(adapter, action):
    adapters = {"kube": create_autospec(KubeExecutor, instance=True),
                "http": create_autospec(HttpExecutor, instance=True),
                "git": create_autospec(GitExecutor, instance=True),
                "jobs": create_autospec(JobExecutor, instance=True),
                "metrics": create_autospec(MetricExecutor, instance=True),
                "images": create_autospec(ImageExecutor, instance=True)}
    answer = a.Failed("X", "from " + adapter)
    adapters[adapter].perform.return_value = answer
    executor = Executor(adapters["kube"], adapters["http"], adapters["git"], adapters["jobs"], adapters["metrics"],
                        adapters["images"])

    assert executor.perform(run(), action) is answer
    for name, mock in adapters.items():
        assert mock.perform.called is (name == adapter)
