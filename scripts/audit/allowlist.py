"""The audit allowlist: known vulnerabilities CI accepts for a while, each with why and until when.

``audit-allowlist.toml`` at the repository root holds ``[[allow]]`` tables::

    [[allow]]
    id = "GHSA-xxxx-xxxx-xxxx"   # the advisory, or any of its aliases (CVE, PYSEC, GO)
    package = "somepackage"      # PyPI name, Go module path or "stdlib"
    reason = "why this does not reach us, or what we wait for"
    expires = 2027-01-31         # a TOML date; from that day on the entry fails the audit

An entry allows one advisory in one package until its expiry; an expired entry
fails the audit like the finding it allowed, so nothing is accepted forever.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class AllowlistError(Exception):
    """The allowlist file is malformed; its message says where."""


class Allow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=3)
    package: str = Field(min_length=1)
    reason: str = Field(min_length=10)
    expires: dt.date

    @field_validator("package")
    @classmethod
    def _canonical(cls, value: str) -> str:
        return canonical_package(value)


class Allowlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: tuple[Allow, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One advisory affecting one installed package or Go module."""

    ecosystem: str  # "PyPI" or "Go"
    package: str
    version: str
    id: str
    aliases: tuple[str, ...]
    fixed_in: tuple[str, ...]
    summary: str
    where: str = ""  # a Go binary, or how the Python data was obtained

    @property
    def ids(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))

    def describe(self) -> str:
        fixed = ", ".join(self.fixed_in) or "no fixed version"
        also = f" ({', '.join(self.aliases)})" if self.aliases else ""
        where = f" [{self.where}]" if self.where else ""
        return (
            f"{self.package} {self.version}: {self.id}{also}; fixed in: {fixed}{where}"
            f"\n      {self.summary[:160]}"
        )


@dataclass(frozen=True)
class Verdict:
    finding: Finding
    allow: Allow | None
    expired: bool

    @property
    def fails(self) -> bool:
        return self.allow is None or self.expired


def canonical_package(name: str) -> str:
    """PyPI names compare normalised (PEP 503); Go module paths are kept as they are."""
    if "/" in name or name == "stdlib":
        return name
    return name.lower().replace("_", "-").replace(".", "-")


def load(path: Path) -> Allowlist:
    if not path.is_file():
        return Allowlist()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return Allowlist.model_validate(data)
    except (tomllib.TOMLDecodeError, ValidationError) as err:
        raise AllowlistError(f"{path.name}: {err}") from err


def judge(findings: list[Finding], allowlist: Allowlist, today: dt.date) -> list[Verdict]:
    """Each finding with the entry that allows it, if any, and whether that entry expired."""
    verdicts = []
    for finding in findings:
        allow = next(
            (
                entry
                for entry in allowlist.allow
                if entry.id in finding.ids and entry.package == canonical_package(finding.package)
            ),
            None,
        )
        verdicts.append(Verdict(finding, allow, allow is not None and allow.expires <= today))
    return verdicts


def unused(allowlist: Allowlist, verdicts: list[Verdict]) -> list[Allow]:
    used = {id(v.allow) for v in verdicts if v.allow is not None}
    return [entry for entry in allowlist.allow if id(entry) not in used]
