"""`verticals serve BUNDLE ...`: the REST API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .common import (
    add_data_set_option,
    add_engine_option,
)


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    from ..delivery import serve, server
    from ..errors import ConfigError

    for option, value, low, high in (("--port", args.port, 1, 65535), ("--max-batch", args.max_batch, 1, None),
                                     ("--max-chars", args.max_chars, 1, None)):
        if value < low or (high is not None and value > high):
            expected = f"{low}-{high}" if high is not None else f"an integer >= {low}"
            raise ConfigError(f"{option} {value} is out of range; expected {expected}")
    workers: int | str = args.workers
    if workers != "auto":
        try:
            workers = int(workers)
        except ValueError:
            raise ConfigError(f"--workers {args.workers}: expected 'auto' or an integer >= 1") from None
        if workers < 1:
            raise ConfigError(f"--workers {workers} is out of range; expected 'auto' or an integer >= 1")
    limits = serve.ServeLimits(max_batch=args.max_batch, max_chars=args.max_chars, batching=args.batching,
                               metrics=not args.no_metrics)
    api_key = args.api_key if args.api_key is not None else os.environ.get("VERTICALS_API_KEY")
    serve.check_api_key(api_key)  # before anything loads: an empty key must not turn authentication off
    try:
        loopback = args.host == "localhost" or ipaddress.ip_address(args.host).is_loopback
    except ValueError:  # a host name: assume it is reachable from elsewhere
        loopback = False
    if not loopback and not api_key:
        warning = (f"serving on {args.host} without authentication: anyone who can reach this port can use the "
                   f"models; set --api-key or VERTICALS_API_KEY")
        if args.log_format == "json":  # a log shipper reads every stderr line as JSON
            print(json.dumps({"level": "warning", "logger": "verticals.serve", "message": warning}), file=sys.stderr)
        else:
            print(f"verticals: warning: {warning}", file=sys.stderr)
    if args.ray or _ray_options_given(args):
        return _serve_on_ray(args, limits, api_key)
    server.run(args.bundles, host=args.host, port=args.port, limits=limits, engine=args.engine, api_key=api_key,
              cors_origins=args.cors_origin or [], show_data_info=args.show_data_info,
              overrides=args.set, feedback_db=args.feedback_db, log_predictions=args.log_predictions,
              log_retention=args.log_retention, page=not args.no_page, log_format=args.log_format,
              workers=workers)
    return 0


def add_parser(sub: Any) -> None:
    serve = sub.add_parser("serve", help="serve bundles over HTTP (needs verticals[serve])",
                           description="REST API with OpenAPI docs at /docs: health, models, batch predict.")
    serve.add_argument("bundles", nargs="+", metavar="BUNDLE")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-batch", type=int, default=64, metavar="N", help="most records per request (413)")
    serve.add_argument("--max-chars", type=int, default=20_000, metavar="N",
                       help="most characters of text per record (that record fails with 422)")
    add_engine_option(serve, "auto")
    # Serving speed (benchmarks/serve_load.py measured the defaults; README "Serving performance")
    serve.add_argument("--batching", action=argparse.BooleanOptionalAction, default=True,
                       help="predict the records of requests that queue while a forward pass runs together in the "
                            "next pass (no added wait at low load; at most --max-batch records); default: on")
    serve.add_argument("--workers", default="auto", metavar="N|auto",
                       help="processes answering on the port, each loading the models with cores/N threads; "
                            "/metrics answers for all of them (default: auto = one per core, at most 4)")
    serve.add_argument("--api-key", metavar="KEY",
                       help="require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' on /v1 routes (default: the "
                            "VERTICALS_API_KEY environment variable; prefer it, a command line is visible to others)")
    serve.add_argument("--cors-origin", action="append", metavar="ORIGIN",
                       help="let browser pages from ORIGIN (e.g. https://app.example.com) call the API; repeatable; "
                            "default: none")
    serve.add_argument("--show-data-info", action="store_true",
                       help="name the training data files in /v1/models (default: only their sha256 and size)")
    serve.add_argument("--feedback-db", metavar="FILE|URL",
                       help="store users' corrections (POST /v1/models/NAME/feedback) in this SQLite file, or in "
                            "the PostgreSQL database of a URL (postgresql+psycopg://user@host:5432/dbname; needs "
                            "verticals[postgres]); created when missing, refused when it is not a Verticals "
                            "feedback database")
    serve.add_argument("--log-predictions", action="store_true",
                       help="also store every predicted input and answer in --feedback-db, so feedback can give a "
                            "prediction_id alone (off by default: inputs may be personal data)")
    serve.add_argument("--log-retention", default="30d", metavar="N|Nd",
                       help="keep logged predictions: N = the newest N records, Nd = the last N days (default 30d)")
    serve.add_argument("--no-page", action="store_true",
                       help="do not serve the page to try the models at / (default: served; it calls the same API, "
                            "with the same key)")
    serve.add_argument("--no-metrics", action="store_true",
                       help="no Prometheus /metrics and no decision counting (default: on)")
    serve.add_argument("--log-format", choices=["text", "json"], default="text",
                       help="server log lines as text or as one JSON object per line (for log shippers)")
    serve.set_defaults(func=cmd_serve)
    add_data_set_option(serve)
    _add_ray_options(serve)


# ---- --ray: the same app as a Ray Serve application (verticals.delivery.ray_serve) ------------------------
def _add_ray_options(parser: argparse.ArgumentParser) -> None:
    ray = parser.add_argument_group("Ray Serve (needs verticals[ray-serve]; docs/delivery.md)")
    ray.add_argument("--ray", action="store_true",
                     help="serve as a Ray Serve application: replicas on a local Ray cluster, or on the cluster at "
                          "--ray-address, behind Ray's proxy on --host/--port")
    ray.add_argument("--replicas", type=int, metavar="N", help="with --ray: this many replicas (default 1)")
    ray.add_argument("--autoscaling", metavar="min=N,max=N[,target=N,...]",
                     help="with --ray: let Ray add and remove replicas within these bounds; target = requests in "
                          "flight per replica; any other key is one of Ray's autoscaling_config options")
    ray.add_argument("--replica-cpus", type=float, metavar="CPUS",
                     help="with --ray: CPUs each replica reserves, and its inference threads (default 1; a "
                          "fraction shares a core)")
    ray.add_argument("--ray-address", metavar="ADDRESS",
                     help="with --ray: join this running cluster (default: RAY_ADDRESS, else start a local one)")


def _ray_options_given(args: argparse.Namespace) -> list[str]:
    return [option for option, value in (("--replicas", args.replicas), ("--autoscaling", args.autoscaling),
                                         ("--replica-cpus", args.replica_cpus), ("--ray-address", args.ray_address))
            if value is not None]


def _serve_on_ray(args: argparse.Namespace, limits: Any, api_key: str | None) -> int:
    from ..delivery import ray_serve
    from ..delivery.monitoring import configure_logging
    from ..delivery.server import listen_socket
    from ..errors import ConfigError

    if not args.ray:
        raise ConfigError(f"{', '.join(_ray_options_given(args))} only applies with --ray: add --ray")
    # SQLite on one replica's disk: feedback and logged predictions would scatter over the machines
    for option, given in (("--feedback-db", args.feedback_db), ("--log-predictions", args.log_predictions)):
        if given:
            raise ConfigError(f"{option} cannot be used with --ray: the feedback database is one SQLite file, "
                              f"which replicas on several machines cannot share; serve it without --ray")
    ray_serve.require_serve()
    autoscaling = ray_serve.parse_autoscaling(args.autoscaling) if args.autoscaling else None
    address = args.ray_address or os.environ.get("RAY_ADDRESS") or None
    # a local cluster reads the bundles here: check them now; a joined one reads them on its nodes
    bundles = ray_serve.bundles_on_this_machine(args.bundles) if address is None else list(args.bundles)
    ray_args = ray_serve.RayServeArgs(bundles=bundles, engine=args.engine, overrides=args.set or [], limits=limits,
                                      api_key=api_key, cors_origins=args.cors_origin or [],
                                      show_data_info=args.show_data_info, page=not args.no_page)
    if address is None:
        listen_socket(args.host, args.port).close()  # a busy port fails now, in one line, not inside Ray
    configure_logging(args.log_format, "info")
    ray_serve.run(ray_args, host=args.host, port=args.port, replicas=args.replicas, autoscaling=autoscaling,
                  replica_cpus=1.0 if args.replica_cpus is None else args.replica_cpus, address=address,
                  log_format=args.log_format)
    return 0
