#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages given as arguments that are not installed yet (none: nothing to
# do, no apt run). The one place the scripts (setup.sh, kernel-selftests.sh, dpdk-dmadev.sh) ask
# apt for packages. Usage: scripts/install-missing.sh [--tag NAME] PKG...
set -euo pipefail
tag=setup
if [[ ${1:-} == --tag ]]; then
  tag=$2
  shift 2
fi
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "$tag: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
