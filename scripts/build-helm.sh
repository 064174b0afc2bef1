#!/usr/bin/env bash
# Build helm from its Go module (helm.sh/helm/v3) into a version-keyed cache
# outside the repo, like the control plane; print the binary's directory.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
# The Kubernetes version helm assumes offline (helm template/lint): upstream's
# release builds stamp it; a plain go install would leave helm's 1.20 default.
KUBE_MINOR=${KUBE_MINOR:-34}
CACHE_ROOT=${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}
OUT="$CACHE_ROOT/helm/$HELM_VERSION-kube1.$KUBE_MINOR"
if [[ -x "$OUT/helm" ]]; then echo "$OUT"; exit 0; fi
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$OUT.partial"
# helm's go.mod has no replace directives, so go install works; the ldflags
# stamp the version `helm version` prints (upstream Makefile's LDFLAGS).
GOBIN="$OUT.partial" go install -trimpath \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR" \
  "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
rm -rf "$OUT" && mv "$OUT.partial" "$OUT"
"$OUT/helm" version --short >&2
echo "$OUT"
