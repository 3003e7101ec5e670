# shellcheck shell=bash
# Shared helpers for scripts/record-normal.sh and scripts/record-attack.sh.
#
# Everything here talks ONLY to loopback (127.0.0.0/8 and ::1). By default the
# recording scripts re-execute themselves inside a private network namespace
# (`unshare --net`), whose only interface is its own `lo`: the captures then hold
# exactly the traffic these scripts make (no other process's loopback chatter), and
# nothing can leave the machine even by mistake. Every loop is bounded by a
# deadline and an iteration cap, every client by a timeout, every capture by a
# packet count and a time limit.
#
# Source it, do not run it.

# ---------------------------------------------------------------- basics
NT_LOG_PREFIX=${NT_LOG_PREFIX:-netanom-rec}
nt_log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$NT_LOG_PREFIX" "$*" >&2; }
nt_die() { nt_log "ERROR: $*"; exit 1; }

# Python for the small servers: Debian's own interpreter when present (starts
# faster than a pyenv shim), else whatever python3 is on PATH.
if [[ -x /usr/bin/python3 ]]; then NT_PY=${NT_PY:-/usr/bin/python3}; else NT_PY=${NT_PY:-python3}; fi

# Tools and the Debian package that brings each.
declare -A NT_PKG=(
  [tcpdump]=tcpdump [tshark]=tshark [capinfos]=tshark [curl]=curl [python3]=python3
  [dig]=bind9-dnsutils [dnsmasq]=dnsmasq-base [ping]=iputils-ping [ip]=iproute2 [ss]=iproute2
  [unshare]=util-linux [timeout]=coreutils [openssl]=openssl [nmap]=nmap
  [hping3]=hping3 [sshd]=openssh-server [ssh]=openssh-client [ssh-keygen]=openssh-client
)

# nt_require TOOL...: fail with the apt-get line when a required tool is missing.
nt_require() {
  local t missing=() pkgs=()
  for t in "$@"; do
    if ! command -v "$t" >/dev/null 2>&1 && ! [[ $t == sshd && -x /usr/sbin/sshd ]]; then
      missing+=("$t"); pkgs+=("${NT_PKG[$t]:-$t}")
    fi
  done
  if ((${#missing[@]})); then
    nt_die "missing tools: ${missing[*]} -- install with: apt-get install -y $(printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' ')"
  fi
}

# nt_optional TOOL: true when present; logs what is skipped otherwise.
nt_optional() {
  if command -v "$1" >/dev/null 2>&1 || [[ $1 == sshd && -x /usr/sbin/sshd ]]; then return 0; fi
  nt_log "optional tool '$1' missing (apt-get install ${NT_PKG[$1]:-$1}): its traffic is skipped"
  return 1
}

# nt_enter_netns SCRIPT ARGS...: re-exec SCRIPT inside a fresh network namespace
# (unless already inside one, or NETANOM_NO_NETNS=1), then bring its lo up.
nt_enter_netns() {
  local script=$1; shift
  [[ $(id -u) == 0 ]] || nt_die "must run as root (raw sockets, ports < 1024, tcpdump)"
  if [[ ${NETANOM_IN_NETNS:-} != 1 && ${NETANOM_NO_NETNS:-} != 1 ]]; then
    nt_require unshare ip
    exec unshare --net -- env NETANOM_IN_NETNS=1 bash "$script" "$@"
  fi
  if [[ ${NETANOM_IN_NETNS:-} == 1 ]]; then
    ip link set lo up
    # Sanity: inside the namespace nothing but lo may exist.
    local ifs; ifs=$(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
    [[ $ifs == "lo " ]] || nt_die "unexpected interfaces in the namespace: $ifs"
    nt_log "inside a private network namespace (interfaces: $ifs)"
  else
    nt_log "NETANOM_NO_NETNS=1: recording on the host's lo (other loopback traffic will be captured too)"
  fi
}

# ---------------------------------------------------------------- randomness and time
# nt_rand MIN MAX: integer in [MIN, MAX] (bash $RANDOM; bash reseeds it in every
# subshell, so runs are not reproducible, and are not meant to be).
nt_rand() { echo $(($1 + RANDOM % ($2 - $1 + 1))); }
# nt_pause MIN_MS MAX_MS [PERCENT]: sleep a random time, scaled by PERCENT (default 100).
nt_pause() {
  local ms=$(($1 + ((RANDOM << 15 | RANDOM) % ($2 - $1 + 1))))
  ms=$((ms * ${3:-100} / 100))
  sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
}
# A client source address: 127.0.0.2 .. 127.0.0.30 (never the attacker's .66).
nt_client_ip() { echo "127.0.0.$((2 + RANDOM % 29))"; }
# Activity mood, in percent of the base sleep: changes every 20-90 s per worker,
# so the mix has busy and quiet stretches.
nt_pick_mood() { local m=(40 60 80 100 100 130 180 300); echo "${m[RANDOM % ${#m[@]}]}"; }
nt_now() { echo "$EPOCHREALTIME"; }

# ---------------------------------------------------------------- servers
NT_SERVER_PIDS=()
NT_WORKER_PIDS=()

# nt_prepare_workdir DIR: web content, TLS certificate, ssh keys, python helpers.
nt_prepare_workdir() {
  local w=$1
  mkdir -p "$w"/www/assets "$w"/www/docs "$w"/intranet "$w"/api "$w"/ssh "$w"/mail
  # Public web site (127.0.0.1:80 and https 127.0.0.1:443).
  { echo '<!doctype html><html><head><title>example.test</title>'
    echo '<link rel="stylesheet" href="/assets/style.css"></head><body>'
    for i in $(seq 1 40); do echo "<p>Paragraph $i of the example.test front page, with some text.</p>"; done
    echo '<img src="/assets/logo.png"><script src="/assets/app.js"></script></body></html>'; } >"$w/www/index.html"
  for p in about news contact faq; do
    { echo "<!doctype html><html><body><h1>$p</h1>"
      for i in $(seq 1 $((20 + RANDOM % 120))); do echo "<p>$p line $i: lorem ipsum dolor sit amet.</p>"; done
      echo '</body></html>'; } >"$w/www/$p.html"
  done
  head -c 12000 /dev/urandom | base64 >"$w/www/assets/style.css"
  head -c 45000 /dev/urandom | base64 >"$w/www/assets/app.js"
  head -c 20000 /dev/urandom >"$w/www/assets/logo.png"
  head -c 180000 /dev/urandom >"$w/www/assets/photo.jpg"
  head -c 900000 /dev/urandom >"$w/www/docs/report.pdf"
  head -c 2500000 /dev/urandom >"$w/www/docs/video.mp4"
  # Intranet site (127.0.0.10:80).
  { echo '<html><body><h1>intranet</h1>'
    for i in $(seq 1 60); do echo "<li>ticket $i: printer on floor $((i % 5)) is out of toner</li>"; done
    echo '</body></html>'; } >"$w/intranet/index.html"
  head -c 60000 /dev/urandom | base64 >"$w/intranet/wiki.html"
  # API (127.0.0.1:8080).
  echo '{"status":"ok","uptime":12345,"load":[0.1,0.2,0.3]}' >"$w/api/status.json"
  { echo '['; for i in $(seq 1 200); do echo "{\"id\":$i,\"name\":\"item$i\",\"price\":$((RANDOM % 1000))},"; done
    echo '{}]'; } >"$w/api/items.json"
  head -c 300 /dev/urandom | base64 >"$w/mail/body.txt"
  head -c 30000 /dev/urandom | base64 >"$w/mail/attachment.txt"

  # Self-signed certificate for the TLS server.
  if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=example.test \
      -keyout "$w/tls.key" -out "$w/tls.crt" >/dev/null 2>&1 || rm -f "$w/tls.key" "$w/tls.crt"
  fi

  # HTTPS server: http.server wrapped in TLS.
  cat >"$w/https_server.py" <<'EOF'
import functools, http.server, ssl, sys
addr, port, root, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
httpd = http.server.ThreadingHTTPServer((addr, port), functools.partial(Quiet, directory=root))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
EOF
  # Plain HTTP server (quiet, threaded).
  cat >"$w/http_server.py" <<'EOF'
import functools, http.server, sys
addr, port, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer((addr, port), functools.partial(Quiet, directory=root)).serve_forever()
EOF
  # Minimal SMTP sink on 127.0.0.1:25 (accepts and discards mail; curl is the client).
  cat >"$w/smtp_sink.py" <<'EOF'
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    timeout = 30
    def say(self, s): self.wfile.write((s + "\r\n").encode())
    def handle(self):
        self.say("220 mail.example.test ESMTP sink")
        data = False
        while True:
            line = self.rfile.readline(4096)
            if not line: return
            if data:
                if line in (b".\r\n", b".\n"): data = False; self.say("250 2.0.0 queued")
                continue
            cmd = line[:4].upper()
            if cmd in (b"EHLO", b"HELO"): self.say("250-mail.example.test"); self.say("250 SIZE 10485760")
            elif cmd == b"DATA": data = True; self.say("354 end with .")
            elif cmd == b"QUIT": self.say("221 bye"); return
            else: self.say("250 ok")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOF

  # Mailbox stub for IMAP (143) and POP3 (110): enough for curl's list/fetch/retrieve.
  cat >"$w/mailbox_stub.py" <<'EOF'
import socketserver, sys
# A mailbox stub: just enough IMAP4rev1 (port 143) or POP3 (port 110) for curl's
# list / fetch / retrieve commands. One mailbox, two messages; accepts any login.
MSG = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\n" + b"status report line\r\n" * 40
class IMAP(socketserver.StreamRequestHandler):
    timeout = 30
    def say(self, s): self.wfile.write(s if isinstance(s, bytes) else (s + "\r\n").encode())
    def handle(self):
        self.say("* OK example.test IMAP stub ready")
        while True:
            line = self.rfile.readline(4096)
            if not line: return
            parts = line.decode(errors="replace").strip().split(" ", 2)
            tag, cmd = parts[0], (parts[1].upper() if len(parts) > 1 else "")
            if cmd == "CAPABILITY": self.say("* CAPABILITY IMAP4rev1")
            elif cmd in ("SELECT", "EXAMINE"): self.say("* 2 EXISTS"); self.say("* 0 RECENT"); self.say("* OK [UIDVALIDITY 1] ok")
            elif cmd == "LIST": self.say('* LIST () "/" INBOX'); self.say('* LIST () "/" Archive')
            elif cmd in ("FETCH", "UID"):
                self.say(b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % len(MSG) + MSG + b")\r\n")
            elif cmd == "LOGOUT": self.say("* BYE"); self.say(f"{tag} OK LOGOUT completed"); return
            self.say(f"{tag} OK {cmd} completed")
class POP3(socketserver.StreamRequestHandler):
    timeout = 30
    def say(self, s): self.wfile.write(s if isinstance(s, bytes) else (s + "\r\n").encode())
    def handle(self):
        self.say("+OK example.test POP3 stub ready")
        while True:
            line = self.rfile.readline(4096)
            if not line: return
            cmd = line.decode(errors="replace").strip().split(" ")[0].upper()
            if cmd == "CAPA": self.say("+OK"); self.say("USER"); self.say(".")
            elif cmd == "LIST": self.say("+OK 2 messages"); self.say(f"1 {len(MSG)}"); self.say(f"2 {len(MSG)}"); self.say(".")
            elif cmd == "RETR": self.say("+OK"); self.say(MSG + b".\r\n")
            elif cmd == "QUIT": self.say("+OK bye"); return
            else: self.say("+OK")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), IMAP if sys.argv[3] == "imap" else POP3).serve_forever()
EOF

  # Metrics collector (graphite-style plaintext on 127.0.0.1:2003) and its agent: a
  # long-lived TCP connection carrying a short line every 0.2-1.5 s, reconnecting
  # now and then -- the steady trickle of a monitored network. The agent plays a
  # host with another initial TTL (128, as Windows uses), so TTLs vary as on a LAN.
  cat >"$w/metrics_sink.py" <<'EOF'
import socketserver, sys
class H(socketserver.StreamRequestHandler):
    timeout = 60
    def handle(self):
        for line in self.rfile:
            pass
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True; daemon_threads = True
S((sys.argv[1], int(sys.argv[2])), H).serve_forever()
EOF
  cat >"$w/metrics_agent.py" <<'EOF'
import random, socket, sys, time
end, src, ttl = float(sys.argv[1]), sys.argv[2], int(sys.argv[3])
n = 0
while time.time() < end and n < 100000:
    try:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        c.settimeout(5)
        c.bind((src, 0))
        c.connect(("127.0.0.1", 2003))
        with c:
            for _ in range(random.randint(20, 400)):
                if time.time() >= end: break
                n += 1
                c.sendall(f"host{random.randint(1, 9)}.load {random.random():.3f} {int(time.time())}\n".encode())
                time.sleep(random.uniform(0.2, 1.5))
    except OSError:
        time.sleep(1)
    time.sleep(random.uniform(0.1, 3))
EOF

  # ssh: host key and a client key authorised only for this private sshd.
  if command -v ssh-keygen >/dev/null 2>&1 && [[ -x /usr/sbin/sshd ]] && command -v ssh >/dev/null 2>&1; then
    ssh-keygen -q -t ed25519 -N '' -f "$w/ssh/host_key" >/dev/null
    ssh-keygen -q -t ed25519 -N '' -f "$w/ssh/client_key" >/dev/null
    cp "$w/ssh/client_key.pub" "$w/ssh/authorized_keys"
    chmod 600 "$w/ssh/authorized_keys"
    cat >"$w/ssh/sshd_config" <<EOF
Port 22
ListenAddress 127.0.0.1
HostKey $w/ssh/host_key
PidFile none
AuthorizedKeysFile $w/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
PrintLastLog no
X11Forwarding no
AllowTcpForwarding no
MaxStartups 50:30:100
EOF
  fi
}

nt_spawn_server() { # NAME CMD...: start in background, remember the pid
  local name=$1; shift
  "$@" >>"$NT_WORKDIR/$name.log" 2>&1 &
  NT_SERVER_PIDS+=($!)
  nt_log "server $name: pid $! ($*)"
}

# nt_wait_port PROTO ADDR PORT: wait (<= 10 s) until something listens there.
nt_wait_port() {
  local i
  for i in $(seq 1 100); do
    if ss -Hln"${1:0:1}" "src $2" 2>/dev/null | grep -q ":$3 "; then return 0; fi
    sleep 0.1
  done
  nt_log "warning: nothing listens on $1 $2:$3 after 10 s"; return 1
}

NT_HAVE_TLS=0 NT_HAVE_SSH=0
nt_start_servers() {
  local w=$NT_WORKDIR
  nt_spawn_server http-public "$NT_PY" "$w/http_server.py" 127.0.0.1 80 "$w/www"
  nt_spawn_server http-intranet "$NT_PY" "$w/http_server.py" 127.0.0.10 80 "$w/intranet"
  nt_spawn_server http-api "$NT_PY" "$w/http_server.py" 127.0.0.1 8080 "$w/api"
  nt_spawn_server smtp "$NT_PY" "$w/smtp_sink.py" 127.0.0.1 25
  nt_spawn_server submission "$NT_PY" "$w/smtp_sink.py" 127.0.0.1 587
  nt_spawn_server imap "$NT_PY" "$w/mailbox_stub.py" 127.0.0.1 143 imap
  nt_spawn_server pop3 "$NT_PY" "$w/mailbox_stub.py" 127.0.0.1 110 pop3
  nt_spawn_server metrics "$NT_PY" "$w/metrics_sink.py" 127.0.0.1 2003
  if [[ -f $w/tls.crt ]]; then
    nt_spawn_server https "$NT_PY" "$w/https_server.py" 127.0.0.1 443 "$w/www" "$w/tls.crt" "$w/tls.key"
    NT_HAVE_TLS=1
  fi
  nt_spawn_server dns dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --no-poll --bind-interfaces --listen-address=127.0.0.1 --listen-address=::1 --port=53 \
    --user=root --pid-file= --cache-size=0 --local=/test/ \
    --address=/example.test/127.0.0.1 --address=/example.test/::1 \
    --address=/www.example.test/127.0.0.1 --address=/mail.example.test/127.0.0.1 \
    --address=/api.example.test/127.0.0.1 --address=/intranet.test/127.0.0.10 \
    --mx-host=example.test,mail.example.test,10 --txt-record=example.test,"v=spf1 mx -all" \
    --srv-host=_imap._tcp.example.test,mail.example.test,143
  if [[ -f $w/ssh/sshd_config ]]; then
    mkdir -p /run/sshd
    if /usr/sbin/sshd -t -f "$w/ssh/sshd_config" 2>>"$w/sshd.log"; then
      nt_spawn_server sshd /usr/sbin/sshd -D -e -f "$w/ssh/sshd_config"
      NT_HAVE_SSH=1
    else
      nt_log "sshd config test failed (see $w/sshd.log): no ssh traffic"
    fi
  fi
  local spec
  for spec in "tcp 127.0.0.1 80" "tcp 127.0.0.10 80" "tcp 127.0.0.1 8080" "tcp 127.0.0.1 25" "tcp 127.0.0.1 587" "tcp 127.0.0.1 143" "tcp 127.0.0.1 110" "tcp 127.0.0.1 2003" "udp 127.0.0.1 53"; do
    # shellcheck disable=SC2086
    nt_wait_port $spec || nt_die "a required server did not come up ($spec); logs in $w"
  done
  ((NT_HAVE_TLS)) && { nt_wait_port tcp 127.0.0.1 443 || NT_HAVE_TLS=0; }
  ((NT_HAVE_SSH)) && { nt_wait_port tcp 127.0.0.1 22 || NT_HAVE_SSH=0; }
  return 0
}

nt_stop_all() {
  local p
  for p in "${NT_WORKER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NT_WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NT_WORKER_PIDS=()
  for p in "${NT_SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${NT_SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NT_SERVER_PIDS=()
}

# ---------------------------------------------------------------- clients
# nt_curl ARGS...: one bounded curl run, bodies discarded (all of them: `-o` would
# only cover the first of several URLs).
nt_curl() { curl -s --max-time 10 --connect-timeout 3 "$@" >/dev/null 2>&1 || true; }
NT_DIG_OPTS=(+time=2 +tries=1 +short)
NT_MAX_ITER=100000   # hard cap on every worker loop, besides its deadline

nt_dns_lookup() { # [NAME] [TYPE]: one query from a random client address
  local names=(example.test www.example.test mail.example.test api.example.test intranet.test
    cdn.example.test nosuchhost.test printer.intranet.test) types=(A A A AAAA MX TXT)
  local n=${1:-${names[RANDOM % ${#names[@]}]}} t=${2:-${types[RANDOM % ${#types[@]}]}}
  local extra=() server=127.0.0.1 src
  src=$(nt_client_ip)
  ((RANDOM % 12 == 0)) && extra+=(+tcp)
  if ((RANDOM % 8 == 0)); then server=::1; src=::1; fi
  timeout 5 dig -b "$src" @"$server" "${NT_DIG_OPTS[@]}" "${extra[@]}" "$n" "$t" >/dev/null 2>&1 || true
}

# A person browsing: a page with its assets, sometimes a big download.
nt_worker_browse() {
  local end=$1 i=0 mood=100 next_mood=0 ip page
  local pages=(index.html about.html news.html contact.html faq.html)
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    ((EPOCHSECONDS >= next_mood)) && { mood=$(nt_pick_mood); next_mood=$((EPOCHSECONDS + $(nt_rand 20 90))); }
    ip=$(nt_client_ip)
    ((RANDOM % 3 == 0)) && nt_dns_lookup www.example.test A
    page=${pages[RANDOM % ${#pages[@]}]}
    case $((RANDOM % 20)) in
      0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9)   # a page view with its assets
        nt_curl --interface "$ip" "http://127.0.0.1/$page" "http://127.0.0.1/assets/style.css" \
          "http://127.0.0.1/assets/app.js" "http://127.0.0.1/assets/logo.png" || true ;;
      10 | 11 | 12 | 13) nt_curl --interface "$ip" "http://127.0.0.1/$page" ;;
      14 | 15) nt_curl --interface "$ip" "http://127.0.0.1/assets/photo.jpg" ;;
      16) nt_curl --interface "$ip" "http://127.0.0.1/docs/report.pdf" ;;
      17) ((RANDOM % 3 == 0)) && { nt_curl --interface "$ip" --limit-rate 2M "http://127.0.0.1/docs/video.mp4"; } ;;
      18) nt_curl --interface "$ip" "http://127.0.0.1/missing-$RANDOM.html" ;;
      19) nt_curl --interface "$ip" "http://127.0.0.10/" "http://127.0.0.10/wiki.html" ;;
    esac
    if ((RANDOM % 12 == 0)); then     # a burst: someone clicking around fast
      local _k
      for _k in $(seq 1 "$(nt_rand 3 10)"); do
        nt_curl --interface "$ip" "http://127.0.0.1/${pages[RANDOM % ${#pages[@]}]}"
        nt_pause 20 200
      done
    fi
    nt_pause 300 4500 "$mood"
  done
}

# Programs polling an API: frequent, small, regular-ish.
nt_worker_api() {
  local end=$1 i=0 mood=100 next_mood=0 ip
  ip=$(nt_client_ip)
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    ((EPOCHSECONDS >= next_mood)) && { mood=$(nt_pick_mood); next_mood=$((EPOCHSECONDS + $(nt_rand 20 90))); ip=$(nt_client_ip); }
    if ((RANDOM % 40 == 0)); then     # a client still configured for a retired service: refused
      nt_curl --interface "$ip" "http://127.0.0.1:8081/status.json"
    elif ((RANDOM % 6 == 0)); then
      nt_curl --interface "$ip" "http://127.0.0.1:8080/items.json"
    else
      nt_curl --interface "$ip" "http://127.0.0.1:8080/status.json"
    fi
    nt_pause 400 2200 "$mood"
  done
}

# HTTPS clients.
nt_worker_tls() {
  local end=$1 i=0 mood=100 next_mood=0 ip
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    ((EPOCHSECONDS >= next_mood)) && { mood=$(nt_pick_mood); next_mood=$((EPOCHSECONDS + $(nt_rand 20 90))); }
    ip=$(nt_client_ip)
    if ((RANDOM % 4 == 0)); then
      nt_curl -k --interface "$ip" "https://127.0.0.1/index.html" "https://127.0.0.1/assets/app.js"
    else
      nt_curl -k --interface "$ip" "https://127.0.0.1/about.html"
    fi
    nt_pause 500 5000 "$mood"
  done
}

# Name lookups not tied to browsing (mail clients, updaters, ...).
nt_worker_dns() {
  local end=$1 i=0 mood=100 next_mood=0
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    ((EPOCHSECONDS >= next_mood)) && { mood=$(nt_pick_mood); next_mood=$((EPOCHSECONDS + $(nt_rand 20 90))); }
    nt_dns_lookup
    ((RANDOM % 10 == 0)) && { nt_dns_lookup; nt_dns_lookup; }
    nt_pause 200 3000 "$mood"
  done
}

# Mail submission now and then.
nt_worker_mail() {
  local end=$1 i=0 ip file
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    nt_pause 3000 25000
    ((EPOCHSECONDS < end)) || break
    ip=$(nt_client_ip)
    nt_dns_lookup example.test MX
    file=$NT_WORKDIR/mail/body.txt
    ((RANDOM % 3 == 0)) && file=$NT_WORKDIR/mail/attachment.txt
    local port=587
    ((RANDOM % 3 == 0)) && port=25     # a relay delivering, rather than a user submitting
    timeout 20 curl -s --max-time 15 --interface "$ip" "smtp://127.0.0.1:$port" \
      --mail-from "user$RANDOM@example.test" --mail-rcpt "team@example.test" -T "$file" >/dev/null 2>&1 || true
  done
}

# Mail clients checking their mailboxes (IMAP mostly, some POP3).
nt_worker_mailbox() {
  local end=$1 i=0 ip
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    nt_pause 4000 30000
    ((EPOCHSECONDS < end)) || break
    ip=$(nt_client_ip)
    case $((RANDOM % 4)) in
      0 | 1) nt_curl --interface "$ip" --user "user$((RANDOM % 20)):secret" "imap://127.0.0.1/INBOX?ALL" ;;
      2) nt_curl --interface "$ip" --user "user$((RANDOM % 20)):secret" "imap://127.0.0.1/INBOX;UID=1" ;;
      3) nt_curl --interface "$ip" --user "user$((RANDOM % 20)):secret" "pop3://127.0.0.1/" \
        "pop3://127.0.0.1/1" ;;
    esac
  done
}

# Administrators logging in with ssh.
nt_worker_ssh() {
  local end=$1 i=0 ip cmd
  local opts=(-n -i "$NT_WORKDIR/ssh/client_key" -o BatchMode=yes -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5 -o LogLevel=ERROR)
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    nt_pause 5000 40000
    ((EPOCHSECONDS < end)) || break
    ip=$(nt_client_ip)
    case $((RANDOM % 3)) in
      0) cmd='uptime' ;;
      1) cmd="ls -l $NT_WORKDIR/www; sleep 1; df -h / | tail -1" ;;
      2) cmd="cat $NT_WORKDIR/www/docs/report.pdf | head -c 300000" ;;
    esac
    timeout 25 ssh "${opts[@]}" -b "$ip" root@127.0.0.1 "$cmd" >/dev/null 2>&1 || true
  done
}

# Pings: monitoring and people checking things, IPv4 and IPv6.
nt_worker_ping() {
  local end=$1 i=0 ip
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    ip=$(nt_client_ip)
    case $((RANDOM % 5)) in
      0 | 1) timeout 10 ping -6 -q -c "$(nt_rand 2 5)" -i 0.5 -W 1 ::1 >/dev/null 2>&1 || true ;;
      2) timeout 10 ping -q -c "$(nt_rand 2 5)" -i 0.5 -W 1 -I "$ip" 127.0.0.10 >/dev/null 2>&1 || true ;;
      3) timeout 10 ping -q -c "$(nt_rand 1 4)" -i 0.7 -W 1 -I "$ip" 127.0.0.1 >/dev/null 2>&1 || true ;;
      4) timeout 10 ping -q -t 128 -c "$(nt_rand 1 4)" -i 0.7 -W 1 -I "$ip" 127.0.0.1 >/dev/null 2>&1 || true ;;
    esac
    nt_pause 1500 12000
  done
}

# nt_start_background END_EPOCH: the whole normal mix, until END_EPOCH.
nt_start_background() {
  local end=$1
  nt_worker_browse "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_browse "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_api "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_dns "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_mail "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_mailbox "$end" & NT_WORKER_PIDS+=($!)
  nt_worker_ping "$end" & NT_WORKER_PIDS+=($!)
  timeout $((end - EPOCHSECONDS + 10)) "$NT_PY" "$NT_WORKDIR/metrics_agent.py" "$end" 127.0.0.5 128 & NT_WORKER_PIDS+=($!)
  ((NT_HAVE_TLS)) && { nt_worker_tls "$end" & NT_WORKER_PIDS+=($!); }
  ((NT_HAVE_SSH)) && { nt_worker_ssh "$end" & NT_WORKER_PIDS+=($!); }
  nt_log "background mix started: ${#NT_WORKER_PIDS[@]} client workers until $(date -d "@$end" +%T)"
}

# nt_wait_workers: wait for the background workers to reach their deadline.
nt_wait_workers() {
  local p
  for p in "${NT_WORKER_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  NT_WORKER_PIDS=()
}

# ---------------------------------------------------------------- capture
NT_TCPDUMP_PID=
# nt_capture_start FILE MAX_PACKETS MAX_SECONDS
nt_capture_start() {
  local file=$1 maxp=$2 maxs=$3 i
  rm -f "$file"
  timeout --signal=INT --kill-after=10 "$maxs" \
    tcpdump -i lo -n -Z root -s 128 -B 16384 -U -c "$maxp" -w "$file" 2>"$NT_WORKDIR/tcpdump.err" &
  NT_TCPDUMP_PID=$!
  for i in $(seq 1 100); do
    grep -q 'listening on' "$NT_WORKDIR/tcpdump.err" 2>/dev/null && break
    sleep 0.1
  done
  grep -q 'listening on' "$NT_WORKDIR/tcpdump.err" || nt_die "tcpdump did not start: $(cat "$NT_WORKDIR/tcpdump.err")"
  nt_log "capturing lo -> $file (at most $maxp packets, $maxs s)"
}
nt_capture_stop() {
  [[ -n $NT_TCPDUMP_PID ]] || return 0
  sleep 0.5
  kill -INT "$NT_TCPDUMP_PID" 2>/dev/null || true
  wait "$NT_TCPDUMP_PID" 2>/dev/null || true
  NT_TCPDUMP_PID=
  nt_log "tcpdump: $(grep -E 'captured|received|dropped' "$NT_WORKDIR/tcpdump.err" | tr '\n' ';')"
}

# ---------------------------------------------------------------- reports
# nt_window_coverage PCAP OMEGA: windows of OMEGA s spanned, and how many are non-empty.
nt_window_coverage() {
  tshark -r "$1" -T fields -e frame.time_epoch 2>/dev/null | "$NT_PY" -c '
import sys
from decimal import Decimal
w = Decimal(sys.argv[1])
ks = {}
for line in sys.stdin:
    line = line.strip()
    if line:
        k = int(Decimal(line) // w); ks[k] = ks.get(k, 0) + 1
lo, hi = min(ks), max(ks)
n = hi - lo + 1
c = sorted(ks.get(k, 0) for k in range(lo, hi + 1))
print(f"omega={w}s: {n} windows, {len(ks)} non-empty ({100*len(ks)/n:.1f}%), packets/window median {c[n//2]}, max {c[-1]}")
' "$2"
}

nt_report() { # PCAP
  capinfos "$1" 2>/dev/null | grep -E 'File size|Number of packets|Capture duration|First packet|Last packet|Data size|Average packet rate' || true
  nt_window_coverage "$1" 0.5
}

# ---------------------------------------------------------------- drift (scripts/record-drift.sh)
# A network whose normal traffic drifts over hours: load that rises and falls over a
# compressed "day", clients that come and go, a periodic bulk job. A conductor writes the
# state every 5 s to $NT_WORKDIR/drift.state ("LOAD GEN": load in percent, 20-100; the
# client generation); drift mode (NT_DRIFT=1) makes nt_pause, nt_client_ip and gated workers
# follow it. The existing workers run unchanged on top of it.
NT_DRIFT=${NT_DRIFT:-0}
NT_DRIFT_PERIOD=${NT_DRIFT_PERIOD:-3600}   # seconds per "day" of load
NT_DRIFT_PHASE=${NT_DRIFT_PHASE:-0}        # degrees: where in the day the recording starts
NT_DRIFT_GEN_EVERY=${NT_DRIFT_GEN_EVERY:-600} # seconds per client generation

# nt_drift_state: prints "LOAD GEN" (defaults while the conductor has not written yet).
nt_drift_state() {
  local load=100 gen=0
  [[ -r $NT_WORKDIR/drift.state ]] && read -r load gen <"$NT_WORKDIR/drift.state" 2>/dev/null
  echo "${load:-100} ${gen:-0}"
}

# nt_drift_conductor END_EPOCH T0: every 5 s, the load of the day curve (20 % at night, 100 %
# at noon, a little noise) and the client generation (one every NT_DRIFT_GEN_EVERY seconds).
nt_drift_conductor() {
  local end=$1 t0=$2 i=0 load gen
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    load=$(awk -v t=$((EPOCHSECONDS - t0)) -v p="$NT_DRIFT_PERIOD" -v ph="$NT_DRIFT_PHASE" -v r=$((RANDOM % 11)) \
      'BEGIN { pi = atan2(0, -1); x = 0.5 - 0.5 * cos(2 * pi * (t / p + ph / 360));
               l = 20 + 80 * x + (r - 5); if (l < 20) l = 20; if (l > 100) l = 100; printf "%d", l }')
    gen=$(((EPOCHSECONDS - t0) / NT_DRIFT_GEN_EVERY))
    echo "$load $gen" >"$NT_WORKDIR/drift.state.tmp" && mv -f "$NT_WORKDIR/drift.state.tmp" "$NT_WORKDIR/drift.state"
    sleep 5
  done
}

# Drift mode: a pause lasts longer when the load is low (100/LOAD times), and a gated worker
# (NT_GATE=G, percent) idles while the load is below G: the number of active clients follows
# the day.
if ((NT_DRIFT)); then
  nt_pause() {
    local load gen
    read -r load gen < <(nt_drift_state)
    while ((${NT_GATE:-0} > 0 && load < NT_GATE && EPOCHSECONDS < ${NT_DRIFT_END:-0})); do
      sleep 5
      read -r load gen < <(nt_drift_state)
    done
    local ms=$(($1 + ((RANDOM << 15 | RANDOM) % ($2 - $1 + 1))))
    ms=$((ms * ${3:-100} / 100 * 100 / (load > 0 ? load : 100)))
    # Never sleep past the end of the recording (a quiet night would stretch it by minutes).
    local left=$(((${NT_DRIFT_END:-0} - EPOCHSECONDS) * 1000))
    ((NT_DRIFT_END > 0 && ms > left)) && ms=$((left > 0 ? left : 0))
    sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  }
  # Clients come and go: generation g uses 20 addresses from 127.0.0.(2 + 3g mod 36); at
  # high load, ten more "laptops" (127.0.0.50-59) join.
  nt_client_ip() {
    local load gen
    read -r load gen < <(nt_drift_state)
    if ((load >= 70 && RANDOM % 4 == 0)); then
      echo "127.0.0.$((50 + RANDOM % 10))"
    else
      echo "127.0.0.$((2 + (3 * gen) % 36 + RANDOM % 20))"
    fi
  }
fi

# nt_worker_bulk END_EPOCH EVERY: the periodic bulk job (a backup pulling a large file from the
# file server 127.0.0.20 at 4 MB/s), every EVERY seconds with +-10 % jitter, the first at a
# random time in the first period. Logs each run's start and end to $NT_WORKDIR/bulk.log.
nt_worker_bulk() {
  local end=$1 every=$2 i=0 next start
  next=$((EPOCHSECONDS + $(nt_rand 60 "$every")))
  while ((EPOCHSECONDS < end && i++ < NT_MAX_ITER)); do
    while ((EPOCHSECONDS < next && EPOCHSECONDS < end)); do sleep 1; done
    ((EPOCHSECONDS < end)) || break
    start=$EPOCHREALTIME
    timeout 120 curl -s --max-time 110 --interface 127.0.0.40 --limit-rate 4M \
      "http://127.0.0.20:8000/backup.tar" >/dev/null 2>&1 || true
    echo "bulk,$start,$EPOCHREALTIME" >>"$NT_WORKDIR/bulk.log"
    next=$((next + every * 9 / 10 + RANDOM % (every / 5 + 1)))
  done
}

# nt_start_drift_background END_EPOCH: the normal mix of nt_start_background, two more web
# clients and an API poller that are only active at higher load, the conductor, and the
# periodic bulk job (every NT_DRIFT_BULK_EVERY seconds, default 900).
nt_start_drift_background() {
  local end=$1
  export NT_DRIFT_END=$end
  head -c 120000000 /dev/urandom >"$NT_WORKDIR/www/backup.tar"
  nt_spawn_server fileserver "$NT_PY" "$NT_WORKDIR/http_server.py" 127.0.0.20 8000 "$NT_WORKDIR/www"
  nt_wait_port tcp 127.0.0.20 8000 || nt_die "the file server did not come up"
  nt_drift_conductor "$end" "$EPOCHSECONDS" & NT_WORKER_PIDS+=($!)
  sleep 0.2
  nt_start_background "$end"
  (NT_GATE=45; nt_worker_browse "$end") & NT_WORKER_PIDS+=($!)
  (NT_GATE=65; nt_worker_browse "$end") & NT_WORKER_PIDS+=($!)
  (NT_GATE=80; nt_worker_api "$end") & NT_WORKER_PIDS+=($!)
  nt_worker_bulk "$end" "${NT_DRIFT_BULK_EVERY:-900}" & NT_WORKER_PIDS+=($!)
  nt_log "drift: load period ${NT_DRIFT_PERIOD} s, phase ${NT_DRIFT_PHASE} deg, client generation every ${NT_DRIFT_GEN_EVERY} s, bulk job every ${NT_DRIFT_BULK_EVERY:-900} s"
}
