"""The `kubectl sbr` commands (installed as the console script `kubectl-sbr`, which kubectl finds on PATH)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import yaml
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError
from rich.console import Console
from rich.live import Live

from .. import __version__
from .. import models as m
from ..adapters.kube import api_message
from ..core.jsontypes import JsonObject, obj, path, text
from ..core.text import MESSAGE_LIMIT
from ..models import RunSpec, RunStatus
from . import views
from .cluster import Cluster, NotFoundError
from .plan import plan as make_plan

F = TypeVar("F", bound=Callable[..., Any])
EXIT_FAILED, EXIT_TIMEOUT, EXIT_ERROR = 1, 2, 3
console = Console(width=None if sys.stdout.isatty() else 250)  # piped: no columns cut short


def _cluster() -> Cluster:
    cluster = click.get_current_context().find_object(Cluster)
    assert cluster is not None
    return cluster


def _errors(fn: F) -> F:
    """A missing object or a refusal is one line on stderr and exit 3, never a traceback (escaped like
    the views: the API server's message may quote what a run's author wrote)."""
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except NotFoundError as err:
            raise click.ClickException(_plain(str(err))) from None
        except ApiException as err:
            raise click.ClickException(_plain(f"{err.status}: {api_message(err)}")) from None

    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped  # type: ignore[return-value]


def _plain(message: str) -> str:
    return views.line(message, limit=MESSAGE_LIMIT).plain


click.ClickException.exit_code = EXIT_ERROR


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-n", "--namespace", help="Namespace (default: the kubeconfig context's).")
@click.option("--context", help="kubeconfig context.")
@click.option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file (default: $KUBECONFIG, ~/.kube/config).")
@click.version_option(__version__, prog_name="kubectl-sbr")
@click.pass_context
def main(ctx: click.Context, namespace: str | None, context: str | None, kubeconfig: str | None) -> None:
    """SelfBootstrapRuns: see them, plan them, stop and retry them."""
    if ctx.invoked_subcommand is not None and "--help" not in sys.argv and "-h" not in sys.argv:
        ctx.obj = Cluster.connect(kubeconfig.split(":")[0] if kubeconfig else None, context, namespace)


@main.command()
@click.argument("run")
@click.option("-w", "--watch", is_flag=True, help="Redraw on change until the run ends.")
@_errors
def get(run: str, watch: bool) -> None:
    """The run, its Deployment, ReplicaSets and pods, as a tree."""
    cluster = _cluster()
    if not watch:
        console.print(_tree(cluster, run))
        return
    with Live(_tree(cluster, run), console=console, refresh_per_second=4) as live:
        while True:
            time.sleep(1)
            live.update(_tree(cluster, run))
            if obj(cluster.run(run).get("status")).get("phase") in m.TERMINAL_PHASES:
                return


def _tree(cluster: Cluster, name: str) -> Any:
    run = cluster.run(name)
    try:
        kind, target = m.target_of(run)
        dep, replica_sets, pods = cluster.deployment(target, kind)
    except NotFoundError:
        dep, replica_sets, pods = None, [], []
    return views.run_tree(run, dep, replica_sets, pods, datetime.now(UTC))


@main.command(name="list")
@click.option("-A", "--all-namespaces", is_flag=True, help="Runs of every namespace.")
@click.option("--deployment", help="Only the runs of this workload (a Deployment unless --kind says otherwise).")
@click.option("--kind", type=click.Choice([k.value for k in m.WorkloadKind]), show_default=True,
              default=m.WorkloadKind.DEPLOYMENT.value, help="The kind of the workload --deployment names.")
@_errors
def list_(all_namespaces: bool, deployment: str | None, kind: str) -> None:
    """Runs, oldest first."""
    runs = _cluster().runs(all_namespaces, deployment, kind)
    console.print(views.runs_table(runs, datetime.now(UTC), all_namespaces))


@main.command()
@click.argument("deployment")
@click.option("--kind", type=click.Choice([k.value for k in m.WorkloadKind]), show_default=True,
              default=m.WorkloadKind.DEPLOYMENT.value, help="The workload's kind.")
@_errors
def history(deployment: str, kind: str) -> None:
    """The workload's revisions beside the runs that deployed or restored them."""
    cluster = _cluster()
    dep, replica_sets, _ = cluster.deployment(deployment, kind)
    console.print(views.history_table(dep, replica_sets, cluster.runs(deployment=deployment, kind=kind),
                                      datetime.now(UTC)))


@main.command()
@click.option("-f", "--filename", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A SelfBootstrapRun manifest.")
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@_errors
def plan(filename: Path, output: str) -> None:
    """What the run would do against the cluster as it is now; nothing is created or changed."""
    cluster = _cluster()
    manifest = yaml.safe_load(filename.read_text())
    try:
        spec = RunSpec.model_validate(manifest.get("spec"))
    except ValidationError as err:
        first = err.errors()[0]
        raise click.ClickException(f"spec.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    name = (manifest.get("metadata") or {}).get("name") or "planned-run"
    namespace = (manifest.get("metadata") or {}).get("namespace") or cluster.namespace
    run: JsonObject = {"metadata": {"name": name, "namespace": namespace}, "spec": manifest.get("spec"),
                       "status": {}}
    world = cluster.kube.observe(run, spec.target.container)
    planned = make_plan(spec, name, namespace, world)
    if output == "json":
        click.echo(views.json_text(views.plan_json(planned)))
    else:
        console.print(views.plan_view(planned, name, f"{spec.target.kind.lower()} {spec.target.workload}"))


@main.command()
@click.argument("run")
@click.option("--reason", default="aborted with kubectl sbr", show_default=True, help="Recorded with the abort.")
@_errors
def abort(run: str, reason: str) -> None:
    """Stop a run in flight (it rolls back if it had deployed and its policy allows)."""
    _cluster().annotate(run, {m.ABORT_ANNOTATION: reason})
    console.print(views.line("run ", run, ": abort requested"))


@main.command()
@click.argument("run")
@click.option("--stage", type=click.Choice([s.value for s in m.ApprovalStage]), default=None,
              help="What to approve: deploy or success; default: the stage the run awaits.")
@_errors
def approve(run: str, stage: str | None) -> None:
    """Approve a run that awaits approval, in your own name (not your own run: admission refuses that)."""
    cluster = _cluster()
    found = cluster.run(run)
    if stage is None:
        status = RunStatus.model_validate(obj(found.get("status")))
        awaited = [g.name.removeprefix("approval-") for g in status.gates if g.kind == "approval"
                   and g.phase == m.GatePhase.RUNNING]
        stage = awaited[0] if awaited else m.ApprovalStage.DEPLOY.value
    who = _username(cluster)
    cluster.annotate(run, {m.APPROVAL_PREFIX + stage: who})
    console.print(views.line("run ", run, f": {stage} approved by ", who))


@main.command()
@click.argument("run")
@_errors
def retry(run: str) -> None:
    """Make a new run with the same spec as a finished one (named <run>-retry-<n>), on your behalf."""
    cluster = _cluster()
    status = RunStatus.model_validate(obj(cluster.run(run).get("status")))
    if status.phase not in m.TERMINAL_PHASES:
        raise click.ClickException(f"run {run} is still {status.phase or 'Pending'}; abort it first")
    cluster.annotate(run, {m.RETRY_ANNOTATION: str(len(status.retried_as) + 1),
                           m.RETRY_REQUESTED_BY_ANNOTATION: _username(cluster)})
    made = f"{run[:230]}-retry-{len(status.retried_as) + 1}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if made in RunStatus.model_validate(obj(cluster.run(run).get("status"))).retried_as:
            console.print(views.line("run ", run, ": retried as ", made))
            return
        time.sleep(0.5)
    raise click.ClickException(f"asked for a retry of {run}, but the operator made none within 30s")


def _username(cluster: Cluster) -> str:
    """Who the API server takes us for (a SelfSubjectReview): the retry is recorded on their behalf, and
    admission accepts no other name in retry-requested-by."""
    review = cluster.kube.api.create("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                                     {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    name = text(path(review, "status", "userInfo", "username"))
    if not name:
        raise click.ClickException("the API server did not say who you are (SelfSubjectReview without a username)")
    return name


@main.command()
@click.argument("run")
@click.option("--timeout", default="10m", show_default=True, help="How long to wait, e.g. 90s, 10m, 1h.")
@_errors
def status(run: str, timeout: str) -> None:
    """Wait for the run to end: exit 0 when it succeeded, 1 when it did not, 2 on timeout (for CI)."""
    cluster = _cluster()
    deadline = time.monotonic() + _seconds(timeout)
    while True:
        found = cluster.run(run)
        s = obj(found.get("status"))
        phase = text(s.get("phase"))
        if phase in m.TERMINAL_PHASES:
            line = views.status_line(found)
            if phase == m.Phase.SUCCEEDED:
                console.print(line)
                return
            click.echo(line.plain, err=True)
            sys.exit(EXIT_FAILED)
        if time.monotonic() >= deadline:
            click.echo(_plain(f"{run}: still {phase or 'Pending'} after {timeout}"), err=True)
            sys.exit(EXIT_TIMEOUT)
        time.sleep(0.5)


def _seconds(duration: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    try:
        if duration[-1] in units:
            return float(duration[:-1]) * units[duration[-1]]
        return float(duration)
    except (ValueError, IndexError):
        raise click.BadParameter(f"{duration!r} is not a duration such as 90s, 10m or 1h") from None


if __name__ == "__main__":
    main()
