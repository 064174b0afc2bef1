"""`make deps` leaves the venv compiled, so a component's start does not compile its imports.

This machine type sets PYTHONDONTWRITEBYTECODE=1: no process ever writes a .pyc, so
whatever the installer does not compile is compiled from source again at every start.
uv does not compile unless told to (pip does); the venv it made without
``--compile-bytecode`` cost 2.2 s per orchestrator start instead of 0.9 s, and about
100 s of CI's whole-stack stress test. A venv made by an older Makefile fails here:
``rm -rf .venv && make deps`` rebuilds it.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import pytest

# The heavy imports every component's start pays for.
MODULES = ["fastapi", "pydantic", "uvicorn", "grpc", "google.protobuf", "httpx", "starlette"]


@pytest.mark.parametrize("name", MODULES)
def test_installed_packages_carry_their_bytecode(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__file__ is not None
    package = Path(module.__file__).parent
    sources = sorted(package.rglob("*.py"))
    assert sources, f"{name}: no sources under {package}"
    missing = [s for s in sources if not Path(importlib.util.cache_from_source(str(s))).exists()]
    assert not missing, (
        f"{len(missing)} of {len(sources)} modules of {name} have no bytecode, e.g. "
        f"{missing[0]}: rebuild the venv (rm -rf .venv && make deps)"
    )
