"""The metric analysis gate (core/gates/analysis.py) and its place in the machine: runs driven end to end
against a fake cluster whose provider answers from a script, and the spec checks admission cannot make."""

from __future__ import annotations

import itertools
import math
from datetime import timedelta
from typing import Any

import pytest

from selfbootstrap.core import record
from selfbootstrap.core.actions import Measured, MeasureMetric
from selfbootstrap.core.gates import analysis as gate
from selfbootstrap.models import RUNS_ANNOTATION, Analysis, PrometheusMetric, WebMetric

from .factories import T0, spec
from .test_machine import CRASHING_POD, HEALTHY_POD, FakeCluster, decide, events, settle

PROMETHEUS = {"address": "http://prometheus:9090", "query": 'error_ratio{release="{{args.release}}"}'}


def analysed(*metrics: dict[str, Any], args: list[dict[str, str]] | None = None, **sections: Any):
    analysis: dict[str, Any] = {"metrics": list(metrics)}
    if args is not None:
        analysis["args"] = args
    return spec(analysis=analysis, restartWatchdog={"enabled": False}, **sections)


def metric(name: str = "errors", **fields: Any) -> dict[str, Any]:
    return {"name": name, "successCondition": "result[0] < 0.05", "provider": {"prometheus": PROMETHEUS},
            **fields}


class MeasuringCluster(FakeCluster):
    """The fake cluster, and a provider answering each measurement from a script (the last answer repeats)."""

    def __init__(self, *answers: Any, pods=(HEALTHY_POD,)):
        super().__init__(pods)
        self.answers = list(answers)
        self.measured: list[MeasureMetric] = []

    def perform(self, action):
        if not isinstance(action, MeasureMetric):
            return super().perform(action)
        self.actions.append("MeasureMetric")
        self.measured.append(action)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            return Measured(action.metric, error=str(answer))
        return Measured(action.metric, result=answer)


def drive(cluster: MeasuringCluster, sp, steps: int = 200):
    st, now, seen, times = None, T0, [], []
    for _ in range(steps):
        d = decide(st, cluster.world(), sp=sp, now=now)
        if d.action is not None:
            seen += events(d)
            if isinstance(d.action, MeasureMetric):
                times.append((now - T0).total_seconds())
            outcome = cluster.perform(d.action)
            d = settle(d.status, cluster.world(), d.action, outcome, sp=sp, now=now)
        seen += events(d)
        st = d.status
        if d.requeue_after is None:
            return st, seen, times
        now += timedelta(seconds=d.requeue_after)
    raise AssertionError(f"run did not finish: {st}")


def test_a_healthy_release_passes_the_analysis_and_succeeds():
    cluster = MeasuringCluster([0.01])
    st, seen, _ = drive(cluster, analysed(metric(interval="10s", count=3)))
    assert (st.phase, st.reason) == ("Succeeded", "Succeeded")
    [g] = st.gates
    assert (g.kind, g.phase, g.finished_at is not None) == ("analysis", "Passed", True)
    [m] = g.metrics
    assert (m.name, m.phase, m.count, m.successful, [x.value for x in m.measurements]) == (
        "errors", "Successful", 3, 3, ["[0.01]"] * 3)
    assert ("Normal", "AnalysisPassed") in seen
    assert cluster.measured[0].provider.query == 'error_ratio{release="v3"}'  # the built-in arg


def test_a_release_whose_error_ratio_is_half_is_rolled_back_with_the_value_in_status():
    cluster = MeasuringCluster([0.5])
    st, seen, _ = drive(cluster, analysed(metric(interval="10s", count=3)))
    assert (st.phase, st.failure_reason, st.rollback_failure_class) == ("RolledBack", "MetricFailed",
                                                                        "analysisFailure")
    assert "[0.5]" in (st.failure_message or "")
    [g] = st.gates
    assert (g.phase, g.metrics[0].phase, g.metrics[0].failed, g.metrics[0].measurements[-1].value) == (
        "Failed", "Failed", 1, "[0.5]")
    assert cluster.actions.count("MeasureMetric") == 1  # the first failure ends it: failureLimit 0
    kept = record.parse(cluster.dep.annotations[RUNS_ANNOTATION])
    assert [(e.run, e.outcome) for e in kept.runs] == [("run-1", "rolledBack")]
    assert ("Warning", "MetricFailed") in seen


def test_the_policy_can_keep_a_release_that_failed_its_analysis():
    cluster = MeasuringCluster([0.5])
    st, _, _ = drive(cluster, analysed(metric(), rollbackPolicy={"onAnalysisFailure": False}))
    assert (st.phase, st.reason, st.rollback_policy_reason) == ("Failed", "MetricFailed",
                                                                "rollbackDisabledForAnalysisFailure")
    assert "RollbackDeployment" not in cluster.actions


@pytest.mark.parametrize("answers, limit, phase, measured", [
    ([0.5, 0.5, 0.01], 2, "Succeeded", 3),  # two failures tolerated, the count reached
    ([0.5, 0.5, 0.5], 2, "RolledBack", 3),  # the third failure exceeds the limit
    ([0.5, 0.01, 0.5, 0.5], 2, "RolledBack", 4),
])
def test_failure_limit_and_count_as_argo_counts_them(answers, limit, phase, measured):
    cluster = MeasuringCluster(*[[a] for a in answers])
    st, _, _ = drive(cluster, analysed(metric(interval="5s", count=len(answers) if phase == "RolledBack"
                                               else 3, failureLimit=limit)))
    assert st.phase == phase
    assert cluster.actions.count("MeasureMetric") == measured


def test_measurements_are_an_interval_apart_after_the_initial_delay():
    cluster = MeasuringCluster([0.0])
    _, _, times = drive(cluster, analysed(metric(interval="30s", initialDelay="1m", count=3)))
    assert [t - times[0] for t in times] == [0, 30, 60]
    assert times[0] >= 60


def test_errors_in_a_row_beyond_the_limit_fail_with_metric_error_and_retry_ten_seconds_apart():
    cluster = MeasuringCluster(Exception("GET http://prometheus:9090 failed: ConnectError"))
    st, _, times = drive(cluster, analysed(metric(interval="1m", count=3)))
    assert (st.phase, st.failure_reason) == ("RolledBack", "MetricError")
    assert len(times) == 5  # consecutiveErrorLimit 4: the fifth error in a row fails
    assert [b - a for a, b in itertools.pairwise(times)] == [10, 10, 10, 10]
    last = st.gates[0].metrics[0].measurements[-1]
    assert (last.phase, last.message) == ("Error", "GET http://prometheus:9090 failed: ConnectError")


@pytest.mark.parametrize("answer, condition, phase, reason", [
    ([], "result[0] < 0.05", "RolledBack", "MetricError"),  # empty: the condition cannot be evaluated
    ([], "size(result) == 0 || result[0] < 0.05", "Succeeded", None),  # a guarded condition decides
    ([math.nan], "result[0] < 0.05", "RolledBack", "MetricFailed"),  # NaN compares false
    ([math.nan], "!isNaN(result[0]) && result[0] < 0.05", "RolledBack", "MetricFailed"),
])
def test_empty_results_and_nan_end_as_documented(answer, condition, phase, reason):
    cluster = MeasuringCluster(answer)
    st, _, _ = drive(cluster, analysed(metric(successCondition=condition)))
    assert (st.phase, st.failure_reason) == (phase, reason)


def test_a_failure_condition_wins_and_neither_is_inconclusive():
    both = {"successCondition": "result[0] < 0.05", "failureCondition": "result[0] > 0.2"}
    st, _, _ = drive(MeasuringCluster([0.1]), analysed(metric(**both)))
    assert (st.phase, st.failure_reason) == ("RolledBack", "MetricInconclusive")
    st, _, _ = drive(MeasuringCluster([0.3]), analysed(metric(**both)))
    assert (st.phase, st.failure_reason) == ("RolledBack", "MetricFailed")


def test_two_metrics_are_measured_each_on_its_own_schedule_and_the_worst_ends_it():
    fast = metric("fast", interval="5s", count=4)
    slow = metric("slow", interval="20s", count=2, successCondition="result[0] < 1")
    cluster = MeasuringCluster([0.01])
    st, _, _ = drive(cluster, analysed(fast, slow))
    assert st.phase == "Succeeded"
    assert [(m.name, m.count) for m in st.gates[0].metrics] == [("fast", 4), ("slow", 2)]


def test_a_crashing_release_ends_the_analysis_at_once():
    """The watchdog's crash signal does not wait for the analysis to end (nor the analysis for the watchdog)."""
    sp = spec(analysis={"metrics": [metric(interval="1m", count=10)]})
    cluster, st, now = MeasuringCluster([0.0]), None, T0
    while st is None or st.phase != "Analyzing":
        d = decide(st, cluster.world(), sp=sp, now=now)
        if d.action is not None:
            d = settle(d.status, cluster.world(), d.action, cluster.perform(d.action), sp=sp, now=now)
        st = d.status
    cluster.pods = (CRASHING_POD,)
    d = decide(st, cluster.world(), sp=sp, now=now)
    assert (d.status.phase, d.status.reason) == ("RollingBack", "RestartWatchdogFailed")


# --- what admission cannot check --------------------------------------------------------------------


@pytest.mark.parametrize("fields, says", [
    ({"successCondition": "result[0] <"}, "spec.analysis.metrics[0].successCondition"),
    ({"failureCondition": "result[0] ==== 1"}, "spec.analysis.metrics[0].failureCondition"),
    ({"provider": {"prometheus": {**PROMETHEUS, "query": "up{job='{{args.job}}'}"}}},
     "spec.analysis.metrics[0].provider.prometheus.query: {{args.job}} is not defined"),
    ({"provider": {"web": {"url": "http://web/{{args.path}}"}}}, "provider.web.url: {{args.path}}"),
    ({"count": 3}, "spec.analysis.metrics[0]: metric \"errors\": interval must be specified when count > 1"),
])
def test_problems_name_the_field(fields, says):
    spec_ = Analysis.model_validate({"metrics": [metric(**fields)]})
    problem = gate.problem(spec_)
    assert problem is not None and says in problem


def test_a_valid_analysis_has_no_problem_and_defined_args_resolve():
    spec_ = Analysis.model_validate({"args": [{"name": "job", "value": "web"}], "metrics": [metric(
        provider={"prometheus": {**PROMETHEUS, "query": "up{job='{{args.job}}',r='{{ args.release }}'}"}})]})
    assert gate.problem(spec_) is None
    provider = gate.resolved(spec_.metrics[0], {"job": "web", "release": "v3"})
    assert isinstance(provider, PrometheusMetric) and provider.query == "up{job='web',r='v3'}"


def test_a_run_with_an_invalid_condition_fails_before_anything_is_done():
    cluster = MeasuringCluster([0.0])
    st, _, _ = drive(cluster, analysed(metric(successCondition="result[0] <")))
    assert (st.phase, st.reason) == ("Failed", "InvalidSpec")
    assert "successCondition" in (st.message or "") and cluster.actions == []


def test_only_urls_without_args_are_checked_before_the_run():
    spec_ = Analysis.model_validate({"metrics": [
        metric("a"), metric("b", provider={"web": {"url": "http://{{args.release}}.web/"}})]})
    assert gate.destinations(spec_) == ["http://prometheus:9090"]


@pytest.mark.parametrize("answer, shown", [
    (0.5, "0.5"), (True, "true"), (None, "null"), ([1, 2.5], "[1,2.5]"),
    ("\x1b[2J secret", "(a string of 11 characters)"), ({"token": "x"}, "(an object of 1 keys)"),
    (["a"], "(a list of 1 values)"),
])
def test_a_web_answer_is_shown_only_when_it_is_numbers(answer, shown):
    assert gate.shown(answer) == shown


def test_a_web_metric_judges_the_whole_answer_but_shows_only_its_size():
    web = {"web": {"url": "http://web/status", "jsonPath": "{$.state}"}}
    cluster = MeasuringCluster("ok")
    st, _, _ = drive(cluster, analysed(metric(provider=web, successCondition="result == 'ok'")))
    assert st.phase == "Succeeded"
    assert st.gates[0].metrics[0].measurements[0].value == "(a string of 2 characters)"
    assert isinstance(cluster.measured[0].provider, WebMetric)


# --- job metrics ---------------------------------------------------------------------------------------

JOB = {"job": {"spec": {"template": {"spec": {"containers": [{"name": "check", "image": "check:1"}],
                                             "restartPolicy": "Never"}}}}}


class JobCluster(MeasuringCluster):
    """Each measurement's Job runs for two looks, then ends with the next scripted outcome."""

    def __init__(self, *outcomes: bool):
        super().__init__(None)
        self.outcomes = list(outcomes)
        self.looks: dict[str | None, int] = {}

    def perform(self, action):
        if not isinstance(action, MeasureMetric):
            return super().perform(action)
        self.actions.append("MeasureMetric")
        self.measured.append(action)
        seen = self.looks[action.job_name] = self.looks.get(action.job_name, 0) + 1
        if seen < 3:
            return Measured(action.metric, pending=True)
        return Measured(action.metric, result=self.outcomes.pop(0))


@pytest.mark.parametrize("outcomes, phase", [([True, True], "Succeeded"), ([True, False], "RolledBack")])
def test_a_job_metric_is_the_job_s_outcome_and_each_measurement_has_its_own_job(outcomes, phase):
    cluster = JobCluster(*outcomes)
    st, _, _ = drive(cluster, analysed(metric(provider=JOB, successCondition=None, interval="10s", count=2)))
    assert st.phase == phase
    names = list(cluster.looks)
    assert len(names) == 2 and all(cluster.looks[n] == 3 for n in names)  # looked at until done, never remade
    assert names[0].endswith("-errors-1") and names[1].endswith("-errors-2") and names[0].startswith("run-1-")
    assert [m.value for m in st.gates[0].metrics[0].measurements] == [
        "succeeded" if ok else "failed" for ok in outcomes]


def test_a_job_metric_contacts_nothing_and_takes_no_args():
    spec_ = Analysis.model_validate({"metrics": [metric(provider=JOB, successCondition=None)]})
    assert gate.destinations(spec_) == [] and gate.problem(spec_) is None


def test_job_names_are_dns_labels_for_long_names():
    name = gate.job_name("a" * 30 + "-12345678", "m" * 63, 1000)
    assert len(name) <= 63 and name.endswith("-1000") and "--" not in name


# --- Argo Rollouts' AnalysisTemplates ----------------------------------------------------------------------

ARGO_TEMPLATE = {"spec": {
    "args": [{"name": "service", "value": "web"}, {"name": "namespace", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.namespace"}}}, {"name": "threshold", "value": "0.05"}],
    "metrics": [{"name": "success-rate", "interval": "1m", "count": 3, "successCondition": "result[0] >= 0.95",
                 "provider": {"prometheus": {"address": "http://prometheus:9090",
                                             "query": "rate(ok{service='{{args.service}}'}[1m])"}}}]}}


def with_templates(*refs: dict[str, Any], **fields: Any) -> Analysis:
    return Analysis.model_validate({"templates": list(refs), **fields})


def test_a_template_s_metrics_and_args_join_the_run_s_and_the_run_s_args_win():
    spec_ = with_templates({"templateName": "success-rate"}, args=[{"name": "service", "value": "checkout"}],
                           metrics=[metric()])
    resolved = gate.resolved_analysis(spec_, {"success-rate": ARGO_TEMPLATE})
    assert isinstance(resolved, Analysis)
    assert [m.name for m in resolved.metrics] == ["errors", "success-rate"]
    assert {a.name: a.value for a in resolved.args} == {"service": "checkout", "threshold": "0.05"}
    assert gate.problem(resolved) is None


@pytest.mark.parametrize("templates, says", [
    ({}, "spec.analysis.templates[0] (AnalysisTemplate success-rate): not found in the cluster"),
    ({"success-rate": {"spec": {"metrics": [{"name": "dd", "provider": {"datadog": {"query": "q"}}}]}}},
     "metric 'dd' uses the datadog provider; this operator measures with prometheus, web, job"),
    ({"success-rate": {"spec": {"args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s"}}}],
                                "metrics": []}}}, "arg 'token' has no value of its own"),
    ({"success-rate": {"spec": {"metrics": [{"name": "errors", "provider": {"web": {"url": "http://x/"}}}]}}},
     "metric 'errors' is defined twice"),
    ({"success-rate": {"spec": {"metrics": [{"name": "m", "count": "{{args.count}}", "provider": {
        "web": {"url": "http://x/"}}}]}}}, "metric 'm': count:"),
])
def test_an_unusable_template_is_named_with_why(templates, says):
    spec_ = with_templates({"templateName": "success-rate"}, metrics=[metric()])
    problem = gate.resolved_analysis(spec_, templates)
    assert isinstance(problem, str) and says in problem, problem


def test_a_cluster_template_is_looked_up_as_one():
    spec_ = with_templates({"templateName": "success-rate", "clusterScope": True})
    assert gate.template_key(spec_.templates[0]) == "cluster/success-rate"
    assert isinstance(gate.resolved_analysis(spec_, {"cluster/success-rate": ARGO_TEMPLATE}), Analysis)
    assert isinstance(gate.resolved_analysis(spec_, {"success-rate": ARGO_TEMPLATE}), str)


def test_a_run_whose_template_is_missing_fails_before_anything_is_done():
    cluster = MeasuringCluster([0.0])
    st, _, _ = drive(cluster, spec(analysis={"templates": [{"templateName": "gone"}]}))
    assert (st.phase, st.reason) == ("Failed", "InvalidSpec")
    assert "AnalysisTemplate gone): not found" in (st.message or "") and cluster.actions == []


# --- analysis during the rollout (startAfter: firstNewPod) ------------------------------------------------


class SlowRollout(MeasuringCluster):
    """The deploy rolls out over `steps` looks; a pod of the new release is ready from the start."""

    def __init__(self, *answers: Any, steps: int = 6):
        super().__init__(*answers)
        self.steps = steps

    def world(self):
        from dataclasses import replace as copy

        w = super().world()
        rolling_out = "PatchDeployment" in self.actions and "RollbackDeployment" not in self.actions
        if w.deployment is not None and rolling_out and self.steps > 0:
            self.steps -= 1
            return copy(w, deployment=copy(w.deployment, updated_replicas=0, available_replicas=0))
        return w


def test_a_bad_release_fails_its_analysis_before_it_has_rolled_out():
    cluster = SlowRollout([0.5], steps=50)
    sp = analysed(metric(interval="1s", count=5))
    sp = sp.model_copy(update={"analysis": sp.analysis.model_copy(update={"start_after": "firstNewPod"})})
    st, _, _ = drive(cluster, sp)
    assert (st.phase, st.failure_reason) == ("RolledBack", "MetricFailed")
    assert "VerifyingHealth" in [t.phase for t in st.history] and "Analyzing" not in [t.phase for t in st.history]
    assert cluster.steps > 0  # the rollout had not completed when the metric failed it


def test_measurements_taken_during_the_rollout_count_after_it():
    cluster = SlowRollout([0.01], steps=4)
    sp = analysed(metric(interval="1s", count=4))
    sp = sp.model_copy(update={"analysis": sp.analysis.model_copy(update={"start_after": "firstNewPod"})})
    st, _, times = drive(cluster, sp)
    assert st.phase == "Succeeded"
    [m] = st.gates[0].metrics
    assert m.count == 4 and len(times) == 4  # not begun again when the rollout completed


def test_by_default_the_analysis_waits_for_the_rollout():
    cluster = SlowRollout([0.5], steps=5)
    st, _, _ = drive(cluster, analysed(metric(interval="1s", count=5)))
    assert st.failure_reason == "MetricFailed" and "Analyzing" in [t.phase for t in st.history]
    assert cluster.steps == 0
