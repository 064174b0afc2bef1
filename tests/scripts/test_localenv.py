"""The local stack's environments: what ``make run`` takes from ``.env`` and the environment.

An existing ``.env`` (the original's variable names) is honoured: addresses of components
of the user's own (issue 12: run_local used to overwrite them), and ``TOOLS_USE_BWRAP=false``
for the cwd-only fallback. State paths and ports stay the stack's own, and tests, which do
not honour addresses, keep their own stack's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts import localstack
from scripts.localenv import ADDRESS_VARS, base_environment, component_environments
from scripts.localstack import Ports, StackConfig

PORTS = Ports(memory=41001, tools=41002, orchestrator=41003, telemetry=41004, gateway=41005)
USER_ADDRESSES = {
    "ORCHESTRATOR_URL": "http://127.0.0.1:9001",
    "TELEMETRY_URL": "http://127.0.0.1:9002",
    "MEMORY_GRPC_ADDR": "http://127.0.0.1:9003",
    "TOOLS_GRPC_ADDR": "http://127.0.0.1:9004",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What this process inherited must not decide what the tests read."""
    for var in (*ADDRESS_VARS, "TOOLS_USE_BWRAP", "TOOLS_ALLOW_UNSANDBOXED", "MEMORY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)


def environments(tmp_path: Path, *, honour: bool) -> dict[str, dict[str, str]]:
    config = StackConfig(
        state_dir=tmp_path / "state", ports=PORTS, cwd=tmp_path, honour_user_addresses=honour
    )
    return component_environments(config, base_environment(config))


def write_dotenv(tmp_path: Path, values: dict[str, str]) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def test_make_run_honours_the_addresses_in_an_existing_dotenv(tmp_path: Path) -> None:
    write_dotenv(tmp_path, USER_ADDRESSES)
    envs = environments(tmp_path, honour=True)
    assert envs["gateway"]["ORCHESTRATOR_URL"] == "http://127.0.0.1:9001"
    assert envs["gateway"]["TELEMETRY_URL"] == "http://127.0.0.1:9002"
    assert envs["orchestrator"]["MEMORY_GRPC_ADDR"] == "http://127.0.0.1:9003"
    assert envs["orchestrator"]["TOOLS_GRPC_ADDR"] == "http://127.0.0.1:9004"
    assert envs["tools"]["MEMORY_GRPC_ADDR"] == "http://127.0.0.1:9003"


def test_the_environment_wins_over_the_dotenv(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_dotenv(tmp_path, USER_ADDRESSES)
    monkeypatch.setenv("ORCHESTRATOR_URL", "http://127.0.0.1:9101")
    envs = environments(tmp_path, honour=True)
    assert envs["gateway"]["ORCHESTRATOR_URL"] == "http://127.0.0.1:9101"


def test_without_user_addresses_each_component_finds_the_stacks_own(tmp_path: Path) -> None:
    envs = environments(tmp_path, honour=True)
    assert envs["gateway"]["ORCHESTRATOR_URL"] == f"http://127.0.0.1:{PORTS.orchestrator}"
    assert envs["gateway"]["TELEMETRY_URL"] == f"http://127.0.0.1:{PORTS.telemetry}"
    assert envs["orchestrator"]["MEMORY_GRPC_ADDR"] == f"http://127.0.0.1:{PORTS.memory}"
    assert envs["orchestrator"]["TOOLS_GRPC_ADDR"] == f"http://127.0.0.1:{PORTS.tools}"


def test_a_test_stack_keeps_its_own_addresses_and_every_stack_its_state_and_ports(
    tmp_path: Path,
) -> None:
    write_dotenv(tmp_path, {**USER_ADDRESSES, "MEMORY_DATA_DIR": "/elsewhere", "GATEWAY_PORT": "1"})
    for honour in (False, True):
        envs = environments(tmp_path, honour=honour)
        if not honour:
            assert envs["gateway"]["ORCHESTRATOR_URL"] == f"http://127.0.0.1:{PORTS.orchestrator}"
            assert envs["orchestrator"]["MEMORY_GRPC_ADDR"] == f"http://127.0.0.1:{PORTS.memory}"
        assert envs["memory"]["MEMORY_DATA_DIR"] == str((tmp_path / "state" / "memory").resolve())
        assert envs["gateway"]["GATEWAY_PORT"] == str(PORTS.gateway)


@pytest.mark.parametrize("off", ["false", "False", "0", "no", "off"])
def test_tools_use_bwrap_false_in_the_dotenv_runs_the_announced_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, off: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: f"/usr/bin/{name}")
    write_dotenv(tmp_path, {"TOOLS_USE_BWRAP": off})
    tools = environments(tmp_path, honour=True)["tools"]
    assert (tools["TOOLS_USE_BWRAP"], tools["TOOLS_ALLOW_UNSANDBOXED"]) == ("false", "true")
    printed: list[str] = []
    config = StackConfig(
        state_dir=tmp_path / "state", ports=PORTS, cwd=tmp_path, output=printed.append
    )
    localstack.LocalStack(config).prepare()
    assert "WARNING: TOOLS_USE_BWRAP is off: tools run UNSANDBOXED" in "".join(printed)


@pytest.mark.parametrize(("on_path", "setting"), [(True, None), (True, "true"), (False, None)])
def test_bubblewrap_is_used_exactly_when_it_is_on_path_and_not_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on_path: bool, setting: str | None
) -> None:
    found = {"bwrap": "/usr/bin/bwrap"} if on_path else {}
    monkeypatch.setattr(shutil, "which", found.get)
    if setting is not None:
        write_dotenv(tmp_path, {"TOOLS_USE_BWRAP": setting})
    tools = environments(tmp_path, honour=True)["tools"]
    expected = ("true", "false") if on_path else ("false", "true")
    assert (tools["TOOLS_USE_BWRAP"], tools["TOOLS_ALLOW_UNSANDBOXED"]) == expected
