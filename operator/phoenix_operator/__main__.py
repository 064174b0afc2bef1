"""phoenix-operator: run the PhoenixTwin kopf operator with the right flags.

``phoenix-operator`` (all namespaces), ``phoenix-operator -n team-a -n team-b``
or ``PHOENIX_OPERATOR_NAMESPACES=team-a,team-b``. Standalone (no peering) unless
``--peering``/``PHOENIX_OPERATOR_PEERING`` names a kopf peering for
active/passive HA; ``PHOENIX_OPERATOR_TWIN_SELECTOR`` (or ``-n``) shards twins
between replicas. Liveness on ``:8080/healthz``, metrics on ``:9090/metrics``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import kopf

from phoenix_common import logging as phoenix_logging
from phoenix_operator import handlers, kopf_barrier, kopf_bodies
from phoenix_operator.settings import OperatorSettings


def main(argv: list[str] | None = None) -> int:
    settings = OperatorSettings()
    parser = argparse.ArgumentParser(prog="phoenix-operator", description=__doc__.split("\n")[0])
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", action="append", default=None, help="namespace (pattern) to serve"
    )
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="serve every namespace")
    parser.add_argument("--peering", default=settings.peering, help="kopf peering name (HA)")
    parser.add_argument("--priority", type=int, default=settings.priority)
    args = parser.parse_args(argv)
    namespaces: list[str] = [] if args.all_namespaces else (args.namespace or settings.namespaces)
    settings = settings.model_copy(update={"namespaces": namespaces, "peering": args.peering})

    phoenix_logging.configure(settings, "operator")
    # One INFO line per handled watch event would drown everything else.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # lightkube's HTTP library logs every request at INFO: the write metrics count them.
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    # Linear start-up over many indexed objects; listed children pass once indexed (see it).
    kopf_barrier.install(handlers.CHILD_KINDS)
    # No managedFields in what kopf holds, and children as metadata plus LiveChild (see it).
    kopf_bodies.install(handlers.PROJECTIONS)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, settings)
    liveness = f"http://0.0.0.0:{settings.health_port}/healthz" if settings.health_port else None
    asyncio.run(
        kopf.operator(
            registry=registry,
            settings=handlers.kopf_settings(settings),
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=settings.peering is None,
            peering_name=settings.peering,
            priority=args.priority,
            liveness_endpoint=liveness,
            memo=kopf.Memo(settings=settings),
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
