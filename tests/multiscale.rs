//! Several window lengths at once (`--window 0.5,5`): one model per ω in one bundle, every
//! scale run from one decode by `score`, `evaluate` and `run`, and one incident for an attack
//! that the scales see at different times.
//!
//! The models are trained once per test binary on generated normal LAN traffic (1,200
//! windows of 0.5 s = 120 windows of 5 s). The test capture is normal traffic of another seed
//! with a slow SYN scan from 198.51.100.66: one probe to a new port of 10.0.1.1 every 80 ms
//! for 60 s, too sparse for most 0.5 s windows to stand out, but 62 new ports in every 5 s
//! window.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;

/// The trained multi-scale bundle.
struct Fixture {
    dir: PathBuf,
    model: PathBuf,
}

/// Test captures start here (after the training capture).
const T1: i64 = T0 + 20_000 * OMEGA_NS;
/// The scan: windows of 0.5 s from its start, its length, the gap between probes.
const SCAN_FIRST_WINDOW: i64 = 200;
const SCAN_NS: i64 = 60_000_000_000;
const PROBE_EVERY_NS: i64 = 200_000_000;
const SCANNER: [u8; 4] = [198, 51, 100, 66];

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("multiscale-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let normal = dir.join("normal.pcap");
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(1), T0, 1200);
        t.write(&normal);
        let model = dir.join("model");
        let mut cmd = netanom_command();
        cmd.arg("train")
            .arg("--pcap")
            .arg(&normal)
            .args(["--window", "5,0.5"])
            .arg("--out")
            .arg(&model)
            .args(["--hidden", "16", "--epochs", "8", "--seed", "7"])
            .args(["--threshold-factor", "3"]);
        run_with_timeout(
            cmd,
            Duration::from_secs(600),
            "netanom train --window 5,0.5",
        )
        .assert_ok("netanom train");
        Fixture { dir, model }
    })
}

/// 400 windows of 0.5 s of normal traffic (seed 2) with the slow scan.
fn scan_capture(path: &Path) {
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(2), T1, 400);
    let start = T1 + SCAN_FIRST_WINDOW * OMEGA_NS;
    let probes = SCAN_NS / PROBE_EVERY_NS;
    for i in 0..probes {
        let port = 1000 + i as u16;
        t.push(
            start + i * PROBE_EVERY_NS,
            bare_syn((SCANNER, 40_000), ([10, 0, 1, 1], port)),
        );
    }
    t.write(path);
}

/// The labels of the scan (both directions).
fn scan_labels(path: &Path) {
    let (a, b) = (
        (T1 + SCAN_FIRST_WINDOW * OMEGA_NS) as f64 / 1e9,
        (T1 + SCAN_FIRST_WINDOW * OMEGA_NS + SCAN_NS) as f64 / 1e9,
    );
    std::fs::write(
        path,
        format!(
            "name,src_cidr,dst_cidr,start_epoch,end_epoch\nslow_scan,198.51.100.66/32,*,{a},{b}\nslow_scan,*,198.51.100.66/32,{a},{b}\n"
        ),
    )
    .unwrap();
}

/// `netanom evaluate --threshold-rule fixed` of `model` on `pcap` with `labels`: its
/// metrics.json.
fn evaluate(model: &Path, pcap: &Path, labels: &Path, report: &Path) -> Value {
    let mut cmd = netanom_command();
    cmd.arg("evaluate")
        .args(["--threshold-rule", "fixed"])
        .arg("--model")
        .arg(model)
        .arg("--pcap")
        .arg(pcap)
        .arg("--labels")
        .arg(labels)
        .arg("--report")
        .arg(report);
    run_with_timeout(cmd, Duration::from_secs(120), "netanom evaluate").assert_ok("evaluate");
    serde_json::from_str(&std::fs::read_to_string(report.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn a_list_of_window_lengths_trains_one_model_per_length_into_one_bundle() {
    let fx = fixture();
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fx.model.join("scales.json")).expect("scales.json"),
    )
    .unwrap();
    let scales = manifest["scales"].as_array().unwrap();
    let omegas: Vec<u64> = scales
        .iter()
        .map(|s| s["omega_us"].as_u64().unwrap())
        .collect();
    assert_eq!(omegas, [500_000, 5_000_000], "sorted, shortest first");
    for (s, dir) in scales.iter().zip(["omega-0.5s", "omega-5s"]) {
        assert_eq!(s["dir"], dir);
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(fx.model.join(dir).join("model.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["omega_us"], s["omega_us"]);
        assert_eq!(meta["model_id"], s["model_id"]);
        // From the same 600 s of traffic: 1,200 and 120 windows.
        let expected = if dir == "omega-5s" { 120 } else { 1200 };
        assert_eq!(meta["training"]["window_count"], expected, "{dir}");
    }
}

#[test]
fn bad_window_lists_are_refused_naming_the_value() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("n.pcap");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(3), T0, 20);
    t.write(&pcap);
    for (list, needle) in [
        ("0.5,5,0.5", "names 0.5 s twice"),
        ("0.5,0", "\"0\""),
        (
            "0.5,1.2",
            "1.2 s is not a whole multiple of the shortest, 0.5 s",
        ),
    ] {
        let mut cmd = netanom_command();
        cmd.args(["train", "--window", list, "--out"])
            .arg(tmp.path().join("m"))
            .arg("--pcap")
            .arg(&pcap);
        let f = run_with_timeout(cmd, Duration::from_secs(60), "netanom train");
        assert_eq!(f.code(), Some(2), "{list}: {}", f.stderr);
        assert!(f.stderr.contains(needle), "{list}: {}", f.stderr);
    }
}

#[test]
fn score_evaluate_and_run_see_every_scale_and_a_slow_scan_is_one_incident() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("scan.pcap");
    scan_capture(&pcap);
    let labels = tmp.path().join("labels.csv");
    scan_labels(&labels);

    // score: one row per window of each scale, tagged with its ω.
    let out = tmp.path().join("scores.csv");
    let mut cmd = netanom_command();
    cmd.arg("score")
        .args(["--threshold-rule", "fixed"])
        .arg("--model")
        .arg(&fx.model)
        .arg("--pcap")
        .arg(&pcap)
        .arg("--output")
        .arg(&out);
    run_with_timeout(cmd, Duration::from_secs(120), "netanom score").assert_ok("score");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("window_start,window_end,score,threshold,alert,omega_s")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let of = |o: &str| rows.iter().filter(|r| r[5] == o).count();
    assert_eq!((of("0.5"), of("5")), (400, 40));
    let alerting = |o: &str| rows.iter().filter(|r| r[5] == o && r[4] == "1").count();
    // The long windows see most of the scan (it covers 12 of them); the short
    // ones see less of it.
    let long_alerts = alerting("5");
    assert!(
        long_alerts >= 9,
        "5 s windows alerting: {long_alerts}\n{text}"
    );

    // evaluate: incidents in metrics.json, window metrics of the 5 s scale under "scales".
    let m = evaluate(&fx.model, &pcap, &labels, &tmp.path().join("report"));
    let inc = &m["incidents"];
    assert_eq!(inc["attacks"], 1, "{inc:#}");
    assert_eq!(inc["attacks_detected"], 1, "{inc:#}");
    assert_eq!(inc["incidents"], 1, "one attack, one incident: {inc:#}");
    assert_eq!(inc["false_alarms"], 0, "{inc:#}");
    assert_eq!(inc["incidents_per_attack"].as_f64(), Some(1.0));
    let flagged = inc["per_attack"][0]["flagged_fraction"].as_f64().unwrap();
    assert!(flagged >= 0.75, "flagged {flagged}: {inc:#}");
    let first = inc["per_attack"][0]["time_to_first_alert_s"]
        .as_f64()
        .unwrap();
    assert!(
        (0.0..=15.0).contains(&first),
        "first alert {first} s after the scan began"
    );
    assert!(m["scales"]["5"]["auc_by_p"].is_object(), "{m:#}");
    assert_eq!(
        m["windows"]["total"], 400,
        "window metrics of the 0.5 s scale"
    );
    // The paper's single scale alone (the bundle's 0.5 s model) sees the scan in pieces.
    let m1 = evaluate(
        &fx.model.join("omega-0.5s"),
        &pcap,
        &labels,
        &tmp.path().join("report-0.5"),
    );
    let single_flagged = m1["incidents"]["per_attack"][0]["flagged_fraction"]
        .as_f64()
        .unwrap();
    assert!(
        single_flagged < 0.5,
        "the 0.5 s model alone flags {single_flagged} of the scan: the capture no longer tests what the long windows add"
    );

    // run: the daemon's alert log says the same, and which scales saw it.
    let log = tmp.path().join("alerts.jsonl");
    let mut cmd = netanom_command();
    cmd.arg("run")
        .arg("--pcap")
        .arg(&pcap)
        .arg("--model")
        .arg(&fx.model)
        .arg("--alert-log")
        .arg(&log)
        .args(["--metrics-listen", "127.0.0.1:0"]);
    run_with_timeout(cmd, Duration::from_secs(120), "netanom run --pcap").assert_ok("run");
    let events = read_alerts(&log);
    for e in &events {
        assert_eq!(e["schema_version"], 3);
        assert_eq!(e["model"]["scales"], serde_json::json!([0.5, 5.0]));
        check_event(e, e["model"]["omega_s"].as_f64().unwrap());
    }
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "one incident:\n{events:#?}");
    let end = pairs[0].1.as_ref().unwrap();
    // Its first culprit is the scanner.
    assert_eq!(
        end["incident"]["culprits"][0]["ip"], "198.51.100.66",
        "{end:#}"
    );
    let seen: Vec<f64> = end["incident"]["scales"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["omega_s"].as_f64().unwrap())
        .collect();
    assert!(seen.contains(&5.0), "the 5 s scale saw it: {end:#}");
    let (a, b) = (
        end["incident"]["start_epoch"].as_f64().unwrap(),
        end["incident"]["end_epoch"].as_f64().unwrap(),
    );
    let scan_start = (T1 + SCAN_FIRST_WINDOW * OMEGA_NS) as f64 / 1e9;
    assert!(
        (a - scan_start).abs() <= 15.0 && b >= scan_start + 55.0,
        "the incident spans the scan: {a}..{b} vs {scan_start}..{}",
        scan_start + 60.0
    );
    let _ = &fx.dir;
}

/// `--smoothing` and `--load-augment` through the CLI: each scale's bundle records them
/// (format version 2 for the smoothed normalisation), the slow scan is still found as one
/// incident, and bad values are refused naming the option and what is allowed.
#[test]
fn smoothing_and_load_augmentation_keep_the_slow_scan() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let mut cmd = netanom_command();
    cmd.arg("train")
        .arg("--pcap")
        .arg(fx.dir.join("normal.pcap"))
        .args(["--window", "5,0.5"])
        .arg("--out")
        .arg(&model)
        .args(["--hidden", "16", "--epochs", "8", "--seed", "7"])
        .args(["--threshold-factor", "3"])
        .args(["--smoothing", "64", "--load-augment", "4"]);
    run_with_timeout(cmd, Duration::from_secs(600), "netanom train --smoothing")
        .assert_ok("netanom train --smoothing 64 --load-augment 4");
    for dir in ["omega-0.5s", "omega-5s"] {
        let meta: Value = serde_json::from_str(
            &std::fs::read_to_string(model.join(dir).join("model.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["format_version"], 2, "{dir}");
        let s = &meta["normalization"]["smoothing"];
        assert_eq!(s["packets"], 64.0, "{dir}: {s}");
        assert_eq!(s["center"].as_array().map(Vec::len), Some(53), "{dir}");
        assert_eq!(meta["training"]["load_augment"], 4.0, "{dir}");
    }

    let pcap = tmp.path().join("scan.pcap");
    scan_capture(&pcap);
    let labels = tmp.path().join("labels.csv");
    scan_labels(&labels);
    let m = evaluate(&model, &pcap, &labels, &tmp.path().join("report"));
    let inc = &m["incidents"];
    assert_eq!(inc["attacks_detected"], 1, "{inc:#}");
    assert_eq!(inc["incidents"], 1, "{inc:#}");
    let flagged = inc["per_attack"][0]["flagged_fraction"].as_f64().unwrap();
    assert!(flagged >= 0.75, "flagged {flagged}: {inc:#}");

    for (args, needle) in [
        (
            ["--smoothing", "0"],
            "\"0\" is not a number of packets from 1 to 1000000",
        ),
        (
            ["--smoothing", "lots"],
            "\"lots\" is not a number of packets",
        ),
        (
            ["--load-augment", "1"],
            "\"1\" is not a load factor from 2 to 100",
        ),
    ] {
        let mut cmd = netanom_command();
        cmd.args(["train", "--window", "0.5", "--out"])
            .arg(tmp.path().join("bad"))
            .arg("--pcap")
            .arg(fx.dir.join("normal.pcap"))
            .args(args);
        let f = run_with_timeout(cmd, Duration::from_secs(60), "netanom train");
        assert_eq!(f.code(), Some(2), "{args:?}: {}", f.stderr);
        assert!(
            f.stderr.contains(needle) && f.stderr.contains(args[0]),
            "{args:?}: {}",
            f.stderr
        );
    }
}
