"""Metric providers: one module each (prometheus.py, web.py, job.py), as Argo Rollouts' metricproviders/.

A provider takes a metric's settings (args already substituted) and returns a `Measured`: the result
as plain data, or why there is none in the provider's own fixed words. Every request goes through the
operator's egress policy (request.py) and follows no redirect; a job metric's Job runs in the run's
namespace. The core judges the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from ...core.actions import Measured, MeasureMetric
from ...core.run import Run
from ...models import JobMetric, PrometheusMetric, WebMetric
from ..egress import EgressPolicy
from ..kube import Kube
from . import job, prometheus, web

if TYPE_CHECKING:
    import httpx


class MetricExecutor:
    def __init__(self, kube: Kube, egress: EgressPolicy, transport: httpx.BaseTransport | None = None) -> None:
        self.kube = kube
        self.egress = egress
        self.transport = transport  # tests may inject one; the default is a real connection

    def perform(self, run: Run, action: MeasureMetric) -> Measured:
        """One measurement; never raises."""
        provider = action.provider
        match provider:
            case PrometheusMetric():
                return prometheus.measure(action.metric, provider, self.egress, self.transport)
            case WebMetric():
                return web.measure(action.metric, provider, self.egress, self.transport)
            case JobMetric():
                assert action.job_name is not None, "a job metric's measurement names its Job"
                return job.measure(self.kube, run, action.metric, provider, action.job_name)
            case _:
                assert_never(provider)
