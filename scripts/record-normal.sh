#!/usr/bin/env bash
# Record NORMAL traffic on loopback for training: real servers and clients (HTTP,
# HTTPS, an HTTP API, DNS over UDP/TCP and IPv4/IPv6, SMTP 25/587, IMAP 143, POP3 110,
# ssh, a metrics stream, ICMP/ICMPv6 ping, now and then a refused connection) with a
# daily-life mix: randomised sleeps, bursts, busy and quiet stretches.
#
# Usage: scripts/record-normal.sh [--minutes M] [--out FILE]
#   --minutes M   length of the recording (default 8; whole or decimal minutes)
#   --out FILE    output pcap (default data/normal-lo.pcap)
#
# Runs as root, inside a private network namespace (see scripts/lib-traffic.sh;
# NETANOM_NO_NETNS=1 records on the host's lo instead). Traffic goes only to
# 127.0.0.0/8 and ::1. Client source addresses are 127.0.0.2-127.0.0.30; servers
# are 127.0.0.1 (tcp 22 25 80 110 143 443 587 2003 8080, udp+tcp 53), 127.0.0.10 (80)
# and ::1 (53). The servers are Debian's dnsmasq and sshd and small python3 stubs.
# Needs: tcpdump curl python3 dig(bind9-dnsutils) dnsmasq(dnsmasq-base) ping(iputils-ping)
#        ip/ss(iproute2) unshare(util-linux) tshark/capinfos(tshark); optional: openssl
#        (HTTPS), openssh-server + openssh-client (ssh).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
# shellcheck source=scripts/lib-traffic.sh
source "$here/lib-traffic.sh"
NT_LOG_PREFIX=record-normal

minutes=8
out=$root/data/normal-lo.pcap
args=("$@")
while (($#)); do
  case $1 in
    --minutes) minutes=${2:?--minutes needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a value}; shift 2 ;;
    -h | --help) sed -n '2,19p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) nt_die "unknown argument: $1 (see --help)" ;;
  esac
done
[[ $minutes =~ ^[0-9]+(\.[0-9]+)?$ ]] || nt_die "--minutes must be a number"
seconds=$(awk -v m="$minutes" 'BEGIN { printf "%d", m * 60 }')
((seconds >= 10 && seconds <= 7200)) || nt_die "--minutes must be between 1/6 and 120"
[[ $out = /* ]] || out=$PWD/$out

nt_require tcpdump tshark capinfos curl python3 dig dnsmasq ping ip ss unshare timeout
nt_optional openssl || true
nt_optional sshd && nt_optional ssh || true
nt_enter_netns "${BASH_SOURCE[0]}" "${args[@]}"

NT_WORKDIR=$(mktemp -d /tmp/netanom-rec.XXXXXX)
cleanup() {
  nt_stop_all
  [[ -n ${NT_TCPDUMP_PID:-} ]] && { kill -INT "$NT_TCPDUMP_PID" 2>/dev/null || true; wait "$NT_TCPDUMP_PID" 2>/dev/null || true; }
  rm -rf "$NT_WORKDIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$(dirname "$out")"
tmp=$out.tmp
nt_prepare_workdir "$NT_WORKDIR"
nt_start_servers
sleep 1

# Capture bounds: 400 packets/s on average at most, and the duration plus a margin.
nt_capture_start "$tmp" $((seconds * 400)) $((seconds + 60))
start=$EPOCHSECONDS
nt_start_background $((start + seconds))
nt_log "recording ${seconds}s of normal traffic"
nt_wait_workers
nt_capture_stop
nt_stop_all
mv -f "$tmp" "$out"

nt_log "done: $out"
# Self-checks: no packet from or to the attacker address, and where it all went.
if [[ -n $(tshark -r "$out" -Y 'ip.addr == 127.0.0.66' -T fields -e frame.number 2>/dev/null | head -1) ]]; then
  nt_die "the normal capture holds packets of 127.0.0.66"
fi
nt_report "$out" >&2
tshark -r "$out" -q -z conv,ip 2>/dev/null | sed -n '1,12p' >&2
