"""Servers the tests start as processes (Prometheus, the image registry, Gitea): tools/localcluster.py builds them
and starts them (`serving`), for the tests, the benchmarks and the demo alike."""

from __future__ import annotations

from tools.localcluster import serving

__all__ = ["serving"]
