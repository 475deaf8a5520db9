"""Run the operator: `python -m selfbootstrap [--namespace NS ...] [--standalone]`."""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import fnmatch
import logging
import os
import time

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client import start_http_server

from . import __version__, diagnostics, metrics, selftest, services
from .adapters import ownpod
from .adapters.kube import Kube, api_message
from .adapters.kubeapi import KubeApi, resource_path
from .config import Settings
from .core import egress, guardrails, safemode
from .core.jsontypes import JsonObject
from .core.safemode import SafeMode


def start_time_priority() -> int:
    """A peering priority unique per instance, higher for instances started earlier.

    Equal priorities make kopf peers pause each other; during a rolling update of
    the operator this keeps the old pod in charge until it is replaced, so a new
    version that never becomes Ready cannot take runs away from it.
    """
    return 10**13 - int(time.time() * 1000)


def ensure_peering_objects(api: client.ApiClient, name: str, namespaces: list[str]) -> None:
    """Create the peering objects kopf coordinates through, unless they exist.

    A cluster-wide operator uses one ClusterKopfPeering; one that watches a list of
    namespaces uses a KopfPeering in each (a namespace pattern needs them made beforehand).
    """
    kube = KubeApi(api)
    try:
        if not namespaces:
            body: JsonObject = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
            kube.create_if_absent(resource_path("kopf.dev", "v1", "clusterkopfpeerings"), body)
        for namespace in namespaces:
            if any(c in namespace for c in "*?[!"):
                continue
            body = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": name}}
            kube.create_if_absent(resource_path("kopf.dev", "v1", "kopfpeerings", namespace), body)
    except ApiException as err:
        if err.status == 404:
            raise SystemExit("peering requested but kopf's peering CRDs are not installed "
                             "(kubectl apply -f manifests/peering.yaml)") from None
        raise


class QuietCaches(logging.Filter):
    """Drop kopf's line for every index update and wake-up: one per watch event of every pod and
    ReplicaSet of the cluster would bury the lines about runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.endswith((" succeeded.", " is invoked.")) and message.startswith(
            ("Indexer 'sbr_", "Handler 'deployment_gone'", "Handler 'run_gone'")))


def parse_args(argv: list[str] | None, env: Settings) -> tuple[argparse.Namespace, Settings]:
    parser = argparse.ArgumentParser(prog="selfbootstrap-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: all namespaces")
    parser.add_argument("--standalone", action="store_true", default=env.standalone,
                        help="no peering with other operator instances")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority of this instance; default: earlier-started instances win")
    parser.add_argument("--peering", default=env.peering,
                        help="name of the KopfPeering object to coordinate through")
    parser.add_argument("--liveness", default=env.liveness,
                        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-bind-address", default=env.metrics_bind_address,
                        help="serve Prometheus metrics at host:port (':9090' on every interface; '0': off)")
    parser.add_argument("--metrics-port", type=int, default=None, help=argparse.SUPPRESS)  # before 0.1: a port
    parser.add_argument("--log-format", choices=["plain", "full", "json"], default=env.log_format)
    parser.add_argument("--shard", default=env.shard,
                        help="serve only the runs labelled selfbootstrap.dev/shard=<shard> (default: the runs "
                             "without that label); use a peering name of the shard's own with --peering")
    parser.add_argument("--egress-allow", action="append", default=None, metavar="CIDR|URL-PREFIX",
                        help="let runs make the operator reach these addresses, or URLs under this prefix whatever "
                             "they resolve to (repeatable; default: SELFBOOTSTRAP_EGRESS_ALLOW, comma-separated)")
    parser.add_argument("--egress-deny", action="append", default=None, metavar="CIDR",
                        help="refuse these addresses besides loopback, link-local, multicast, the API server and "
                             "the service ranges, e.g. the pod ranges (repeatable; default: "
                             "SELFBOOTSTRAP_EGRESS_DENY)")
    parser.add_argument("--self-update-window", action="append", default=None, metavar="'[DAYS ]HH:MM-HH:MM'",
                        help="when a selfHosted run may start, in UTC, e.g. 'Mon-Fri 08:00-18:00' (repeatable; "
                             "default: SELFBOOTSTRAP_SELF_UPDATE_WINDOWS, ';'-separated; none: any time)")
    parser.add_argument("--self-update-min-interval", type=float, default=env.self_update_min_interval,
                        metavar="SECONDS", help="at least this long between the end of one self-update and the "
                                                "start of the next")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = parser.parse_args(argv)
    settings = dataclasses.replace(env, standalone=args.standalone, peering=args.peering, liveness=args.liveness,
                                   metrics_bind_address=(f":{args.metrics_port}" if args.metrics_port is not None
                                                         else args.metrics_bind_address),
                                   log_format=args.log_format,
                                   namespaces=tuple(args.namespace), shard=args.shard,
                                   egress_allow=_entries(args.egress_allow, env.egress_allow),
                                   egress_deny=_entries(args.egress_deny, env.egress_deny),
                                   self_update_windows=tuple(args.self_update_window or env.self_update_windows),
                                   self_update_min_interval=args.self_update_min_interval)
    for window in settings.self_update_windows:
        try:
            guardrails.parse_window(window)
        except ValueError as err:
            parser.error(f"--self-update-window: {err}")
    try:
        egress.policy_of(settings.egress_allow, settings.egress_deny)
    except ValueError as err:
        parser.error(f"egress policy: {err}")
    return args, settings


def _entries(flags: list[str] | None, env: tuple[str, ...]) -> tuple[str, ...]:
    """Repeated flags (each may hold several, comma-separated) replace the environment's entries."""
    return env if flags is None else tuple(e for flag in flags for e in egress.entries_of(flag))


def _safe_mode(kube: Kube, own: ownpod.OwnPod | None, failed: list[str], settings: Settings) -> SafeMode | None:
    """Safe mode when this pod fails (self-test, restarts) while its own self-update is unfinished, and this
    instance serves it (else it would hold every run for a run it never finishes)."""
    if own is None or own.deployment is None or not (failed or own.restarts):
        return None
    if settings.namespaces and not any(fnmatch.fnmatchcase(own.namespace, ns) for ns in settings.namespaces):
        return None
    try:
        runs = kube.list_runs(own.namespace)
    except ApiException as err:
        logging.getLogger(__name__).warning("could not look for an unfinished self-update: %s", api_message(err))
        return None
    return safemode.decide(safemode.unfinished_self_update(runs, own.namespace, own.deployment, settings.shard),
                           failed, own.restarts)


M_ARENA_MAX = -8  # glibc's mallopt parameter
MALLOC_ARENAS = 2


def limit_malloc_arenas() -> None:
    """Let glibc keep two malloc arenas rather than one per thread (up to 8 per core).

    Each arena keeps what its thread freed; the tick threads parse API responses, so each one's
    arena held memory the others could not reuse (3 MiB at 1,000 runs in the benchmark, at no
    measurable cost in speed). The common MALLOC_ARENA_MAX=2, set before any thread starts; an
    explicit MALLOC_ARENA_MAX wins, and a libc that is not glibc is left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> None:
    limit_malloc_arenas()
    args, settings = parse_args(argv, Settings.from_env())
    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[settings.log_format.upper()])
    for handler in logging.getLogger().handlers:
        handler.addFilter(QuietCaches())
    endpoint = settings.metrics_endpoint
    if endpoint is not None:
        metrics.build_info()
        start_http_server(endpoint[1], addr=endpoint[0])
    from . import handlers, kopf_fixes

    try:
        registry = handlers.register(settings)
    except kopf_fixes.KopfChangedError as err:  # the message names each kopf function that changed
        raise SystemExit(f"cannot start: {err}") from None
    api = services.api_client(settings.tick_threads + 2)  # the tick threads and the handlers' two
    kube = Kube(api)
    failed = selftest.run(kube, tuple(args.namespace))
    own = ownpod.find(kube, settings.pod_namespace, settings.pod_name)
    safe = _safe_mode(kube, own, failed, settings)
    if failed and safe is None:
        if own is not None:
            ownpod.report(kube, own, False, failed[0])
        logging.getLogger(__name__).error("this version does not serve: exiting with code %d (a self-update "
                                          "that brought it rolls back)", selftest.EXIT_CODE)
        raise SystemExit(selftest.EXIT_CODE)
    if settings.peering:
        ensure_peering_objects(api, settings.peering, args.namespace)
        if args.priority is None:
            args.priority = start_time_priority()
    diagnostics.install()
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=settings.standalone,
        priority=args.priority,
        peering_name=settings.peering,
        liveness_endpoint=settings.liveness,
        memo=services.memo_with(services.build(settings, api, own, safe)),
        registry=registry,
    )


if __name__ == "__main__":
    main()
