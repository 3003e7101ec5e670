//! The feature history end to end: `netanom run` records it (also across `kill -9`),
//! `netanom history` reports it (naming and skipping unreadable segments), `netanom train
//! --history` trains from it, and bad settings and flags are named. All offline: captures
//! replayed from files (the metrics server listens on 127.0.0.1:0; nothing captures live).

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use daemon_support::*;
use serde_json::Value;

/// The demo capture shipped in the repository (361 windows of 0.5 s, an attack in it).
fn demo_pcap() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo-attack.pcap")
}

/// `windows` windows of LAN traffic from `start`, written to `path`.
fn lan_pcap(path: &Path, start: i64, windows: i64, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut t = Traffic::new();
    t.lan(&mut rng, start, windows);
    t.write(path);
}

/// `netanom ARGS` to its end.
fn netanom(args: &[&std::ffi::OsStr], what: &str) -> Finished {
    let mut cmd = netanom_command();
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(300), what)
}

/// Replays `pcap` unpaced through `netanom run` recording to `history`; must succeed.
fn replay_into(pcap: &Path, history: &Path, tmp: &Path) -> Finished {
    let model = default_model_copy(tmp);
    let f = netanom(
        &[
            "run".as_ref(),
            "--pcap".as_ref(),
            pcap.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
            "--alert-log".as_ref(),
            tmp.join("alerts.jsonl").as_os_str(),
            "--metrics-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--history-dir".as_ref(),
            history.as_os_str(),
        ],
        "netanom run --history-dir",
    );
    f.assert_ok("netanom run --history-dir");
    f
}

/// `netanom history --json --dir DIR`: must exit 0; its JSON and stderr.
fn history_json(dir: &Path) -> (Value, String) {
    let f = netanom(
        &[
            "history".as_ref(),
            "--json".as_ref(),
            "--dir".as_ref(),
            dir.as_os_str(),
        ],
        "netanom history --json",
    );
    f.assert_ok("netanom history --json");
    let v: Value = serde_json::from_str(f.stdout.trim())
        .unwrap_or_else(|e| panic!("history --json is not JSON ({e}): {}", f.stdout));
    (v, f.stderr.clone())
}

/// The per-ω entry of `--json` for ω = 0.5 s.
fn half_second(v: &Value) -> &Value {
    v["omegas"]
        .as_array()
        .and_then(|a| a.iter().find(|o| o["omega_us"] == 500_000))
        .unwrap_or_else(|| panic!("no ω = 0.5 s in {v}"))
}

/// A paced replay killed with SIGKILL mid-recording: the history right after holds every
/// window up to within 60 s of the kill (read from the open journal, not fatal); a cut-off
/// last record is skipped with a warning; the next start recovers the journal into Parquet.
#[test]
fn kill_9_loses_at_most_a_minute_and_the_journal_is_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.pcap");
    lan_pcap(&big, T0, 600, 11);
    let hist = tmp.path().join("history");
    let model = default_model_copy(tmp.path());
    let args = os_args([
        "--pcap".as_ref(),
        big.as_os_str(),
        "--realtime".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--alert-log".as_ref(),
        tmp.path().join("alerts.jsonl").as_os_str(),
        "--metrics-listen".as_ref(),
        "127.0.0.1:0".as_ref(),
        "--history-dir".as_ref(),
        hist.as_os_str(),
    ]);
    let mut d = Daemon::start(&args, &[]);
    let addr = d.metrics_addr(Duration::from_secs(60));
    // Until 20 windows (10 s of capture time) were recorded.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (rows, last_end) = loop {
        let m = scrape(addr);
        let rows = m.value("netanom_history_rows_total");
        if rows >= 20.0 {
            break (rows, m.value("netanom_last_window_end_timestamp_seconds"));
        }
        assert!(
            Instant::now() < deadline,
            "fewer than 20 history rows after 120 s:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(Duration::from_secs(10)).is_some(), "not killed");

    let (v, _) = history_json(&hist);
    let o = half_second(&v);
    assert_eq!(v["unreadable"], 0, "{v}");
    assert_eq!(o["journals"], 1, "the open segment is a journal: {v}");
    assert_eq!(o["first"].as_f64(), Some(T0 as f64 / 1e9), "{v}");
    let last = o["last"].as_f64().unwrap();
    assert!(
        last >= last_end - 60.0,
        "history ends at {last}, the daemon had closed windows up to {last_end}: {v}"
    );
    let windows = o["windows"].as_u64().unwrap();
    assert!(
        windows as f64 >= rows - 120.0,
        "{windows} windows, {rows} recorded: {v}"
    );
    assert_eq!(
        windows as f64,
        (last - T0 as f64 / 1e9) / 0.5,
        "no gap: {v}"
    );
    assert_eq!(o["gaps"], 0, "{v}");

    // A torn last write: cut the journal mid-record. Still readable, one window fewer.
    let sub = hist.join("omega_us=500000");
    let journal = std::fs::read_dir(&sub)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "journal"))
        .expect("a journal");
    let len = std::fs::metadata(&journal).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap();
    f.set_len(len - 100).unwrap();
    drop(f);
    let (v, stderr) = history_json(&hist);
    assert_eq!(
        half_second(&v)["windows"].as_u64(),
        Some(windows - 1),
        "{v}"
    );
    assert_eq!(v["unreadable"], 0, "{v}");
    assert!(
        stderr.contains(&journal.display().to_string()) && stderr.contains("cut-off"),
        "the torn record is reported: {stderr}"
    );

    // The next start converts the journal (the cut-off record skipped) and records on.
    let small = tmp.path().join("small.pcap");
    lan_pcap(&small, T0 + 3600 * 1_000_000_000, 20, 12);
    let run = replay_into(&small, &hist, tmp.path());
    assert!(
        run.stderr.contains("recovering a journal"),
        "recovery is logged: {}",
        run.stderr
    );
    let (v, _) = history_json(&hist);
    let o = half_second(&v);
    assert_eq!(o["journals"], 0, "{v}");
    assert_eq!(o["segments"], 2, "{v}");
    assert_eq!(o["windows"].as_u64(), Some(windows - 1 + 20), "{v}");
    assert_eq!(o["gaps"], 1, "{v}");
    assert!(!journal.exists());
}

/// Garbage in a `.parquet` file and a journal cut off inside its header are named on stderr,
/// skipped and counted; the good segment (the demo replay) is still read, and training skips
/// them too.
#[test]
fn corrupt_segments_are_named_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let hist = tmp.path().join("history");
    replay_into(&demo_pcap(), &hist, tmp.path());
    let sub = hist.join("omega_us=500000");
    let garbage = sub.join("20990101T000000Z.parquet");
    std::fs::write(&garbage, b"this is not a parquet file at all, just bytes").unwrap();
    let torn = sub.join("20990101T010000Z.journal");
    std::fs::write(&torn, b"NAHJ\x01\x00").unwrap();

    let (v, stderr) = history_json(&hist);
    assert_eq!(v["unreadable"], 2, "{v}");
    assert_eq!(v["windows"], 361, "{v}");
    assert_eq!(v["segments"], 1, "{v}");
    let named: Vec<&str> = v["unreadable_segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["path"].as_str().unwrap())
        .collect();
    assert!(named.contains(&garbage.to_str().unwrap()), "{v}");
    assert!(named.contains(&torn.to_str().unwrap()), "{v}");
    for p in [&garbage, &torn] {
        assert!(
            stderr.contains(&p.display().to_string()),
            "{} not named on stderr: {stderr}",
            p.display()
        );
    }
    // Text form: exit 0, names them too.
    let f = netanom(
        &["history".as_ref(), "--dir".as_ref(), hist.as_os_str()],
        "netanom history",
    );
    f.assert_ok("netanom history");
    assert!(f.stdout.contains("unreadable, skipped"), "{}", f.stdout);
    assert!(
        f.stdout.contains("361 windows in 1 segments"),
        "{}",
        f.stdout
    );

    // Training reads the good segment and skips the others.
    let model = tmp.path().join("model");
    let f = netanom(
        &[
            "train".as_ref(),
            "--history".as_ref(),
            hist.as_os_str(),
            "--out".as_ref(),
            model.as_os_str(),
            "--epochs".as_ref(),
            "1".as_ref(),
            "--hidden".as_ref(),
            "8".as_ref(),
        ],
        "netanom train --history",
    );
    f.assert_ok("netanom train --history (corrupt segments)");
    assert!(f.stderr.contains("2 unreadable (skipped)"), "{}", f.stderr);
    assert!(
        f.stderr.contains("361 windows of 0.5 s in range"),
        "{}",
        f.stderr
    );
}

/// Trains from the history of the demo replay: the alerted windows and their neighbours are
/// left out (as `netanom history` counts them), `--since` selects the newest windows, and the
/// bundle loads in `netanom score`.
#[test]
fn train_from_history_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let hist = tmp.path().join("history");
    replay_into(&demo_pcap(), &hist, tmp.path());
    let (v, _) = history_json(&hist);
    let alerted = half_second(&v)["alerted"].as_u64().unwrap();
    let windows = v["windows"].as_u64().unwrap();
    assert!(alerted > 0, "the demo attack alerts: {v}");

    let model = tmp.path().join("model");
    let train = |extra: &[&str]| {
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "train".as_ref(),
            "--history".as_ref(),
            hist.as_os_str(),
            "--out".as_ref(),
            model.as_os_str(),
            "--epochs".as_ref(),
            "2".as_ref(),
            "--hidden".as_ref(),
            "8".as_ref(),
            "--max-runs-per-epoch".as_ref(),
            "100".as_ref(),
        ];
        args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
        let f = netanom(&args, "netanom train --history");
        f.assert_ok("netanom train --history");
        f
    };
    let f = train(&[]);
    assert!(
        f.stderr
            .contains(&format!("{windows} windows of 0.5 s in range")),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains(&format!("left out: {alerted} alerted")),
        "{}",
        f.stderr
    );
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(meta["omega_us"], 500_000, "{meta}");
    assert_eq!(
        meta["training"]["files"][0].as_str(),
        hist.to_str(),
        "{meta}"
    );
    let kept = meta["training"]["window_count"].as_u64().unwrap();
    assert!(kept < windows - alerted, "{kept} of {windows} kept");

    let scored = score_windows(&model, &demo_pcap());
    assert_eq!(scored.len() as u64, windows);

    // The last 60 s: 120 windows.
    let f = train(&["--since", "60s"]);
    assert!(
        f.stderr.contains("120 windows of 0.5 s in range"),
        "{}",
        f.stderr
    );
}

/// Bad settings and flags name the key, the path or the flag.
#[test]
fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("lan.pcap");
    lan_pcap(&pcap, T0, 10, 31);
    let model_dir = default_model_copy(tmp.path());
    let alerts = tmp.path().join("alerts.jsonl");
    let base = |extra: &[&std::ffi::OsStr]| {
        let mut a: Vec<&std::ffi::OsStr> = vec![
            "run".as_ref(),
            "--pcap".as_ref(),
            pcap.as_os_str(),
            "--model".as_ref(),
            model_dir.as_os_str(),
            "--alert-log".as_ref(),
            alerts.as_os_str(),
            "--metrics-listen".as_ref(),
            "127.0.0.1:0".as_ref(),
        ];
        a.extend_from_slice(extra);
        netanom(&a, "netanom run (bad input)")
    };

    // An unknown [history] key.
    let config = tmp.path().join("netanom.toml");
    std::fs::write(&config, "[history]\nretention = 3\n").unwrap();
    let f = base(&["--config".as_ref(), config.as_os_str()]);
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    assert!(
        f.stderr.contains("unknown setting `history.retention`"),
        "{}",
        f.stderr
    );

    // A history directory under a regular file.
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    let bad = file.join("history");
    let f = base(&["--history-dir".as_ref(), bad.as_os_str()]);
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    assert!(
        f.stderr.contains("history.dir") && f.stderr.contains(&bad.display().to_string()),
        "{}",
        f.stderr
    );

    // `--since` garbage names the flag.
    let hist = tmp.path().join("history");
    replay_into(&pcap, &hist, tmp.path());
    let out = tmp.path().join("model");
    let f = netanom(
        &[
            "train".as_ref(),
            "--history".as_ref(),
            hist.as_os_str(),
            "--since".as_ref(),
            "soon".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        "train --since garbage",
    );
    assert_eq!(f.code(), Some(2), "{}", f.stderr);
    assert!(f.stderr.contains("--since"), "{}", f.stderr);

    // Several window lengths without --window.
    let other = hist.join("omega_us=5000000");
    std::fs::create_dir_all(&other).unwrap();
    let f = netanom(
        &[
            "train".as_ref(),
            "--history".as_ref(),
            hist.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ],
        "train --history with two ω",
    );
    assert_eq!(f.code(), Some(1), "{}", f.stderr);
    assert!(
        f.stderr.contains("several lengths (0.5 s, 5 s)") && f.stderr.contains("--window"),
        "{}",
        f.stderr
    );
}
