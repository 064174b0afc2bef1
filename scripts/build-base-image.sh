#!/usr/bin/env bash
# Make the Debian 12 (bookworm) root filesystem the images are built on where no image registry
# is reachable: what python:3.11-slim-bookworm provides (Python 3.11 with venv, CA certificates,
# the tools the Dockerfile's RUN steps use), made with mmdebstrap from Debian's own packages.
# Cached outside the repo, keyed by this script's content; prints the tarball's path.
# `localcluster.images` imports it into the image builder. Needs root (or fakeroot) and
# mmdebstrap (apt-get install mmdebstrap).
set -euo pipefail
SUITE=bookworm
CACHE_ROOT=${PHOENIX_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/phoenixtwin}
key=$(sha256sum "$0" | cut -c1-12)
OUT="$CACHE_ROOT/images/debian-$SUITE-python3-$key.tar"
if [[ -s "$OUT" ]]; then echo "$OUT"; exit 0; fi
command -v mmdebstrap >/dev/null \
  || { echo "build-base-image.sh needs mmdebstrap (apt-get install mmdebstrap)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
started=$SECONDS
# minbase is Essential + apt; passwd brings groupadd/useradd for the image's user.
# The hooks mirror python:slim: `python` is python3, and no docs, man pages or apt lists.
mmdebstrap --variant=minbase --format=tar --quiet \
  --include=ca-certificates,python3,python3-venv,passwd \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='ln -sf python3 "$1/usr/bin/python"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  "$SUITE" "$OUT.partial"
mv "$OUT.partial" "$OUT"
echo "[build-base-image] $OUT in $(( SECONDS - started ))s" >&2
echo "$OUT"
