# Sourced by build-control-plane.sh and build-node.sh: the one throwaway Go
# module every Kubernetes binary of the test cluster is compiled from, so the
# control plane, kubelet and kube-proxy share a version and a dependency set.

# The one Kubernetes version of the test cluster (control plane and node).
K8S_VERSION=${K8S_VERSION:-v1.34.4}

# K8S_CMDS: the commands the module records (tools.go); both scripts build a
# subset, but tidy resolves all of them, so go.sum is the same either way.
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

# k8s_module DIR VERSION: create the module in DIR and resolve it.
k8s_module() {
  local dir=$1 version=$2
  mkdir -p "$dir" && cd "$dir"
  go mod init example.invalid/k8sbin >/dev/null 2>&1
  go mod edit -go=1.24.0 -require="k8s.io/kubernetes@$version"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and fixes that
  # with replaces that only apply in its own main module: replace each one
  # with the published v0.MINOR.PATCH tag, generated from its go.mod.
  go mod download -json "k8s.io/kubernetes@$version" \
    | python3 -c 'import json,sys; print(open(json.load(sys.stdin)["GoMod"]).read())' \
    | grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/src/' | awk '{print $1}' \
    | while read -r m; do go mod edit -replace "$m=$m@v0${version#v1}"; done
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    local c
    for c in "${K8S_CMDS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > tools.go
  go mod tidy
}

# k8s_ldflags VERSION: upstream's version stamps (hack/lib/version.sh), so
# /version, kubectl version and the kubelet's node status report VERSION.
k8s_ldflags() {
  local version=$1 minor date ldf p
  minor=$(cut -d. -f2 <<<"$version")
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  ldf="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldf="$ldf -X $p.gitTreeState=clean -X $p.gitCommit=unknown -X $p.buildDate=$date"
  done
  printf '%s' "$ldf"
}
