"""Parsing a PhoenixTwin: defaults equal the CRD's, bad input names the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from phoenix_common.errors import InvalidInput
from phoenix_operator import naming
from phoenix_operator.api import COMPONENTS, MAX_TWIN_NAME, TwinSpec
from tests.operator.conftest import make_twin

CRD = Path(__file__).resolve().parents[2] / "crds" / "phoenixtwin.io_phoenixtwins.yaml"


def apply_schema_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the API server's structural defaulting does to ``value`` (objects only)."""
    if schema.get("type") != "object" or not isinstance(value, dict):
        return value
    result = dict(value)
    for key, sub in (schema.get("properties") or {}).items():
        if key not in result and "default" in sub:
            result[key] = sub["default"]
        if key in result:
            result[key] = apply_schema_defaults(sub, result[key])
    return result


def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


def test_the_crd_defaults_of_an_empty_spec_equal_the_models_defaults() -> None:
    defaulted = apply_schema_defaults(spec_schema(), {})
    assert TwinSpec.model_validate(defaulted) == TwinSpec()


def test_an_empty_spec_is_a_complete_twin() -> None:
    twin = make_twin({})
    assert twin.spec.llm.provider == "mock"
    assert twin.spec.memory.namespaces == ("default",)
    assert twin.spec.memory.reclaim_policy == "Retain"
    assert twin.spec.tools.sandbox == "bwrap"
    assert twin.spec.network_policy == "Managed"
    assert all(twin.spec.component(c).replicas == 1 for c in COMPONENTS)


def test_camel_case_fields_are_read() -> None:
    twin = make_twin(
        {
            "llm": {"provider": "openai", "apiKeySecretRef": {"name": "llm", "key": "k"}},
            "memory": {"reclaimPolicy": "Delete"},
            "tools": {"timeoutMs": 2500},
        }
    )
    assert twin.spec.llm.api_key_secret_ref is not None
    assert twin.spec.llm.url == "https://api.openai.com/v1/chat/completions"
    assert twin.spec.memory.reclaim_policy == "Delete"
    assert twin.spec.tools.timeout_ms == 2500


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"llm": {"provider": "openrouter"}}, "llm.apiKeySecretRef"),
        ({"memory": {"namespaces": ["a/b"]}}, "namespace 'a/b' is invalid"),
        ({"memory": {"namespaces": ["a", "a"]}}, "must be unique"),
        ({"gateway": {"replicas": 99}}, "spec.gateway.replicas"),
    ],
)
def test_invalid_specs_raise_invalid_input_naming_the_problem(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message.replace(".", r"\.")):
        make_twin(spec)


def test_a_name_over_forty_characters_is_refused() -> None:
    with pytest.raises(InvalidInput, match="longer than 40"):
        make_twin(name="x" * 41)


def test_the_longest_child_name_of_the_longest_twin_fits_a_dns_label() -> None:
    twin = make_twin(name="a" * MAX_TWIN_NAME)
    names = [naming.env_configmap(twin, c) for c in COMPONENTS]
    names += [naming.gateway_api_key_secret(twin), naming.default_deny_policy(twin)]
    assert max(len(n) for n in names) <= 63


EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "path", sorted(p.name for p in EXAMPLES.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_every_example_twin_is_valid_after_defaulting(path: str) -> None:
    twins = [
        doc
        for doc in yaml.safe_load_all((EXAMPLES / path).read_text())
        if isinstance(doc, dict) and doc.get("kind") == "PhoenixTwin"
    ]
    assert twins, f"{path} declares no PhoenixTwin"
    for doc in twins:
        spec = TwinSpec.model_validate(apply_schema_defaults(spec_schema(), doc.get("spec") or {}))
        assert len(doc["metadata"]["name"]) <= MAX_TWIN_NAME
        assert spec.memory.reclaim_policy in ("Retain", "Delete")


def test_the_examples_kustomization_lists_only_existing_files() -> None:
    kustomization = yaml.safe_load((EXAMPLES / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert kustomization["resources"]
    for resource in kustomization["resources"]:
        assert (EXAMPLES / resource).is_file(), resource
