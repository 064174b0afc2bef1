"""Pure rendering: a twin (plus operator defaults) in, the manifests of its children out.

Nothing here does IO or reads the clock or the environment; reconcile/ applies
what these functions return. Every manifest carries the twin as controller
owner, the twin's labels, and is complete (server-side apply owns every field
it sets, so a field left out here is a field the operator gives up).
"""

from __future__ import annotations

from collections.abc import Mapping

from phoenix_operator.api import COMPONENTS, Twin
from phoenix_operator.render import config, netpol, workloads
from phoenix_operator.render.common import Manifest, RenderContext, stable_hash
from phoenix_operator.render.workloads import (
    GeneratedSecret,
    generated_secrets,
    unhonoured,
    workload_kind,
)

__all__ = [
    "GeneratedSecret",
    "Manifest",
    "RenderContext",
    "children",
    "generated_secrets",
    "key",
    "stable_hash",
    "unhonoured",
    "workload_kind",
]


def children(twin: Twin, ctx: RenderContext, generated: Mapping[str, str]) -> list[Manifest]:
    """Every child of ``twin``, in apply order (config before the workloads that read it).

    ``generated`` maps the name of each Secret of ``generated_secrets(twin)`` to
    its value (read back from the live Secret, or new on the first reconcile).
    """
    objects: list[Manifest] = [workloads.service_account(twin)]
    for secret in generated_secrets(twin):
        if secret.name not in generated:
            raise ValueError(f"a generated value for Secret {secret.name} is required")
        objects.append(workloads.generated_secret(twin, secret, generated[secret.name]))
    objects += [config.env_configmap(twin, c, ctx) for c in COMPONENTS]
    objects.append(config.tools_policy_configmap(twin))
    objects += netpol.network_policies(twin, ctx)
    for component in COMPONENTS:
        objects.append(workloads.service(twin, component))
        objects.append(workloads.workload(twin, component, ctx))
        pdb = workloads.pod_disruption_budget(twin, component)
        if pdb is not None:
            objects.append(pdb)
    return objects


def key(manifest: Manifest) -> tuple[str, str]:
    """(kind, name): how a child is identified within its twin's namespace."""
    return manifest["kind"], manifest["metadata"]["name"]
