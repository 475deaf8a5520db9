"""The job provider: a Job in the run's namespace for each measurement (Argo's job provider).

The Job is named for the run, the metric and the measurement's number, so a measurement looked at
again (the operator restarted, the Job still runs) finds the same Job rather than starting another.
It succeeds or fails; neither its output nor its pods' messages are read back.
"""

from __future__ import annotations

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as TransportError

from ... import models as m
from ...core.actions import Measured
from ...core.jsontypes import JsonObject, obj, objects, path, strings, text
from ...core.run import Run
from ...models import JobMetric
from ..kube import Kube

RUN_UID_LABEL = f"{m.GROUP}/run-uid"
METRIC_LABEL = f"{m.GROUP}/metric"
FINISHED_JOB_SECONDS = 600  # ttlSecondsAfterFinished unless the spec says otherwise


def render(run: Run, metric: str, spec: JobMetric, name: str) -> JsonObject:
    labels = {**spec.metadata.labels, RUN_UID_LABEL: run.uid, METRIC_LABEL: metric}
    job_spec = {"ttlSecondsAfterFinished": FINISHED_JOB_SECONDS, **spec.spec}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": run.namespace, "labels": labels,
                         "annotations": dict(spec.metadata.annotations)},
            "spec": job_spec}


def outcome(job: JsonObject) -> bool | None:
    """True when the Job succeeded, False when it failed, None while it runs (from its conditions)."""
    conditions = {text(c.get("type")) for c in objects(path(job, "status", "conditions")) if c.get("status") == "True"}
    if conditions & {"Complete", "SuccessCriteriaMet"}:
        return True
    if conditions & {"Failed", "FailureTarget"}:
        return False
    return None


def measure(kube: Kube, run: Run, metric: str, spec: JobMetric, name: str) -> Measured:
    try:
        job = kube.read_job(run.namespace, name)
        if job is None:
            job = kube.create_job(run.namespace, render(run, metric, spec, name))
            if job is None:  # created now: it has just begun
                return Measured(metric, pending=True)
        if strings(path(obj(job), "metadata", "labels")).get(RUN_UID_LABEL) != run.uid:
            return Measured(metric, error=f"a Job named {name} exists and was not made by this run")
        done = outcome(job)
    except ApiException as err:
        return Measured(metric, error=f"the metric's Job {name} could not be created or read ({err.status})")
    except (TransportError, OSError) as err:
        return Measured(metric, error=f"the API server could not be reached ({type(err).__name__})")
    if done is None:
        return Measured(metric, pending=True)
    return Measured(metric, result=done)
