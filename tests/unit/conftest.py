"""Fixtures the unit tests share."""

from __future__ import annotations

from unittest.mock import create_autospec

import pytest

from selfbootstrap.adapters.kube import Kube


@pytest.fixture
def kube():
    """The Kubernetes adapter, autospec'd: a status write returns the run with that status."""
    kube = create_autospec(Kube, instance=True)
    kube.write_status.side_effect = lambda obj, status: {**obj, "status": status}
    kube.patch_workload.return_value = {"spec": {"template": {}}}
    return kube
