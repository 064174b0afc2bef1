#!/usr/bin/env bash
# System packages the tests, `make run`, the real node and the image builds use.
# Installs only what is missing; needs root (or sudo) only when something is.
set -euo pipefail
need=()
command -v bwrap   >/dev/null || need+=(bubblewrap)
command -v prlimit >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
command -v lua5.4  >/dev/null || need+=(lua5.4)
command -v chromium >/dev/null || need+=(chromium)
# The real node (make cluster-up NODE=real, the realnode tests) and the image builds.
command -v iptables >/dev/null || need+=(iptables)
command -v ipset    >/dev/null || need+=(ipset)
command -v conntrack >/dev/null || need+=(conntrack)
[[ -x /usr/lib/cni/bridge ]]   || need+=(containernetworking-plugins)
pkg-config --exists libseccomp 2>/dev/null || need+=(libseccomp-dev pkg-config)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v podman   >/dev/null || command -v buildah >/dev/null || command -v docker >/dev/null \
  || need+=(podman)
command -v runc     >/dev/null || need+=(runc)  # podman's runtime: crun refuses hybrid cgroups
[[ ${#need[@]} -eq 0 ]] && exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
