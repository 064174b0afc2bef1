#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules and cache the binaries outside
# the repo in a directory keyed by version, so a warm run skips the build.
#
# The real node's kubelet and kube-proxy come from the same module
# (scripts/lib/k8s-module.sh) through scripts/build-node.sh; see docs/control-plane.md.
set -euo pipefail
# shellcheck source=lib/k8s-module.sh
source "$(dirname "$0")/lib/k8s-module.sh"

ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
CACHE_ROOT=${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}
OUT="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"

# cgo on, as for the kubelet (scripts/build-node.sh): CGO_ENABLED changes the build ID of
# net and of every package importing it, which is nearly all of Kubernetes, so two
# settings compile the whole dependency graph twice. One setting compiles it once into
# Go's build cache and the node's build reuses it (a cold CI run's largest step).
export GOTOOLCHAIN=local CGO_ENABLED=1 GOFLAGS=-mod=mod

if [[ -x "$OUT/kube-apiserver" && -x "$OUT/etcd" && -x "$OUT/kwok" && -x "$OUT/kubectl" \
      && -x "$OUT/kube-controller-manager" && -x "$OUT/kube-scheduler" ]]; then
  echo "$OUT"
  exit 0
fi

command -v go >/dev/null || { echo "go is required to build the control plane" >&2; exit 1; }
mkdir -p "$OUT.partial"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log() { printf '[build-control-plane] %s\n' "$*" >&2; }

build_kubernetes() {
  k8s_module "$work/k8s" "$K8S_VERSION"
  log "compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl"
  go build -trimpath -tags selinux,notest -ldflags "$(k8s_ldflags "$K8S_VERSION")" \
    -o "$OUT.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
}

build_etcd() {
  local dir="$work/etcd"
  mkdir -p "$dir" && cd "$dir"
  go mod init example.invalid/etcdbin >/dev/null 2>&1
  # As a dependency, etcd's own relative replaces are ignored, which is what
  # makes `go install go.etcd.io/etcd/server/v3@…` fail and this work.
  log "compiling etcd $ETCD_VERSION"
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$OUT.partial/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  log "compiling kwok $KWOK_VERSION"
  GOBIN="$OUT.partial" go install "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
}

[[ -x "$OUT.partial/etcd" ]] || build_etcd
[[ -x "$OUT.partial/kwok" ]] || build_kwok
[[ -x "$OUT.partial/kube-apiserver" && -x "$OUT.partial/kubectl" ]] || build_kubernetes
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
"$OUT/kube-apiserver" --version >&2
echo "$OUT"
