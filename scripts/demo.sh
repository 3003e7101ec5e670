#!/usr/bin/env bash
# The demo: set up (idempotent), build, then run netanom with the shipped model
# (model/default, trained on 8 min of normal loopback traffic, ω = 0.5 s) on a 3-minute
# loopback capture with four labelled attacks from 127.0.0.66 (data/demo-attack.pcap:
# nmap SYN scan, hping3 SYN flood, nmap UDP scan, ICMP sweep, over normal background):
#   1. netanom evaluate: score every window against the labels -> ROC/AUC, precision,
#      recall, F1, plots (target/demo-report/);
#   2. netanom run: replay the capture through the live daemon pipeline -> incidents in
#      the alert log (target/demo-alerts.jsonl), printed one line per event with the
#      adaptive threshold and the attacker (first culprit), and the same incidents as
#      Suricata EVE alerts (target/demo-eve.json); the feature history it recorded;
#   3. several window lengths: train ω = 0.5 s and 5 s on the normal capture into one bundle
#      and evaluate it: incident metrics side by side with the paper's single scale;
#   4. quieting it: an analyst suppresses one incident and marks another benign (netanom
#      feedback); the replay again writes the first with suppressed_by and does not count it
#      as firing; a training from the history takes the benign one's windows in;
#   5. where to look next.
# Usage: scripts/demo.sh   (needs root or sudo the first time, for scripts/setup.sh)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS
say() { printf '\n== %s\n' "$*"; }

say "setup (Debian packages, libtorch; skipped when present) and build"
scripts/setup.sh
cargo build --release --quiet
netanom=./target/release/netanom
# A copy: the daemon keeps its adaptive threshold's state in its model directory, and the
# demo should start from the shipped calibration every time.
rm -rf target/demo-model && mkdir -p target && cp -r model/default target/demo-model
model=target/demo-model
capture=data/demo-attack.pcap
labels=data/demo-attack-labels.csv
mkdir -p target

say "1. netanom evaluate --model $model --pcap $capture --labels $labels --report target/demo-report"
echo "   (a window is anomalous when it holds >= P attack packets; alert when score > threshold)"
rm -rf target/demo-report
fail() { echo "demo: $1 failed; the end of its log ($2):" >&2; tail -n 5 "$2" >&2; exit 1; }
"$netanom" evaluate --model "$model" --pcap "$capture" --labels "$labels" \
  --report target/demo-report >target/demo-evaluate.txt 2>target/demo-evaluate.log ||
  fail "netanom evaluate" target/demo-evaluate.log
sed -n '/^model /,/^report:/p' target/demo-evaluate.txt | sed '$d'

say "2. netanom run --pcap $capture --model $model --alert-log target/demo-alerts.jsonl --eve-log target/demo-eve.json"
echo "   (the daemon pipeline, replayed as fast as possible; daemon log: target/demo-run.log)"
rm -rf target/demo-alerts.jsonl target/demo-eve.json target/demo-history # the logs are appended to
# Its own (empty) feedback state and history: the defaults are the package's, /var/lib/netanom.
rm -rf target/demo-state && mkdir -p target/demo-state
"$netanom" run --pcap "$capture" --model "$model" --alert-log target/demo-alerts.jsonl \
  --eve-log target/demo-eve.json --state-dir target/demo-state \
  --metrics-listen 127.0.0.1:0 --history-dir target/demo-history 2>target/demo-run.log ||
  fail "netanom run" target/demo-run.log
echo "   feature history recorded for training (docs/history.md):"
"$netanom" history --dir target/demo-history | sed 's/^/   /'
show_incidents() {
python3 - "$1" "$labels" <<'EOF'
import csv, json, sys
from datetime import datetime, timezone
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
spans = [(r['name'], float(r['start_epoch']), float(r['end_epoch'])) for r in csv.DictReader(open(sys.argv[2]))]
def hms(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime('%H:%M:%S.%f')[:10]
def num(v):
    return f'{v:.0f}' if v == int(v) else f'{v:.2f}'
def top3(e):
    return ', '.join(f"{f['name']} {num(f['value'])} ({num(f['training_max'])})" for f in e['top_features'][:3])
def culprit(e):
    # The incident's first culprit, the attacker (docs/alerts.md, "Culprits of an incident").
    for c in e['incident'].get('culprits', [])[:1]:
        return f"{c['ip']} ({c['role']}, weight {c['weight']:.2f})"
    return '-'
width = max([len(top3(e)) for e in events] + [36])
print(f"   {'time (UTC)':<10}  {'event':<5} {'score':>9} {'threshold':>9}  {'top 3 features: value (training max)':<{width}}  first culprit")
for e in events:
    inc = e['incident']
    if e['event_type'] == 'incident_culprit':
        print(f"   {'':<10}  {'':<5} {'':>9}  #{inc['id'].split('-')[-1]}: {e['culprit']['ip']} joins ({e['culprit']['role']})")
        continue
    start = e['event_type'] == 'incident_start'
    t = inc['start_epoch'] if start else inc['end_epoch']
    score = e['score'] if start else inc['peak_score']
    feats = top3(e)
    suppressed = f"  [suppressed by {','.join(e['suppressed_by'])}]" if e.get('suppressed_by') else ''
    print(f"   {hms(t):<10}  {'start' if start else 'end':<5} {score:>9.3g} {e['threshold']:>9.3g}  {feats:<{width}}  {culprit(e)}{suppressed}")
    if not start:
        lo, hi = inc['start_epoch'], inc['end_epoch']
        names = sorted({n for n, s, en in spans if s <= hi and en >= lo})
        what = 'labelled attack: ' + ', '.join(names) if names else 'NO labelled attack: a false alarm'
        print(f"   {'':<10}  {'':<5} {'':>9}  #{inc['id'].split('-')[-1]}: {inc['windows']} alerting windows, "
              f"{inc['duration_s']:g} s, peak {inc['peak_score']:.3g}; {what}")
n = sum(e['event_type'] == 'incident_start' for e in events)
print(f"   {n} incidents (end time = end of the last alerting window; score at the end = the peak;")
print("   threshold: the adaptive one in force, SPOT for alerts.false_rate = 1e-5, docs/model.md)")
EOF
}
show_incidents target/demo-alerts.jsonl
echo "   the same incidents as Suricata EVE alerts (target/demo-eve.json; docs/alerts.md):"
python3 - target/demo-eve.json <<'EOF'
import json, sys
for l in open(sys.argv[1]):
    e = json.loads(l)
    a = e['alert']
    what = a['metadata'].get('netanom_event', ['?'])[0]
    print(f"   {e['timestamp'][11:23]}  {what:<7} {e['src_ip']:>11} -> {e.get('dest_ip', '-'):<11} "
          f"sev {a['severity']}  sid {a['signature_id']}  {a['signature']}")
EOF

say "3. several window lengths: netanom train --pcap data/normal-lo.pcap --window 0.5,5, then evaluate"
echo "   (one model per ω from one decode; incidents merge across scales: docs/alerts.md)"
rm -rf target/demo-multiscale target/demo-report-multiscale
"$netanom" train --pcap data/normal-lo.pcap --window 0.5,5 --out target/demo-multiscale \
  --epochs 40 --seed 1 >target/demo-train-multiscale.log 2>&1 ||
  fail "netanom train --window 0.5,5" target/demo-train-multiscale.log
"$netanom" evaluate --model target/demo-multiscale --pcap "$capture" --labels "$labels" \
  --report target/demo-report-multiscale >target/demo-evaluate-multiscale.txt 2>target/demo-evaluate-multiscale.log ||
  fail "netanom evaluate (0.5,5)" target/demo-evaluate-multiscale.log
python3 - target/demo-report/metrics.json target/demo-report-multiscale/metrics.json <<'EOF'
import json, sys
one, two = (json.load(open(p))['incidents'] for p in sys.argv[1:3])
def cell(a):
    t = a['time_to_first_alert_s']
    return f"{a['incidents']} / {a['flagged_fraction']*100:.0f} % / {'-' if t is None else f'{t:.1f} s'}"
print(f"   {'attack':<18} {'ω = 0.5 s (paper)':<22} {'ω = 0.5, 5 s':<22}")
for a, b in zip(one['per_attack'], two['per_attack']):
    print(f"   {a['name']:<18} {cell(a):<22} {cell(b):<22}")
for k in ['incidents', 'false_alarms', 'attacks_detected']:
    print(f"   {k:<18} {one[k]!s:<22} {two[k]!s:<22}")
print("   (cells: incidents / share of the attack flagged / time to first alert)")
EOF

say "4. quieting it: netanom feedback suppress | benign, then a replay and a training from the history"
echo "   (SOC staff tell netanom what an incident was; docs/deploy.md, \"Quieting netanom: feedback\")"
# The incidents of step 2: "ID FIRST_CULPRIT LABELLED(0/1)" per line.
mapfile -t incs < <(python3 - target/demo-alerts.jsonl "$labels" <<'EOF'
import csv, json, sys
spans = [(float(r['start_epoch']), float(r['end_epoch'])) for r in csv.DictReader(open(sys.argv[2]))]
for l in open(sys.argv[1]):
    e = json.loads(l)
    if e['event_type'] != 'incident_end':
        continue
    i = e['incident']
    hit = any(a <= i['end_epoch'] and b >= i['start_epoch'] for a, b in spans)
    print(i['id'], (i.get('culprits') or [{'ip': '-'}])[0]['ip'], int(hit))
EOF
)
fb() { "$netanom" feedback "$@" --state-dir target/demo-state --alert-log target/demo-alerts.jsonl; }
echo "   \$ netanom feedback suppress --host 127.0.0.66 --feature dst_ip_distinct --comment \"our monitoring sweeps the subnet\" --expires 30d"
fb suppress --host 127.0.0.66 --feature dst_ip_distinct --comment "our monitoring sweeps the subnet" \
  --expires 30d | sed 's/^/   /'
udp_scan=$(printf '%s\n' "${incs[@]}" | awk '$3 == 1 { n++ } n == 3 { print $1; exit }')
echo "   \$ netanom feedback benign --incident $udp_scan --comment \"demo: pretend the UDP scan is a nightly job\""
fb benign --incident "$udp_scan" --comment "demo: pretend the UDP scan is a nightly job" | sed 's/^/   /'
echo "   \$ netanom feedback list"
fb list | sed 's/^/   /'
echo "   the replay again with the rules (--state-dir target/demo-state; a suppressed incident is"
echo "   logged with suppressed_by, not counted as firing):"
rm -rf target/demo-alerts-quiet.jsonl target/demo-model-quiet target/demo-history-quiet
cp -r model/default target/demo-model-quiet
"$netanom" run --pcap "$capture" --model target/demo-model-quiet --alert-log target/demo-alerts-quiet.jsonl \
  --state-dir target/demo-state --history-dir target/demo-history-quiet --metrics-listen 127.0.0.1:0 \
  2>target/demo-run-quiet.log ||
  fail "netanom run (with feedback)" target/demo-run-quiet.log
show_incidents target/demo-alerts-quiet.jsonl | grep -E ' start |suppressed' | head -n 8
echo "   a model from step 2's history (alerted windows and their neighbours are left out, those"
echo "   of the benign incident taken in; docs/history.md):"
rm -rf target/demo-learned
"$netanom" train --history target/demo-history --out target/demo-learned --epochs 20 --seed 1 \
  --state-dir target/demo-state --alert-log target/demo-alerts.jsonl \
  >target/demo-train-history.txt 2>target/demo-train-history.log ||
  fail "netanom train --history" target/demo-train-history.log
grep -o 'history .*kept.*left out: [^;]*' target/demo-train-history.log | sed 's/^/   /' || true
sed -n 's/^model id: */   learned model id: /p' target/demo-train-history.txt
echo "   on a tap, the daemon does this itself: netanom run --window 0.5,5 --learn-for 24h (docs/deploy.md)"

say "5. where to look"
cat <<EOF
   report:  target/demo-report/metrics.json (all figures), roc.csv
   plots:   target/demo-report/score.png (score per window, threshold, attacks shaded)
            target/demo-report/roc.png   (ROC curves for P = 1, 10, 20)
   alerts:  target/demo-alerts.jsonl (schema: docs/alerts.md), target/demo-eve.json (Suricata EVE)
   rules:   target/demo-state/feedback.jsonl (append-only: who, when, why, scope, expiry)
   scales:  target/demo-report-multiscale/ (the same report for ω = 0.5 s and 5 s)
   more:    docs/evaluation.md, docs/model.md, docs/experiments.md
demo done in $((SECONDS - started)) s
EOF
