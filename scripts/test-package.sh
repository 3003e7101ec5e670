#!/usr/bin/env bash
# Test the Debian package for real on this machine (root; CI runs it after the tests):
# build it (scripts/package.sh) unless a .deb is given, check its contents and sizes,
# install it, check the installed files, the netanom user, the libraries every binary
# resolves (nothing in the build tree or ~/.cache), run the installed binaries on the
# shipped capture and on `lo` (as the netanom user with CAP_NET_RAW only, as the unit
# runs it), rotate the alert log with the shipped logrotate file, then `dpkg -r` (models
# and history stay), reinstall (the operator's model is kept), and `dpkg --purge`.
#
#   scripts/test-package.sh [--fast] [DEB]
#
# Refuses to run where netanom is installed or /var/lib/netanom, /var/log/netanom or
# /etc/netanom exist (the purge would delete them). Cleans up on any exit (trap): stops the
# daemon it started, purges the package it installed. Traffic goes to 127.0.0.1 only.
# Prints one PASS or FAIL line with the measured sizes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$(pwd)
started=$SECONDS

# Limits from the issue: installed size <= 600 MB, .deb <= 250 MB (MB = 10^6 bytes).
max_installed=600000000
max_deb=250000000

fast=()
deb=""
for a in "$@"; do
    case $a in
    --fast) fast=(--fast) ;;
    -*) echo "usage: scripts/test-package.sh [--fast] [DEB]" >&2; exit 2 ;;
    *) deb=$a ;;
    esac
done

step() { printf '\n== test-package: %s\n' "$*"; }
fail() {
    printf '\ntest-package: FAIL: %s\n' "$*" >&2
    exit 1
}
check() { # check DESCRIPTION COMMAND...: runs COMMAND, fails with DESCRIPTION unless it succeeds
    local what=$1
    shift
    "$@" || fail "$what"
    echo "  ok: $what"
}

[[ $(id -u) -eq 0 ]] || fail "needs root: it installs and removes the .deb (run it with sudo)"
if dpkg-query -W -f='${Status}' netanom 2>/dev/null | grep -qv 'not-installed'; then
    fail "a netanom package is already on this machine ($(dpkg-query -W -f='${Status}' netanom)); remove it first"
fi
for d in /var/lib/netanom /var/log/netanom /etc/netanom; do
    [[ ! -e $d ]] || fail "$d exists: this test purges the package, which would delete it"
done

tmp=$(mktemp -d)
daemon_pid=""
installed=0
cleanup() {
    local rc=$?
    if [[ -n $daemon_pid ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        sleep 1
        kill -KILL "$daemon_pid" 2>/dev/null || true
    fi
    if ((installed)); then
        dpkg --purge netanom >/dev/null 2>&1 || echo "test-package: cleanup: dpkg --purge netanom failed" >&2
    fi
    rm -rf "$tmp"
    exit $rc
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
step "build"
if [[ -z $deb ]]; then
    pkg_started=$SECONDS
    deb=$(scripts/package.sh "${fast[@]}" | tail -1)
    package_s="$((SECONDS - pkg_started)) s"
else
    package_s="not built here"
fi
[[ -f $deb ]] || fail "no package at '$deb'"
deb=$(realpath "$deb")
echo "  $deb"
[[ $(basename "$deb") =~ ^netanom_[0-9][^_]*_amd64\.deb$ ]] || fail "file name $(basename "$deb")"
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
libtorch=$(realpath "${LIBTORCH:-.libtorch}")
cache_root=$(dirname "$(dirname "$libtorch")") # e.g. /root/.cache/netanom

# ---------------------------------------------------------------------------------------------
step "contents and sizes of the .deb"
deb_bytes=$(stat -c %s "$deb")
installed_kib=$(dpkg-deb -f "$deb" Installed-Size)
installed_bytes=$((installed_kib * 1024))
echo "  .deb $deb_bytes bytes, Installed-Size $installed_kib KiB"
check ".deb size $deb_bytes <= $max_deb bytes" test "$deb_bytes" -le "$max_deb"
check "installed size $installed_bytes <= $max_installed bytes" test "$installed_bytes" -le "$max_installed"
dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/files"
for f in /usr/bin/netanom /usr/bin/netanom-full \
    /usr/lib/netanom/libtorch_cpu.so /usr/lib/netanom/libc10.so /usr/lib/netanom/libgomp.so.1 \
    /usr/lib/netanom/libcudart.so.13 /usr/lib/netanom/libcupti.so.13 \
    /etc/netanom/netanom.toml /etc/logrotate.d/netanom \
    /usr/share/netanom/grafana/grafana-dashboard.json \
    /usr/share/netanom/prometheus/prometheus-rules.yml \
    /usr/share/netanom/prometheus/prometheus-rules.test.yml \
    /usr/share/netanom/model/default/model.json /usr/share/netanom/model/default/weights.safetensors \
    /usr/share/netanom/examples/demo-attack.pcap /usr/share/doc/netanom/README.md \
    /usr/share/doc/netanom/install.md /usr/share/doc/netanom/deploy.md \
    /usr/share/doc/netanom/config.md /usr/share/doc/netanom/metrics.md \
    /usr/share/doc/netanom/alerts.md /usr/share/doc/netanom/copyright \
    /usr/share/doc/netanom/third-party/pytorch/LICENSE; do
    grep -qxF "$f" "$tmp/files" || fail "the package has no $f"
done
unit=$(grep -E '^/(usr/)?lib/systemd/system/netanom\.service$' "$tmp/files") || fail "the package has no systemd unit"
echo "  ok: every expected file is in the package"
# Only what the binaries load: no libtorch.so, libtorch_cuda.so, cuBLAS, cuDNN...
extra=$(grep '^/usr/lib/netanom/.' "$tmp/files" | grep -vE '/(libtorch_cpu\.so|libc10\.so|libgomp\.so\.1|libcudart\.so\.13|libcupti\.so\.13)$' || true)
[[ -z $extra ]] || fail "unexpected files in /usr/lib/netanom: $extra"
echo "  ok: /usr/lib/netanom holds the five runtime files only"
dpkg-deb -e "$deb" "$tmp/control"
for c in /etc/netanom/netanom.toml /etc/logrotate.d/netanom; do
    grep -qxF "$c" "$tmp/control/conffiles" || fail "$c is not a conffile"
done
echo "  ok: /etc files are conffiles"
for s in postinst postrm prerm; do
    [[ -x $tmp/control/$s ]] || fail "no $s maintainer script"
    sh -n "$tmp/control/$s" || fail "$s is not valid sh"
done
grep -q adduser "$tmp/control/postinst" || fail "postinst does not create the netanom user"
echo "  ok: maintainer scripts"

# ---------------------------------------------------------------------------------------------
step "install"
install_started=$SECONDS
installed=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$tmp/apt.log" 2>&1 ||
    { cat "$tmp/apt.log" >&2; fail "apt-get install $deb"; }
install_s=$((SECONDS - install_started))
check "dpkg reports netanom installed" sh -c "dpkg-query -W -f='\${Status}' netanom | grep -qx 'install ok installed'"
du_bytes=$(dpkg-query -L netanom | while read -r f; do [[ -f $f && ! -L $f ]] && stat -c %s "$f"; done | awk '{s += $1} END {print s}')
echo "  installed files: $du_bytes bytes (in $install_s s)"
check "installed files $du_bytes <= $max_installed bytes" test "$du_bytes" -le "$max_installed"

step "the netanom user and directories"
IFS=: read -r _ _ uid gid _ home shell < <(getent passwd netanom) || fail "no netanom user"
check "netanom is a system user (uid $uid < 1000)" test "$uid" -lt 1000
check "its home is /var/lib/netanom" test "$home" = /var/lib/netanom
check "its shell is nologin ($shell)" test "$shell" = /usr/sbin/nologin
check "its group is netanom" test "$(getent group "$gid" | cut -d: -f1)" = netanom
for d in /var/lib/netanom /var/log/netanom; do
    check "$d is netanom:netanom 750" test "$(stat -c '%U:%G %a' "$d")" = "netanom:netanom 750"
done
check "the default model is the model in use" cmp /usr/share/netanom/model/default/weights.safetensors /var/lib/netanom/model/weights.safetensors
check "the model is the service's" test "$(stat -c %U /var/lib/netanom/model/model.json)" = netanom

step "libraries: RUNPATH and ldd"
runpath=$(readelf -d /usr/bin/netanom-full | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p')
check "netanom-full RUNPATH is /usr/lib/netanom ('$runpath')" test "$runpath" = /usr/lib/netanom
check "netanom-full has no RPATH" sh -c "! readelf -d /usr/bin/netanom-full | grep -q '(RPATH)'"
for f in /usr/lib/netanom/*; do
    rp=$(readelf -d "$f" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p')
    [[ -z $rp || $rp == '$ORIGIN' ]] || fail "$f has rpath '$rp'"
done
echo "  ok: the libraries' rpath is \$ORIGIN or none"
for f in /usr/bin/netanom /usr/bin/netanom-full /usr/lib/netanom/*; do
    out=$(env -u LD_LIBRARY_PATH ldd "$f")
    ! grep -q 'not found' <<<"$out" || fail "ldd $f: $out"
    while read -r p; do
        case $p in
        /usr/lib/netanom/* | /lib/x86_64-linux-gnu/* | /usr/lib/x86_64-linux-gnu/* | /lib64/*) ;;
        *) fail "ldd $f resolves $p, outside /usr/lib/netanom and the system" ;;
        esac
        for bad in "$repo" "$target_dir" "$cache_root" /root /home; do
            [[ $p != "$bad"/* ]] || fail "ldd $f resolves $p into $bad"
        done
    done < <(awk '$3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' <<<"$out")
done
echo "  ok: no library resolves into $repo, $target_dir, $cache_root, /root or /home"
ldd_full=$(env -u LD_LIBRARY_PATH ldd /usr/bin/netanom-full)
for l in libtorch_cpu.so libc10.so; do
    grep -q "$l => /usr/lib/netanom/$l " <<<"$ldd_full" || fail "netanom-full does not load $l from /usr/lib/netanom"
done
ldd_torch=$(env -u LD_LIBRARY_PATH ldd /usr/lib/netanom/libtorch_cpu.so)
for l in libgomp.so.1 libcudart.so.13 libcupti.so.13 libc10.so; do
    grep -q "$l => /usr/lib/netanom/$l " <<<"$ldd_torch" || fail "libtorch_cpu.so does not load $l from /usr/lib/netanom"
done
echo "  ok: libtorch_cpu, libc10, libgomp, libcudart, libcupti from /usr/lib/netanom"
check "netanom (the command) loads no libtorch" sh -c "! env -u LD_LIBRARY_PATH ldd /usr/bin/netanom | grep -qE 'torch|c10|cuda|gomp'"

step "unit, logrotate file, versions"
if command -v systemd-analyze >/dev/null; then
    out=$(systemd-analyze verify --man=no "$unit" 2>&1) || fail "systemd-analyze verify: $out"
    ! grep -F netanom.service <<<"$out" || fail "systemd-analyze verify warns: $out"
    echo "  ok: systemd-analyze verify of the installed unit"
fi
check "the unit runs /usr/bin/netanom" grep -q '^ExecStart=/usr/bin/netanom run --config /etc/netanom/netanom.toml$' "$unit"
if command -v logrotate >/dev/null; then
    logrotate -d -s "$tmp/logrotate.state" /etc/logrotate.d/netanom >"$tmp/logrotate-d.log" 2>&1 ||
        { cat "$tmp/logrotate-d.log" >&2; fail "logrotate -d /etc/logrotate.d/netanom"; }
    ! grep -qi 'error' "$tmp/logrotate-d.log" || { cat "$tmp/logrotate-d.log" >&2; fail "logrotate reports errors"; }
    echo "  ok: logrotate parses /etc/logrotate.d/netanom"
fi
version=$(dpkg-query -W -f='${Version}' netanom)
check "netanom --version names $version" sh -c "env -u LD_LIBRARY_PATH /usr/bin/netanom --version | grep -qF '$version'"
check "netanom-full --version names $version" sh -c "env -u LD_LIBRARY_PATH /usr/bin/netanom-full --version | grep -qF '$version'"

# ---------------------------------------------------------------------------------------------
# The daemon as the unit runs it: user netanom, CAP_NET_RAW only, no LD_LIBRARY_PATH.
service_privs=(--reuid=netanom --regid=netanom --init-groups --inh-caps=-all,+net_raw
    --ambient-caps=-all,+net_raw --bounding-set=-all,+net_raw --no-new-privs)
as_service() { env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin setpriv "${service_privs[@]}" "$@"; }
capture=/usr/share/netanom/examples/demo-attack.pcap

step "the installed binaries on the shipped capture"
env -u LD_LIBRARY_PATH /usr/bin/netanom extract --pcap "$capture" --window 0.5 --output "$tmp/features.csv" 2>"$tmp/extract.log" ||
    { cat "$tmp/extract.log" >&2; fail "netanom extract"; }
windows=$(($(wc -l <"$tmp/features.csv") - 1))
check "extract: $windows windows of 55 columns" sh -c "test $windows -gt 300 && head -1 '$tmp/features.csv' | awk -F, '{exit NF != 55}'"
env -u LD_LIBRARY_PATH /usr/bin/netanom score --model /var/lib/netanom/model --pcap "$capture" >"$tmp/scores.csv" 2>"$tmp/score.log" ||
    { cat "$tmp/score.log" >&2; fail "netanom score"; }
alerts=$(awk -F, 'NR > 1 && $5 == "1" {n++} END {print n + 0}' "$tmp/scores.csv")
scored=$(awk -F, 'NR > 1 && $3 != "" {n++} END {print n + 0}' "$tmp/scores.csv")
echo "  score: $scored windows scored, $alerts alerting"
check "score: one row per window" test "$(($(wc -l <"$tmp/scores.csv") - 1))" -eq "$windows"
check "score: the attacks alert ($alerts windows), normal windows mostly do not" \
    sh -c "test $alerts -ge 4 && test $alerts -lt $((scored / 2))"
if [[ -x $target_dir/release/netanom ]]; then
    "$target_dir/release/netanom" score --model model/default --pcap data/demo-attack.pcap >"$tmp/scores-build.csv" 2>/dev/null ||
        fail "the build tree's netanom score"
    check "the packaged binary scores exactly as the build tree's" cmp "$tmp/scores.csv" "$tmp/scores-build.csv"
fi
as_service /usr/bin/netanom run --config /etc/netanom/netanom.toml --pcap "$capture" \
    --metrics-listen 127.0.0.1:0 >"$tmp/replay.log" 2>&1 || { cat "$tmp/replay.log" >&2; fail "netanom run --pcap as netanom"; }
starts=$(grep -c '"event_type":"incident_start"' /var/log/netanom/alerts.jsonl || true)
check "run --pcap as netanom: $starts incidents in /var/log/netanom/alerts.jsonl" test "$starts" -ge 1
check "the alert log is netanom's" test "$(stat -c %U /var/log/netanom/alerts.jsonl)" = netanom

step "the installed daemon on lo (user netanom, CAP_NET_RAW only)"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# One chain of execs (env, setpriv, env, netanom, netanom-full): $! is the daemon's pid.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin NETANOM_CAPTURE__BPF_FILTER="not tcp port $port" \
    setpriv "${service_privs[@]}" /usr/bin/netanom run --config /etc/netanom/netanom.toml \
    --interface lo --metrics-listen "127.0.0.1:$port" >"$tmp/live.log" 2>&1 &
daemon_pid=$!
metric() { curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
deadline=$((SECONDS + 90))
until [[ $(metric netanom_windows_scored_total 2>/dev/null) -ge 2 ]] 2>/dev/null; do
    kill -0 "$daemon_pid" 2>/dev/null || { cat "$tmp/live.log" >&2; fail "the daemon on lo exited"; }
    ((SECONDS < deadline)) || { cat "$tmp/live.log" >&2; fail "no window scored on lo within 90 s"; }
    sleep 0.2
done
p0=$(metric netanom_packets_total)
python3 - <<'EOF'
import socket, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0)); rx.settimeout(2)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(100):
    tx.sendto(bytes([i % 256]) * 64, rx.getsockname()); rx.recvfrom(128); time.sleep(0.002)
EOF
deadline=$((SECONDS + 20))
until (($(metric netanom_packets_total) - p0 >= 100)); do
    ((SECONDS < deadline)) || fail "netanom_packets_total went from $p0 to $(metric netanom_packets_total) for 100 datagrams"
    sleep 0.2
done
echo "  ok: 100 datagrams on lo counted (netanom_packets_total $p0 -> $(metric netanom_packets_total))"
check "netanom_model_loaded is 1" test "$(metric netanom_model_loaded)" = 1
check "/healthz is ok" sh -c "curl -sf http://127.0.0.1:$port/healthz | grep -qx ok"
check "the daemon runs as netanom" test "$(stat -c %U "/proc/$daemon_pid")" = netanom
check "its effective capabilities are CAP_NET_RAW only" \
    sh -c "grep -q '^CapEff:[[:space:]]*0000000000002000$' /proc/$daemon_pid/status"
check "it is netanom-full (exec'ed by netanom)" test "$(readlink "/proc/$daemon_pid/exe")" = /usr/bin/netanom-full
grep -oE '/[^ ]+\.so[^ ]*$' "/proc/$daemon_pid/maps" | sort -u >"$tmp/maps"
check "it mapped libtorch_cpu.so from /usr/lib/netanom" grep -qx /usr/lib/netanom/libtorch_cpu.so "$tmp/maps"
while read -r m; do
    case $m in
    /usr/lib/netanom/* | /usr/lib/x86_64-linux-gnu/* | /lib/x86_64-linux-gnu/* | /lib64/* | /usr/lib64/*) ;;
    *) fail "the daemon mapped $m" ;;
    esac
done <"$tmp/maps"
echo "  ok: every shared object it mapped is in /usr/lib/netanom or the system ($(wc -l <"$tmp/maps") files)"
kill -TERM "$daemon_pid"
deadline=$((SECONDS + 15))
while kill -0 "$daemon_pid" 2>/dev/null; do
    ((SECONDS < deadline)) || fail "the daemon did not stop within 15 s of SIGTERM"
    sleep 0.1
done
wait "$daemon_pid" && rc=0 || rc=$?
daemon_pid=""
check "it exited 0 on SIGTERM" test "$rc" -eq 0

step "log rotation with the shipped logrotate file"
if command -v logrotate >/dev/null; then
    lines=$(wc -l </var/log/netanom/alerts.jsonl)
    logrotate -f -s "$tmp/logrotate.state" /etc/logrotate.d/netanom || fail "logrotate -f"
    check "alerts.jsonl.1 holds the $lines events" test "$(wc -l </var/log/netanom/alerts.jsonl.1)" -eq "$lines"
    check "a new empty alerts.jsonl, netanom:netanom 640" \
        test "$(stat -c '%U:%G %a %s' /var/log/netanom/alerts.jsonl)" = "netanom:netanom 640 0"
fi

# ---------------------------------------------------------------------------------------------
step "dpkg -r keeps models, history and settings"
dpkg -r netanom >"$tmp/remove.log" 2>&1 || { cat "$tmp/remove.log" >&2; fail "dpkg -r netanom"; }
for f in /usr/bin/netanom /usr/bin/netanom-full /usr/lib/netanom /usr/share/netanom; do
    check "$f is gone" test ! -e "$f"
done
check "/var/lib/netanom/model is kept" test -f /var/lib/netanom/model/weights.safetensors
check "the alert history is kept" test -f /var/log/netanom/alerts.jsonl.1
check "the settings are kept (conffile)" test -f /etc/netanom/netanom.toml
check "dpkg says config-files" sh -c "dpkg-query -W -f='\${Status}' netanom | grep -qx 'deinstall ok config-files'"

step "reinstall keeps the operator's model"
echo '{"operator": true}' >/var/lib/netanom/model/operator-marker.json
DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$deb" >"$tmp/apt2.log" 2>&1 ||
    { cat "$tmp/apt2.log" >&2; fail "reinstall"; }
check "the operator's file in /var/lib/netanom/model is still there" test -f /var/lib/netanom/model/operator-marker.json

step "dpkg --purge removes everything"
dpkg --purge netanom >"$tmp/purge.log" 2>&1 || { cat "$tmp/purge.log" >&2; fail "dpkg --purge netanom"; }
installed=0
for d in /var/lib/netanom /var/log/netanom /etc/netanom /etc/logrotate.d/netanom /usr/bin/netanom-full; do
    check "$d is gone" test ! -e "$d"
done
check "dpkg no longer knows netanom" sh -c "! dpkg-query -W -f='\${Status}' netanom 2>/dev/null | grep -q installed"

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
printf '\ntest-package: PASS: %s: .deb %s (limit %s), installed %s (limit %s); package build %s, install %s s, test %s s\n' \
    "$(basename "$deb")" "$(mb "$deb_bytes")" "$(mb $max_deb)" "$(mb "$installed_bytes")" "$(mb $max_installed)" \
    "$package_s" "$install_s" "$((SECONDS - started))"
