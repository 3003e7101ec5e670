#!/usr/bin/env bash
# Checks systemd/netanom.service with `systemd-analyze verify`.
#
# verify fails when ExecStart's binary does not exist, and /usr/bin/netanom (where the Debian
# package installs it) is not installed on a build machine. So the unit is copied into a temporary directory with only the
# ExecStart binary replaced by an existing one (the arguments stay); every other line is
# verified as written. Installs Debian's `systemd` package if systemd-analyze is missing.
#
# Usage: scripts/verify-systemd.sh [BINARY]   (BINARY: what to put in ExecStart; default
#        target/release/netanom or target/debug/netanom if built, else /bin/true)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

unit=systemd/netanom.service
installed_path=/usr/bin/netanom

if ! command -v systemd-analyze >/dev/null 2>&1; then
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    echo "verify-systemd: installing the systemd package for systemd-analyze" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

binary="${1:-}"
if [[ -z $binary ]]; then
    for b in target/release/netanom target/debug/netanom /bin/true; do
        if [[ -x $b ]]; then
            binary=$b
            break
        fi
    done
fi
binary=$(realpath "$binary")

grep -q "^ExecStart=$installed_path " "$unit" || {
    echo "verify-systemd: $unit: ExecStart no longer starts with $installed_path; update this script" >&2
    exit 1
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|^ExecStart=$installed_path |ExecStart=$binary |" "$unit" >"$tmp/netanom.service"

# --man=no: the Documentation= pages are installed docs, not man pages.
# A missing `netanom` user is not a verify error (systemd resolves User= at start).
out=$(systemd-analyze verify --man=no "$tmp/netanom.service" 2>&1) || {
    echo "$out" >&2
    echo "verify-systemd: FAILED" >&2
    exit 1
}
# verify exits 0 on some warnings; treat any line about our unit as a failure.
if grep -F "netanom.service" <<<"$out" >&2; then
    echo "verify-systemd: FAILED (warnings above)" >&2
    exit 1
fi
[[ -z $out ]] || echo "$out" >&2
echo "verify-systemd: $unit OK (ExecStart binary replaced by $binary for the check)"

# The security exposure score, for information (lower is better; needs no running systemd).
if systemd-analyze security --help 2>/dev/null | grep -q -- "--offline"; then
    systemd-analyze security --offline=yes "$tmp/netanom.service" 2>/dev/null | tail -1 || true
fi
