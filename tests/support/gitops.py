"""What GitOps engines make of a run: Argo CD's Lua health check and actions (run with lupa's Lua 5.1,
the dialect of Argo CD's gopher-lua), and kstatus (Flux, kpt) on the conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from lupa import lua51

ARGOCD = Path(__file__).resolve().parents[2] / "manifests" / "argocd"


def _to_python(value: Any) -> Any:
    if lua51.lua_type(value) == "table":
        keys = list(value.keys())
        if keys and all(isinstance(k, int) for k in keys):
            return [_to_python(value[k]) for k in sorted(keys)]
        return {k: _to_python(value[k]) for k in keys}
    return value


def run_lua(script: str, obj: dict[str, Any]) -> Any:
    """Run an Argo CD Lua script with `obj` as Argo CD gives it; what it returns, as Python data."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    return _to_python(lua.execute(script))


def argocd_health(obj: dict[str, Any]) -> tuple[str, str]:
    hs = run_lua((ARGOCD / "health.lua").read_text(), obj)
    return hs["status"], hs.get("message", "")


def argocd_actions(obj: dict[str, Any]) -> dict[str, bool]:
    """Action name -> disabled, as the discovery script says (read from the argocd-cm snippet Argo CD gets)."""
    cm = yaml.safe_load((ARGOCD / "argocd-cm.yaml").read_text())
    actions = yaml.safe_load(cm["data"]["resource.customizations.actions.selfbootstrap.dev_SelfBootstrapRun"])
    found = run_lua(actions["discovery.lua"], obj)
    return {name: bool(spec.get("disabled")) for name, spec in found.items()}


def argocd_action(name: str, obj: dict[str, Any]) -> dict[str, Any]:
    return run_lua((ARGOCD / "actions" / f"{name}.lua").read_text(), obj)


def kstatus(obj: dict[str, Any]) -> str:
    """kstatus' generic rules for custom resources (sigs.k8s.io/cli-utils): Current, InProgress or Failed."""
    status = obj.get("status") or {}
    generation, observed = obj["metadata"].get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return "InProgress"
    conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
    if conditions.get("Reconciling") == "True":
        return "InProgress"
    if conditions.get("Stalled") == "True":
        return "Failed"
    if conditions.get("Ready") == "False":
        return "InProgress"
    return "Current"
