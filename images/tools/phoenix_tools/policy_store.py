"""The current tool policy: the built-in default, or a YAML/JSON file reloaded on change.

A mounted ConfigMap is updated by swapping a symlink, so the file's identity
(inode, size, mtime after following links) is compared on every request; a
changed file is parsed again. A file that fails to parse at startup is a
configuration error; one that fails later is logged and the previous policy
stays in force.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from phoenix_tools.policy import ToolPolicy, default_policy

logger = logging.getLogger(__name__)


class PolicyFileError(Exception):
    """The policy file is missing, unreadable or invalid; the message says where."""


def parse_policy(text: str, *, source: str) -> ToolPolicy:
    """A policy from YAML or JSON text (JSON is YAML, but its errors read better as JSON)."""
    try:
        document: Any = json.loads(text) if source.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        raise PolicyFileError(f"{source}: not valid YAML/JSON: {err}") from None
    if not isinstance(document, dict):
        raise PolicyFileError(f"{source}: expected a mapping with 'twins' at the top")
    try:
        return ToolPolicy.model_validate(document)
    except ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise PolicyFileError(f"{source}: {problems}") from None


class PolicyStore:
    """Hands out the policy in force."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._identity: tuple[int, int, int] | None = None
        self._policy = default_policy()
        if path is not None:
            self._policy = self._load(path)

    @property
    def source(self) -> str:
        return str(self._path) if self._path else "built-in default"

    def current(self) -> ToolPolicy:
        if self._path is None:
            return self._policy
        try:
            identity = self._stat(self._path)
        except OSError as err:
            logger.error(
                "policy file unreadable; keeping the previous policy",
                extra={"path": str(self._path), "error": err.strerror},
            )
            return self._policy
        if identity != self._identity:
            try:
                self._policy = self._load(self._path)
                logger.info("policy reloaded", extra={"path": str(self._path)})
            except PolicyFileError as err:
                self._identity = identity
                logger.error(
                    "policy file invalid; keeping the previous policy",
                    extra={"path": str(self._path), "error": str(err)},
                )
        return self._policy

    def _load(self, path: Path) -> ToolPolicy:
        try:
            identity = self._stat(path)
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise PolicyFileError(f"{path}: cannot read: {err.strerror}") from None
        policy = parse_policy(text, source=str(path))
        self._identity = identity
        return policy

    @staticmethod
    def _stat(path: Path) -> tuple[int, int, int]:
        st = os.stat(path)
        return (st.st_ino, st.st_size, st.st_mtime_ns)
