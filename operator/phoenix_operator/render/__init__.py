"""Pure rendering: a twin (plus operator defaults) in, the manifests of its children out.

Nothing here does IO or reads the clock or the environment; reconcile/ applies
what these functions return. Every manifest carries the twin as controller
owner, the twin's labels, and is complete (server-side apply owns every field
it sets, so a field left out here is a field the operator gives up).
"""

from __future__ import annotations

from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import config, netpol, workloads
from phoenix_operator.render.common import Manifest, RenderContext, stable_hash

__all__ = ["Manifest", "RenderContext", "children", "key", "stable_hash"]


def children(twin: Twin, ctx: RenderContext, gateway_api_key: str | None) -> list[Manifest]:
    """Every child of ``twin``, in apply order (config before the workloads that read it).

    ``gateway_api_key`` is the generated key (existing or new); it is needed only
    when the twin names no Secret of its own, and ignored otherwise.
    """
    objects: list[Manifest] = [workloads.service_account(twin)]
    if twin.spec.gateway.auth.api_key_secret_ref is None:
        if gateway_api_key is None:
            raise ValueError("a generated gateway API key is required for this twin")
        objects.append(workloads.gateway_api_key_secret(twin, gateway_api_key))
    objects += [config.env_configmap(twin, c, ctx) for c in COMPONENTS]
    objects.append(config.tools_policy_configmap(twin))
    objects += netpol.network_policies(twin, ctx)
    for component in COMPONENTS:
        objects.append(workloads.service(twin, component))
        objects.append(workloads.deployment(twin, component, ctx))
        pdb = workloads.pod_disruption_budget(twin, component)
        if pdb is not None:
            objects.append(pdb)
    return objects


def key(manifest: Manifest) -> tuple[str, str]:
    """(kind, name): how a child is identified within its twin's namespace."""
    return manifest["kind"], manifest["metadata"]["name"]
