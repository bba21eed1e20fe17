#!/usr/bin/env bash
# install-deps.sh - install every Debian package dcmhub needs to build, run and test.
#
# Idempotent and fast when everything is present: it asks dpkg first and calls
# apt-get only for what is missing. Bench-only peers (orthanc) are installed by
# the benchmarks themselves through this script's --bench flag.
#
# Usage: deploy/install-deps.sh [--bench]
set -euo pipefail

pkgs=(
  # build
  build-essential cmake pkg-config
  libdcmtk-dev libpq-dev libssl-dev libinih-dev libcunit1-dev
  libzmq3-dev libxxhash-dev libarchive-dev libprotobuf-c-dev protobuf-c-compiler libmicrohttpd-dev
  # run: embedded PostgreSQL and DICOM tools
  postgresql postgresql-client dcmtk
  # test peers and sample data nobody here wrote
  dicom3tools python3-pydicom curl procps util-linux iproute2 psmisc
  # TLS tests make their certificates with the openssl CLI
  openssl
)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(orthanc orthanc-postgresql postgresql-contrib jq)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# an old or empty package list makes apt-get install fail: refresh once
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package starts a cluster service; the embedded default does not need it
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now postgresql >/dev/null 2>&1 || true
fi
