"""The operator's own pod (POD_NAME and POD_NAMESPACE, from the downward API): what it is part of, and its
self-test verdict written as its condition selfbootstrap.dev/SelfTestPassed (the chart's readiness gate)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from kubernetes.client.exceptions import ApiException

from .. import models as m
from ..core import safemode
from ..core.jsontypes import JsonObject
from ..core.text import printable
from .kube import Kube, api_message
from .kubeapi import resource_path

logger = logging.getLogger(__name__)
STRATEGIC = "application/strategic-merge-patch+json"
MESSAGE_LIMIT = 200


@dataclass(frozen=True)
class OwnPod:
    namespace: str
    name: str
    pod: JsonObject | None  # as read at start; None: it could not be read
    deployment: str | None  # the Deployment it belongs to (pod -> ReplicaSet -> Deployment)

    @property
    def restarts(self) -> int:
        return safemode.restarts(self.pod) if self.pod is not None else 0


def find(kube: Kube, namespace: str | None, name: str | None) -> OwnPod | None:
    """The operator's pod, when it runs in one (None outside a pod: nothing to report, no safe mode)."""
    if not namespace or not name:
        return None
    try:
        pod = kube.api.get_optional(resource_path("", "v1", "pods", namespace, name))
        rs_name = safemode.controller_name(pod, "ReplicaSet") if pod is not None else None
        rs = kube.api.get_optional(resource_path("apps", "v1", "replicasets", namespace, rs_name)) \
            if rs_name else None
    except ApiException as err:
        logger.warning("could not read this operator's pod %s/%s: %s", namespace, name, api_message(err))
        return OwnPod(namespace, name, None, None)
    return OwnPod(namespace, name, pod, safemode.controller_name(rs, "Deployment") if rs is not None else None)


def report(kube: Kube, own: OwnPod, passed: bool, message: str) -> None:
    """Write the verdict as the pod's condition; a refusal is logged (a self-update's gate then times out)."""
    condition = {"type": m.SELF_TEST_CONDITION, "status": "True" if passed else "False",
                 "reason": "SelfTestPassed" if passed else "SelfTestFailed",
                 "message": printable(message, MESSAGE_LIMIT),
                 "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    try:
        kube.api.patch(resource_path("", "v1", "pods", own.namespace, own.name, "status"),
                       {"status": {"conditions": [condition]}}, STRATEGIC)
    except ApiException as err:
        logger.warning("could not report the self-test on pod %s/%s (grant patch on pods/status in its "
                       "namespace): %s", own.namespace, own.name, api_message(err))
