#!/usr/bin/env bash
# Install what netanom needs to build, test, package and run on a fresh Debian machine,
# idempotently: Debian packages (libpcap, capture tools for the tests, Prometheus and
# promtool for tests/prometheus.rs, fever for tests/eve.rs, nats-server for
# tests/nats_sensors.rs, tcpreplay and netsniff-ng (trafgen) for the capture-worker test and
# benchmark, patchelf, dpkg-dev and logrotate for the package), libtorch 2.13.0
# (from PyPI, into a cache outside the work tree, see scripts/setup-libtorch.sh) and cargo-deb
# (from crates.io, for scripts/package.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# command -> Debian package, for the tools the tests and demo use.
packages=(libpcap-dev pkg-config tcpdump tshark nmap hping3 python3
    prometheus patchelf logrotate binutils curl dpkg-dev iproute2 fever
    nats-server tcpreplay netsniff-ng)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # Debian starts a system-wide Prometheus (port 9090) when it installs the package; the
    # tests start their own on a free port, so the one we just installed is stopped.
    if [[ " ${missing[*]} " == *" prometheus "* && -d /run/systemd/system ]]; then
        $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
        echo "setup: stopped and disabled the prometheus service (the tests run their own)" >&2
    fi
    # Likewise FEVER (the EVE event router tests/eve.rs feeds): its service would listen on
    # /tmp/suri.sock; the test starts its own on temporary sockets.
    if [[ " ${missing[*]} " == *" fever "* && -d /run/systemd/system ]]; then
        $sudo systemctl disable --now fever.service >/dev/null 2>&1 || true
        echo "setup: stopped and disabled the fever service (the tests run their own)" >&2
    fi
    if [[ " ${missing[*]} " == *" nats-server "* && -d /run/systemd/system ]]; then
        $sudo systemctl disable --now nats-server.service >/dev/null 2>&1 || true
        echo "setup: stopped and disabled the nats-server service (the tests run their own)" >&2
    fi
fi

# cargo-deb builds the .deb (scripts/package.sh).
cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb $cargo_deb_version"; then
    echo "setup: installing cargo-deb $cargo_deb_version from crates.io (a few minutes, once)" >&2
    cargo install cargo-deb --locked --version "$cargo_deb_version" --quiet
fi

scripts/setup-libtorch.sh
