"""Run the operator: `python -m selfbootstrap [--namespace NS ...] [--standalone]`."""

from __future__ import annotations

import argparse
import os
import time

import kopf
from prometheus_client import start_http_server


def start_time_priority() -> int:
    """A peering priority unique per instance, higher for instances started earlier.

    Equal priorities make kopf peers pause each other; during a rolling update of
    the operator this keeps the old pod in charge until it is replaced, so a new
    version that never becomes Ready cannot take runs away from it.
    """
    return 10**13 - int(time.time() * 1000)


def ensure_peering_object(name: str) -> None:
    """Create the ClusterKopfPeering object kopf coordinates through, unless it exists."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    body = {"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}
    try:
        client.CustomObjectsApi().create_cluster_custom_object("kopf.dev", "v1", "clusterkopfpeerings", body)
    except ApiException as err:
        if err.status == 404:
            raise SystemExit("peering requested but the ClusterKopfPeering CRD is not installed "
                             "(kubectl apply -f manifests/peering.yaml)") from None
        if err.status != 409:
            raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="selfbootstrap-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: all namespaces")
    parser.add_argument("--standalone", action="store_true",
                        default=os.environ.get("SELFBOOTSTRAP_STANDALONE") == "1",
                        help="no peering with other operator instances")
    parser.add_argument("--priority", type=int, default=None,
                        help="peering priority of this instance; default: earlier-started instances win")
    parser.add_argument("--peering", default=os.environ.get("SELFBOOTSTRAP_PEERING"),
                        help="name of the KopfPeering object to coordinate through")
    parser.add_argument("--liveness", default=os.environ.get("SELFBOOTSTRAP_LIVENESS"),
                        help="liveness endpoint, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("SELFBOOTSTRAP_METRICS_PORT", "0")),
                        help="serve Prometheus metrics on this port (0: off)")
    parser.add_argument("--log-format", choices=["plain", "full", "json"],
                        default=os.environ.get("SELFBOOTSTRAP_LOG_FORMAT", "full"))
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    kopf.configure(verbose=args.verbose, log_format=kopf.LogFormat[args.log_format.upper()])
    if args.metrics_port:
        start_http_server(args.metrics_port)
    from . import handlers  # noqa: F401  (registers the handlers)

    if args.peering:
        ensure_peering_object(args.peering)
        if args.priority is None:
            args.priority = start_time_priority()
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=args.standalone,
        priority=args.priority,
        peering_name=args.peering,
        liveness_endpoint=args.liveness,
    )


if __name__ == "__main__":
    main()
