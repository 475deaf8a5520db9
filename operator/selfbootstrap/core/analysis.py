"""Metric analysis as Argo Rollouts does it: results judged into measurements, measurements into verdicts.

Pure: a provider (Prometheus, a web endpoint: I/O, elsewhere) hands over what it got as plain data,
and the clock is read by the caller. Here a result becomes a measurement (`evaluate`), measurements
are counted (`observe`), the counts against the metric's limits give the metric's verdict
(`verdict`), the time of its next measurement (`next_measurement_at`), and the verdicts of all
metrics give the analysis's (`summarize`).

The semantics are Argo Rollouts' (github.com/argoproj/argo-rollouts), read in its code:
- one result (utils/evaluate/evaluate.go, EvaluateResult): with no condition a measurement is
  Successful; with only a success condition, not success is Failed; with only a failure condition,
  not failure is Successful; with both, failure wins, then success, and neither is Inconclusive.
  A condition that cannot be evaluated makes the measurement an Error (success is evaluated first).
- Prometheus results (metricproviders/prometheus/prometheus.go, processResponse): a scalar is a
  number, a vector the list of its samples' values, shown as "0.5" and "[0.5,0.25]" (Go's shortest
  decimal, no exponent: "NaN", "+Inf"). An empty vector is not special: it is `[]`, so a condition
  that reads `result[0]` cannot be evaluated and the measurement is an Error (Argo's message says the
  result was empty, as ours does); one that guards it (`size(result) == 0 || result[0] < 0.01`)
  decides. No condition at all is Successful, empty or not. NaN compares false with everything, as
  in Go: `result[0] >= 0.95` is false, so a success condition fails on NaN (Failed, or Inconclusive
  beside a failure condition), while a lone failure condition such as `result[0] > 0.01` is not
  true either, so NaN is Successful. Conditions that must not pass on NaN say so: `isNaN` and
  `isInf` are defined, as in Argo's expression environment.
- web results (metricproviders/webmetric/webmetric.go): the JSON value, shown as compact JSON.
- counting (analysis/analysis.go, runMeasurements): an Error counts as an error and a consecutive
  error, not towards `count`; any other measurement counts towards `count` and ends a run of errors.
  The last 10 measurements are kept (DefaultMeasurementHistoryLimit).
- a metric's verdict (analysis/analysis.go, assessMetricStatus and
  assessMetricFailureInconclusiveOrError): a limit is exceeded when its counter is strictly greater
  (`failed > failureLimit`, `inconclusive > inconclusiveLimit`, `consecutiveErrors >
  consecutiveErrorLimit`), so the defaults 0, 0 and 4 (utils/defaults: DefaultConsecutiveErrorLimit)
  fail on the first Failed, the first Inconclusive and the fifth Error in a row. When several are
  exceeded, errors win, then inconclusive, then failed (Argo assigns them in that order, the last
  one standing). Else the metric passes once `count` measurements counted, failures within the limit
  included. `count` unset is 1 without an interval and unbounded with one (Metric.EffectiveCount):
  such a metric runs until the analysis ends, and then passes, as does one that never measured.
  A metric's verdict, once reached, is final: later measurements are not counted.
- timing (analysis/analysis.go, generateMetricTasks and calculateNextReconcileTime): the first
  measurement after the initial delay, each next one an interval after the last finished, and after
  an Error 10 s later whatever the interval (DefaultErrorRetryInterval).
- the analysis (analysis/analysis.go, assessRunStatus; utils/analysis/helpers.go, IsWorse): a metric
  that failed, erred or was inconclusive ends the analysis with the worst of them (Failed, then
  Error, then Inconclusive; the first metric among equals); else it passes once every metric passed.
  Argo leaves an Inconclusive analysis to a person (the rollout pauses); a gate that must decide on
  its own fails on it, with reason MetricInconclusive, so an unclear measurement never ships a change.
- the settings (utils/analysis/factory.go, ValidateMetric): limits are not negative, `count` is at
  least each limit, and more than one measurement needs an interval. Durations are Go's
  (time.ParseDuration), as Argo's DurationString.

Where this differs from Argo: conditions are CEL (the language of the CRD's own rules), not Argo's
expr; numbers compare across int and double by value (`result == 0` on a Prometheus double, as
cel-go's CrossTypeNumericComparisons), which the CEL library alone does only one way round. A
failure limit of -1 (Argo's "disabled", only valid beside consecutiveSuccessLimit) has no place: that
limit is not modelled. An interval must be longer than zero, and a duration has no sign.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Final, TypeAlias, assert_never

from .jsontypes import JsonValue
from .text import NAME_LIMIT, printable

# --- durations -------------------------------------------------------------------------------------

_UNIT_NANOSECONDS: Final = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9,
                            "m": 60 * 10**9, "h": 3600 * 10**9}
# [0-9], not \d: Python's \d matches every script's digits, Go's parser only ASCII ones.
_PART: Final = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION: Final = re.compile(rf"(?:{_PART.pattern})+")
_MAX_NANOSECONDS: Final = 2**63 - 1  # Go's time.Duration, about 292 years
DURATION_LIMIT: Final = 64  # characters of a duration


def parse_duration(text: str) -> float:
    """Seconds of a duration as Argo writes it (Go's time.ParseDuration): "30s", "5m", "1h", "500ms",
    "1m30s", "1.5h"; "0" alone. Without a sign: no setting here waits a negative time."""
    if text == "0":
        return 0.0
    if len(text) > DURATION_LIMIT or not _DURATION.fullmatch(text):
        raise ValueError(f'invalid duration "{printable(text, DURATION_LIMIT)}": expected numbers with units '
                         f"(ns, us, ms, s, m, h), such as 30s, 5m or 1m30s")
    nanoseconds = sum(Decimal(number) * _UNIT_NANOSECONDS[unit] for number, unit in _PART.findall(text))
    if nanoseconds > _MAX_NANOSECONDS:
        raise ValueError(f'invalid duration "{text}": longer than Go\'s limit of about 292 years')
    return float(nanoseconds / 10**9)


# --- a metric's settings -----------------------------------------------------------------------------

DEFAULT_CONSECUTIVE_ERROR_LIMIT: Final = 4  # Argo's DefaultConsecutiveErrorLimit


@dataclass(frozen=True)
class Metric:
    """One metric's settings, as Argo's Metric has them, durations in seconds."""

    name: str
    interval: float | None = None  # between measurements; None: a single one
    initial_delay: float = 0.0  # after the analysis starts, before the first measurement
    count: int | None = None  # measurements to take; None: see effective_count
    failure_limit: int = 0  # Failed measurements tolerated
    inconclusive_limit: int = 0  # Inconclusive measurements tolerated
    consecutive_error_limit: int = DEFAULT_CONSECUTIVE_ERROR_LIMIT  # Errors in a row tolerated
    success_condition: str | None = None  # CEL over `result`; None or "": absent
    failure_condition: str | None = None

    def __post_init__(self) -> None:
        problem = _setting_problem(self)
        if problem is not None:
            raise ValueError(f'metric "{printable(self.name, NAME_LIMIT)}": {problem}')

    @property
    def effective_count(self) -> int | None:
        """How many measurements the metric takes; None: until the analysis ends (Argo's EffectiveCount)."""
        if self.count is not None:
            return self.count
        return 1 if self.interval is None else None


def _setting_problem(m: Metric) -> str | None:
    """What Argo's ValidateMetric refuses (in its words), and the durations no clock can wait."""
    if m.interval is not None and not (0 < m.interval < math.inf):
        return "interval must be a duration longer than zero"
    if not 0 <= m.initial_delay < math.inf:
        return "initialDelay must not be negative"
    for name, limit in (("failureLimit", m.failure_limit), ("inconclusiveLimit", m.inconclusive_limit),
                        ("consecutiveErrorLimit", m.consecutive_error_limit)):
        if limit < 0:
            return f"{name} must be >= 0"
    if m.count is None:
        return None
    if m.count < 1:
        return "count must be >= 1 (leave it out for the default)"
    if m.count < m.failure_limit:
        return f"count ({m.count}) must be >= failureLimit ({m.failure_limit})"
    if m.count < m.inconclusive_limit:
        return f"count ({m.count}) must be >= inconclusiveLimit ({m.inconclusive_limit})"
    if m.count > 1 and m.interval is None:
        return "interval must be specified when count > 1"
    return None


# --- measurements ------------------------------------------------------------------------------------

VALUE_LIMIT: Final = 256  # characters of a measurement's value: ten of them per metric live in status
MESSAGE_LIMIT: Final = 512


class MeasurementPhase(StrEnum):
    SUCCESSFUL = "Successful"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    ERROR = "Error"


@dataclass(frozen=True)
class Measurement:
    phase: MeasurementPhase
    value: str  # the result as Argo shows it ("[0.5]"); "" when there was none
    at: datetime  # when it finished: the next one is due an interval later
    message: str = ""  # why it is an Error

    def __post_init__(self) -> None:
        # A value or message came from a server or an author: bounded and escaped, whoever built this.
        # printable() is idempotent, so a copy (dataclasses.replace) stays the same.
        object.__setattr__(self, "value", printable(self.value, VALUE_LIMIT))
        object.__setattr__(self, "message", printable(self.message, MESSAGE_LIMIT))


@dataclass(frozen=True)
class Evaluation:
    """A result judged: a measurement but for its time."""

    phase: MeasurementPhase
    value: str
    message: str = ""

    def at(self, when: datetime) -> Measurement:
        return Measurement(self.phase, self.value, when, self.message)


def provider_error(message: str, at: datetime) -> Measurement:
    """A measurement that got no result (the query failed, the answer made no sense): an Error."""
    return Measurement(MeasurementPhase.ERROR, "", at, message)


# --- showing a result ----------------------------------------------------------------------------------


def _go_float(x: float) -> str:
    """As Go's strconv.FormatFloat(x, 'f', -1, 64), which Prometheus' SampleValue.String uses: the shortest
    digits that read back as x, never an exponent ("1e21" is 1000000000000000000000)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return format(Decimal(repr(x)).normalize(), "f")


def _go_int(n: int) -> str:
    try:
        return str(n)
    except ValueError:  # past Python's int_max_str_digits: shown by size
        return f"{'-' if n < 0 else ''}(an integer of {n.bit_length()} bits)"


def _pieces(value: JsonValue, limit: int) -> Iterator[str]:
    """The value as text, piece by piece, so that showing a huge result stops at the bound."""
    match value:
        case None:
            yield "null"
        case bool():
            yield "true" if value else "false"
        case int():
            yield _go_int(value)
        case float():
            yield _go_float(value)
        case str():
            yield json.dumps(value[: limit + 1], ensure_ascii=False)
        case Mapping():
            yield "{"
            for i, (key, item) in enumerate(value.items()):
                yield ("," if i else "") + json.dumps(str(key)[: limit + 1], ensure_ascii=False) + ":"
                yield from _pieces(item, limit)
            yield "}"
        case Sequence():
            yield "["
            for i, item in enumerate(value):
                if i:
                    yield ","
                yield from _pieces(item, limit)
            yield "]"
        case _:
            assert_never(value)


def render(result: JsonValue, limit: int = VALUE_LIMIT) -> str:
    """A result as Argo shows a measurement's value: a scalar "0.5", a vector "[0.5,0.25]", an empty one
    "[]", JSON compact; escaped and bounded (a string shows quoted, so that "1" and 1 look apart)."""
    out: list[str] = []
    size = 0
    try:
        for piece in _pieces(result, limit):
            out.append(piece)
            size += len(piece)
            if size > limit:
                break
    except RecursionError:
        return "(a result nested too deeply to show)"
    return printable("".join(out), limit)


# --- CEL (core/cel.py, loaded on first use) ------------------------------------------------------------

SUCCESS_CONDITION: Final = "successCondition"
FAILURE_CONDITION: Final = "failureCondition"


def check_condition(expression: str) -> str | None:
    """Why a condition would never evaluate (for admission), or None; "" is no condition, as in Argo."""
    if not expression:
        return None
    from . import cel
    return cel.check_condition(expression)


def _phase(success: bool | None, failure: bool | None) -> MeasurementPhase:
    """Argo's EvaluateResult; None: that condition is absent."""
    if success is None and failure is None:
        return MeasurementPhase.SUCCESSFUL
    if failure is None:
        failure = not success
    if success is None:
        success = not failure
    if failure:
        return MeasurementPhase.FAILED
    return MeasurementPhase.SUCCESSFUL if success else MeasurementPhase.INCONCLUSIVE


def evaluate(result: JsonValue, success_condition: str | None, failure_condition: str | None) -> Evaluation:
    """A provider's result judged by the metric's conditions (CEL, `result` bound to it): a Prometheus
    scalar as a float, a vector as a list of floats, a web metric's JSON as it is."""
    value = render(result)
    from . import cel
    try:
        bound = cel.to_cel(result)
    except RecursionError:
        return Evaluation(MeasurementPhase.ERROR, value, "the result is nested too deeply to evaluate")
    told: list[bool | None] = []
    for kind, expression in ((SUCCESS_CONDITION, success_condition), (FAILURE_CONDITION, failure_condition)):
        if not expression:
            told.append(None)
            continue
        holds = cel.holds(kind, expression, result, bound)
        if isinstance(holds, str):
            return Evaluation(MeasurementPhase.ERROR, value, holds)
        told.append(holds)
    success, failure = told
    return Evaluation(_phase(success, failure), value)


# --- a metric's measurements and verdict --------------------------------------------------------------

HISTORY_LIMIT: Final = 10  # measurements kept per metric: Argo's DefaultMeasurementHistoryLimit
ERROR_RETRY_SECONDS: Final = 10.0  # after an Error, whatever the interval: Argo's DefaultErrorRetryInterval

# Reasons of a failed metric (Argo's Event reasons: "Metric" and the phase).
METRIC_FAILED: Final = "MetricFailed"
METRIC_ERROR: Final = "MetricError"
METRIC_INCONCLUSIVE: Final = "MetricInconclusive"


@dataclass(frozen=True)
class MetricState:
    """A metric's measurements so far: the last HISTORY_LIMIT of them, oldest first, and counters of all."""

    measurements: tuple[Measurement, ...] = ()
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0

    @property
    def count(self) -> int:
        """Measurements that count towards the metric's `count`: all but Errors (Argo's Count)."""
        return self.successful + self.failed + self.inconclusive

    @property
    def last(self) -> Measurement | None:
        return self.measurements[-1] if self.measurements else None


@dataclass(frozen=True)
class Running:
    """More measurements are due."""


@dataclass(frozen=True)
class Passed:
    message: str


@dataclass(frozen=True)
class Failed:
    reason: str  # METRIC_FAILED (failed measurements) or METRIC_ERROR (errors in a row)
    message: str


@dataclass(frozen=True)
class Inconclusive:
    message: str


MetricVerdict: TypeAlias = Running | Passed | Failed | Inconclusive


def _exceeded(metric: Metric, state: MetricState) -> Failed | Inconclusive | None:
    # Argo's order: a later exceeded limit replaces an earlier one, so errors win, then inconclusive.
    if state.consecutive_error > metric.consecutive_error_limit:
        return Failed(METRIC_ERROR, f"consecutiveErrors ({state.consecutive_error}) > consecutiveErrorLimit "
                                    f"({metric.consecutive_error_limit})")
    if state.inconclusive > metric.inconclusive_limit:
        return Inconclusive(f"inconclusive ({state.inconclusive}) > inconclusiveLimit ({metric.inconclusive_limit})")
    if state.failed > metric.failure_limit:
        return Failed(METRIC_FAILED, f"failed ({state.failed}) > failureLimit ({metric.failure_limit})")
    return None


def verdict(metric: Metric, state: MetricState, *, ending: bool = False) -> MetricVerdict:
    """The metric's verdict on its measurements; `ending`: the analysis is being ended (a metric without
    a count then passes unless a limit was exceeded, as Argo's terminating run has it)."""
    exceeded = _exceeded(metric, state)
    if exceeded is not None:
        return exceeded
    count = metric.effective_count
    if count is not None and state.count >= count:
        return Passed(f"count ({count}) reached")
    if ending:
        if state.last is None:
            return Passed("the analysis ended before the first measurement")
        return Passed(f"the analysis ended after {state.count} measurements within the limits")
    return Running()


def observe(metric: Metric, state: MetricState, measurement: Measurement) -> MetricState:
    """The state with one more measurement counted; unchanged once the metric has its verdict (Argo takes
    no measurement then, and a late one must not turn a decided verdict)."""
    if not isinstance(verdict(metric, state), Running):
        return state
    kept = (*state.measurements, measurement)[-HISTORY_LIMIT:]
    match measurement.phase:
        case MeasurementPhase.SUCCESSFUL:
            return replace(state, measurements=kept, successful=state.successful + 1, consecutive_error=0)
        case MeasurementPhase.FAILED:
            return replace(state, measurements=kept, failed=state.failed + 1, consecutive_error=0)
        case MeasurementPhase.INCONCLUSIVE:
            return replace(state, measurements=kept, inconclusive=state.inconclusive + 1, consecutive_error=0)
        case MeasurementPhase.ERROR:
            return replace(state, measurements=kept, error=state.error + 1,
                           consecutive_error=state.consecutive_error + 1)
        case _:
            assert_never(measurement.phase)


def next_measurement_at(metric: Metric, state: MetricState, started_at: datetime) -> datetime | None:
    """When the metric's next measurement is due (it may be past); None when it has its verdict."""
    if not isinstance(verdict(metric, state), Running):
        return None
    last = state.last
    if last is None:
        return started_at + timedelta(seconds=metric.initial_delay)
    if last.phase == MeasurementPhase.ERROR:
        return last.at + timedelta(seconds=ERROR_RETRY_SECONDS)
    # Running after a measurement that counted: its count is not reached, so it has more than one, and
    # more than one needs an interval (the settings refuse a count > 1 without).
    assert metric.interval is not None
    return last.at + timedelta(seconds=metric.interval)


# --- the analysis ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnalysisRunning:
    next_at: datetime  # the earliest next measurement of the metrics still running


@dataclass(frozen=True)
class AnalysisPassed:
    message: str


@dataclass(frozen=True)
class AnalysisFailed:
    metric: str
    reason: str  # METRIC_FAILED, METRIC_ERROR or METRIC_INCONCLUSIVE
    message: str


AnalysisVerdict: TypeAlias = AnalysisRunning | AnalysisPassed | AnalysisFailed

# Argo's IsWorse order of the ways a metric can end badly.
_SEVERITY: Final = {METRIC_INCONCLUSIVE: 1, METRIC_ERROR: 2, METRIC_FAILED: 3}


def _failed(metric: Metric, state: MetricState, bad: Failed | Inconclusive) -> AnalysisFailed:
    reason = bad.reason if isinstance(bad, Failed) else METRIC_INCONCLUSIVE
    assessed = {METRIC_FAILED: "Failed", METRIC_ERROR: "Error", METRIC_INCONCLUSIVE: "Inconclusive"}[reason]
    name = printable(metric.name, NAME_LIMIT)
    message = f'metric "{name}" assessed {assessed} due to {bad.message}'
    last = state.last
    if last is not None:
        message += f"; last value {last.value}" if last.value else "; no last value"
        if last.message:
            message += f": {last.message}"
    return AnalysisFailed(metric.name, reason, printable(message))


def summarize(metrics: Sequence[Metric], states: Mapping[str, MetricState], started_at: datetime, *,
              ending: bool = False) -> AnalysisVerdict:
    """The analysis's verdict on its metrics' states (by metric name; none yet: no measurement)."""
    names = [m.name for m in metrics]
    if not names or len(set(names)) != len(names):
        raise ValueError("an analysis has at least one metric, each under its own name")
    worst: AnalysisFailed | None = None
    due: list[datetime] = []
    for metric in metrics:
        state = states.get(metric.name, MetricState())
        judged = verdict(metric, state, ending=ending)
        match judged:
            case Running():
                at = next_measurement_at(metric, state, started_at)
                assert at is not None  # a running metric always has a next measurement
                due.append(at)
            case Passed():
                pass
            case Failed() | Inconclusive():
                failed = _failed(metric, state, judged)
                if worst is None or _SEVERITY[failed.reason] > _SEVERITY[worst.reason]:
                    worst = failed
            case _:
                assert_never(judged)
    if worst is not None:
        return worst
    if due:
        return AnalysisRunning(min(due))
    return AnalysisPassed(f"{len(metrics)} metric{'s' if len(metrics) > 1 else ''} passed")
