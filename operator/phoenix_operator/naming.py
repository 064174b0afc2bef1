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
# The telemetry producer: a second container of the gateway Pod (the original's port).
TELEMETRY_PORT = 8183
GATEWAY_API_KEY = "api-key"
GATEWAY_SESSION_KEY = "session-key"


def component_name(twin: Twin, component: Component) -> str:
    """Workload (Deployment or StatefulSet), Service, PDB and NetworkPolicy of one component."""
    return f"{twin.name}-{component}"


# A StatefulSet's Pods carry the label controller-revision-hash=<name>-<10-char hash>, and a
# label value has at most 63 characters, so a StatefulSet name longer than 52 makes every Pod
# creation fail (kubernetes/kubernetes#64023).
MAX_STATEFULSET_NAME = 52


def workload_name(twin_name: str, component: Component) -> str:
    """The component's Deployment or StatefulSet: ``<twin>-<component>``, cut to what fits.

    Only the orchestrator is a StatefulSet, and only a 40-character twin name makes
    ``<twin>-orchestrator`` longer than 52: it becomes ``<twin>-orchestrato``.
    """
    return f"{twin_name}-{component}"[:MAX_STATEFULSET_NAME]


def env_configmap(twin: Twin, component: Component) -> str:
    return f"{twin.name}-{component}-env"


def tools_policy_configmap(twin: Twin) -> str:
    return f"{twin.name}-tools-policy"


def gateway_api_key_secret(twin: Twin) -> str:
    return f"{twin.name}-gateway-api-key"


def gateway_session_secret(twin: Twin) -> str:
    """The generated key every gateway replica signs console sessions with."""
    return f"{twin.name}-gateway-session"


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
