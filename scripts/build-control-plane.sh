#!/usr/bin/env bash
# Build the test control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules and cache the binaries outside
# the repo in a directory keyed by version, so a warm run skips the build.
#
# These machines have no Docker, so kind cannot run; see docs/control-plane.md.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.34.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
CACHE_ROOT=${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}
OUT="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

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
  local dir="$work/k8s" minor
  minor=$(cut -d. -f2 <<<"$K8S_VERSION")
  mkdir -p "$dir" && cd "$dir"
  go mod init example.invalid/k8sbin >/dev/null 2>&1
  go mod edit -go=1.24.0 -require="k8s.io/kubernetes@$K8S_VERSION"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and fixes that
  # with replaces that only apply in its own main module: replace each one
  # with the published v0.MINOR.PATCH tag, generated from its go.mod.
  go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | python3 -c 'import json,sys; print(open(json.load(sys.stdin)["GoMod"]).read())' \
    | grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/src/' | awk '{print $1}' \
    | while read -r m; do go mod edit -replace "$m=$m@v0${K8S_VERSION#v1}"; done
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  log "resolving k8s.io/kubernetes $K8S_VERSION"
  go mod tidy
  local date ldf p
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.gitCommit=unknown -X $p.buildDate=$date"
  done
  log "compiling kube-apiserver, kube-controller-manager, kube-scheduler, kubectl"
  go build -trimpath -tags selinux,notest -ldflags "$ldf" -o "$OUT.partial/" \
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
