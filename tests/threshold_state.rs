//! The adaptive threshold's state survives restarts (docs/model.md, "Threshold rules"): saved
//! to `MODEL_DIR/threshold-state.json` every `alerts.threshold_save_interval` and at a clean
//! stop. After SIGTERM the next start continues from exactly the state in force at the stop;
//! after kill -9 from the last periodic save; a corrupt file is named and the model's
//! calibration is used; another model's state is never picked up.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;

/// The `n` and threshold a "saved" debug line states for ω = 0.5 s
/// (`ω = 0.5 s: n 1234 n_t 56 threshold 7.8`).
fn saved_state(rec: &Value) -> (u64, f64) {
    let s = rec["fields"]["state"].as_str().expect("state field");
    let words: Vec<&str> = s.split_whitespace().collect();
    let at = |k: &str| words[words.iter().position(|w| *w == k).unwrap() + 1];
    (at("n").parse().unwrap(), at("threshold").parse().unwrap())
}

/// The saved file's scales.
fn state_file(model: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(model.join("threshold-state.json")).unwrap())
        .unwrap()
}

/// The "saved" debug records of a daemon's log.
fn saves(d: &Daemon) -> Vec<Value> {
    d.log_records()
        .into_iter()
        .filter(|r| log_message(r) == "adaptive threshold state saved")
        .collect()
}

/// The "loaded" record of a daemon's log, if any.
fn loaded(d: &Daemon) -> Option<Value> {
    d.wait_for_message(
        "adaptive threshold state loaded",
        0,
        Duration::from_secs(30),
    )
}

fn args(pcap: &Path, model: &Path, alerts: &Path, realtime: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> = vec![
        "--pcap".into(),
        pcap.into(),
        "--model".into(),
        model.into(),
        "--alert-log".into(),
        alerts.into(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ];
    if realtime {
        a.push("--realtime".into());
    }
    a
}

const ENV: [(&str, &str); 3] = [
    ("NETANOM_ALERTS__THRESHOLD_SAVE_INTERVAL", "1s"),
    ("NETANOM_LOG__LEVEL", "debug"),
    SPOT_THRESHOLD,
];

#[test]
fn the_adaptive_threshold_state_is_kept_across_sigterm_and_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |n: &str| tmp.path().join(n);
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(1), T0 - 1000 * OMEGA_NS, 400);
    t.write(&p("normal.pcap"));
    let model = p("model");
    train(&p("normal.pcap"), &model, &[]);
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    let calibrated = meta["threshold"]["spot"]["n"]
        .as_u64()
        .expect("a SPOT calibration");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(2), T0, 240);
    t.write(&p("live.pcap"));
    let alerts = p("alerts.jsonl");

    // 1. SIGTERM: the state in force at the stop is saved.
    let mut d = Daemon::start(&args(&p("live.pcap"), &model, &alerts, true), &ENV);
    let addr = d.metrics_addr(Duration::from_secs(60));
    let (ok, _) = scrape_until(addr, Duration::from_secs(60), |e| {
        e.get("netanom_windows_scored_total").unwrap_or(0.0) >= 20.0
    });
    assert!(ok, "{}", d.log_text());
    let e = scrape(addr);
    let metric = e
        .all("netanom_threshold_excesses")
        .first()
        .map(|s| s.value)
        .unwrap_or(0.0);
    assert!(metric > 0.0, "SPOT runs: {metric}");
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(30))
        .is_some_and(|s| s.success()));
    let last = saves(&d).pop().expect("a save at the stop");
    let (n, threshold) = saved_state(&last);
    assert!(
        n >= calibrated + 15,
        "learned from the windows: n {n}, calibration {calibrated}"
    );
    let file = state_file(&model);
    assert_eq!(file["scales"][0]["state"]["n"].as_u64(), Some(n));
    assert_eq!(file["scales"][0]["omega_us"], 500000);
    assert_eq!(file["scales"][0]["model_id"], meta["model_id"]);

    // 2. The next start continues from it exactly; then kill -9 after periodic saves.
    let mut d = Daemon::start(&args(&p("live.pcap"), &model, &alerts, true), &ENV);
    let rec = loaded(&d).unwrap_or_else(|| panic!("{}", d.log_text()));
    assert_eq!(rec["fields"]["n"].as_u64(), Some(n));
    assert_eq!(rec["fields"]["threshold"].as_f64(), Some(threshold));
    let addr = d.metrics_addr(Duration::from_secs(60));
    let e = scrape(addr);
    let spot = e
        .all("netanom_threshold_rule")
        .into_iter()
        .find(|s| s.labels.get("rule").map(String::as_str) == Some("spot"))
        .map(|s| s.value);
    assert_eq!(spot, Some(1.0));
    // A routine SIGHUP keeps the same model and its moving thresholds (compared by model id,
    // not by threshold values, which have moved since the calibration).
    d.signal(libc::SIGHUP);
    let reloaded = d
        .wait_for_message("settings reloaded", 0, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{}", d.log_text()));
    assert_eq!(reloaded["fields"]["model_changed"], false, "{reloaded}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while saves(&d).len() < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    d.signal(libc::SIGKILL);
    let _ = d.wait_exit(Duration::from_secs(10));
    let periodic = saves(&d);
    assert!(periodic.len() >= 3, "{}", d.log_text());
    let (n_saved, _) = saved_state(periodic.last().unwrap());
    let n_file = state_file(&model)["scales"][0]["state"]["n"]
        .as_u64()
        .unwrap();
    // The file is the last periodic save (or one the kill cut off from its log line).
    assert!(
        n_file >= n_saved && n_file > n,
        "file n {n_file}, last logged {n_saved}, before {n}"
    );
    let d = Daemon::start(&args(&p("live.pcap"), &model, &alerts, false), &ENV);
    let rec = loaded(&d).unwrap_or_else(|| panic!("{}", d.log_text()));
    assert_eq!(rec["fields"]["n"].as_u64(), Some(n_file));
    drop(d);

    // 3. A corrupt file is named; the calibration is used; the daemon runs.
    std::fs::write(
        model.join("threshold-state.json"),
        "{\"format\": \"netanom-thr",
    )
    .unwrap();
    let mut d = Daemon::start(&args(&p("live.pcap"), &model, &alerts, false), &ENV);
    assert!(
        d.wait_exit(Duration::from_secs(120))
            .is_some_and(|s| s.success()),
        "{}",
        d.log_text()
    );
    let text = d.log_text();
    assert!(
        text.contains("threshold-state.json is not a valid threshold state file")
            && text.contains("start from the model's calibration"),
        "{text}"
    );
    assert!(!text.contains("adaptive threshold state loaded"), "{text}");
    // That run saved a fresh state at its end, of this model.
    assert_eq!(
        state_file(&model)["scales"][0]["model_id"],
        meta["model_id"]
    );

    // 4. Another model in the directory never takes this one's state.
    let other = p("other");
    let mut cmd = netanom_command();
    cmd.arg("train")
        .arg("--pcap")
        .arg(p("normal.pcap"))
        .args([
            "--window", OMEGA, "--hidden", "16", "--epochs", "8", "--seed", "8",
        ])
        .arg("--out")
        .arg(&other);
    run_with_timeout(cmd, Duration::from_secs(300), "train").assert_ok("train another");
    for f in ["model.json", "weights.safetensors"] {
        std::fs::copy(other.join(f), model.join(f)).unwrap();
    }
    let mut d = Daemon::start(&args(&p("live.pcap"), &model, &alerts, false), &ENV);
    assert!(d
        .wait_exit(Duration::from_secs(120))
        .is_some_and(|s| s.success()));
    assert!(
        !d.log_text().contains("adaptive threshold state loaded"),
        "{}",
        d.log_text()
    );
}
