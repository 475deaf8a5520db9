"""Run the operator: `python -m selfbootstrap [--namespace NS ...] [--standalone]`."""

from __future__ import annotations

import argparse
import os

import kopf
from prometheus_client import start_http_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="selfbootstrap-operator", description=__doc__)
    parser.add_argument("-n", "--namespace", action="append", default=[],
                        help="watch this namespace (repeatable); default: all namespaces")
    parser.add_argument("--standalone", action="store_true",
                        default=os.environ.get("SELFBOOTSTRAP_STANDALONE") == "1",
                        help="no peering with other operator instances")
    parser.add_argument("--priority", type=int, default=None, help="peering priority of this instance")
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
