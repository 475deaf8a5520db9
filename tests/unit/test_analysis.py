"""Metric analysis, Argo Rollouts' semantics: durations, one result judged by CEL conditions, the counts
against the limits (exactly reached vs exceeded), the timing of measurements, the analysis's verdict."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from selfbootstrap.core import analysis, cel
from selfbootstrap.core.analysis import (
    ERROR_RETRY_SECONDS,
    HISTORY_LIMIT,
    METRIC_ERROR,
    METRIC_FAILED,
    METRIC_INCONCLUSIVE,
    VALUE_LIMIT,
    AnalysisFailed,
    AnalysisPassed,
    AnalysisRunning,
    Failed,
    Inconclusive,
    Measurement,
    MeasurementPhase,
    Metric,
    MetricState,
    Passed,
    Running,
    check_condition,
    evaluate,
    next_measurement_at,
    observe,
    parse_duration,
    provider_error,
    render,
    summarize,
    verdict,
)
from selfbootstrap.core.text import has_hidden

from .factories import T0, at

OK = MeasurementPhase.SUCCESSFUL
FAIL = MeasurementPhase.FAILED
INC = MeasurementPhase.INCONCLUSIVE
ERR = MeasurementPhase.ERROR
NAN = math.nan
INF = math.inf

# --- durations ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h", 3600), ("500ms", 0.5), ("1m30s", 90), ("1.5h", 5400),
    ("2h45m30.5s", 9930.5), ("100ns", 1e-7), ("1us", 1e-6), ("1µs", 1e-6), ("1μs", 1e-6), (".5s", 0.5),
    ("1.s", 1), ("0", 0), ("0s", 0), ("1h0m0s", 3600), ("90m", 5400), ("0.001ms", 1e-6),
    ("2562047h", 2562047 * 3600),  # just under Go's bound of 2^63 ns
])
def test_durations_as_go_reads_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("text", [
    "", "30", "s", "1", "-1s", "+1s", "1d", "1w", "1 s", " 30s", "30s ", "30s\n", "30S", "1H", "1.5.5s", "1e3s",
    ".s", "1..5s", "m30s", "30s5", "١s", "٣٠s", "1h-30m", "inf s", "NaNs", "0x10s", "1_000s", "3000000h",
    "9" * 30 + "h", "1s" * 40,
], ids=repr)
def test_anything_else_is_refused_clearly(text):
    with pytest.raises(ValueError, match="invalid duration") as caught:
        parse_duration(text)
    assert not has_hidden(str(caught.value))


def test_a_duration_with_control_characters_is_named_escaped():
    with pytest.raises(ValueError) as caught:
        parse_duration("3\x1b[2Js")
    assert "\x1b" not in str(caught.value) and "\\x1b" in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["ms", "s", "m", "h"])), min_size=1, max_size=4))
def test_parts_add_up(parts):
    unit = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    text = "".join(f"{n}{u}" for n, u in parts)
    assert parse_duration(text) == pytest.approx(sum(n * unit[u] for n, u in parts))


# --- a metric's settings -------------------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "effective"), [
    (Metric("m"), 1),
    (Metric("m", interval=60), None),
    (Metric("m", interval=60, count=5), 5),
    (Metric("m", count=1), 1),
])
def test_count_defaults_as_argo(metric, effective):
    assert metric.effective_count == effective


def test_defaults_are_argos():
    m = Metric("m")
    assert (m.failure_limit, m.inconclusive_limit, m.consecutive_error_limit, m.initial_delay) == (0, 0, 4, 0.0)


@pytest.mark.parametrize(("settings", "problem"), [
    (dict(count=3), "interval must be specified when count > 1"),
    (dict(count=0), "count must be >= 1"),
    (dict(count=-1, interval=1), "count must be >= 1"),
    (dict(failure_limit=-1), "failureLimit must be >= 0"),
    (dict(inconclusive_limit=-1), "inconclusiveLimit must be >= 0"),
    (dict(consecutive_error_limit=-1), "consecutiveErrorLimit must be >= 0"),
    (dict(count=2, interval=1, failure_limit=3), r"count \(2\) must be >= failureLimit \(3\)"),
    (dict(count=2, interval=1, inconclusive_limit=3), r"count \(2\) must be >= inconclusiveLimit \(3\)"),
    (dict(interval=0), "interval must be a duration longer than zero"),
    (dict(interval=-5), "interval must be a duration longer than zero"),
    (dict(interval=NAN), "interval must be a duration longer than zero"),
    (dict(interval=INF), "interval must be a duration longer than zero"),
    (dict(initial_delay=-1), "initialDelay must not be negative"),
    (dict(initial_delay=NAN), "initialDelay must not be negative"),
])
def test_settings_argo_refuses_are_refused(settings, problem):
    with pytest.raises(ValueError, match=problem):
        Metric("m", **settings)


def test_count_equal_to_the_limits_is_allowed():
    Metric("m", count=3, interval=1, failure_limit=3, inconclusive_limit=3)


# --- one result judged -----------------------------------------------------------------------------------

SUCCESS = "result[0] >= 0.95"


def bounded(shown: str) -> str:
    return shown if len(shown) <= VALUE_LIMIT else shown[: VALUE_LIMIT - 3] + "..."

FAILURE = "result[0] < 0.5"


@pytest.mark.parametrize(("result", "success", "failure", "phase", "value"), [
    # Argo's EvaluateResult, every combination of present conditions and outcomes
    ([0.99], None, None, OK, "[0.99]"),
    ([0.1], None, None, OK, "[0.1]"),
    ([0.99], SUCCESS, None, OK, "[0.99]"),
    ([0.7], SUCCESS, None, FAIL, "[0.7]"),
    ([0.4], None, FAILURE, FAIL, "[0.4]"),
    ([0.7], None, FAILURE, OK, "[0.7]"),
    ([0.99], SUCCESS, FAILURE, OK, "[0.99]"),
    ([0.4], SUCCESS, FAILURE, FAIL, "[0.4]"),
    ([0.7], SUCCESS, FAILURE, INC, "[0.7]"),
    ([0.99], SUCCESS, "result[0] > 0.9", FAIL, "[0.99]"),  # both true: failure wins
    ([0.99], "", "", OK, "[0.99]"),  # "" is no condition, as in Argo
    # boundaries of the comparison itself
    ([0.95], SUCCESS, None, OK, "[0.95]"),
    ([0.5], None, FAILURE, OK, "[0.5]"),
    # scalar vs vector
    (0.99, "result >= 0.95", None, OK, "0.99"),
    (0.5, "result >= 0.95", None, FAIL, "0.5"),
    ([0.5, 0.99], "result.all(x, x >= 0.95)", None, FAIL, "[0.5,0.99]"),
    ([0.5, 0.99], "result.exists(x, x >= 0.95)", None, OK, "[0.5,0.99]"),
    # empty vector: no data is decided by the condition; with none it is Successful
    ([], None, None, OK, "[]"),
    ([], "size(result) == 0 || result[0] >= 0.95", None, OK, "[]"),
    ([], None, "size(result) > 0 && result[0] < 0.5", OK, "[]"),
    # NaN compares false with everything, as in Go
    ([NAN], SUCCESS, None, FAIL, "[NaN]"),
    ([NAN], None, "result[0] > 0.01", OK, "[NaN]"),  # the failure-only pitfall, as in Argo
    ([NAN], None, "isNaN(result[0]) || result[0] > 0.01", FAIL, "[NaN]"),
    ([NAN], SUCCESS, FAILURE, INC, "[NaN]"),
    (NAN, "result == result", None, FAIL, "NaN"),
    (NAN, "isNaN(result)", None, OK, "NaN"),
    ([INF], SUCCESS, None, OK, "[+Inf]"),
    ([-INF], "isInf(result[0])", None, OK, "[-Inf]"),
    ([1.0], "isNaN(result[0]) || isInf(result[0])", None, FAIL, "[1]"),
    # numbers compare across int and double by value, both ways round
    (0.0, "result == 0", None, OK, "0"),
    (1.0, "result != 1", None, FAIL, "1"),
    (3, "result > 2.5", None, OK, "3"),
    (3, "result == 3.0", None, OK, "3"),
    (2.5, "result < 3", None, OK, "2.5"),
    (2**53 + 1, "result > 9007199254740992.0", None, OK, "9007199254740993"),  # exact, not via float
    # huge values
    (1e308, "result > 1e307", None, OK, bounded("1" + "0" * 308)),
    (2**80, "result > 1", None, OK, str(2**80)),  # past int64: a double, as Go reads JSON
    (-(2**80), "result < -1", None, OK, str(-(2**80))),
    (10**400, "isInf(result)", None, OK, bounded(str(10**400))),
    (5e-324, "result > 0.0", None, OK, bounded("0." + "0" * 323 + "5")),
    (1e22, "result > 0.0", None, OK, "10000000000000000000000"),
    # web metrics: JSON values
    ({"ok": True, "rate": 0.99}, "result.ok && result.rate > 0.9", None, OK, '{"ok":true,"rate":0.99}'),
    ({"status": "healthy"}, "result.status == 'healthy'", None, OK, '{"status":"healthy"}'),
    ({"items": [1, 2, 3]}, "size(result.items) == 3", None, OK, '{"items":[1,2,3]}'),
    (True, "result", None, OK, "true"),
    (False, None, "!result", FAIL, "false"),
    ("up", "result == 'up'", None, OK, '"up"'),
    ({"a": None}, "result.a == null", None, OK, '{"a":null}'),
    ({"a": None}, "has(result.a)", None, OK, '{"a":null}'),
    ({}, "!has(result.a)", None, OK, "{}"),
])
def test_a_result_is_judged_as_argo_judges_it(result, success, failure, phase, value):
    judged = evaluate(result, success, failure)
    assert (judged.phase, judged.value, judged.message) == (phase, value, "")


@pytest.mark.parametrize(("result", "success", "failure", "message"), [
    ([0.5], "result[1] > 0.1", None, "could not evaluate successCondition: an index is out of range"),
    ([], SUCCESS, None, "could not evaluate successCondition: the result is empty (the provider returned no data)"),
    ([], None, FAILURE, "could not evaluate failureCondition: the result is empty (the provider returned no data)"),
    (None, "result > 1", None, "could not evaluate successCondition: the result is empty"),
    ("1", "result > 1", None, "could not evaluate successCondition: the operands' types do not fit"),
    ({"v": "0.9"}, "result.v >= 0.5", None, "could not evaluate successCondition: the operands' types do not fit"),
    (1.0, "result > 'a'", None, "could not evaluate successCondition: the operands' types do not fit"),
    ([1.0], "isNaN(result)", None, "could not evaluate successCondition: the operands' types do not fit"),
    ({"a": 1}, "result.b > 1", None, "could not evaluate successCondition: a key or field is missing"),
    (1.0, "latency > 1", None, "could not evaluate successCondition: it names something undeclared"),
    (1, "result / 0 > 1", None, "could not evaluate successCondition: it divides by zero"),
    (2**62, "result * 4 > 1", None, "could not evaluate successCondition: a value is out of range"),
    (1.0, "result", None, "successCondition evaluates to double, not bool"),
    ([1.0], "result", None, "successCondition evaluates to list, not bool"),
    ("x", "result + 'y'", None, "successCondition evaluates to string, not bool"),
    (1.0, "result >", None, "successCondition is not valid CEL (a syntax error at line 1, column 8)"),
    (1.0, "result[0] >= 0.95)", None, "successCondition is not valid CEL"),
    (1.0, "result ** 2 > 1", None, "successCondition is not valid CEL"),
    (1.0, "   ", None, "successCondition is not valid CEL"),
    (1.0, None, "result >>> 1", "failureCondition is not valid CEL"),
    (1.0, "(" * 40 + "result" + ")" * 40 + " > 0", None, "successCondition is nested too deeply"),
    (1.0, "result > 0 || " * 100 + "true", None, "successCondition is longer than 1024 characters"),
    # the success condition errs first: the failure condition is not asked
    (1.0, "result > 'a'", "result >", "could not evaluate successCondition"),
    # a valid success condition, a broken failure condition: an Error all the same
    (1.0, "result > 0", "result.x > 0", "could not evaluate failureCondition"),
])
def test_a_condition_that_cannot_be_evaluated_is_an_error_with_a_fixed_message(result, success, failure, message):
    judged = evaluate(result, success, failure)
    assert judged.phase == ERR
    assert judged.message.startswith(message), judged.message
    # the library's text (its internals, the whole activation) never reaches the message
    assert "Token(" not in judged.message and "Activation" not in judged.message and len(judged.message) < 200


def test_an_error_still_shows_the_value():
    assert evaluate([0.5], "result[1] > 0", None).value == "[0.5]"


@pytest.mark.parametrize(("result", "shown"), [
    (0.5, "0.5"), (1.0, "1"), (-0.0, "-0"), (100.0, "100"), (1e21, "1000000000000000000000"), (1e-7, "0.0000001"),
    (NAN, "NaN"), (INF, "+Inf"), (-INF, "-Inf"), ([0.5, 0.25], "[0.5,0.25]"), ([], "[]"), ([NAN, 1.0], "[NaN,1]"),
    (None, "null"), (True, "true"), (7, "7"), ({"a": [1, "b"]}, '{"a":[1,"b"]}'),
    ("clear\x1b[2J", '"clear\\u001b[2J"'),  # JSON escapes C0 controls
    ("bidi\u202eevil", '"bidi\\u202eevil"'),  # the rest printable() escapes
    ("del\x7f", '"del\\x7f"'),
    ({"k\x1b": 1}, '{"k\\u001b":1}'),
])
def test_a_value_is_shown_as_argo_shows_it_and_escaped(result, shown):
    assert render(result) == shown
    assert evaluate(result, None, None).value == shown


@pytest.mark.parametrize("result", [
    [0.123456789] * 100_000, "x" * 1_000_000, {str(i): i for i in range(10_000)}, [[[[["deep"]]]]] * 1000,
], ids=["long-vector", "long-string", "big-object", "many-nested"])
def test_a_huge_value_is_bounded(result):
    shown = evaluate(result, None, None).value
    assert len(shown) == VALUE_LIMIT and shown.endswith("...")


def test_a_value_is_bounded_by_the_limit_asked():
    assert render("x" * 1000, 600) == '"' + "x" * 596 + "..."
    assert render({"k" * 1000: 1}, 600) == '{"' + "k" * 595 + "..."


def test_a_deeply_nested_result_is_an_error_not_a_crash():
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    judged = evaluate(deep, "size(result) == 1", None)
    assert judged.phase == ERR and "nested too deeply" in judged.message
    assert render(deep) == bounded("[" * 1000)  # showing it stops at the bound, before the depth matters


# --- admission ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expression", [
    SUCCESS, FAILURE, "", "size(result) == 0 || result[0] < 0.01", "isNaN(result[0])", "result.all(x, x < 1)",
    "nosuchname > 1",  # names are known only when it runs: an Error then, not here
    "(" * 20 + "result" + ")" * 20 + " > 0",
])
def test_a_valid_condition_passes_admission(expression):
    assert check_condition(expression) is None


@pytest.mark.parametrize(("expression", "problem"), [
    ("result >", "is not valid CEL (a syntax error at line 1, column 8)"),
    ("result[0] >=\n 0.95 )", "is not valid CEL (a syntax error at line 2, column 7)"),
    ("'unterminated", "is not valid CEL"),
    (" ", "is not valid CEL"),
    ("result == \x1b[2J", "is not valid CEL"),
    ("x" * 1025, "is longer than 1024 characters"),
    ("(" * 30 + "result" + ")" * 30, "is nested too deeply"),
    ("(" * 5000 + "result" + ")" * 5000, "is longer than 1024 characters"),
    ("-" * 1000 + "1 > 0", "is nested too deeply"),
])
def test_an_invalid_condition_is_refused_at_admission(expression, problem):
    message = check_condition(expression)
    assert message is not None and message.startswith(problem), message
    assert not has_hidden(message)


def test_the_cel_library_loads_only_when_a_condition_is_evaluated():
    """An operator whose runs measure nothing does not hold the CEL library's parser tables."""
    import subprocess
    import sys
    code = ("import sys; import selfbootstrap.core.machine, selfbootstrap.core.analysis as a; "
            "assert 'celpy' not in sys.modules; a.evaluate([1.0], 'result[0] > 0.5', None); "
            "assert 'celpy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_condition_is_compiled_once():
    cel._compiled.cache_clear()
    for value in (0.1, 0.5, 0.9):
        evaluate([value], "result[0] > 0.42", None)
    info = cel._compiled.cache_info()
    assert (info.misses, info.hits) == (1, 2)


# --- measurements ----------------------------------------------------------------------------------------


def m(phase: MeasurementPhase, t: float = 0, value: str = "[1]", message: str = "") -> Measurement:
    return Measurement(phase, value, at(t), message)


def test_a_measurement_is_bounded_and_escaped_whoever_builds_it():
    built = Measurement(FAIL, "\x1b[31m" + "9" * 1000, T0, "oops\r\n" * 500)
    assert len(built.value) == VALUE_LIMIT and "\x1b" not in built.value and built.value.startswith("\\x1b[31m")
    assert len(built.message) == analysis.MESSAGE_LIMIT and "\r" not in built.message
    assert replace(built) == built  # escaping twice changes nothing


def test_a_provider_error_is_an_error_measurement():
    assert provider_error("connection refused\x1b", at(5)) == Measurement(ERR, "", at(5), "connection refused\\x1b")


def test_an_evaluation_takes_its_time():
    assert evaluate([0.5], None, None).at(at(3)) == Measurement(OK, "[0.5]", at(3))


# --- counting, and a metric's verdict ---------------------------------------------------------------------


def run(metric: Metric, phases: list[MeasurementPhase] | str, state: MetricState | None = None) -> MetricState:
    state = state or MetricState()
    codes = {"S": OK, "F": FAIL, "I": INC, "E": ERR}
    for i, phase in enumerate(phases):
        state = observe(metric, state, m(phase if isinstance(phase, MeasurementPhase) else codes[phase], t=i * 60))
    return state


def unbounded(**settings: Any) -> Metric:
    """A metric without a count: measured every minute until the analysis ends."""
    return Metric("m", interval=60.0, **settings)


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_failure_limit_reached_is_running_exceeded_is_failed(limit):
    metric = unbounded(failure_limit=limit)
    assert verdict(metric, run(metric, "F" * limit)) == Running()
    assert verdict(metric, run(metric, "F" * (limit + 1))) == Failed(
        METRIC_FAILED, f"failed ({limit + 1}) > failureLimit ({limit})")


@pytest.mark.parametrize("limit", [0, 1, 3])
def test_inconclusive_limit_reached_is_running_exceeded_is_inconclusive(limit):
    metric = unbounded(inconclusive_limit=limit)
    assert verdict(metric, run(metric, "I" * limit)) == Running()
    assert verdict(metric, run(metric, "I" * (limit + 1))) == Inconclusive(
        f"inconclusive ({limit + 1}) > inconclusiveLimit ({limit})")


@pytest.mark.parametrize("limit", [0, 1, 4])
def test_consecutive_error_limit_reached_is_running_exceeded_is_failed(limit):
    metric = unbounded(consecutive_error_limit=limit)
    assert verdict(metric, run(metric, "E" * limit)) == Running()
    assert verdict(metric, run(metric, "E" * (limit + 1))) == Failed(
        METRIC_ERROR, f"consecutiveErrors ({limit + 1}) > consecutiveErrorLimit ({limit})")


def test_the_default_limits_fail_on_the_first_failure_the_first_inconclusive_and_the_fifth_error():
    metric = unbounded()
    assert isinstance(verdict(metric, run(metric, "SSF")), Failed)
    assert isinstance(verdict(metric, run(metric, "SSI")), Inconclusive)
    assert verdict(metric, run(metric, "EEEE")) == Running()
    assert verdict(metric, run(metric, "EEEEE")).reason == METRIC_ERROR  # type: ignore[union-attr]


@pytest.mark.parametrize("phase", ["S", "F", "I"])
def test_any_measurement_that_is_no_error_ends_a_run_of_errors(phase):
    metric = unbounded(failure_limit=5, inconclusive_limit=5)
    state = run(metric, "EEEE" + phase + "EEEE")
    assert (state.consecutive_error, state.error) == (4, 8)
    assert verdict(metric, state) == Running()


@pytest.mark.parametrize(("phases", "reason"), [
    ("FIEEEEE", METRIC_ERROR),  # all three exceeded: errors win
    ("FI", METRIC_INCONCLUSIVE),  # failed and inconclusive: inconclusive wins
])
def test_when_several_limits_are_exceeded_argos_last_assignment_wins(phases, reason):
    metric = unbounded()
    state = MetricState()
    for p in phases:  # counted directly: observe would stop at the first exceeded limit
        state = {"F": replace(state, failed=state.failed + 1), "I": replace(state, inconclusive=state.inconclusive + 1),
                 "E": replace(state, error=state.error + 1, consecutive_error=state.consecutive_error + 1)}[p]
    judged = verdict(metric, state)
    assert (judged.reason if isinstance(judged, Failed) else METRIC_INCONCLUSIVE) == reason


@pytest.mark.parametrize(("metric", "phases", "expected"), [
    (Metric("m"), "", Running()),
    (Metric("m"), "S", Passed("count (1) reached")),
    (Metric("m"), "E", Running()),  # an error does not count: measured again
    (Metric("m"), "EEES", Passed("count (1) reached")),
    (Metric("m", failure_limit=1, count=1), "F", Passed("count (1) reached")),  # failures within the limit pass
    (Metric("m", count=3, interval=60), "SS", Running()),
    (Metric("m", count=3, interval=60), "SSS", Passed("count (3) reached")),
    (Metric("m", count=3, interval=60), "SESES", Passed("count (3) reached")),
    (Metric("m", count=3, interval=60, failure_limit=2), "FSF", Passed("count (3) reached")),
    (Metric("m", count=3, interval=60, failure_limit=1), "FSF", Failed(METRIC_FAILED, "failed (2) > failureLimit (1)")),
    (Metric("m", count=3, interval=60, inconclusive_limit=1), "ISS", Passed("count (3) reached")),
    (Metric("m", count=3, interval=60, inconclusive_limit=1), "IIS", Inconclusive(
        "inconclusive (2) > inconclusiveLimit (1)")),
    (unbounded(), "S" * 100, Running()),
])
def test_count_with_and_without_interval(metric, phases, expected):
    assert verdict(metric, run(metric, phases)) == expected


@pytest.mark.parametrize(("phases", "expected"), [
    ("", Passed("the analysis ended before the first measurement")),
    ("SSS", Passed("the analysis ended after 3 measurements within the limits")),
    ("SFS", Passed("the analysis ended after 3 measurements within the limits")),
    ("SFFS", Failed(METRIC_FAILED, "failed (2) > failureLimit (1)")),  # ending never hides an exceeded limit
])
def test_an_unbounded_metric_passes_when_the_analysis_ends(phases, expected):
    metric = unbounded(failure_limit=1)
    assert verdict(metric, run(metric, phases), ending=True) == expected


def test_a_verdict_is_final_later_measurements_are_not_counted():
    metric = unbounded()
    failed = run(metric, "SF")
    assert run(metric, "SSSSS", failed) == failed
    passed = run(Metric("m"), "S")
    assert run(Metric("m"), "FFF", passed) == passed


def test_history_keeps_the_last_ten_and_counts_all():
    metric = unbounded(inconclusive_limit=100, failure_limit=100, consecutive_error_limit=100)
    state = MetricState()
    for i in range(25):
        state = observe(metric, state, m((OK, FAIL, INC, ERR)[i % 4], t=i, value=f"[{i}]"))
    assert len(state.measurements) == HISTORY_LIMIT == 10
    assert [x.value for x in state.measurements] == [f"[{i}]" for i in range(15, 25)]
    assert (state.successful, state.failed, state.inconclusive, state.error, state.count) == (7, 6, 6, 6, 19)
    assert state.last == state.measurements[-1]


# --- when the next measurement is due ----------------------------------------------------------------------


@pytest.mark.parametrize(("metric", "phases", "due"), [
    (Metric("m"), "", 0),
    (Metric("m", initial_delay=30), "", 30),
    (unbounded(initial_delay=30), "", 30),
    (unbounded(), "S", 60),  # the last at 0, an interval later
    (unbounded(), "SS", 120),
    (Metric("m", interval=3600), "E", ERROR_RETRY_SECONDS),  # after an error 10 s, whatever the interval
    (Metric("m", interval=1), "E", ERROR_RETRY_SECONDS),
    (Metric("m"), "E", ERROR_RETRY_SECONDS),  # retried without an interval too
    (unbounded(), "ES", 60 + 60),
    (unbounded(initial_delay=30), "S", 60),  # the delay is before the first only
    (Metric("m"), "S", None),  # count reached
    (Metric("m", count=2, interval=60), "SS", None),
    (unbounded(), "F", None),  # failed
    (unbounded(), "EEEEE", None),  # errors exceeded
])
def test_next_measurement(metric, phases, due):
    state = run(metric, phases)
    assert next_measurement_at(metric, state, T0) == (None if due is None else at(due))


# --- the analysis ---------------------------------------------------------------------------------------

RATE = Metric("success-rate", interval=60, count=3, success_condition=SUCCESS)
LATENCY = Metric("latency", interval=30, count=3, success_condition="result[0] < 0.3")
ERRORS = Metric("errors", interval=60, success_condition="result[0] < 0.01")


def states(**phases: str) -> dict[str, MetricState]:
    metrics = {"rate": RATE, "latency": LATENCY, "errors": ERRORS}
    return {metrics[k].name: run(metrics[k], v) for k, v in phases.items()}


def test_all_passed_is_passed():
    assert summarize([RATE, LATENCY], states(rate="SSS", latency="SSS"), T0) == AnalysisPassed("2 metrics passed")


def test_running_with_the_earliest_next_measurement():
    judged = summarize([RATE, LATENCY, ERRORS], states(rate="SS", latency="S", errors="S"), T0)
    assert judged == AnalysisRunning(at(30))  # latency's: its last at 0, every 30 s


def test_a_metric_without_measurements_is_due_after_its_delay():
    delayed = Metric("later", initial_delay=120, interval=60)
    assert summarize([RATE, delayed], states(rate="SS"), T0) == AnalysisRunning(at(120))


def test_any_failed_metric_fails_the_analysis_naming_it_and_its_last_value():
    state = {"success-rate": run(RATE, [OK]), "latency": observe(LATENCY, MetricState(), m(FAIL, value="[0.5]"))}
    judged = summarize([RATE, LATENCY], state, T0)
    assert judged == AnalysisFailed("latency", METRIC_FAILED,
                                    'metric "latency" assessed Failed due to failed (1) > failureLimit (0); '
                                    "last value [0.5]")


def test_errors_name_the_last_error():
    state = MetricState()
    for i in range(5):
        state = observe(RATE, state, provider_error("prometheus: 503 (Service Unavailable)", at(i * 10)))
    judged = summarize([RATE], {"success-rate": state}, T0)
    assert judged == AnalysisFailed("success-rate", METRIC_ERROR,
                                    'metric "success-rate" assessed Error due to consecutiveErrors (5) > '
                                    "consecutiveErrorLimit (4); no last value: prometheus: 503 (Service Unavailable)")


def test_inconclusive_fails_the_gate_with_its_own_reason():
    both = Metric("m", interval=60, success_condition=SUCCESS, failure_condition=FAILURE)
    state = observe(both, MetricState(), evaluate([0.7], both.success_condition, both.failure_condition).at(T0))
    judged = summarize([both], {"m": state}, T0)
    assert isinstance(judged, AnalysisFailed) and judged.reason == METRIC_INCONCLUSIVE
    assert judged.message.startswith('metric "m" assessed Inconclusive due to inconclusive (1) > inconclusiveLimit (0)')


@pytest.mark.parametrize(("phases", "metric", "reason"), [
    (dict(rate="I", latency="EEEEE", errors="F"), "errors", METRIC_FAILED),  # Argo: Failed is worst
    (dict(rate="I", latency="EEEEE", errors="S"), "latency", METRIC_ERROR),  # then Error
    (dict(rate="I", latency="S", errors="S"), "success-rate", METRIC_INCONCLUSIVE),
    (dict(rate="F", latency="F", errors="F"), "success-rate", METRIC_FAILED),  # among equals the first
])
def test_the_worst_metric_is_named(phases, metric, reason):
    judged = summarize([RATE, LATENCY, ERRORS], states(**phases), T0)
    assert isinstance(judged, AnalysisFailed) and (judged.metric, judged.reason) == (metric, reason)


def test_a_failed_metric_ends_the_analysis_while_others_run():
    judged = summarize([RATE, ERRORS], states(rate="F", errors="S"), T0)
    assert isinstance(judged, AnalysisFailed) and judged.metric == "success-rate"


def test_ending_passes_the_unbounded_metrics():
    assert summarize([RATE, ERRORS], states(rate="SSS", errors="SSSS"), T0) == AnalysisRunning(at(4 * 60 - 60 + 60))
    assert summarize([RATE, ERRORS], states(rate="SSS", errors="SSSS"), T0, ending=True) == AnalysisPassed(
        "2 metrics passed")


def test_a_metric_name_with_control_characters_is_shown_escaped():
    evil = Metric("x\x1b[2J", interval=60)
    judged = summarize([evil], {evil.name: run(evil, "F")}, T0)
    assert isinstance(judged, AnalysisFailed) and "\x1b" not in judged.message and "x\\x1b[2J" in judged.message


@pytest.mark.parametrize("metrics", [[], [RATE, RATE]], ids=["none", "twice"])
def test_an_analysis_needs_metrics_under_distinct_names(metrics):
    with pytest.raises(ValueError, match="at least one metric"):
        summarize(metrics, {}, T0)


# --- properties -----------------------------------------------------------------------------------------

PHASES = st.sampled_from(list(MeasurementPhase))


@st.composite
def metrics(draw: st.DrawFn) -> Metric:
    interval = draw(st.sampled_from([None, 1.0, 60.0]))
    count = draw(st.none() | st.integers(1, 8)) if interval is not None else draw(st.sampled_from([None, 1]))
    limit = st.integers(0, count if count is not None else 4)
    return Metric("m", interval=interval, count=count, failure_limit=draw(limit), inconclusive_limit=draw(limit),
                  consecutive_error_limit=draw(st.integers(0, 5)))


@settings(max_examples=300, deadline=None)
@given(metrics(), st.lists(PHASES, max_size=40))
def test_counters_equal_the_measurements_observed_until_the_verdict(metric, phases):
    state = MetricState()
    counted: list[MeasurementPhase] = []
    for i, phase in enumerate(phases):
        decided = not isinstance(verdict(metric, state), Running)
        state = observe(metric, state, m(phase, t=i))
        if not decided:
            counted.append(phase)
    assert state.successful == counted.count(OK)
    assert state.failed == counted.count(FAIL)
    assert state.inconclusive == counted.count(INC)
    assert state.error == counted.count(ERR)
    trailing = len(counted) - len("".join("E" if p == ERR else "x" for p in counted).rstrip("E"))
    assert state.consecutive_error == trailing
    assert [x.phase for x in state.measurements] == counted[-HISTORY_LIMIT:]


@settings(max_examples=300, deadline=None)
@given(metrics(), st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.integers(0, 12), st.booleans())
def test_never_passed_while_a_limit_is_exceeded(metric, successful, failed, inconclusive, errors, ending):
    state = MetricState(successful=successful, failed=failed, inconclusive=inconclusive, error=errors,
                        consecutive_error=errors)
    exceeded = (failed > metric.failure_limit or inconclusive > metric.inconclusive_limit
                or errors > metric.consecutive_error_limit)
    judged = verdict(metric, state, ending=ending)
    assert isinstance(judged, Failed | Inconclusive) == exceeded
    assert next_measurement_at(metric, state, T0) is None or isinstance(verdict(metric, state), Running)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=20)
CONDITIONS = st.none() | st.sampled_from([
    SUCCESS, FAILURE, "result", "result > 1", "result.a == 'x'", "size(result) > 0", "result[0] == result[0]",
    "isNaN(result)", "result.exists(x, x > 0)", "has(result.a)", "result == null", "result + 1 > 0",
]) | st.text(max_size=30)


@settings(max_examples=300, deadline=None)
@given(JSON, CONDITIONS, CONDITIONS)
def test_any_result_and_any_condition_make_a_measurement_never_an_exception(result, success, failure):
    judged = evaluate(result, success, failure)
    assert judged.phase in MeasurementPhase
    assert len(judged.value) <= VALUE_LIMIT and not has_hidden(judged.value)
    assert not has_hidden(judged.message) and len(judged.message) < 200
    assert (judged.message != "") == (judged.phase == ERR)
