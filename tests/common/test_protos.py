"""The committed gRPC stubs are exactly what `make protos` generates from protos/."""

from __future__ import annotations

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STUBS = REPO / "images" / "common" / "phoenix_common" / "stubs"


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen-protos.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    fresh = tmp_path / "phoenix_common" / "stubs"
    generated = sorted(p.name for p in fresh.iterdir() if p.suffix in {".py", ".pyi"})
    assert generated == sorted(p.name for p in STUBS.iterdir() if p.suffix in {".py", ".pyi"})
    stale = [
        name for name in generated if not filecmp.cmp(fresh / name, STUBS / name, shallow=False)
    ]
    assert not stale, f"stubs are stale, run `make protos`: {stale}"


def test_the_wire_contract_keeps_the_original_names_and_numbers() -> None:
    from phoenix_common.stubs import memory_pb2, tools_pb2

    query = memory_pb2.QueryMemoryRequest.DESCRIPTOR
    assert query.full_name == "memory.QueryMemoryRequest"
    assert {f.name: f.number for f in query.fields} == {
        "query": 1,
        "namespace": 2,
        "twin_id": 3,
        "top_k": 4,
        "memory_types": 5,
    }
    result = memory_pb2.MemoryResult.DESCRIPTOR
    assert {f.name: f.number for f in result.fields} == {
        "id": 1,
        "timestamp": 2,
        "content": 3,
        "agent_id": 4,
        "risk_level": 5,
        "similarity": 6,
        "memory_type": 7,
        "metadata": 8,
    }
    service = memory_pb2.DESCRIPTOR.services_by_name["MemoryService"]
    assert [m.name for m in service.methods] == [
        "QueryMemory",
        "CommitMemory",
        "HealthCheck",
        "ListMemories",
        "DeleteMemory",
    ]
    execution = tools_pb2.ExecutionRequest.DESCRIPTOR
    assert execution.full_name == "tools.ExecutionRequest"
    assert {f.name: f.number for f in execution.fields} == {
        "command": 1,
        "args": 2,
        "twin_id": 3,
        "job_id": 4,
        "namespace": 5,
        "metadata": 6,
    }
    response = tools_pb2.ExecutionResponse.DESCRIPTOR
    assert {f.name: f.number for f in response.fields} == {
        "success": 1,
        "exit_code": 2,
        "stdout_logs": 3,
        "stderr_logs": 4,
        "message": 5,
        "execution_id": 6,
    }
    tools_service = tools_pb2.DESCRIPTOR.services_by_name["ToolExecutorService"]
    assert [m.name for m in tools_service.methods] == ["RequestExecution", "HealthCheck"]
