"""Names and addresses of a cluster instance: derived from its workdir, never colliding."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from localcluster.state import (
    ADDRESS_BLOCK,
    SLOTS,
    Addresses,
    ClusterState,
    Names,
    instance_id,
    preferred_slot,
)


def test_instance_id_follows_the_workdir(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert instance_id(a) == instance_id(a)
    assert instance_id(a) != instance_id(b)
    assert len(instance_id(a)) == 8
    assert 0 <= preferred_slot(instance_id(a)) < SLOTS


def test_interface_names_fit_the_kernel_limit() -> None:
    names = Names(instance="0123abcd")
    for ifname in (names.host_veth, names.node_veth, names.bridge):
        assert len(ifname) <= 15, ifname
    assert len({names.host_veth, names.node_veth, names.bridge}) == 3


def test_a_slots_networks_are_disjoint_and_inside_the_block() -> None:
    addr = Addresses(slot=5)
    nets = [ipaddress.ip_network(c) for c in (addr.pod_cidr, addr.service_cidr, addr.link_cidr)]
    for i, net in enumerate(nets):
        assert net.subnet_of(ADDRESS_BLOCK)  # type: ignore[arg-type]
        assert net.subnet_of(addr.block)  # type: ignore[arg-type]
        for other in nets[i + 1 :]:
            assert not net.overlaps(other)
    assert ipaddress.ip_address(addr.bridge_ip) in nets[0]
    assert ipaddress.ip_address(addr.kubernetes_service_ip) in nets[1]
    assert ipaddress.ip_address(addr.dns_service_ip) in nets[1]
    assert {addr.host_ip, addr.node_ip} <= {str(h) for h in nets[2].hosts()}


def test_two_slots_never_share_an_address() -> None:
    blocks = [Addresses(slot=s).block for s in (0, 1, SLOTS - 1)]
    assert not blocks[0].overlaps(blocks[1])
    assert not blocks[1].overlaps(blocks[2])
    assert blocks[2].broadcast_address == ADDRESS_BLOCK.broadcast_address


def test_state_round_trips_and_reads_a_kwok_state_of_the_old_launcher(tmp_path: Path) -> None:
    state = ClusterState(
        workdir=str(tmp_path), kubeconfig="k", server="s", bindir="b", node="real",
        instance="0123abcd", slot=3, pids={"etcd": 1},
    )  # fmt: skip
    state.save()
    assert ClusterState.load(tmp_path) == state
    (tmp_path / "state.json").write_text(
        '{"workdir": "w", "kubeconfig": "k", "server": "s", "bindir": "b", "pids": {"etcd": 1}}'
    )
    old = ClusterState.load(tmp_path)
    assert old is not None
    assert old.node == "kwok"
