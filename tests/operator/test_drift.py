"""When does a live child need an apply? Only when it lacks what the operator renders."""

from __future__ import annotations

from phoenix_operator.reconcile import drift


def test_fields_added_by_the_api_server_are_not_drift() -> None:
    desired = {"spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}
    live = {
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "selector": {"a": "b"}},
        "status": {},
        "clusterIP": "10.0.0.1",
    }
    assert drift.differences(desired, live) == []


def test_a_changed_or_missing_value_is_drift() -> None:
    desired = {"data": {"A": "1", "B": "2"}}
    assert drift.differences(desired, {"data": {"A": "9", "B": "2"}}) == [".data.A"]
    assert drift.differences(desired, {"data": {"A": "1"}}) == [".data.B"]
    assert drift.differences(desired, None) == ["."]


def test_a_list_of_another_length_is_drift() -> None:
    desired = {"env": [{"name": "A"}]}
    assert drift.differences(desired, {"env": [{"name": "A"}, {"name": "X"}]}) == [".env"]


def test_empty_rendered_values_match_fields_the_server_omits() -> None:
    assert drift.differences({"to": [{"namespaceSelector": {}}]}, {"to": [{}]}) == []
    assert drift.differences({"volumes": [{"emptyDir": {}}]}, {"volumes": [{"emptyDir": {}}]}) == []


def test_the_applied_hash_changes_with_the_rendering() -> None:
    first = drift.with_applied_hash({"metadata": {"name": "x"}, "data": {"A": "1"}})
    second = drift.with_applied_hash({"metadata": {"name": "x"}, "data": {"A": "2"}})
    key = "phoenixtwin.io/applied-hash"
    assert first["metadata"]["annotations"][key] != second["metadata"]["annotations"][key]
    assert drift.differences(second, first) != []
