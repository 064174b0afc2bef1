"""What a running cluster is: its state file, and every name and address derived from its workdir.

Two clusters on one machine (a CI run and a developer's) must never collide, and a crashed run's
leftovers must be found again by the next ``down``. So every host-visible name is derived from
the instance id, a hash of the workdir's real path, and recorded in ``state.json`` before the
thing it names is created.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DIR = REPO / ".cluster"

NodeKind = Literal["kwok", "real"]

# Every instance gets one /22 of this block: a /24 of Pod addresses, a /24 of Service addresses
# and a /30 linking the host to the node's network namespace. Nothing is routed beyond them.
ADDRESS_BLOCK = ipaddress.ip_network("10.112.0.0/12")
SLOT_PREFIX = 22
SLOTS = 1 << (SLOT_PREFIX - ADDRESS_BLOCK.prefixlen)


def instance_id(workdir: Path) -> str:
    """Eight hex digits naming this cluster everywhere a host-wide name is needed."""
    return hashlib.sha256(str(workdir.resolve()).encode()).hexdigest()[:8]


class Addresses(BaseModel):
    """The real node's addresses, all inside this instance's /22."""

    model_config = ConfigDict(frozen=True)

    slot: int = Field(ge=0, lt=SLOTS)

    @property
    def block(self) -> ipaddress.IPv4Network:
        base = int(ADDRESS_BLOCK.network_address) + (self.slot << (32 - SLOT_PREFIX))
        return ipaddress.IPv4Network((base, SLOT_PREFIX))

    def _net(self, offset: int, prefix: int) -> ipaddress.IPv4Network:
        base = int(self.block.network_address) + offset
        return ipaddress.IPv4Network((base, prefix))

    @property
    def pod_cidr(self) -> str:
        return str(self._net(0, 24))

    @property
    def bridge_ip(self) -> str:
        """The Pods' gateway, on the node's bridge."""
        return str(self._net(0, 24)[1])

    @property
    def service_cidr(self) -> str:
        return str(self._net(256, 24))

    @property
    def kubernetes_service_ip(self) -> str:
        return str(self._net(256, 24)[1])

    @property
    def dns_service_ip(self) -> str:
        return str(self._net(256, 24)[10])

    @property
    def host_ip(self) -> str:
        """The host's end of the link: the API server listens here in real-node mode."""
        return str(self._net(512, 30)[1])

    @property
    def node_ip(self) -> str:
        """The node's end of the link: the kubelet's InternalIP."""
        return str(self._net(512, 30)[2])

    @property
    def link_cidr(self) -> str:
        return str(self._net(512, 30))


def preferred_slot(instance: str) -> int:
    return int(instance, 16) % SLOTS


class Names(BaseModel):
    """Host-visible names of one instance (interfaces are limited to 15 characters)."""

    model_config = ConfigDict(frozen=True)

    instance: str = Field(pattern=r"^[0-9a-f]{8}$")

    @property
    def host_veth(self) -> str:
        return f"phx{self.instance}h"

    @property
    def node_veth(self) -> str:
        return f"phx{self.instance}n"

    @property
    def bridge(self) -> str:
        return f"phx{self.instance}b"

    @property
    def cgroup(self) -> str:
        """Relative cgroup path under every hierarchy: the node's daemons and all its Pods."""
        return f"phoenixtwin-{self.instance}"

    @property
    def node_name(self) -> str:
        return f"phx-{self.instance}"

    @property
    def cni_network(self) -> str:
        return f"phx-{self.instance}"


class ClusterState(BaseModel):
    """What `down`, `status` and the fixture need to find and stop a running cluster."""

    workdir: str
    kubeconfig: str
    server: str
    bindir: str
    node: NodeKind = "kwok"
    instance: str = ""
    node_bindir: str | None = None
    slot: int | None = None
    # PIDs of processes in their own sessions, in start order.
    pids: dict[str, int] = Field(default_factory=dict)
    # The process holding the node's network and mount namespaces (real node only).
    holder_pid: int | None = None
    # Inodes of its network and mount namespaces, to prove after teardown that they are gone.
    namespaces: dict[str, int] = Field(default_factory=dict)

    @property
    def names(self) -> Names:
        return Names(instance=self.instance)

    @property
    def addresses(self) -> Addresses:
        if self.slot is None:
            raise ValueError("this cluster has no real node, so no node addresses")
        return Addresses(slot=self.slot)

    def save(self) -> None:
        path = Path(self.workdir, "state.json")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, workdir: Path) -> ClusterState | None:
        path = workdir / "state.json"
        if not path.exists():
            return None
        return cls.model_validate(json.loads(path.read_text()))
