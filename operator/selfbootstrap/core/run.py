"""The run as the core sees it: the resource's identity, its parsed spec and its stored status."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..models import RunSpec, RunStatus


@dataclass(frozen=True)
class Run:
    name: str
    generation: int
    spec: RunSpec
    status: RunStatus
    namespace: str = ""
    uid: str = ""
    created: str = ""  # metadata.creationTimestamp: the date of every commit the run makes
    abort: str | None = None  # the selfbootstrap.dev/abort annotation: a person asked the run to stop
    retry_of: str | None = None  # the selfbootstrap.dev/retry-of annotation: the run this one retries
    author: str | None = None  # the selfbootstrap.dev/author annotation (admission: its creator)
    approvals: Mapping[str, str] = field(default_factory=dict)  # stage -> who approved it (annotations)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"
