//! Learning from the link, on replayed captures (no root needed): learning mode (no model yet:
//! record, train in the background, load, detect) and scheduled retraining with its safe swap
//! (a candidate that alerts more on the held-out history is rejected and the running model
//! kept; one that does not is promoted through the model store). Replaying, the scorer waits
//! for each training, so what happens is the same on every run and machine.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::path::Path;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;

/// 400 windows of 0.5 s of LAN traffic (seed `seed`) with a SYN flood of 2000 SYNs a window
/// filling windows `[first, first + n)` of each flood.
fn capture(path: &Path, seed: u64, floods: &[(i64, i64)]) {
    capture_with(path, seed, floods, 2000);
}

/// As [`capture`], with `per_window` SYNs in each flooded window.
fn capture_with(path: &Path, seed: u64, floods: &[(i64, i64)], per_window: usize) {
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(seed), T0, 400);
    for &(first, n) in floods {
        t.syn_flood(
            T0 + first * OMEGA_NS,
            n * OMEGA_NS,
            per_window * n as usize,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
    }
    t.write(path);
}

/// `netanom run --pcap P` with history recording into `dir/history`, the model in
/// `model`, the alert log `dir/alerts.jsonl`, `extra` arguments and `envs`.
fn run(dir: &Path, pcap: &Path, model: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Finished {
    let mut cmd = netanom_command();
    cmd.arg("run")
        .arg("--pcap")
        .arg(pcap)
        .arg("--model")
        .arg(model)
        .arg("--history-dir")
        .arg(dir.join("history"))
        .arg("--alert-log")
        .arg(dir.join("alerts.jsonl"))
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .env("NETANOM_HISTORY__ENABLED", "true")
        .env("NETANOM_LEARNING__EPOCHS", "8")
        .env("NETANOM_LEARNING__HIDDEN", "16")
        .env("NETANOM_LOG__FORMAT", "json")
        .envs(envs.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(300), "netanom run --pcap")
}

/// The JSON log records whose message contains `needle`.
fn messages(f: &Finished, needle: &str) -> Vec<Value> {
    f.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| log_message(r).contains(needle))
        .collect()
}

/// The model id in `dir/model.json` (or what `dir/current` points at).
fn model_id(dir: &Path) -> String {
    let meta = if dir.join("current").exists() {
        dir.join("current/model.json")
    } else {
        dir.join("model.json")
    };
    let v: Value = serde_json::from_str(&std::fs::read_to_string(meta).unwrap()).unwrap();
    v["model_id"].as_str().unwrap().to_string()
}

#[test]
fn learning_mode_records_then_trains_loads_and_detects() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("lan.pcap");
    // Learn for 120 s (240 windows), then a flood at windows 350–352.
    capture(&pcap, 11, &[(350, 3)]);
    let model = tmp.path().join("model");
    let f = run(
        tmp.path(),
        &pcap,
        &model,
        &["--window", "0.5", "--learn-for", "120s"],
        &[],
    );
    f.assert_ok("netanom run in learning mode");
    // Windows without a model are recorded, not errors.
    let errors: Vec<&str> = f
        .stderr
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let learned = messages(&f, "learning done");
    assert_eq!(learned.len(), 1, "{}", f.stderr);
    let id = model_id(&model);
    assert!(
        log_message(&learned[0]).contains(&id),
        "{}",
        log_message(&learned[0])
    );
    let link = std::fs::read_link(model.join("current")).unwrap();
    assert!(link.starts_with("bundles"), "{link:?}");
    // Nothing was half-written: only the installed bundle.
    let bundles: Vec<_> = std::fs::read_dir(model.join("bundles"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    assert!(!bundles[0].ends_with(".tmp"));
    // The training came from the history of the first 120 s.
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("current/model.json")).unwrap())
            .unwrap();
    let span = meta["training"]["end_unix"].as_f64().unwrap()
        - meta["training"]["start_unix"].as_f64().unwrap();
    assert!((110.0..=120.5).contains(&span), "trained on {span} s");
    // Then it detects: one incident, the flood, with the learned model.
    let events = read_alerts(&tmp.path().join("alerts.jsonl"));
    assert_eq!(events.len(), 2, "{events:#?}");
    for e in &events {
        check_event(e, 0.5);
        assert_eq!(e["model"]["id"], id.as_str());
    }
    let start = events[0]["incident"]["start_epoch"].as_f64().unwrap();
    let flood = (T0 + 350 * OMEGA_NS) as f64 / 1e9;
    assert!((start - flood).abs() < 1e-6, "{start} vs {flood}");
    // The history holds every window, scored or not.
    let out = std::process::Command::new(netanom_bin())
        .args(["history", "--json", "--dir"])
        .arg(tmp.path().join("history"))
        .output()
        .unwrap();
    let h: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(h["windows"], 400, "{h}");
}

/// The running model for the retraining tests: so insensitive (threshold × 1000) that it
/// never alerts on these captures.
fn insensitive_model(dir: &Path) -> std::path::PathBuf {
    let normal = dir.join("normal.pcap");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(1), T0 - 1000 * OMEGA_NS, 600);
    t.write(&normal);
    let model = dir.join("model");
    train(&normal, &model, &["--threshold-factor", "1000"]);
    model
}

/// Retrain after 190 s of capture time on the history before the last 30 s, and compare on
/// those 30 s (windows 320–379).
const RETRAIN: [(&str, &str); 3] = [
    ("NETANOM_LEARNING__RETRAIN_EVERY", "190s"),
    ("NETANOM_LEARNING__WINDOW", "1h"),
    ("NETANOM_LEARNING__HOLDOUT", "30s"),
];

#[test]
fn a_retrained_model_that_alerts_more_is_rejected_and_the_running_one_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let model = insensitive_model(tmp.path());
    let before = model_id(&model);
    let pcap = tmp.path().join("flood.pcap");
    // A small flood (60 SYNs a window) lies in the held-out 30 s: the candidate (trained on
    // normal traffic, normal threshold) alerts there; the insensitive running model does not.
    capture_with(&pcap, 12, &[(360, 4)], 60);
    let f = run(tmp.path(), &pcap, &model, &[], &RETRAIN);
    f.assert_ok("netanom run with retraining");
    let rejected = messages(&f, "rejected");
    assert_eq!(rejected.len(), 1, "{}", f.stderr);
    let text = log_message(&rejected[0]);
    assert!(text.contains("keeping the running model"), "{text}");
    assert!(text.contains("of the last 30s of history"), "{text}");
    assert_eq!(
        rejected[0]["fields"]["result"], "rejected",
        "{}",
        rejected[0]
    );
    assert!(messages(&f, "promoted").is_empty());
    // The running model is untouched: no current link, no new bundle kept.
    assert!(!model.join("current").exists());
    assert_eq!(model_id(&model), before);
    let kept = std::fs::read_dir(model.join("bundles"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(kept, 0, "a rejected candidate is not kept");
    assert!(read_alerts(&tmp.path().join("alerts.jsonl")).is_empty());
}

#[test]
fn a_retrained_model_that_alerts_no_more_is_promoted_through_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let model = insensitive_model(tmp.path());
    let before = model_id(&model);
    let pcap = tmp.path().join("calm.pcap");
    // Calm traffic up to the retraining, then a flood after the swap.
    capture(&pcap, 13, &[(390, 3)]);
    let f = run(tmp.path(), &pcap, &model, &[], &RETRAIN);
    f.assert_ok("netanom run with retraining");
    let promoted = messages(&f, "promoted");
    assert_eq!(promoted.len(), 1, "{}", f.stderr);
    let after = model_id(&model);
    assert_ne!(after, before);
    assert!(log_message(&promoted[0]).contains(&after));
    // The operator's bundle stays where it was; the new one is current.
    assert!(model.join("model.json").is_file());
    assert!(model.join("current/weights.safetensors").is_file());
    // After the swap the new model detects the flood the old one could not see.
    let events = read_alerts(&tmp.path().join("alerts.jsonl"));
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["model"]["id"], after.as_str());
    check_event(&events[0], 0.5);
}

#[test]
fn learning_settings_that_cannot_work_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("lan.pcap");
    capture(&pcap, 14, &[]);
    let model = tmp.path().join("empty-model");
    for (extra, envs, needle) in [
        (
            vec!["--window", "0.5", "--learn-for", "1s"],
            vec![],
            "--learn-for = \"1s\": shorter than three windows of 0.5 s",
        ),
        (
            vec!["--learn-for", "1h"],
            vec![],
            "learning.learn_for: model.dir",
        ),
        (
            vec!["--window", "0.5", "--learn-for", "1h"],
            vec![("NETANOM_LEARNING__HOLDUOT", "1h")],
            "NETANOM_LEARNING__HOLDUOT",
        ),
        (
            vec!["--window", "0.5", "--learn-for", "soon"],
            vec![],
            "--learn-for = \"soon\": not a duration",
        ),
    ] {
        let mut cmd = netanom_command();
        cmd.arg("run")
            .arg("--pcap")
            .arg(&pcap)
            .arg("--model")
            .arg(&model)
            .arg("--history-dir")
            .arg(tmp.path().join("h"))
            .arg("--alert-log")
            .arg(tmp.path().join("a.jsonl"))
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(&extra)
            .envs(envs.iter().copied());
        let f = run_with_timeout(cmd, Duration::from_secs(60), "netanom run");
        assert_eq!(f.code(), Some(1), "{extra:?}: {}", f.stderr);
        assert!(f.stderr.contains(needle), "{extra:?}: {}", f.stderr);
    }
    // Without the history there is nothing to learn from.
    let mut cmd = netanom_command();
    cmd.arg("run")
        .arg("--pcap")
        .arg(&pcap)
        .arg("--model")
        .arg(&model)
        .args(["--window", "0.5", "--learn-for", "1h"])
        .arg("--alert-log")
        .arg(tmp.path().join("a.jsonl"))
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("NETANOM_HISTORY__ENABLED", "false");
    let f = run_with_timeout(cmd, Duration::from_secs(60), "netanom run");
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    assert!(f.stderr.contains("history.enabled = false"), "{}", f.stderr);
}
