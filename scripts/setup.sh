#!/usr/bin/env bash
# Install what netanom needs to build, test and run on a fresh Debian machine, idempotently:
# Debian packages (libpcap, capture tools for the tests) and libtorch 2.13.0 (from PyPI, into a
# cache outside the work tree, see scripts/setup-libtorch.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# command -> Debian package, for the tools the tests and demo use.
packages=(libpcap-dev pkg-config tcpdump tshark nmap hping3 python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

scripts/setup-libtorch.sh
