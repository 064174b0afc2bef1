#!/usr/bin/env bash
# Build the real node of the test cluster (NODE=real, see localcluster/node.py)
# from Go modules and one C file, each piece into its own version-keyed cache
# directory outside the repo, so a warm run skips it and bumping one version
# rebuilds only that piece. Prints the directory that links them all.
#
#   kubelet, kube-proxy   k8s.io/kubernetes, the same throwaway module and version
#                         as the control plane (lib/k8s-module.sh); kubelet with
#                         cgo, as upstream builds it
#   pause                 build/pause/linux/pause.c of that k8s.io/kubernetes, static
#   containerd, ctr,      github.com/containerd/containerd/v2 (Debian's 1.6 is too
#   containerd-shim-runc-v2  old for 1.34 and for user-namespaced Pods)
#   runc                  github.com/opencontainers/runc with libseccomp (cgo): user
#                         namespaces need runc >= 1.2 (idmapped mounts), Debian has 1.1.5
#   coredns               github.com/coredns/coredns
#   kube-router           github.com/cloudnativelabs/kube-router/v2: only its
#                         NetworkPolicy controller runs (the one k3s embeds)
#
# CNI plugins come from Debian's containernetworking-plugins (/usr/lib/cni).
# Usage: build-node.sh [piece...]   pieces: k8s containerd runc coredns kube-router
set -euo pipefail
# shellcheck source=lib/k8s-module.sh
source "$(dirname "$0")/lib/k8s-module.sh"

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.2.9}
RUNC_VERSION=${RUNC_VERSION:-v1.3.7}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.1.0}
PAUSE_VERSION=3.10.1  # build/pause/Makefile TAG of k8s 1.34
CACHE_ROOT=${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}
NODE_CACHE="$CACHE_ROOT/node"

export GOTOOLCHAIN=local GOFLAGS=-mod=mod

log() { printf '[build-node] %s\n' "$*" >&2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

declare -A DIR=(
  [k8s]="$NODE_CACHE/k8s-$K8S_VERSION"
  [containerd]="$NODE_CACHE/containerd-$CONTAINERD_VERSION"
  [runc]="$NODE_CACHE/runc-$RUNC_VERSION"
  [coredns]="$NODE_CACHE/coredns-$COREDNS_VERSION"
  [kube-router]="$NODE_CACHE/kube-router-$KUBE_ROUTER_VERSION"
)
declare -A FILES=(
  [k8s]="kubelet kube-proxy pause"
  [containerd]="containerd containerd-shim-runc-v2 ctr"
  [runc]="runc"
  [coredns]="coredns"
  [kube-router]="kube-router"
)
PIECES=(k8s containerd runc coredns kube-router)

build_k8s() {
  local out=$1 ldf src
  k8s_module "$work/k8s" "$K8S_VERSION"
  ldf=$(k8s_ldflags "$K8S_VERSION")
  # Same flags and cgo setting as the control plane (build-control-plane.sh), so every
  # package they share comes from Go's build cache instead of being compiled again.
  CGO_ENABLED=1 go build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$out/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
  # The pause container of every Pod sandbox, from the same source tree and
  # with upstream's flags (build/pause/Makefile), instead of a registry pull.
  src=$(go list -m -f '{{.Dir}}' k8s.io/kubernetes)
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-$K8S_VERSION" \
    -o "$out/pause" "$src/build/pause/linux/pause.c"
  strip "$out/pause"
}

build_containerd() {
  local out=$1 pkg=github.com/containerd/containerd/v2 ldf
  ldf="-s -w -X $pkg/version.Version=$CONTAINERD_VERSION -X $pkg/version.Package=$pkg"
  ldf="$ldf -X $pkg/version.Revision=unknown"
  # Static like upstream's release; btrfs/devmapper/zfs snapshotters are not
  # used (overlayfs is) and btrfs would need cgo headers.
  CGO_ENABLED=0 GOBIN="$out" go install -trimpath \
    -tags "urfave_cli_no_docs no_btrfs no_devmapper no_zfs" -ldflags "$ldf" \
    "$pkg/cmd/containerd@$CONTAINERD_VERSION" "$pkg/cmd/ctr@$CONTAINERD_VERSION"
  CGO_ENABLED=0 GOBIN="$out" go install -trimpath \
    -tags "urfave_cli_no_docs no_grpc" -ldflags "$ldf" \
    "$pkg/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
}

build_runc() {
  local out=$1
  pkg-config --exists libseccomp \
    || { log "runc needs libseccomp-dev and pkg-config (apt-get install libseccomp-dev pkg-config)"; return 1; }
  # runc always needs cgo (its nsenter is C); the seccomp tag links libseccomp,
  # as upstream's Makefile does.
  CGO_ENABLED=1 GOBIN="$out" go install -trimpath -buildmode=pie \
    -tags "seccomp urfave_cli_no_docs" \
    -ldflags "-s -w -X main.version=${RUNC_VERSION#v} -X main.gitCommit=unknown" \
    "github.com/opencontainers/runc@$RUNC_VERSION"
}

build_coredns() {
  CGO_ENABLED=0 GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
    "github.com/coredns/coredns@$COREDNS_VERSION"
}

build_kube-router() {
  local pkg=github.com/cloudnativelabs/kube-router/v2
  CGO_ENABLED=0 GOBIN="$1" go install -trimpath \
    -ldflags "-s -w -X $pkg/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    "$pkg/cmd/kube-router@$KUBE_ROUTER_VERSION"
}

complete() {
  local f
  for f in ${FILES[$1]}; do [[ -x "${DIR[$1]}/$f" ]] || return 1; done
}

build() {
  local piece=$1 dir=${DIR[$1]} started=$SECONDS
  complete "$piece" && return 0
  command -v go >/dev/null || { log "go is required to build the node"; exit 1; }
  log "building $piece into $dir"
  rm -rf "$dir.partial" && mkdir -p "$dir.partial"
  ( "build_$piece" "$dir.partial" )
  rm -rf "$dir" && mv "$dir.partial" "$dir"
  log "$piece built in $(( SECONDS - started ))s"
}

wanted=("$@")
(( ${#wanted[@]} )) || wanted=("${PIECES[@]}")
for piece in "${wanted[@]}"; do
  [[ -n ${DIR[$piece]:-} ]] || { log "unknown piece $piece (one of: ${PIECES[*]})"; exit 2; }
  build "$piece"
done
(( $# )) && exit 0  # a partial build has no complete set to print

# One directory of links named by every version, which the launcher reads.
set_dir="$NODE_CACHE/set-k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION-runc-$RUNC_VERSION"
set_dir="$set_dir-coredns-$COREDNS_VERSION-kube-router-$KUBE_ROUTER_VERSION"
mkdir -p "$set_dir"
for piece in "${PIECES[@]}"; do
  for f in ${FILES[$piece]}; do ln -sfn "${DIR[$piece]}/$f" "$set_dir/$f"; done
done
echo "$set_dir"
