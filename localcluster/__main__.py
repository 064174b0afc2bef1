"""``python -m localcluster up|down|status|build`` (the Makefile's cluster targets)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from localcluster import cluster, node, procs
from localcluster.state import DEFAULT_DIR, ClusterState, NodeKind


def _up(workdir: Path, kind: NodeKind) -> int:
    started = time.monotonic()
    state = cluster.start(workdir, node=kind)
    print(f"cluster ({kind} node) ready in {time.monotonic() - started:.1f}s at {state.server}")
    print(f"export KUBECONFIG={state.kubeconfig}")
    return 0


def _down(workdir: Path) -> int:
    state = ClusterState.load(workdir)
    killed = cluster.stop(workdir)
    print("cluster stopped" + (f" (SIGKILL: {', '.join(killed)})" if killed else ""))
    left = cluster.leftovers(state) if state else []
    if left:
        print(f"left behind: {', '.join(left)}", file=sys.stderr)
        return 1
    return 0


def _status(workdir: Path) -> int:
    current = ClusterState.load(workdir)
    if current is None:
        print("no cluster state")
        return 1
    print(f"{current.node} node, server {current.server}")
    for name, pid in current.pids.items():
        print(f"{name:26} pid {pid:<8} {'running' if procs.alive(pid) else 'gone'}")
    return 0


def _build(kind: NodeKind) -> int:
    print(cluster.ensure_binaries())
    if kind == "real":
        print(node.ensure_binaries())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="localcluster", description="A real Kubernetes cluster on this machine."
    )
    parser.add_argument("command", choices=["up", "down", "status", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="state and data directory")
    parser.add_argument(
        "--node",
        choices=["kwok", "real"],
        default=None,
        help="kwok (fake, the default) or real (kubelet + containerd); NODE=... does the same",
    )
    args = parser.parse_args(argv)
    workdir: Path = args.dir.resolve()
    try:
        kind: NodeKind = args.node or cluster.node_from_env()
        if args.command == "up":
            return _up(workdir, kind)
        if args.command == "down":
            return _down(workdir)
        if args.command == "build":
            return _build(kind)
        return _status(workdir)
    except procs.ClusterError as err:
        print(f"cluster-{args.command} failed: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
