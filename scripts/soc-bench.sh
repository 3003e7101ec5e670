#!/usr/bin/env bash
# The SOC benchmark of issue 8: from the captures of scripts/record-soc.sh (target/soc/),
# train one model per window set, evaluate each on attack.pcap (`netanom evaluate`), replay
# attack.pcap through the daemon (`netanom run --pcap`) for its alert log, and print a
# side-by-side table: per attack incidents / flagged fraction / time to first alert; totals;
# and for every true incident of the alert log whether the attacker 127.0.0.66 is among the
# named hosts of its end event (top_features[].contributors, top_talkers.source).
#
# Usage: scripts/soc-bench.sh [WINDOWS...]
#   WINDOWS   window sets for --window (default: 0.5 0.5,5 0.5,5,30)
# Environment:
#   SOC_DIR         captures and output (default target/soc)
#   NETANOM         the netanom binary (default $CARGO_TARGET_DIR/release/netanom, else
#                   target/release/netanom)
#   SOC_TRAIN_ARGS  extra `netanom train` options (e.g. "--threshold-factor 1.2"); the
#                   default is scripts/experiments.sh's: seed 1, 100 epochs, hidden 64, 1 layer
#   SOC_EPOCHS      training epochs (default 100)
#   SOC_SEED        training seed (default 1)
#   SOC_TAG         suffix of the model and report names (default none), to keep variants apart
# Output: $SOC_DIR/models/<name>/ (bundle, train.log), $SOC_DIR/reports/<name>/ (evaluate
# report, alerts.jsonl, run.log), $SOC_DIR/summary.md (the tables; appended per invocation
# under a heading naming the options).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
SOC=${SOC_DIR:-$root/target/soc}
if [[ -z ${NETANOM:-} ]]; then
  NETANOM=${CARGO_TARGET_DIR:-$root/target}/release/netanom
fi
SEED=${SOC_SEED:-1} # 1: as scripts/experiments.sh
EPOCHS=${SOC_EPOCHS:-100} # 100: as scripts/experiments.sh for loopback
read -r -a extra <<<"${SOC_TRAIN_ARGS:-}"
tag=${SOC_TAG:-}
case ${1:-} in -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}"; exit 0 ;; esac
windows=("$@")
((${#windows[@]})) || windows=(0.5 0.5,5 0.5,5,30)
log() { echo "soc-bench: $*" >&2; }
for f in normal.pcap attack.pcap attack-labels.csv; do
  [[ -s $SOC/$f ]] || { log "$SOC/$f is missing (run scripts/record-soc.sh)"; exit 1; }
done
[[ -x $NETANOM ]] || { log "$NETANOM is not built (cargo build --release)"; exit 1; }

names=()
for w in "${windows[@]}"; do
  name=w${w//,/-}$tag
  names+=("$name")
  m=$SOC/models/$name r=$SOC/reports/$name
  mkdir -p "$m" "$r"
  log "train $name (--window $w ${extra[*]})"
  s=$EPOCHSECONDS
  "$NETANOM" train --pcap "$SOC/normal.pcap" --window "$w" --out "$m" --epochs "$EPOCHS" \
    --hidden 64 --layers 1 --seed "$SEED" "${extra[@]}" >"$m/train.log" 2>&1 ||
    { tail -n 5 "$m/train.log" >&2; exit 1; }
  echo "$((EPOCHSECONDS - s))" >"$m/train-seconds"
  log "  trained in $((EPOCHSECONDS - s)) s"
  log "evaluate $name"
  "$NETANOM" evaluate --model "$m" --pcap "$SOC/attack.pcap" --labels "$SOC/attack-labels.csv" \
    --min-attack-packets 1,10,20 --report "$r" >"$r/summary.txt" 2>"$r/evaluate.log" ||
    { tail -n 5 "$r/evaluate.log" >&2; exit 1; }
  log "replay $name through netanom run"
  rm -f "$r/alerts.jsonl"
  printf '[model]\ndir = "%s"\n[alerts]\npath = "%s"\n[metrics]\nenabled = false\n' \
    "$m" "$r/alerts.jsonl" >"$r/run.toml"
  "$NETANOM" run --config "$r/run.toml" --pcap "$SOC/attack.pcap" >"$r/run.log" 2>&1 ||
    { tail -n 5 "$r/run.log" >&2; exit 1; }
  touch "$r/alerts.jsonl"
done

heading="## $(date -u +%FT%TZ): --epochs $EPOCHS --seed $SEED --hidden 64 --layers 1 ${extra[*]}"
python3 - "$SOC" "$heading" "${names[@]}" <<'PYEOF' | tee -a "$SOC/summary.md"
import csv, json, os, sys
soc, heading, names = sys.argv[1], sys.argv[2], sys.argv[3:]
ATTACKER = "127.0.0.66"
rows = list(csv.DictReader(open(os.path.join(soc, "attack-labels.csv"))))
spans = {}
for r in rows:
    a, b = float(r["start_epoch"]), float(r["end_epoch"])
    s = spans.setdefault(r["name"], [a, b]); s[0], s[1] = min(s[0], a), max(s[1], b)

def fmt(v, f):
    return "-" if v is None else f.format(v)

res = {}
for n in names:
    rep = os.path.join(soc, "reports", n)
    met = json.load(open(os.path.join(rep, "metrics.json")))
    bundle_dir = os.path.join(soc, "models", n)
    scales = json.load(open(os.path.join(bundle_dir, "scales.json"))) if os.path.exists(os.path.join(bundle_dir, "scales.json")) else None
    events = [json.loads(l) for l in open(os.path.join(rep, "alerts.jsonl")) if l.strip()]
    ends = [e for e in events if e["event_type"] == "incident_end"]
    omegas = max((max(e["model"]["scales"]) for e in events), default=0.5)
    tol = 2 * omegas
    named = []
    for e in ends:
        inc = e["incident"]
        lo, hi = inc["start_epoch"], inc["end_epoch"]
        hit = sorted(k for k, (a, b) in spans.items() if lo <= b + tol and hi >= a)
        if not hit:
            named.append((inc["id"], None, None, None, lo, hi)); continue
        contrib = None
        if any("contributors" in f for f in e.get("top_features", [])):
            contrib = any(ATTACKER in json.dumps(f.get("contributors", [])) for f in e["top_features"])
        talk = any(s.get("ip") == ATTACKER for s in e["top_talkers"]["source"])
        named.append((inc["id"], hit, contrib, talk, lo, hi))
    res[n] = dict(inc=met["incidents"], events=events, ends=ends, named=named,
                  train_s=open(os.path.join(bundle_dir, "train-seconds")).read().strip())

out = [heading, ""]
out.append("Per attack: incidents / flagged fraction of its duration / time to first alert (s)")
out.append("")
out.append("| attack | duration s | " + " | ".join(names) + " |")
out.append("|---|---|" + "---|" * len(names))
attack_rows = res[names[0]]["inc"]["per_attack"]
for i, a in enumerate(attack_rows):
    cells = []
    for n in names:
        pa = res[n]["inc"]["per_attack"][i]
        cells.append(f"{pa['incidents']} / {100 * pa['flagged_fraction']:.0f} % / {fmt(pa['time_to_first_alert_s'], '{:.2f}')}")
    out.append(f"| {a['name']} | {a['end'] - a['start']:.1f} | " + " | ".join(cells) + " |")
def tot(key, f="{}"):
    return " | ".join(fmt(res[n]["inc"][key], f) for n in names)
out.append(f"| **incidents (evaluate)** | | {tot('incidents')} |")
out.append(f"| **true incidents** | | {tot('true_incidents')} |")
out.append(f"| **false alarms** | | {tot('false_alarms')} |")
out.append(f"| **attacks detected** | | " + " | ".join(f"{res[n]['inc']['attacks_detected']} / {res[n]['inc']['attacks']}" for n in names) + " |")
out.append(f"| **incidents per detected attack** | | {tot('incidents_per_attack', '{:.2f}')} |")
out.append(f"| **mean time to first alert s** | | {tot('mean_time_to_first_alert_s', '{:.2f}')} |")
out.append(f"| incidents in the alert log (`netanom run`) | | " + " | ".join(str(len(res[n]['ends'])) for n in names) + " |")
def named(n, k):
    t = [x for x in res[n]["named"] if x[1]]
    v = [x[k] for x in t]
    if any(x is None for x in v):
        return f"n/a ({len(t)} true)"
    return f"{sum(v)} / {len(t)}"
out.append(f"| attacker in `top_features[].contributors` (true incidents) | | " + " | ".join(named(n, 2) for n in names) + " |")
out.append(f"| attacker in `top_talkers.source` (true incidents) | | " + " | ".join(named(n, 3) for n in names) + " |")
out.append(f"| training time s | | " + " | ".join(res[n]["train_s"] for n in names) + " |")
out.append("")
for n in names:
    out.append(f"Alert log of {n}: one line per incident (end event)")
    out.append("")
    out.append("| incident | start | end | scales (windows) | attacks overlapped | attacker in contributors | attacker in top_talkers.source | top sources |")
    out.append("|---|---|---|---|---|---|---|---|")
    for e, (iid, hit, c, t, lo, hi) in zip(res[n]["ends"], res[n]["named"]):
        sc = ", ".join(f"{s['omega_s']:g} s ({s['windows']})" for s in e["incident"]["scales"])
        srcs = ", ".join(f"{s['ip']} ({s['packets']})" for s in e["top_talkers"]["source"][:3])
        yn = lambda v: "-" if hit is None else ("n/a" if v is None else ("yes" if v else "**no**"))
        out.append(f"| {iid.split('-')[-1]} | {lo:.1f} | {hi:.1f} | {sc} | {', '.join(hit) if hit else '**none (false alarm)**'} | {yn(c)} | {yn(t)} | {srcs} |")
    out.append("")
print("\n".join(out))
PYEOF
log "summary appended to $SOC/summary.md"
