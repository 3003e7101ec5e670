#!/usr/bin/env bash
# Records tests/fixtures/lo-sample.pcap: a small real capture of loopback traffic for
# tests/loopback_fixture.rs.
#
# Run as root (tcpdump needs it):   sudo scripts/record-lo-fixture.sh [OUTPUT.pcap]
#
# Everything it sends stays on the loopback interface: servers bind 127.66.0.1 and ::1,
# clients bind 127.66.0.2 or ::1, and nothing is addressed outside 127.0.0.0/8 or ::1.
# It is bounded: tcpdump stops after MAX_PACKETS packets or TIMEOUT seconds, each client
# sends a fixed, small number of requests, and every process it starts is stopped on exit.
#
# The traffic, spread over several seconds so that ω = 1 s gives several windows (one of
# them empty):
#   - HTTP: python3 -m http.server on 127.66.0.1:80 and [::1]:80, a few curl GETs
#     (TCP SYN, SYN/ACK, PSH/ACK, FIN/ACK; ports 80 and ephemeral);
#   - DNS-like UDP: a tiny UDP responder on 127.66.0.1:53, a few queries from 127.66.0.2;
#     one datagram to a closed UDP port (an ICMP port unreachable quoting a UDP header);
#   - a TCP connection attempt to a closed port (SYN, RST/ACK);
#   - ICMP echo: 3 to 127.66.0.1, 2 to ::1 (raw sockets from python; no ping needed).
# Needs: tcpdump, python3, curl.

set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "record-lo-fixture: run as root (tcpdump on lo)" >&2
    exit 1
fi
for tool in tcpdump python3 curl; do
    command -v "$tool" >/dev/null || { echo "record-lo-fixture: $tool not found" >&2; exit 1; }
done

cd "$(dirname "$0")/.."
OUT=${1:-tests/fixtures/lo-sample.pcap}
SRV4=127.66.0.1
CLI4=127.66.0.2
MAX_PACKETS=1000
TIMEOUT=60

WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

mkdir -p "$(dirname "$OUT")" "$WORK/www"
printf 'netanom loopback fixture\n' > "$WORK/www/index.html"
head -c 3000 /dev/zero | tr '\0' 'x' > "$WORK/www/page.txt"

# Capture only the addresses this script uses (other loopback users stay out of the file).
timeout "$TIMEOUT" tcpdump -i lo -n -U --immediate-mode -s 262144 -c "$MAX_PACKETS" -w "$WORK/lo.pcap" \
    "net 127.66.0.0/16 or host ::1" 2> "$WORK/tcpdump.log" &
TCPDUMP_PID=$!
PIDS+=("$TCPDUMP_PID")
for _ in $(seq 50); do
    grep -q "listening on" "$WORK/tcpdump.log" 2>/dev/null && break
    sleep 0.1
done

python3 -m http.server 80 --bind "$SRV4" --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)
python3 -m http.server 80 --bind ::1 --directory "$WORK/www" >/dev/null 2>&1 &
PIDS+=($!)

# DNS-like UDP responder: answers each datagram on 127.66.0.1:53, at most 20, then exits.
python3 - "$SRV4" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
s.settimeout(30)
try:
    for _ in range(20):
        data, peer = s.recvfrom(2048)
        s.sendto(data[:2] + b"\x81\x80" + data[4:], peer)
except socket.timeout:
    pass
EOF
PIDS+=($!)
sleep 1

# Second 1: HTTP over IPv4 and IPv6.
for path in / /page.txt /index.html; do
    curl -s -o /dev/null --max-time 5 --interface "$CLI4" "http://$SRV4$path"
done
for path in / /page.txt; do
    curl -s -o /dev/null --max-time 5 -g "http://[::1]$path"
done
sleep 1.1

# Next second: DNS-like UDP, a datagram to a closed port, a TCP attempt to a closed port.
python3 - "$SRV4" "$CLI4" <<'EOF'
import socket, struct, sys, time
srv, cli = sys.argv[1], sys.argv[2]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind((cli, 0))
u.settimeout(2)
for i, name in enumerate([b"example", b"netanom", b"loopback", b"fixture"]):
    q = struct.pack("!HHHHHH", 0x1000 + i, 0x0100, 1, 0, 0, 0)
    q += bytes([len(name)]) + name + b"\x04test\x00" + struct.pack("!HH", 1, 1)
    u.sendto(q, (srv, 53))
    try:
        u.recvfrom(2048)
    except socket.timeout:
        pass
u.sendto(b"nobody listens here", (srv, 9))  # closed: ICMP port unreachable
time.sleep(0.2)
t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
t.bind((cli, 0))
t.settimeout(2)
try:
    t.connect((srv, 81))  # closed: SYN, RST/ACK
except OSError:
    pass
t.close()
EOF
# Two seconds of silence: an empty window with ω = 1 s.
sleep 2.2

# ICMP echo over IPv4 and IPv6 (raw sockets; the kernel answers).
python3 - "$SRV4" <<'EOF'
import socket, struct, sys, time
def echo(family, proto, icmp_type, dst, n):
    s = socket.socket(family, socket.SOCK_RAW, proto)
    s.settimeout(1)
    for seq in range(1, n + 1):
        body = b"netanom-lo-fixture"
        hdr = struct.pack("!BBHHH", icmp_type, 0, 0, 0x4e41, seq)
        if family == socket.AF_INET:
            data = hdr + body
            total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
            total = (total & 0xFFFF) + (total >> 16)
            total = (total & 0xFFFF) + (total >> 16)
            hdr = struct.pack("!BBHHH", icmp_type, 0, ~total & 0xFFFF, 0x4e41, seq)
        # (ICMPv6 checksums are filled in by the kernel.)
        s.sendto(hdr + body, (dst, 0))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            pass
        time.sleep(0.2)
echo(socket.AF_INET, socket.IPPROTO_ICMP, 8, sys.argv[1], 3)
echo(socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, "::1", 2)
EOF
sleep 1.5  # let tcpdump write the last packets before it is stopped

kill -INT "$TCPDUMP_PID" 2>/dev/null || true
wait "$TCPDUMP_PID" 2>/dev/null || true
cp "$WORK/lo.pcap" "$OUT"
echo "record-lo-fixture: wrote $OUT ($(wc -c < "$OUT") bytes)"
grep -E "packets (captured|received)" "$WORK/tcpdump.log" >&2 || true
