"""CEL conditions of metrics (successCondition, failureCondition), as Argo Rollouts evaluates them: `result`
bound to the provider's result, numbers compared by value across int, uint and double, isNaN and isInf.

A module of its own so that the CEL library is loaded only by an operator that evaluates a condition (it is a
few MiB of parser tables): core/analysis.py imports it when it first needs it.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Final, TypeGuard, assert_never

import celpy
from celpy import celtypes
from celpy.celparser import CELParseError
from celpy.evaluation import CELEvalError, CELFunction, Result, base_functions

from .jsontypes import JsonValue

CONDITION_LIMIT: Final = 1024  # characters of a condition
# Levels of the parsed expression: the evaluator recurses about three Python frames a level, and a
# condition nested deeper than this (some 20 parentheses) is no condition anyone means.
NESTING_LIMIT: Final = 256
COMPILED_LIMIT: Final = 256  # conditions kept compiled
_INT64: Final = range(-(2**63), 2**63)
_NUMBERS: Final = (celtypes.IntType, celtypes.UintType, celtypes.DoubleType)


def _is_number(x: object) -> TypeGuard[celtypes.IntType | celtypes.UintType | celtypes.DoubleType]:
    return isinstance(x, _NUMBERS) and not isinstance(x, celtypes.BoolType)


def _plain(x: celtypes.IntType | celtypes.UintType | celtypes.DoubleType) -> float:
    return float(x) if isinstance(x, celtypes.DoubleType) else int(x)


def _by_value(name: str, compare: Callable[[float, float], bool]) -> CELFunction:
    """The comparison `name` with numbers compared by value across int, uint and double (exactly, as
    Python compares int with float); anything else as the library compares it."""
    library = base_functions[name]

    def compare_values(a: Result, b: Result) -> Result:
        if _is_number(a) and _is_number(b):
            return celtypes.BoolType(compare(_plain(a), _plain(b)))
        return library(a, b)

    return compare_values


def _is_nan(x: celtypes.Value) -> celtypes.BoolType:
    if not _is_number(x):
        raise TypeError("isNaN takes a number")  # the library reports it as "no such overload"
    return celtypes.BoolType(isinstance(x, celtypes.DoubleType) and math.isnan(x))


def _is_inf(x: celtypes.Value) -> celtypes.BoolType:
    if not _is_number(x):
        raise TypeError("isInf takes a number")
    return celtypes.BoolType(isinstance(x, celtypes.DoubleType) and math.isinf(x))


_FUNCTIONS: Final[dict[str, CELFunction]] = {
    **{name: _by_value(name, compare) for name, compare in (
        ("_<_", operator.lt), ("_<=_", operator.le), ("_>_", operator.gt), ("_>=_", operator.ge),
        ("_==_", operator.eq), ("_!=_", operator.ne))},
    "isNaN": _is_nan,
    "isInf": _is_inf,
}


@functools.cache
def _environment() -> celpy.Environment:
    # The library sets the interpreter's recursion limit to 2500 when an environment is made: never lower.
    limit = sys.getrecursionlimit()
    env = celpy.Environment()
    sys.setrecursionlimit(max(limit, sys.getrecursionlimit()))
    return env


def _depth(tree: object) -> int:
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in getattr(node, "children", ()))
    return deepest


@functools.lru_cache(maxsize=COMPILED_LIMIT)
def _compiled(expression: str) -> celpy.Runner | str:
    """The condition compiled, once per text; or why it cannot be."""
    if len(expression) > CONDITION_LIMIT:
        return f"is longer than {CONDITION_LIMIT} characters"
    env = _environment()
    try:
        tree = env.compile(expression)
    except CELParseError as e:
        return f"is not valid CEL (a syntax error at line {e.line}, column {e.column})"
    except RecursionError:
        return "is nested too deeply"
    if _depth(tree) > NESTING_LIMIT:
        return "is nested too deeply"
    return env.program(tree, functions=_FUNCTIONS)


def check_condition(expression: str) -> str | None:
    """Why a condition would never evaluate (for admission), or None; "" is no condition, as in Argo."""
    if not expression:
        return None
    compiled = _compiled(expression)
    return compiled if isinstance(compiled, str) else None


def to_cel(value: JsonValue) -> celtypes.Value:
    """Plain data as CEL values; an integer past int64 (JSON has no bound) becomes a double, as Go reads it."""
    match value:
        case None:
            return None
        case bool():
            return celtypes.BoolType(value)
        case int() if value in _INT64:
            return celtypes.IntType(value)
        case int():
            try:
                return celtypes.DoubleType(float(value))
            except OverflowError:
                return celtypes.DoubleType(math.inf if value > 0 else -math.inf)
        case float():
            return celtypes.DoubleType(value)
        case str():
            return celtypes.StringType(value)
        case Mapping():
            return celtypes.MapType({celtypes.StringType(str(k)): to_cel(v) for k, v in value.items()})
        case Sequence():
            return celtypes.ListType([to_cel(v) for v in value])
        case _:
            assert_never(value)


# What a condition that is no bool evaluated to, in CEL's words (Python's own types come back too).
_CEL_TYPE_NAMES: Final = ((celtypes.DoubleType, "double"), (float, "double"), (celtypes.UintType, "uint"),
                          (int, "int"), (str, "string"), (bytes, "bytes"), (list, "list"), (dict, "map"),
                          (type(None), "null"))


def _cel_type(value: object) -> str:
    return next((name for kind, name in _CEL_TYPE_NAMES if isinstance(value, kind)), "a value")


def _why(error: Exception) -> str:
    """A fixed phrase for what went wrong (the library's own text names its internals)."""
    cause: object = type(error)
    if isinstance(error, CELEvalError):
        if len(error.args) > 1:
            cause = error.args[1]
        if error.args and str(error.args[0]).startswith("undeclared reference"):
            return "it names something undeclared (defined: result, isNaN, isInf and CEL's own functions)"
    if cause is IndexError:
        return "an index is out of range"
    if cause is KeyError:
        return "a key or field is missing from the result"
    if cause is TypeError:
        return "the operands' types do not fit the operator or function (a string compared with a number, say)"
    if cause is ZeroDivisionError:
        return "it divides by zero"
    if cause in (ValueError, OverflowError):
        return "a value is out of range"
    if cause is RecursionError:
        return "it is nested too deeply"
    return "it could not be evaluated"


def _is_empty(result: JsonValue) -> bool:
    """Argo's isNilOrEmpty: no data, or a list (a vector) of none."""
    return result is None or (isinstance(result, Sequence) and not isinstance(result, str) and not result)


def holds(kind: str, expression: str, result: JsonValue, bound: celtypes.Value) -> bool | str:
    """Whether the condition holds for the result; a str says why it could not be told."""
    compiled = _compiled(expression)
    if isinstance(compiled, str):
        return f"{kind} {compiled}"
    failure: Exception | None = None
    try:
        outcome = compiled.evaluate({"result": bound})
    except Exception as e:  # whatever stops a condition (the library's errors, recursion) is an Error
        failure, outcome = e, None
    if isinstance(outcome, CELEvalError):  # an error can also come back as the value
        failure = outcome
    if failure is not None:
        if _is_empty(result):
            return f"could not evaluate {kind}: the result is empty (the provider returned no data)"
        return f"could not evaluate {kind}: {_why(failure)}"
    if not isinstance(outcome, celtypes.BoolType | bool):
        return f"{kind} evaluates to {_cel_type(outcome)}, not bool"
    return bool(outcome)
