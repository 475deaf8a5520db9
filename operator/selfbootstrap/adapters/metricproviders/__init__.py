"""Metric providers: one module each (prometheus.py, web.py), as Argo Rollouts' metricproviders/.

A provider takes a metric's settings (args already substituted) and returns a `Measured`: the result
as plain data, or why there is none in the provider's own fixed words. Every request goes through the
operator's egress policy (request.py) and follows no redirect; the core judges the result.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, assert_never

from ...core.actions import Measured, MeasureMetric
from ...models import PrometheusMetric, WebMetric
from ..egress import EgressPolicy
from . import prometheus, web

if TYPE_CHECKING:
    import httpx


class MetricExecutor:
    def __init__(self, egress: EgressPolicy, transport: httpx.BaseTransport | None = None) -> None:
        self.egress = egress
        self.transport = transport  # tests may inject one; the default is a real connection

    def perform(self, action: MeasureMetric) -> Measured:
        """One measurement; never raises."""
        provider = action.provider
        match provider:
            case PrometheusMetric():
                return prometheus.measure(action.metric, provider, self.egress, self.transport)
            case WebMetric():
                return web.measure(action.metric, provider, self.egress, self.transport)
            case _:
                assert_never(provider)
