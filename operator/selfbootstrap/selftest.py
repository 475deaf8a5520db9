"""The self-test an operator passes before it serves anything: can this version serve what the cluster holds?

Run at start-up, before kopf. It fails when the installed CRD lacks a field this version's CRD has (the
API server would prune what this version writes there: apply the CRD first), when a run in flight
holds a spec field this version would drop, or when the CRD or the runs cannot be read. The verdict goes
to the log and, in a pod, to the pod's condition selfbootstrap.dev/SelfTestPassed (after kopf has
started: handlers.report_self_test), which a self-update's self-test gate waits for and the chart makes
a readiness gate. A failed self-test ends the process with exit code 3, unless the operator's own
self-update is unfinished: then it serves that run only, in safe mode (core/safemode.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import yaml
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from . import models as m
from .adapters.kube import Kube, name_of, namespace_of
from .core import compat
from .core.jsontypes import JsonObject, obj
from .crdgen import PACKAGED

logger = logging.getLogger(__name__)
EXIT_CODE = 3
SHOWN = 10  # problems named in the log, at most


def crd_problems(installed: JsonObject | None) -> list[str]:
    """What the installed CRD lacks of this version's (pure, given the two). No CRD yet is no problem: an
    operator installed in the same breath as its CRD waits for it (handlers.await_discovery), and no run
    can exist before it."""
    if installed is None:
        return []
    ours = compat.served_schema(obj(yaml.safe_load(PACKAGED.read_text())))
    theirs = compat.served_schema(installed)
    if not theirs:
        return [f"the installed CRD does not serve {m.GROUP}/{m.VERSION}"]
    missing = compat.missing_properties(ours, theirs)
    return [f"the installed CRD lacks {field}, which this version writes or reads: apply this version's CRD first"
            for field in missing]


def run_problems(runs: Iterable[JsonObject]) -> list[str]:
    """The runs in flight whose spec this version would read without a field they hold."""
    out = []
    for run in compat.in_flight(runs):
        spec = obj(run.get("spec"))
        try:
            kept = m.RunSpec.model_validate(spec).dump()
        except ValidationError as err:
            out.append(f"run {namespace_of(run)}/{name_of(run)}: its spec does not fit this version "
                       f"({err.errors()[0]['loc']})")
            continue
        lost = compat.lost_fields(spec, kept)
        if lost:
            out.append(f"run {namespace_of(run)}/{name_of(run)}: this version would drop spec.{lost[0]}")
    return out


def problems(kube: Kube, namespaces: tuple[str, ...]) -> list[str]:
    try:
        crd = kube.read_own_crd()
    except ApiException as err:
        if err.status != 403:
            raise
        logger.warning("self-test: this operator may not read its CRD, so it cannot check it (grant get on "
                       "customresourcedefinitions/%s.%s)", m.PLURAL, m.GROUP)
        crd = None
    found = crd_problems(crd)
    if found:
        return found
    return run_problems(served_runs(kube, namespaces))


def served_runs(kube: Kube, namespaces: tuple[str, ...]) -> list[JsonObject]:
    """The runs of the namespaces this operator serves (every namespace's, for a cluster-wide operator or
    namespace patterns)."""
    exact = [ns for ns in namespaces if not any(c in ns for c in "*?[!")]
    if not namespaces or len(exact) < len(namespaces):
        return kube.list_runs(None)
    return [r for ns in exact for r in kube.list_runs(ns)]


PASSED = "self-test passed: the installed CRD and the runs in flight fit this version"


def run(kube: Kube, namespaces: tuple[str, ...]) -> list[str]:
    """Run the self-test and log its verdict: what fails (empty: it passed)."""
    try:
        found = problems(kube, namespaces)
    except ApiException as err:
        found = [f"could not read the CRD or the runs ({err.status} {err.reason})"]
    if not found:
        logger.info("%s", PASSED)
        return found
    for problem in found[:SHOWN]:
        logger.error("self-test failed: %s", problem)
    if len(found) > SHOWN:
        logger.error("self-test failed: and %d more", len(found) - SHOWN)
    return found
