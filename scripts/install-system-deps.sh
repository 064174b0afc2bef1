#!/usr/bin/env bash
# System packages the tests and `make run` use. Installs only what is missing;
# needs root (or sudo) only when something is.
set -euo pipefail
need=()
command -v bwrap   >/dev/null || need+=(bubblewrap)
command -v prlimit >/dev/null || need+=(util-linux)
command -v setpriv >/dev/null || need+=(util-linux)
command -v openssl >/dev/null || need+=(openssl)
command -v lua5.4  >/dev/null || need+=(lua5.4)
command -v chromium >/dev/null || need+=(chromium)
[[ ${#need[@]} -eq 0 ]] && exit 0
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
echo "installing system packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
