"""Names and labels of a twin's children, so selectors, renderers and tests agree on them.

Every child is ``<twin>-<suffix>``; the twin name is at most 40 characters
(enforced by the CRD), so the longest child name, ``<twin>-orchestrator-env``,
stays within the 63 characters of a DNS label.
"""

from __future__ import annotations

from phoenix_operator.api import GROUP, Component, Twin

MANAGER = "phoenix-operator"
TWIN_LABEL = f"{GROUP}/twin"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CONFIG_HASH_ANNOTATION = f"{GROUP}/config-hash"
# On every rendered child: the hash of the manifest the operator applied, so a changed
# rendering (or a field the operator stopped rendering) shows without a full comparison.
APPLIED_HASH_ANNOTATION = f"{GROUP}/applied-hash"

PORTS: dict[Component, int] = {
    "gateway": 8181,
    "orchestrator": 8182,
    "memory": 50052,
    "tools": 50054,
}
METRICS_PORTS: dict[Component, int] = {"memory": 9152, "tools": 9154}
GATEWAY_API_KEY = "api-key"


def component_name(twin: Twin, component: Component) -> str:
    """Deployment, Service, PodDisruptionBudget and NetworkPolicy of one component."""
    return f"{twin.name}-{component}"


def env_configmap(twin: Twin, component: Component) -> str:
    return f"{twin.name}-{component}-env"


def tools_policy_configmap(twin: Twin) -> str:
    return f"{twin.name}-tools-policy"


def gateway_api_key_secret(twin: Twin) -> str:
    return f"{twin.name}-gateway-api-key"


def service_account(twin: Twin) -> str:
    return twin.name


def default_deny_policy(twin: Twin) -> str:
    return f"{twin.name}-default-deny"


def twin_labels(twin: Twin) -> dict[str, str]:
    """Labels on every child: the operator finds its children by these."""
    return {
        "app.kubernetes.io/part-of": "phoenixtwin",
        "app.kubernetes.io/instance": twin.name,
        MANAGED_BY_LABEL: MANAGER,
        TWIN_LABEL: twin.name,
    }


def selector(twin: Twin, component: Component) -> dict[str, str]:
    """The (immutable) Deployment selector and the pod labels NetworkPolicies match."""
    return {TWIN_LABEL: twin.name, COMPONENT_LABEL: component}


def component_labels(twin: Twin, component: Component) -> dict[str, str]:
    return {
        **twin_labels(twin),
        "app.kubernetes.io/name": f"phoenix-{component}",
        COMPONENT_LABEL: component,
    }
