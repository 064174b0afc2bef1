"""ToolsSettings: the one settings class of phoenix-tools, built once at startup.

Field names follow the original service's variables (``TOOLS_GRPC_PORT``,
``SANDBOX_DIR``, ``SAFE_MODE``, ``TOOLS_EXEC_TIMEOUT_MS``, ``TOOLS_USE_BWRAP``,
``ALLOW_RESTRICTED_COMMANDS``) so an existing ``.env`` works. Booleans accept
``1/true/yes/on`` and ``0/false/no/off`` in any case; anything else is a
configuration error instead of a silent ``false`` (defect 3 of the original).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from phoenix_common.settings import CommonSettings


class ToolsSettings(CommonSettings):
    """Everything phoenix-tools reads from the environment."""

    grpc_host: str = Field("0.0.0.0", validation_alias="TOOLS_GRPC_HOST")  # noqa: S104 - a pod's gRPC port
    grpc_port: int = Field(50054, ge=0, le=65535, validation_alias="TOOLS_GRPC_PORT")
    metrics_port: int = Field(9154, ge=0, le=65535, validation_alias="TOOLS_METRICS_PORT")

    sandbox_dir: Path = Field(
        Path("/tmp/pagi-sandbox"),  # noqa: S108 - the original's default
        validation_alias="SANDBOX_DIR",
        description="Root of the per-twin work directories: <dir>/<twin>/<execution id>/.",
    )
    safe_mode: bool = Field(
        False,
        validation_alias="SAFE_MODE",
        description="Stricter policy: no shell, no interpreters, no restricted bypass, "
        "no unsandboxed fallback (see docs/tools.md).",
    )
    exec_timeout_ms: int = Field(
        10000, ge=100, le=3_600_000, validation_alias="TOOLS_EXEC_TIMEOUT_MS"
    )
    use_bwrap: bool = Field(
        True,
        validation_alias="TOOLS_USE_BWRAP",
        description="Run commands under bubblewrap. The original defaulted to false and then "
        "ran unsandboxed; here false means the fallback, which needs TOOLS_ALLOW_UNSANDBOXED.",
    )
    allow_unsandboxed: bool = Field(
        False,
        validation_alias="TOOLS_ALLOW_UNSANDBOXED",
        description="Allow the cwd-only fallback when bubblewrap is off or unusable.",
    )
    policy_file: Path | None = Field(
        None,
        validation_alias="TOOLS_POLICY_FILE",
        description="YAML or JSON tool policy; unset means the original's built-in policy.",
    )
    allow_restricted_commands: bool = Field(
        False,
        validation_alias="ALLOW_RESTRICTED_COMMANDS",
        description="Bypass the restricted list (ignored in SAFE_MODE).",
    )
    sandbox_uid: int = Field(65534, ge=1, validation_alias="TOOLS_SANDBOX_UID")
    sandbox_gid: int = Field(65534, ge=1, validation_alias="TOOLS_SANDBOX_GID")
    memory_grpc_addr: str = Field(
        "http://127.0.0.1:50052",
        validation_alias="MEMORY_GRPC_ADDR",
        description="The memory service, queried by the vector_query tool.",
    )
    memory_timeout_ms: int = Field(5000, ge=100, validation_alias="TOOLS_MEMORY_TIMEOUT_MS")

    bwrap_path: str = Field("bwrap", validation_alias="TOOLS_BWRAP_PATH")
    rlimit_as_mb: int = Field(1024, ge=16, validation_alias="TOOLS_RLIMIT_AS_MB")
    rlimit_cpu_s: int = Field(60, ge=1, validation_alias="TOOLS_RLIMIT_CPU_SECONDS")
    rlimit_fsize_mb: int = Field(16, ge=1, validation_alias="TOOLS_RLIMIT_FSIZE_MB")
    rlimit_nofile: int = Field(256, ge=16, validation_alias="TOOLS_RLIMIT_NOFILE")
    rlimit_nproc: int = Field(256, ge=8, validation_alias="TOOLS_RLIMIT_NPROC")
    tmpfs_mb: int = Field(64, ge=1, validation_alias="TOOLS_TMPFS_MB")
    output_kill_bytes: int = Field(
        1024 * 1024,
        ge=64 * 1024,
        validation_alias="TOOLS_OUTPUT_KILL_BYTES",
        description="A stream producing more than this is cut off and the command killed.",
    )
    keep_exec_dirs: bool = Field(False, validation_alias="TOOLS_KEEP_EXEC_DIRS")
    max_concurrent: int = Field(
        8,
        ge=1,
        le=256,
        validation_alias="TOOLS_MAX_CONCURRENT",
        description="Commands running at once; further requests wait for a slot.",
    )

    warm_sandboxes: int = Field(
        2,
        ge=0,
        le=16,
        validation_alias="TOOLS_WARM_SANDBOXES",
        description="Sandboxes kept started ahead of commands, per recently used twin (0: off).",
    )
    warm_twins: int = Field(4, ge=1, le=64, validation_alias="TOOLS_WARM_TWINS")
    warm_max_age_s: float = Field(600.0, gt=0, validation_alias="TOOLS_WARM_MAX_AGE_SECONDS")
    sandbox_shell: Path | None = Field(
        None,
        validation_alias="TOOLS_SANDBOX_SHELL",
        description="POSIX shell of the sandbox's launcher; must live under /usr (the only "
        "host tree in the sandbox). Default: /bin/sh. Not under /usr, or failing the "
        "self-test: commands run without a launcher (no warm sandboxes).",
    )

    @field_validator("memory_grpc_addr")
    @classmethod
    def _strip_scheme(cls, value: str) -> str:
        """grpc wants host:port; the original's variable carries an http:// scheme."""
        for scheme in ("http://", "https://", "grpc://"):
            if value.startswith(scheme):
                value = value[len(scheme) :]
        value = value.rstrip("/")
        if not value or "/" in value:
            raise ValueError(f"expected host:port or http://host:port, got {value!r}")
        return value

    @field_validator("sandbox_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    @property
    def exec_timeout_s(self) -> float:
        return self.exec_timeout_ms / 1000
