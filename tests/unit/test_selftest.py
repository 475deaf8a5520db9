"""The self-test's verdicts (core/compat.py and selftest.py's pure parts): a version refuses to serve a CRD
older than its own, and runs whose spec it would read without a field."""

from __future__ import annotations

import copy

import pytest
import yaml

from selfbootstrap import selftest
from selfbootstrap.core import compat
from selfbootstrap.crdgen import PACKAGED

OURS = yaml.safe_load(PACKAGED.read_text())


def without(crd: dict, *path: str) -> dict:
    out = copy.deepcopy(crd)
    node = out["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for part in path[:-1]:
        node = node["properties"][part]
    del node["properties"][path[-1]]
    return out


def test_the_packaged_crd_fits_itself():
    assert selftest.crd_problems(OURS) == []


@pytest.mark.parametrize("path, says", [
    (("status", "gates"), "the installed CRD lacks status.gates"),
    (("spec", "analysis"), "the installed CRD lacks spec.analysis"),
    (("spec", "release", "pinDigest"), "the installed CRD lacks spec.release.pinDigest"),
])
def test_an_older_crd_is_refused_naming_what_it_lacks(path, says):
    problems = selftest.crd_problems(without(OURS, *path))
    assert len(problems) == 1 and problems[0].startswith(says) and "apply this version's CRD first" in problems[0]


def test_no_crd_yet_is_no_problem_and_another_version_is_refused():
    assert selftest.crd_problems(None) == []
    other = copy.deepcopy(OURS)
    other["spec"]["versions"][0]["name"] = "v2"
    assert "does not serve selfbootstrap.dev/v1alpha1" in selftest.crd_problems(other)[0]


def run(spec: dict, phase: str | None = None) -> dict:
    return {"metadata": {"name": "r", "namespace": "shop"}, "spec": spec,
            "status": {"phase": phase} if phase else {}}


SPEC = {"target": {"deployment": "web"}, "release": {"id": "v2", "image": "r.io/web:v2"}}


def test_runs_in_flight_must_keep_every_field():
    assert selftest.run_problems([run(SPEC)]) == []
    newer = {**SPEC, "release": {**SPEC["release"], "signature": "cosign"}}
    assert selftest.run_problems([run(newer)]) == ["run shop/r: this version would drop spec.release.signature"]
    assert selftest.run_problems([run(newer, phase="Succeeded")]) == []  # a finished run is not served


@pytest.mark.parametrize("original, kept, lost", [
    ({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2, "d": 3}}, []),
    ({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {}}, ["b.c"]),
    ({"l": [{"x": 1}, {"y": 2}]}, {"l": [{"x": 1}]}, ["l[1]"]),
    ({"n": None}, {}, []),
])
def test_lost_fields(original, kept, lost):
    assert compat.lost_fields(original, kept) == lost


def test_an_operator_that_may_not_read_its_crd_checks_the_runs_only():
    from unittest.mock import create_autospec

    from kubernetes.client.exceptions import ApiException

    from selfbootstrap.adapters.kube import Kube

    kube = create_autospec(Kube, instance=True)
    kube.read_own_crd.side_effect = ApiException(status=403, reason="Forbidden")
    kube.list_runs.return_value = [run(SPEC)]
    assert selftest.problems(kube, ("team-a",)) == []
    kube.list_runs.assert_called_once_with("team-a")
    kube.read_own_crd.side_effect = ApiException(status=500, reason="Internal")
    with pytest.raises(ApiException):
        selftest.problems(kube, ())
