"""The metric analysis gate: spec.analysis measured as Argo Rollouts measures an AnalysisRun.

Pure. The judging is core/analysis.py's (Argo's semantics); here the spec becomes its metrics, the
gate's status becomes their states and back, the args are substituted, and the next step is chosen:
measure a metric that is due, wait until one is, or end with the analysis's verdict.

What status shows of a result: a Prometheus result is numbers, shown as Argo shows them; a web
answer is shown only when it is a number, a boolean or null, and otherwise by its kind and size, so
that no text a server chose reaches status (the conditions still judge the whole answer).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeAlias, assert_never

from pydantic import ValidationError

from ...models import (
    Analysis,
    AnalysisArg,
    AnalysisMetric,
    AnalysisStart,
    AnalysisTemplateRef,
    FailureClass,
    GatePhase,
    GateStatus,
    JobMetric,
    MeasurementStatus,
    MetricStatus,
    Phase,
    PrometheusMetric,
    RunSpec,
    WebHeader,
    WebMetric,
)
from .. import analysis, reasons
from ..actions import Action, Measured, MeasureMetric, Result
from ..actions import Failed as ActionFailed
from ..draft import Draft
from ..jsontypes import JsonObject, JsonValue, obj, objects, text
from ..run import Run
from ..text import NAME_LIMIT, printable
from ..world import World
from .protocol import Act, Fail, Hold, Pass, Step, closed, entry, set_gate

KIND: Final = "analysis"
BUILT_IN_ARGS: Final = ("release", "previousRelease", "deployment", "namespace", "run")
_ARG: Final = re.compile(r"\{\{\s*args\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}")


# --- the spec -------------------------------------------------------------------------------------


def metric_of(spec: AnalysisMetric) -> analysis.Metric:
    """The judging settings of a metric; ValueError names what is wrong."""
    return analysis.Metric(
        name=spec.name,
        interval=analysis.parse_duration(spec.interval) if spec.interval else None,
        initial_delay=analysis.parse_duration(spec.initial_delay) if spec.initial_delay else 0.0,
        count=spec.count or None,
        failure_limit=spec.failure_limit,
        inconclusive_limit=spec.inconclusive_limit,
        consecutive_error_limit=spec.consecutive_error_limit,
        success_condition=spec.success_condition,
        failure_condition=spec.failure_condition,
    )


def _templated(provider: PrometheusMetric | WebMetric | JobMetric) -> dict[str, str]:
    """The provider's fields that take {{args.NAME}}, by their spec path below the provider."""
    match provider:
        case PrometheusMetric():
            return {"prometheus.query": provider.query, "prometheus.address": provider.address}
        case WebMetric():
            fields = {"web.url": provider.url, **({"web.body": provider.body} if provider.body else {})}
            fields.update({f"web.headers[{i}].value": h.value for i, h in enumerate(provider.headers)})
            return fields
        case JobMetric():
            return {}  # a Job's spec is the author's own: nothing is substituted in it
        case _:
            assert_never(provider)


def _provider(spec: AnalysisMetric) -> PrometheusMetric | WebMetric | JobMetric:
    chosen = spec.provider.prometheus or spec.provider.web or spec.provider.job
    assert chosen is not None, "admission requires exactly one provider"
    return chosen


def problem(spec: Analysis) -> str | None:
    """What admission could not check (conditions are CEL, args are named in text), naming the field."""
    defined = {*BUILT_IN_ARGS, *(a.name for a in spec.args)}
    for i, m in enumerate(spec.metrics):
        where = f"spec.analysis.metrics[{i}]"
        try:
            metric_of(m)
        except ValueError as err:
            return f"{where}: {err}"
        for field, expression in (("successCondition", m.success_condition),
                                  ("failureCondition", m.failure_condition)):
            wrong = analysis.check_condition(expression) if expression else None
            if wrong is not None:
                return f"{where}.{field}: {wrong}"
        for field, written in _templated(_provider(m)).items():
            unknown = sorted({name for name in _ARG.findall(written) if name not in defined})
            if unknown:
                return (f"{where}.provider.{field}: {{{{args.{unknown[0]}}}}} is not defined in "
                        f"spec.analysis.args nor built in ({', '.join(BUILT_IN_ARGS)})")
    return None


def destinations(spec: Analysis) -> list[str]:
    """The URLs the analysis contacts that are known before it runs (no {{args}} in them)."""
    urls = []
    for m in spec.metrics:
        provider = _provider(m)
        if isinstance(provider, JobMetric):
            continue  # a Job contacts nothing on the operator's behalf
        url = provider.address if isinstance(provider, PrometheusMetric) else provider.url
        if not _ARG.search(url):
            urls.append(url)
    return urls


def substitute(text: str, args: Mapping[str, str]) -> str:
    return _ARG.sub(lambda found: args.get(found[1], found[0]), text)


def resolved(spec: AnalysisMetric, args: Mapping[str, str]) -> PrometheusMetric | WebMetric | JobMetric:
    """The provider's settings with the args in place."""
    provider = _provider(spec)
    match provider:
        case PrometheusMetric():
            return provider.model_copy(update={"address": substitute(provider.address, args),
                                               "query": substitute(provider.query, args)})
        case WebMetric():
            return provider.model_copy(update={
                "url": substitute(provider.url, args),
                "body": substitute(provider.body, args) if provider.body is not None else None,
                "headers": [WebHeader(key=h.key, value=substitute(h.value, args)) for h in provider.headers]})
        case JobMetric():
            return provider
        case _:
            assert_never(provider)


# --- Argo Rollouts' AnalysisTemplates ------------------------------------------------------------------

PROVIDERS: Final = ("prometheus", "web", "job")


def template_key(ref: AnalysisTemplateRef) -> str:
    return f"cluster/{ref.template_name}" if ref.cluster_scope else ref.template_name


def resolved_analysis(spec: Analysis, templates: Mapping[str, JsonObject | None]) -> Analysis | str:
    """The run's analysis with its templates' metrics and args joined in (the run's args win over a
    template's defaults), or what makes a template unusable, naming it."""
    if not spec.templates:
        return spec
    metrics, args = list(spec.metrics), {a.name: a.value for a in spec.args}
    for i, ref in enumerate(spec.templates):
        kind = "ClusterAnalysisTemplate" if ref.cluster_scope else "AnalysisTemplate"
        where = f"spec.analysis.templates[{i}] ({kind} {printable(ref.template_name, NAME_LIMIT)})"
        body = templates.get(template_key(ref))
        if body is None:
            return f"{where}: not found in the cluster (or not readable by the operator)"
        tspec = obj(body.get("spec"))
        for raw in objects(tspec.get("metrics")):
            name = printable(text(raw.get("name")) or "?", NAME_LIMIT)
            other = [k for k in obj(raw.get("provider")) if k not in PROVIDERS]
            if other:
                return (f"{where}: metric {name!r} uses the {printable(other[0], NAME_LIMIT)} provider; this operator "
                        f"measures with {', '.join(PROVIDERS)}")
            try:
                metrics.append(AnalysisMetric.model_validate(raw))
            except ValidationError as err:
                first = err.errors()[0]
                field = ".".join(str(x) for x in first["loc"])
                return f"{where}: metric {name!r}: {field}: {printable(first['msg'], NAME_LIMIT)}"
        for raw in objects(tspec.get("args")):
            arg = text(raw.get("name")) or ""
            if arg in BUILT_IN_ARGS or arg in args:
                continue  # built in (Argo templates often take the namespace from a fieldRef), or set by the run
            if "valueFrom" in raw or not isinstance(raw.get("value"), str):
                return (f"{where}: arg {printable(arg, NAME_LIMIT)!r} has no value of its own; set it in "
                        f"spec.analysis.args")
            args[arg] = text(raw.get("value")) or ""
    names = [m.name for m in metrics]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        return f"spec.analysis: metric {twice!r} is defined twice (in the spec and a template, or in two templates)"
    if len(metrics) > 16:
        return f"spec.analysis: {len(metrics)} metrics with the templates' (at most 16)"
    return Analysis(args=[AnalysisArg(name=k, value=v) for k, v in args.items()], metrics=metrics)


# --- the gate's status and the metrics' states -------------------------------------------------------


def begin(now: datetime) -> GateStatus:
    return GateStatus(name=KIND, kind=KIND, phase=GatePhase.RUNNING, started_at=now,
                      message="the first measurements are due")


def current(gates: Sequence[GateStatus]) -> GateStatus | None:
    return entry(gates, KIND)


def _state(m: MetricStatus) -> analysis.MetricState:
    return analysis.MetricState(
        measurements=tuple(analysis.Measurement(analysis.MeasurementPhase(x.phase), x.value, x.finished_at,
                                                x.message or "") for x in m.measurements),
        successful=m.successful, failed=m.failed, inconclusive=m.inconclusive, error=m.error,
        consecutive_error=m.consecutive_error)


def states(gate: GateStatus) -> dict[str, analysis.MetricState]:
    return {m.name: _state(m) for m in gate.metrics}


def _metric_status(name: str, state: analysis.MetricState, verdict: analysis.MetricVerdict) -> MetricStatus:
    phase, message = _phase_of(verdict)
    return MetricStatus(
        name=name, phase=phase, message=message, count=state.count, successful=state.successful,
        failed=state.failed, inconclusive=state.inconclusive, error=state.error,
        consecutive_error=state.consecutive_error,
        measurements=[MeasurementStatus(phase=x.phase.value, value=x.value, finished_at=x.at,
                                        message=x.message or None) for x in state.measurements])


def _phase_of(verdict: analysis.MetricVerdict) -> tuple[str, str | None]:
    match verdict:
        case analysis.Running():
            return "Running", None
        case analysis.Passed():
            return "Successful", verdict.message
        case analysis.Failed():
            return ("Error" if verdict.reason == analysis.METRIC_ERROR else "Failed"), verdict.message
        case analysis.Inconclusive():
            return "Inconclusive", verdict.message
        case _:
            assert_never(verdict)


# --- the next step ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    action: MeasureMetric


@dataclass(frozen=True)
class WaitUntil:
    at: datetime


@dataclass(frozen=True)
class Passed:
    message: str


@dataclass(frozen=True)
class Failed:
    reason: str  # analysis.METRIC_FAILED, METRIC_ERROR or METRIC_INCONCLUSIVE
    message: str


AnalysisStep: TypeAlias = Measure | WaitUntil | Passed | Failed


def job_name(prefix: str, metric: str, number: int) -> str:
    """<prefix>-<metric>-<n>: the Job of a job metric's n-th measurement, a DNS label (at most 63)."""
    suffix = f"-{number}"
    return f"{prefix[:63 - len(suffix) - 1 - min(len(metric), 20)]}-{metric[:20]}{suffix}".replace("--", "-")


def next_step(spec: Analysis, gate: GateStatus, args: Mapping[str, str], now: datetime,
              job_prefix: str = "") -> AnalysisStep:
    """Measure the metric due first, wait for the next one, or end with the verdict of all. A job metric's
    Job is named after the run (job_prefix), the metric and the measurement's number."""
    metrics = [metric_of(m) for m in spec.metrics]
    started = gate.started_at or now
    known = states(gate)
    verdict = analysis.summarize(metrics, known, started)
    match verdict:
        case analysis.AnalysisFailed():
            return Failed(verdict.reason, verdict.message)
        case analysis.AnalysisPassed():
            return Passed(verdict.message)
        case analysis.AnalysisRunning():
            if verdict.next_at > now:
                return WaitUntil(verdict.next_at)
            due = min((m for m in metrics if _due(m, known, started, now)),
                      key=lambda m: analysis.next_measurement_at(m, known.get(m.name, analysis.MetricState()),
                                                                 started) or now)
            by_name = {m.name: m for m in spec.metrics}
            provider = resolved(by_name[due.name], args)
            state = known.get(due.name, analysis.MetricState())
            job = job_name(job_prefix, due.name, state.count + state.error + 1) \
                if isinstance(provider, JobMetric) else None
            return Measure(MeasureMetric(due.name, provider, job))
        case _:
            assert_never(verdict)


def _due(metric: analysis.Metric, known: Mapping[str, analysis.MetricState], started: datetime,
         now: datetime) -> bool:
    at = analysis.next_measurement_at(metric, known.get(metric.name, analysis.MetricState()), started)
    return at is not None and at <= now


def measured(spec: Analysis, gate: GateStatus, result: Measured, now: datetime) -> GateStatus:
    """The gate with the measurement counted."""
    by_name = {m.name: m for m in spec.metrics}
    if result.metric not in by_name:  # the spec cannot change during a run; a stale result is dropped
        return gate
    m = by_name[result.metric]
    metric = metric_of(m)
    state = states(gate).get(m.name, analysis.MetricState())
    if result.error is not None:
        measurement = analysis.provider_error(result.error, now)
    elif m.provider.job is not None and not (metric.success_condition or metric.failure_condition):
        succeeded = result.result is True  # Argo's job provider: the Job's own outcome is the verdict
        measurement = analysis.Measurement(
            analysis.MeasurementPhase.SUCCESSFUL if succeeded else analysis.MeasurementPhase.FAILED,
            "succeeded" if succeeded else "failed", now)
    else:
        judged = analysis.evaluate(result.result, metric.success_condition, metric.failure_condition)
        if m.provider.web is not None:
            judged = analysis.Evaluation(judged.phase, shown(result.result), judged.message)
        measurement = judged.at(now)
    state = analysis.observe(metric, state, measurement)
    updated = _metric_status(m.name, state, analysis.verdict(metric, state))
    others = [x for x in gate.metrics if x.name != m.name]
    order = {x.name: i for i, x in enumerate(spec.metrics)}
    metrics = sorted([*others, updated], key=lambda x: order.get(x.name, len(order)))
    return gate.model_copy(update={"metrics": metrics, "message": _summary(metrics)})


def shown(result: JsonValue) -> str:
    """A web answer as status shows it: a number, a boolean or null as it is; anything else by its size."""
    match result:
        case None | bool() | int() | float():
            return analysis.render(result)
        case str():
            return f"(a string of {len(result)} characters)"
        case Mapping():
            return f"(an object of {len(result)} keys)"
        case Sequence():
            if all(x is None or isinstance(x, bool | int | float) for x in result) and len(result) <= 16:
                return analysis.render(result)
            return f"(a list of {len(result)} values)"
        case _:
            assert_never(result)


def _summary(metrics: Sequence[MetricStatus]) -> str:
    parts = []
    for m in metrics:
        last = m.measurements[-1] if m.measurements else None
        parts.append(f"{m.name}: {m.phase}" + (f", last {last.value or last.phase}" if last else ""))
    return printable("; ".join(parts))


# --- the gate --------------------------------------------------------------------------------------------

JOB_POLL_SECONDS: Final = 2.0  # how soon to look again at a metric's Job that still runs
WATCH_SECONDS: Final = 30.0  # at most this long between looks: the watches wake the run before
MIN_WAIT_SECONDS: Final = 0.1


def args_of(d: Draft, analysis_: Analysis) -> dict[str, str]:
    """The analysis's args: the spec's (and its templates') and the built-in ones."""
    spec, s = d.run.spec, d.status
    return {**{a.name: a.value for a in analysis_.args},
            "release": s.deployed_release_id or "", "previousRelease": s.previous_release_id or "",
            "deployment": spec.target.workload, "namespace": d.run.namespace, "run": d.run.name}


def _analysis(d: Draft, world: World) -> Analysis | str:
    assert d.run.spec.analysis is not None, "the analysis gate runs only with spec.analysis"
    return resolved_analysis(d.run.spec.analysis, world.analysis_templates)


def job_prefix(run: Run) -> str:
    """The start of the run's metric Jobs' names: the run's name as a DNS label and a digest of its uid, so
    that a run made again under the same name never finds the Jobs of the one before."""
    stem = re.sub(r"[^a-z0-9-]", "-", run.name.lower())[:30].strip("-") or "run"
    return f"{stem}-{hashlib.sha256(run.uid.encode()).hexdigest()[:8]}"


class MetricAnalysis:
    kind: Final = KIND
    phase: Final = Phase.ANALYZING
    fails_fast_on_crash: Final = True

    def enabled(self, spec: RunSpec) -> bool:
        return spec.analysis is not None

    def describe(self, spec: RunSpec) -> tuple[str, ...]:
        assert spec.analysis is not None
        out = []
        for metric in spec.analysis.metrics:
            provider = "prometheus" if metric.provider.prometheus else "web" if metric.provider.web else "job"
            count = f"{metric.count} measurements" if metric.count else "measured"
            every = f" every {metric.interval}" if metric.interval else ""
            out.append(f"analysis: metric {metric.name} ({provider}), {count}{every}, success when "
                       f"{metric.success_condition or '-'}, failure when {metric.failure_condition or '-'}")
        return tuple(out)

    def during_rollout(self, spec: RunSpec) -> bool:
        return spec.analysis is not None and spec.analysis.start_after == AnalysisStart.FIRST_NEW_POD

    def enter(self, d: Draft, message: str) -> None:
        if current(d.status.gates) is None:  # begun during the rollout: its measurements so far count
            set_gate(d, begin(d.now))
        d.enter(Phase.ANALYZING, reasons.ANALYZING, f"{message}; analysing the release's metrics")

    def step(self, d: Draft, world: World) -> Step:
        spec = _analysis(d, world)
        if isinstance(spec, str):  # a template went away or changed since the run started
            return Fail(FailureClass.ANALYSIS, reasons.INVALID_SPEC, spec)
        gate = current(d.status.gates) or begin(d.now)
        step = next_step(spec, gate, args_of(d, spec), d.now, job_prefix(d.run))
        match step:
            case Measure():
                return Act(step.action, MIN_WAIT_SECONDS)
            case WaitUntil():
                return Hold(max(MIN_WAIT_SECONDS, min(WATCH_SECONDS, (step.at - d.now).total_seconds())))
            case Passed():
                set_gate(d, closed(gate, GatePhase.PASSED, step.message, d.now))
                d.normal(reasons.ANALYSIS_PASSED, f"analysis passed: {step.message}")
                return Pass(f"analysis passed: {step.message}")
            case Failed():
                set_gate(d, closed(gate, GatePhase.FAILED, step.message, d.now))
                return Fail(FailureClass.ANALYSIS, step.reason, step.message)
            case _:
                assert_never(step)

    def owns(self, action: Action) -> bool:
        return isinstance(action, MeasureMetric)

    def settle(self, d: Draft, world: World, action: Action, result: Result) -> Step:
        assert isinstance(result, Measured), "a MeasureMetric's result is Measured"
        spec, gate = _analysis(d, world), current(d.status.gates)
        if isinstance(spec, str) or gate is None or gate.phase != GatePhase.RUNNING \
                or d.status.phase not in (Phase.ANALYZING, Phase.VERIFYING_HEALTH):
            return Hold(0)  # the run moved on while the measurement was taken: nothing to count
        if result.pending:  # a metric's Job still runs: look again shortly, nothing counted yet
            return Hold(JOB_POLL_SECONDS)
        updated = measured(spec, gate, result, d.now)
        set_gate(d, updated)
        if d.status.phase == Phase.ANALYZING:  # during the rollout, the rollout's progress stays the message
            d.enter(Phase.ANALYZING, reasons.MEASURED, updated.message or "")
        return Hold(0)

    def failed(self, d: Draft, world: World, action: Action, failure: ActionFailed) -> Step:
        assert isinstance(action, MeasureMetric)
        return self.settle(d, world, action, Measured(action.metric, error=failure.message))  # an Error


GATE: Final = MetricAnalysis()
