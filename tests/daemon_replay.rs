//! `netanom run --pcap …`: the daemon end to end on replayed captures (no root needed).
//!
//! A model is trained once per test binary on a generated capture of normal LAN traffic
//! (600 windows of 0.5 s). Test captures are normal traffic of another seed with SYN floods
//! (2000 SYNs per window from 198.51.100.66 to 10.0.1.1, ports 1–6000) at known windows.
//! What the daemon writes to its alert log is checked against
//! - the documented schema (docs/alerts.md) field by field, and
//! - an oracle: `netanom score` scores every window offline, and the documented incident rule
//!   (cooldown 3, min_windows 1) applied to those scores says which incidents must be written.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use daemon_support::*;
use serde_json::Value;

/// The trained model and where it lives.
struct Fixture {
    model: PathBuf,
    model_id: String,
    threshold: f64,
}

/// Trains the model once per test binary (a few seconds), in a directory of this binary's
/// own under cargo's target tmpdir (recreated on each run).
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemon_replay-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let normal = dir.join("normal.pcap");
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(1), T0, 600);
        t.write(&normal);
        let model = dir.join("model");
        // Threshold: 3 × the 99.5th percentile of the validation scores, well above what
        // normal traffic of another seed scores and far below any flood.
        train(&normal, &model, &["--threshold-factor", "3"]);
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("model.json")).unwrap())
                .expect("model.json");
        Fixture {
            model_id: meta["model_id"].as_str().expect("model_id").to_string(),
            threshold: meta["threshold"]["value"]
                .as_f64()
                .expect("threshold.value"),
            model,
        }
    })
}

/// Test captures start here (after the training capture).
const T1: i64 = T0 + 10_000 * OMEGA_NS;

/// Start of window `k` of a test capture.
fn win(k: i64) -> i64 {
    T1 + k * OMEGA_NS
}

/// Unix seconds of window `k`'s start.
fn win_s(k: i64) -> f64 {
    win(k) as f64 / 1e9
}

/// SYNs per flooded window.
const FLOOD_PER_WINDOW: usize = 2000;

/// `windows` windows of normal traffic (seed `seed`) with SYN floods filling the windows
/// `[first, first + n)` of each `(first, n)`.
fn capture(path: &Path, windows: i64, seed: u64, floods: &[(i64, i64)]) {
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(seed), T1, windows);
    for &(first, n) in floods {
        t.syn_flood(
            win(first),
            n * OMEGA_NS,
            FLOOD_PER_WINDOW * n as usize,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
    }
    t.write(path);
}

/// `netanom run --pcap P… --model M --alert-log LOG --metrics-listen 127.0.0.1:0 EXTRA` to
/// its end, JSON logs, `envs` set.
fn replay(pcaps: &[&Path], log: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Finished {
    let fx = fixture();
    let mut cmd = netanom_command();
    cmd.arg("run");
    for p in pcaps {
        cmd.arg("--pcap").arg(p);
    }
    cmd.arg("--model")
        .arg(&fx.model)
        .arg("--alert-log")
        .arg(log)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .args(extra)
        .env("NETANOM_LOG__FORMAT", "json")
        .envs(envs.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(120), "netanom run --pcap")
}

/// The daemon's log records (JSON lines on stderr).
fn records(f: &Finished) -> Vec<Value> {
    f.stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Permission bits of a file.
fn file_mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// This process's umask, from /proc (reading it with umask(2) would change it).
fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("Umask:"))
        .expect("Umask in /proc/self/status");
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

fn epoch_of(row_time: &str) -> f64 {
    row_time.parse().expect("score row time")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// The alert log holds exactly the incidents the oracle expects, each as documented.
fn assert_matches_oracle(events: &[Value], rows: &[ScoreRow], cooldown: usize) {
    let expected = expected_incidents(rows, cooldown);
    let pairs = pair_incidents(events, false);
    assert_eq!(
        pairs.len(),
        expected.len(),
        "incidents written vs expected from the window scores {expected:#?}:\n{events:#?}"
    );
    for ((start, end), exp) in pairs.iter().zip(&expected) {
        let end = end.as_ref().expect("end event");
        let first = &rows[exp.first];
        let last = &rows[exp.last];
        // The start event is about the first alerting window.
        assert!(
            close(
                start["window"]["start_epoch"].as_f64().unwrap(),
                epoch_of(&first.start)
            ),
            "start window {} vs first alerting window {}",
            start["window"]["start"],
            first.start
        );
        assert!(
            close(start["score"].as_f64().unwrap(), first.score.unwrap()),
            "start score"
        );
        assert!(
            close(start["threshold"].as_f64().unwrap(), first.threshold),
            "threshold"
        );
        for e in [start, end] {
            assert!(
                close(
                    e["incident"]["start_epoch"].as_f64().unwrap(),
                    epoch_of(&first.start)
                ),
                "incident.start {} vs {}",
                e["incident"]["start"],
                first.start
            );
        }
        // The end event: the last alerting window, counts, peak, why it ended.
        assert!(
            close(
                end["incident"]["end_epoch"].as_f64().unwrap(),
                epoch_of(&last.end)
            ),
            "incident.end {} vs last alerting window end {}",
            end["incident"]["end"],
            last.end
        );
        assert_eq!(
            end["incident"]["windows"].as_u64(),
            Some(exp.alerting_windows as u64),
            "incident.windows"
        );
        assert_eq!(
            end["incident"]["span_windows"].as_u64(),
            Some((exp.last - exp.first + 1) as u64),
            "incident.span_windows"
        );
        assert!(
            close(
                end["incident"]["peak_score"].as_f64().unwrap(),
                exp.peak_score
            ),
            "peak_score {} vs {}",
            end["incident"]["peak_score"],
            exp.peak_score
        );
        let (reason, event_window) = if exp.cooled_down {
            // The window that completed the cooldown.
            ("cooldown", &rows[exp.last + cooldown])
        } else {
            ("shutdown", rows.last().expect("rows"))
        };
        assert_eq!(end["incident"]["end_reason"], reason, "end_reason: {end}");
        assert!(
            close(
                end["window"]["start_epoch"].as_f64().unwrap(),
                epoch_of(&event_window.start)
            ),
            "end event window {} vs {}",
            end["window"]["start"],
            event_window.start
        );
    }
}

// ---------------------------------------------------------------------------------------------
// One flood: one incident, as documented
// ---------------------------------------------------------------------------------------------

#[test]
fn syn_flood_replay_writes_one_documented_incident() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("flood.pcap");
    // 200 windows (100 s); the flood fills windows 100, 101, 102.
    capture(&pcap, 200, 2, &[(100, 3)]);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&pcap], &log, &[], &[("NETANOM_ALERTS__HOST", "sensor-7")]);
    run.assert_ok("netanom run --pcap");

    let events = read_alerts(&log);
    assert_eq!(events.len(), 2, "one incident, two lines:\n{events:#?}");
    assert_eq!(
        file_mode(&log),
        0o640 & !umask(),
        "alert log mode (docs: 0640)"
    );
    for e in &events {
        check_event(e, 0.5);
    }
    let pairs = pair_incidents(&events, false);
    let (start, end) = (&pairs[0].0, pairs[0].1.as_ref().unwrap());
    assert_eq!(start["event_type"], "incident_start");
    assert_eq!(end["event_type"], "incident_end");
    assert_eq!(start["incident"]["id"], end["incident"]["id"]);

    // Settings and model reach the events.
    for e in [start, end] {
        assert_eq!(
            e["host"], "sensor-7",
            "alerts.host from NETANOM_ALERTS__HOST"
        );
        assert_eq!(e["model"]["id"], fx.model_id.as_str());
        assert_eq!(e["model"]["omega_s"].as_f64(), Some(0.5));
        assert!(
            close(e["threshold"].as_f64().unwrap(), fx.threshold),
            "threshold {e}"
        );
    }

    // The incident is the flood: it opens at the first flooded window; the score of a window
    // covers the run of three ending with it, so the last alerting window is at most two
    // windows after the flood.
    let inc_start = start["incident"]["start_epoch"].as_f64().unwrap();
    assert!(
        close(inc_start, win_s(100)),
        "incident.start {inc_start} vs flood start {}",
        win_s(100)
    );
    let inc_end = end["incident"]["end_epoch"].as_f64().unwrap();
    assert!(
        inc_end >= win_s(103) - 1e-6 && inc_end <= win_s(105) + 1e-6,
        "incident.end {inc_end}: flood ends {}",
        win_s(103)
    );
    assert_eq!(end["incident"]["end_reason"], "cooldown");
    let score = start["score"].as_f64().unwrap();
    assert!(
        score > 10.0 * fx.threshold,
        "flood score {score} vs threshold {}",
        fx.threshold
    );
    let peak = end["incident"]["peak_score"].as_f64().unwrap();
    assert!(peak >= score, "peak_score {peak} < start score {score}");

    // Explained: SYN features first, the flooder and its victim on top.
    for e in [start, end] {
        let tf = e["top_features"].as_array().unwrap();
        assert!(!tf.is_empty(), "no top_features: {e}");
        let first = tf[0]["name"].as_str().unwrap();
        assert!(
            first.starts_with("syn_"),
            "first top feature {first:?}, expected a SYN feature: {tf:?}"
        );
        assert!(tf[0]["normalized"].as_f64().unwrap() > 10.0, "{tf:?}");
        assert_eq!(e["top_talkers"]["source"][0]["ip"], "198.51.100.66", "{e}");
        assert_eq!(e["top_talkers"]["destination"][0]["ip"], "10.0.1.1", "{e}");
        assert_eq!(e["top_talkers"]["approximate"], false);
    }
    let syn_count = start["top_features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "syn_count")
        .expect("syn_count among the top features");
    let v = syn_count["value"].as_f64().unwrap();
    assert!(
        v >= FLOOD_PER_WINDOW as f64,
        "syn_count {v} in a flooded window"
    );

    // Exactly what the offline scores and the documented rule give.
    assert_matches_oracle(&events, &score_windows(&fx.model, &pcap), 3);

    // The daemon's own log: both events also go to the journal, and it says why it stopped.
    let recs = records(&run);
    let msgs: Vec<&str> = recs.iter().map(log_message).collect();
    assert!(msgs.contains(&"anomaly incident started"), "{msgs:?}");
    assert!(msgs.contains(&"anomaly incident ended"), "{msgs:?}");
    let stopping = recs
        .iter()
        .find(|r| log_message(r) == "stopping")
        .expect("a 'stopping' log line");
    assert_eq!(stopping["fields"]["reason"], "end of input");
}

/// The flooder in [`a_flood_names_its_source_not_the_busiest_host`].
const CULPRIT: [u8; 4] = [127, 0, 66, 3];

#[test]
fn a_flood_names_its_source_not_the_busiest_host() {
    // During windows 100–102 the web server also sends a bulk download (PSH/ACK, 1,600
    // segments a window to one client): the busiest source. The SYNs (1,000 a window) come
    // from another host; the explanation must name that one for the SYN features.
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("flood-and-bulk.pcap");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(5), T1, 200);
    let (server, client) = (([10, 0, 1, 1], 443), ([10, 0, 0, 7], 51_000));
    for k in 100..103 {
        for i in 0..1_600 {
            let at = win(k) + i * OMEGA_NS / 1_600;
            t.push(at, tcp_frame(server, client, 63, 0x18, 1_200));
        }
    }
    t.syn_flood(win(100), 3 * OMEGA_NS, 3_000, CULPRIT, VICTIM, &[80]);
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&pcap], &log, &[], &[]);
    run.assert_ok("netanom run --pcap");
    let events = read_alerts(&log);
    assert_eq!(events.len(), 2, "one incident:\n{events:#?}");
    let start = &events[0];
    assert_eq!(
        start["top_talkers"]["source"][0]["ip"], "10.0.1.1",
        "{start}"
    );
    let tf = start["top_features"].as_array().unwrap();
    let top = &tf[0];
    assert!(
        top["name"].as_str().unwrap().starts_with("syn_"),
        "top feature: {tf:?}"
    );
    let named = &top["contributors"][0];
    assert_eq!(named["ip"], "127.0.66.3", "{top}");
    let syn = tf
        .iter()
        .find(|f| f["name"] == "syn_count")
        .expect("syn_count among the top features");
    // Exact: the flooder sent 1,000 SYNs in the window, held from its first.
    assert_eq!(
        syn["contributors"][0],
        serde_json::json!({"ip": "127.0.66.3", "role": "source", "packets": 1000}),
        "{syn}"
    );
    // The incident's first culprit is the flooder, not the busiest host.
    assert_eq!(
        start["incident"]["culprits"][0]["ip"], "127.0.66.3",
        "{start}"
    );
    assert_eq!(
        start["incident"]["culprits"][0]["role"], "source",
        "{start}"
    );
    assert!(syn["contributors"].as_array().unwrap().len() <= 3);
    // Every top feature names at most three contributors, with an address and a count.
    for f in tf {
        for c in f["contributors"].as_array().unwrap() {
            assert!(c["ip"].is_string(), "{f}");
            assert!(c["packets"].is_u64() || c["new_values"].is_u64(), "{f}");
        }
    }
    // The journal line says it in words.
    let recs = records(&run);
    let started = recs
        .iter()
        .find(|r| log_message(r) == "anomaly incident started")
        .expect("an 'anomaly incident started' log line");
    let explained = started["fields"]["explained"].as_str().unwrap();
    assert!(
        explained.contains("syn_count 10") && explained.contains(": 127.0.66.3 sent 1000"),
        "{explained}"
    );
}

#[test]
fn normal_replay_writes_no_incident() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("normal.pcap");
    capture(&pcap, 200, 2, &[]);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&pcap], &log, &[], &[]);
    run.assert_ok("netanom run --pcap");
    assert!(log.is_file(), "the alert log is created at start");
    let events = read_alerts(&log);
    assert!(
        events.is_empty(),
        "incidents on normal traffic:\n{events:#?}"
    );
    // The oracle agrees there is nothing to report, and the windows were scored.
    let rows = score_windows(&fx.model, &pcap);
    assert_eq!(rows.len(), 200, "windows");
    assert!(expected_incidents(&rows, 3).is_empty());
    let max = rows.iter().filter_map(|r| r.score).fold(0.0, f64::max);
    assert!(max > 0.0 && max < fx.threshold, "max normal score {max}");
}

// ---------------------------------------------------------------------------------------------
// Incident boundaries: cooldown
// ---------------------------------------------------------------------------------------------

/// Scores of a window cover the run of three ending with it: a flood in windows [a, a+n)
/// makes windows a … a+n+1 alerting. Two floods separated by `gap` calm windows therefore
/// leave `gap − 2` calm scores between the alerting runs.
fn two_floods(tmp: &Path, gap: i64) -> (PathBuf, Vec<Value>, Vec<ScoreRow>) {
    let pcap = tmp.join(format!("gap{gap}.pcap"));
    capture(&pcap, 160, 5, &[(40, 2), (42 + gap, 2)]);
    let log = tmp.join(format!("gap{gap}.jsonl"));
    replay(&[&pcap], &log, &[], &[]).assert_ok("netanom run --pcap");
    let events = read_alerts(&log);
    for e in &events {
        check_event(e, 0.5);
    }
    let rows = score_windows(&fixture().model, &pcap);
    (pcap, events, rows)
}

#[test]
fn floods_after_a_long_calm_are_two_incidents() {
    let tmp = tempfile::tempdir().unwrap();
    let (_, events, rows) = two_floods(tmp.path(), 60);
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 2, "two incidents:\n{events:#?}");
    assert_ne!(
        pairs[0].0["incident"]["id"], pairs[1].0["incident"]["id"],
        "incident ids must differ"
    );
    for (_, end) in &pairs {
        assert_eq!(end.as_ref().unwrap()["incident"]["end_reason"], "cooldown");
    }
    assert!(close(
        pairs[0].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(40)
    ));
    assert!(close(
        pairs[1].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(102)
    ));
    assert_matches_oracle(&events, &rows, 3);
}

#[test]
fn a_dip_shorter_than_the_cooldown_keeps_one_incident() {
    let tmp = tempfile::tempdir().unwrap();
    // Gap of 4 calm windows: 2 calm scores, fewer than the cooldown of 3.
    let (_, events, rows) = two_floods(tmp.path(), 4);
    let expected = expected_incidents(&rows, 3);
    assert_eq!(
        expected.len(),
        1,
        "the scores must make one incident: {expected:?}"
    );
    assert!(
        expected[0].alerting_windows < expected[0].last - expected[0].first + 1,
        "the scores must dip below the threshold inside the incident: {expected:?}"
    );
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "one incident:\n{events:#?}");
    let end = pairs[0].1.as_ref().unwrap();
    let (windows, span) = (
        end["incident"]["windows"].as_u64().unwrap(),
        end["incident"]["span_windows"].as_u64().unwrap(),
    );
    assert_eq!(span - windows, 2, "the dip: {end}");
    // From the first flood's first window to two windows after the second flood.
    assert!(
        close(end["incident"]["duration_s"].as_f64().unwrap(), 10.0 * 0.5),
        "{end}"
    );
    assert_matches_oracle(&events, &rows, 3);
}

#[test]
fn a_dip_as_long_as_the_cooldown_ends_the_incident() {
    let tmp = tempfile::tempdir().unwrap();
    // Gap of 5 calm windows: exactly 3 calm scores, the cooldown.
    let (_, events, rows) = two_floods(tmp.path(), 5);
    assert_eq!(
        expected_incidents(&rows, 3).len(),
        2,
        "the scores must make two incidents"
    );
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 2, "two incidents:\n{events:#?}");
    let first_end = pairs[0].1.as_ref().unwrap();
    // Alerting windows 40–43; calm 44, 45, 46: the end event is about window 46.
    assert!(close(
        first_end["incident"]["end_epoch"].as_f64().unwrap(),
        win_s(44)
    ));
    assert!(close(
        first_end["window"]["start_epoch"].as_f64().unwrap(),
        win_s(46)
    ));
    assert_matches_oracle(&events, &rows, 3);
}

#[test]
fn cooldown_windows_setting_is_honoured() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("gap.pcap");
    capture(&pcap, 120, 5, &[(40, 2), (48, 2)]);
    // With the default cooldown (3) a gap of 6 calm windows (4 calm scores) splits the
    // floods; a cooldown of 5 set in the settings file keeps them one incident.
    let config = tmp.path().join("netanom.toml");
    std::fs::write(&config, "[alerts]\ncooldown_windows = 5\n").unwrap();
    let rows = score_windows(&fx.model, &pcap);
    assert_eq!(expected_incidents(&rows, 3).len(), 2);
    assert_eq!(expected_incidents(&rows, 5).len(), 1);

    let log3 = tmp.path().join("default.jsonl");
    replay(&[&pcap], &log3, &[], &[]).assert_ok("default cooldown");
    assert_matches_oracle(&read_alerts(&log3), &rows, 3);

    let log5 = tmp.path().join("cooldown5.jsonl");
    let cfg = config.to_str().unwrap();
    replay(&[&pcap], &log5, &["--config", cfg], &[]).assert_ok("cooldown 5");
    assert_matches_oracle(&read_alerts(&log5), &rows, 5);
}

#[test]
fn min_windows_suppresses_short_incidents() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("short.pcap");
    // A flood of one window makes 3 alerting windows (the runs holding it), one of two
    // windows makes 4. With min_windows = 4 only the second is reported, at its 4th
    // alerting window.
    capture(&pcap, 160, 17, &[(40, 1), (100, 2)]);
    let rows = score_windows(&fx.model, &pcap);
    let all = expected_incidents(&rows, 3);
    let alerting: Vec<usize> = all.iter().map(|i| i.alerting_windows).collect();
    assert_eq!(
        alerting,
        [3, 4],
        "the scores must make incidents of 3 and 4 windows: {all:?}"
    );
    // Persistence alone (no loud-window exception): the one-window flood is dropped.
    let log = tmp.path().join("alerts.jsonl");
    replay(
        &[&pcap],
        &log,
        &[],
        &[
            ("NETANOM_ALERTS__MIN_WINDOWS", "4"),
            ("NETANOM_ALERTS__LOUD_RATIO", "0"),
        ],
    )
    .assert_ok("min 4");
    let events = read_alerts(&log);
    for e in &events {
        check_event_min(e, 0.5, 4);
    }
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "only the 4-window incident:\n{events:#?}");
    let (start, end) = (&pairs[0].0, pairs[0].1.as_ref().unwrap());
    assert!(close(
        start["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(100)
    ));
    assert!(close(
        start["window"]["start_epoch"].as_f64().unwrap(),
        win_s(103)
    ));
    assert!(close(
        start["score"].as_f64().unwrap(),
        rows[103].score.unwrap()
    ));
    assert!(close(
        end["incident"]["peak_score"].as_f64().unwrap(),
        all[1].peak_score
    ));
    assert_eq!(end["incident"]["windows"], 4);
    // The suppressed incident took no number.
    assert_eq!(
        end["incident"]["id"].as_str().unwrap().rsplit('-').next(),
        Some("1")
    );
}

#[test]
fn a_loud_window_is_reported_before_min_windows() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("short.pcap");
    // The fixture above: a flood of one window (3 alerting windows), one of two (4).
    capture(&pcap, 160, 17, &[(40, 1), (100, 2)]);
    let rows = score_windows(&fx.model, &pcap);
    let all = expected_incidents(&rows, 3);
    assert_eq!(all.len(), 2, "{all:?}");
    // The first window of each flood that scores 100 × its threshold reports it, with the
    // default alerts.loud_ratio, whatever min_windows says.
    let loud_at = |inc: &ExpectedIncident| {
        (inc.first..=inc.last).find(|&i| {
            rows[i]
                .score
                .is_some_and(|s| s >= 100.0 * rows[i].threshold)
        })
    };
    let first_loud = loud_at(&all[0]).expect("the one-window flood scores 100 x its threshold");
    let log = tmp.path().join("alerts.jsonl");
    replay(&[&pcap], &log, &[], &[("NETANOM_ALERTS__MIN_WINDOWS", "4")]).assert_ok("loud");
    let events = read_alerts(&log);
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 2, "both floods reported:\n{events:#?}");
    let (start, end) = (&pairs[0].0, pairs[0].1.as_ref().unwrap());
    assert!(close(
        start["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(all[0].first as i64)
    ));
    // Reported at the loud window, before its 4th alerting window (it has only 3).
    assert!(close(
        start["window"]["start_epoch"].as_f64().unwrap(),
        win_s(first_loud as i64)
    ));
    assert_eq!(
        start["incident"]["windows"].as_u64(),
        Some((first_loud - all[0].first + 1) as u64)
    );
    assert_eq!(end["incident"]["windows"], 3);
    assert_eq!(
        end["incident"]["id"].as_str().unwrap().rsplit('-').next(),
        Some("1")
    );
}

#[test]
fn a_collapsed_time_jump_ends_the_incident_as_sequence_break() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("jump.pcap");
    // A flood in the last windows before the capture time jumps 1000 windows ahead; with
    // window.max_gap_windows = 10 the jump is collapsed and the sequence breaks.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(18), T1, 50);
    t.syn_flood(
        win(46),
        4 * OMEGA_NS,
        4 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    t.lan(&mut Rng::new(19), win(1050), 50);
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(
        &[&pcap],
        &log,
        &[],
        &[("NETANOM_WINDOW__MAX_GAP_WINDOWS", "10")],
    );
    run.assert_ok("replay with a time jump");
    let events = read_alerts(&log);
    for e in &events {
        check_event(e, 0.5);
    }
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "{events:#?}");
    let end = pairs[0].1.as_ref().unwrap();
    assert_eq!(end["incident"]["end_reason"], "sequence_break", "{end}");
    assert!(close(
        pairs[0].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(46)
    ));
    // The incident ends at the last window before the jump.
    assert!(
        close(end["incident"]["end_epoch"].as_f64().unwrap(), win_s(50)),
        "{end}"
    );
    assert!(
        records(&run)
            .iter()
            .any(|r| log_message(r).contains("packet time jumped")),
        "the jump is logged:\n{}",
        run.stderr
    );
}

#[test]
fn flood_open_at_the_end_of_the_replay_ends_with_shutdown() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("tail.pcap");
    // The flood runs to the last window.
    capture(&pcap, 60, 6, &[(56, 4)]);
    let log = tmp.path().join("alerts.jsonl");
    replay(&[&pcap], &log, &[], &[]).assert_ok("netanom run --pcap");
    let events = read_alerts(&log);
    for e in &events {
        check_event(e, 0.5);
    }
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "{events:#?}");
    assert_eq!(
        pairs[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "shutdown"
    );
    assert_matches_oracle(&events, &score_windows(&fx.model, &pcap), 3);
}

#[test]
fn several_files_replay_as_one_sequence() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // One capture split in two files at window 101, in the middle of the flood.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(8), T1, 101);
    t.syn_flood(
        win(100),
        OMEGA_NS,
        FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    let a = tmp.path().join("a.pcap");
    t.write(&a);
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(9), win(101), 99);
    t.syn_flood(
        win(101),
        2 * OMEGA_NS,
        2 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    let b = tmp.path().join("b.pcap");
    t.write(&b);
    let log = tmp.path().join("alerts.jsonl");
    replay(&[&a, &b], &log, &[], &[]).assert_ok("netanom run --pcap a --pcap b");
    let events = read_alerts(&log);
    let pairs = pair_incidents(&events, false);
    assert_eq!(
        pairs.len(),
        1,
        "one incident across the file boundary:\n{events:#?}"
    );
    assert!(close(
        pairs[0].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(100)
    ));
    // The oracle scores the same two files as one sequence.
    assert_matches_oracle(&events, &score_files(&fx.model, &[&a, &b]), 3);
}

// ---------------------------------------------------------------------------------------------
// --realtime, metrics, health, signals
// ---------------------------------------------------------------------------------------------

fn daemon_args(pcap: &Path, log: &Path, realtime: bool) -> Vec<std::ffi::OsString> {
    daemon_args_model(pcap, log, realtime, &fixture().model)
}

fn daemon_args_model(
    pcap: &Path,
    log: &Path,
    realtime: bool,
    model: &Path,
) -> Vec<std::ffi::OsString> {
    let mut a = os_args(["--pcap"]);
    a.push(pcap.into());
    a.extend(os_args(["--model"]));
    a.push(model.as_os_str().into());
    a.extend(os_args(["--alert-log"]));
    a.push(log.into());
    a.extend(os_args(["--metrics-listen", "127.0.0.1:0"]));
    if realtime {
        a.push("--realtime".into());
    }
    a
}

#[test]
fn realtime_replay_takes_the_captures_duration() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("short.pcap");
    // 3 s of traffic, the last packets near its end.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(11), T1, 6);
    t.push(
        win(6) - 1_000_000,
        tcp_frame(([10, 0, 0, 9], 50_022), ([10, 0, 1, 3], 22), 64, 0x18, 36),
    );
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let slow = replay(&[&pcap], &log, &["--realtime"], &[]);
    slow.assert_ok("replay --realtime");
    // The packets span 2.5 s or more; as fast as possible the replay takes well under 1 s
    // here (not asserted: a loaded machine could stretch it).
    assert!(
        slow.elapsed >= Duration::from_secs(2),
        "--realtime replay of a 3 s capture took {:?}",
        slow.elapsed
    );
    assert!(slow.elapsed < Duration::from_secs(30), "{:?}", slow.elapsed);
}

#[test]
fn realtime_replay_of_a_dense_capture_exits_cleanly() {
    // 150,000 packets 20 µs apart (3 s): the pacing sleeps end within microseconds of a
    // packet's due time over and over (a double clock reading there used to underflow and
    // panic the capture thread).
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("dense.pcap");
    let mut t = Traffic::new();
    t.syn_flood(win(0), 6 * OMEGA_NS, 150_000, FLOODER, VICTIM, &ports(6000));
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&pcap], &log, &["--realtime"], &[]);
    run.assert_ok("replay --realtime of a dense capture");
    assert!(run.elapsed >= Duration::from_secs(2), "{:?}", run.elapsed);
    let recs = records(&run);
    assert!(
        recs.iter()
            .any(|r| log_message(r) == "stopping" && r["fields"]["reason"] == "end of input"),
        "{}",
        run.stderr
    );
}

#[test]
fn quiet_gap_in_a_realtime_replay_still_closes_windows() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("gap.pcap");
    // Traffic for 2 s, nothing for 3 s, traffic for 2 s. Replayed time passes during the gap
    // as on a quiet live link: empty windows close, the scorer keeps beating, and /healthz
    // (stale after 1 s here) stays 200 throughout. The stale path itself is covered by the
    // unit tests of output::metrics::Health.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(14), T1, 4);
    t.lan(&mut Rng::new(15), win(10), 4);
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let mut d = Daemon::start(
        &daemon_args(&pcap, &log, true),
        &[("NETANOM_METRICS__HEALTH_STALE_AFTER_S", "1")],
    );
    let addr = d.metrics_addr(Duration::from_secs(30));
    let started = Instant::now();
    let mut checks = 0;
    while started.elapsed() < Duration::from_secs(5) {
        let h = http_get(addr, "/healthz").expect("GET /healthz");
        assert_eq!(
            (h.status, h.body.trim()),
            (200, "ok"),
            "/healthz during a quiet gap of a realtime replay: {h:?}"
        );
        checks += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(checks >= 10);
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("the replay ends");
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
}

#[test]
fn failed_reload_keeps_the_running_model_and_sigint_stops() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // A copy of the model that SIGHUP will not find any more.
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for f in std::fs::read_dir(&fx.model).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), model.join(f.file_name())).unwrap();
    }
    let pcap = tmp.path().join("rt.pcap");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(16), T1, 40);
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let mut d = Daemon::start(&daemon_args_model(&pcap, &log, true, &model), &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));
    scrape_until(addr, Duration::from_secs(10), |e| {
        e.value("netanom_windows_scored_total") >= 1.0
    });
    std::fs::rename(&model, tmp.path().join("model.moved")).unwrap();
    d.signal(libc::SIGHUP);
    let failed = d
        .wait_for_message(
            "reload failed, keeping the running model",
            0,
            Duration::from_secs(10),
        )
        .unwrap_or_else(|| panic!("no reload failure logged:\n{}", d.log_text()));
    assert_eq!(failed["level"], "ERROR");
    assert!(
        log_message(&failed).contains(model.to_str().unwrap()),
        "the reason names the model dir: {failed}"
    );
    // The log is still reopened; the pipeline goes on with the old model.
    assert!(d
        .wait_for_message("alert log reopened", 0, Duration::from_secs(5))
        .is_some());
    let w = scrape(addr).value("netanom_windows_scored_total");
    let (ok, e) = scrape_until(addr, Duration::from_secs(5), |e| {
        e.value("netanom_windows_scored_total") >= w + 2.0
    });
    assert!(
        ok,
        "scoring stopped after a failed reload:\n{}",
        d.log_text()
    );
    assert_eq!(
        e.all("netanom_model_info")[0].labels["model_id"],
        fx.model_id
    );
    assert_eq!(d.count_messages("settings reloaded"), 0);

    d.signal(libc::SIGINT);
    let status = d
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGINT:\n{}", d.log_text()));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let stopping = d
        .log_records()
        .into_iter()
        .find(|r| log_message(r) == "stopping")
        .expect("stopping line");
    assert_eq!(stopping["fields"]["reason"], "SIGINT");
}

/// The label values of every sample must not hold an address.
fn assert_no_address_labels(e: &Exposition) {
    for s in &e.samples {
        for (k, v) in &s.labels {
            assert!(
                !contains_ip(v),
                "{}{{{k}={v:?}}}: an address in a label",
                s.name
            );
        }
    }
}

#[test]
fn metrics_and_health_while_a_realtime_replay_runs() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("rt.pcap");
    // 8 s: a flood in windows 6–7 (3–4 s in).
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(12), T1, 16);
    t.syn_flood(
        win(6),
        2 * OMEGA_NS,
        2 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let mut d = Daemon::start(&daemon_args(&pcap, &log, true), &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));

    // /healthz: fresh at start.
    let h = http_get(addr, "/healthz").expect("GET /healthz");
    assert_eq!((h.status, h.body.trim()), (200, "ok"), "{h:?}");
    let other = http_get(addr, "/nope").expect("GET /nope");
    assert_eq!(other.status, 404);

    let (ok, first) = scrape_until(addr, Duration::from_secs(10), |e| {
        e.get("netanom_windows_total").is_some_and(|w| w >= 2.0)
    });
    assert!(
        ok,
        "no windows within 10 s of a realtime replay:\n{}",
        d.log_text()
    );
    let w1 = first.value("netanom_windows_total");
    std::thread::sleep(Duration::from_millis(1500));
    let e = scrape(addr);
    let w2 = e.value("netanom_windows_total");
    assert!(
        w2 > w1,
        "netanom_windows_total did not increase: {w1} then {w2}"
    );
    assert!(d.running(), "the realtime replay of 8 s ended early");

    // The documented metrics, their types, their values.
    for (name, ty) in [
        ("netanom_anomaly_score", "gauge"),
        ("netanom_threshold", "gauge"),
        ("netanom_windows_total", "counter"),
        ("netanom_windows_dropped_total", "counter"),
        ("netanom_windows_scored_total", "counter"),
        ("netanom_alert_windows_total", "counter"),
        ("netanom_incidents_total", "counter"),
        ("netanom_incidents_suppressed_total", "counter"),
        ("netanom_incident_active", "gauge"),
        ("netanom_alert_write_errors_total", "counter"),
        ("netanom_packets_total", "counter"),
        ("netanom_bytes_total", "counter"),
        ("netanom_decode_errors_total", "counter"),
        ("netanom_late_packets_total", "counter"),
        ("netanom_time_jumps_total", "counter"),
        ("netanom_pcap_kernel_drops_total", "counter"),
        ("netanom_pcap_interface_drops_total", "counter"),
        ("netanom_window_score", "histogram"),
        ("netanom_scoring_seconds", "histogram"),
        ("netanom_model_info", "gauge"),
        ("netanom_build_info", "gauge"),
        ("netanom_last_window_end_timestamp_seconds", "gauge"),
    ] {
        assert_eq!(
            e.types.get(name).map(String::as_str),
            Some(ty),
            "# TYPE of {name}"
        );
    }
    for (name, ty) in &e.types {
        assert!(
            name.starts_with("netanom_"),
            "metric {name} without the netanom_ prefix"
        );
        assert_eq!(
            ty == "counter",
            name.ends_with("_total"),
            "{name} ({ty}): counters and only counters end in _total"
        );
    }
    assert!(
        close(e.value("netanom_threshold"), fx.threshold),
        "netanom_threshold"
    );
    assert!(
        e.value("netanom_packets_total") > 0.0,
        "netanom_packets_total"
    );
    assert!(e.value("netanom_bytes_total") > e.value("netanom_packets_total"));
    assert!(e.value("netanom_windows_scored_total") >= 1.0);
    assert!(
        e.value("netanom_anomaly_score") > 0.0,
        "netanom_anomaly_score"
    );
    assert_eq!(e.value("netanom_windows_dropped_total"), 0.0);
    let last_end = e.value("netanom_last_window_end_timestamp_seconds");
    assert!(
        last_end > win_s(0) && last_end <= win_s(16),
        "capture time, not wall time: {last_end}"
    );
    let info = e.all("netanom_model_info");
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(
        info[0].labels.get("model_id").map(String::as_str),
        Some(fx.model_id.as_str())
    );
    assert_eq!(
        info[0].labels.get("omega_seconds").map(String::as_str),
        Some("0.5")
    );
    let build = e.all("netanom_build_info");
    assert_eq!(build.len(), 1);
    assert_eq!(build[0].value, 1.0);
    assert_eq!(
        build[0].labels.get("version").map(String::as_str),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_no_address_labels(&e);

    // The flood passes while we watch: the score gauge goes above the threshold, an incident
    // is open, and it is counted.
    let (ok, during) = scrape_until(addr, Duration::from_secs(10), |e| {
        e.value("netanom_anomaly_score") > fx.threshold && e.value("netanom_incident_active") == 1.0
    });
    assert!(
        ok,
        "no score above the threshold with an open incident during the flood:\n{}",
        d.log_text()
    );
    assert_eq!(during.value("netanom_incidents_total"), 1.0);
    assert!(during.value("netanom_alert_windows_total") >= 1.0);
    assert_no_address_labels(&during);

    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("the replay ends");
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let pairs = pair_incidents(&read_alerts(&log), false);
    assert_eq!(pairs.len(), 1);
}

#[test]
fn sighup_reopens_the_alert_log_and_sigterm_ends_the_open_incident() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("signals.pcap");
    // 20 s in real time: a flood in windows 2–3 (its incident ends at about 4.5 s), calm,
    // a flood from window 24 (12 s) to the end.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(13), T1, 40);
    t.syn_flood(
        win(2),
        2 * OMEGA_NS,
        2 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    t.syn_flood(
        win(24),
        16 * OMEGA_NS,
        16 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    t.write(&pcap);
    let log = tmp.path().join("alerts.jsonl");
    let rotated = tmp.path().join("alerts.jsonl.1");
    let mut d = Daemon::start(&daemon_args(&pcap, &log, true), &[]);

    // The first incident starts and ends (cooldown) at about 4.5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_alerts(&log).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = read_alerts(&log);
    assert_eq!(
        first.len(),
        2,
        "first incident:\n{first:#?}\n{}",
        d.log_text()
    );

    // logrotate: rename, then SIGHUP.
    std::fs::rename(&log, &rotated).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_message("settings reloaded", 0, Duration::from_secs(10))
            .is_some(),
        "no reload log line:\n{}",
        d.log_text()
    );
    assert!(
        d.wait_for_message("alert log reopened", 0, Duration::from_secs(10))
            .is_some(),
        "no reopen log line:\n{}",
        d.log_text()
    );
    assert!(log.is_file(), "SIGHUP did not create a new alert log");
    assert!(d.running(), "the daemon stopped on SIGHUP");

    // The second flood opens an incident in the new file; then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_alerts(&log).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = read_alerts(&log);
    assert_eq!(
        started.len(),
        1,
        "the second incident's start:\n{started:#?}\n{}",
        d.log_text()
    );
    d.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = d
        .wait_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running 5 s after SIGTERM:\n{}", d.log_text()));
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM:\n{}",
        d.log_text()
    );
    assert!(t.elapsed() < Duration::from_secs(5));

    // The rotated file holds the first incident only, complete.
    let old = read_alerts(&rotated);
    assert_eq!(old, first, "the rotated file changed after the rename");
    let p = pair_incidents(&old, false);
    assert_eq!(
        p[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "cooldown"
    );
    // The new file: the second incident, ended by the shutdown.
    let new = read_alerts(&log);
    for e in &new {
        check_event(e, 0.5);
    }
    let p2 = pair_incidents(&new, false);
    assert_eq!(p2.len(), 1, "{new:#?}");
    assert_eq!(
        p2[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "shutdown"
    );
    assert_ne!(p[0].0["incident"]["id"], p2[0].0["incident"]["id"]);
    let stopping = d
        .log_records()
        .into_iter()
        .find(|r| log_message(r) == "stopping")
        .expect("stopping line");
    assert_eq!(stopping["fields"]["reason"], "SIGTERM");
}

#[test]
fn sighup_turns_the_eve_log_on_and_a_new_path_takes_the_next_records() {
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("two-floods.pcap");
    // As above: a flood in windows 2–3 (its incident ends at about 4.5 s), a flood from
    // window 24 (12 s) to the end; replayed in real time.
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(13), T1, 40);
    for (first, n) in [(2, 2), (24, 16)] {
        t.syn_flood(
            win(first),
            n * OMEGA_NS,
            n as usize * FLOOD_PER_WINDOW,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
    }
    t.write(&pcap);
    let (log, eve) = (tmp.path().join("alerts.jsonl"), tmp.path().join("eve.json"));
    let config = tmp.path().join("netanom.toml");
    std::fs::write(&config, "[alerts]\neve_path = \"\"\n").unwrap();
    let mut args = daemon_args(&pcap, &log, true);
    args.extend(os_args([
        "--config".into(),
        config.clone().into_os_string(),
    ]));
    let mut d = Daemon::start(&args, &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_alerts(&log).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        read_alerts(&log).len(),
        2,
        "first incident:\n{}",
        d.log_text()
    );
    assert!(!eve.exists(), "an EVE log while eve_path is empty");
    // Turned on by a reload.
    std::fs::write(
        &config,
        format!("[alerts]\neve_path = \"{}\"\n", eve.display()),
    )
    .unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_message("alerts.eve_path changed", 0, Duration::from_secs(10))
            .is_some(),
        "no reload line for alerts.eve_path:\n{}",
        d.log_text()
    );
    assert!(
        d.wait_for_message("EVE log turned on", 0, Duration::from_secs(10))
            .is_some(),
        "{}",
        d.log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while read_alerts(&eve).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running after SIGTERM:\n{}", d.log_text()));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    // The second incident's start and end, and nothing of the first.
    let records = read_alerts(&eve);
    let kinds: Vec<&Value> = records
        .iter()
        .map(|r| &r["alert"]["metadata"]["netanom_event"][0])
        .collect();
    assert_eq!(kinds, ["start", "end"], "{records:#?}");
    let alerts = read_alerts(&log);
    assert_eq!(alerts.len(), 4, "{alerts:#?}");
    for (r, a) in records.iter().zip(&alerts[2..]) {
        assert_eq!(r["event_type"], "alert");
        assert_eq!(r["src_ip"], "198.51.100.66", "the flooder: {r}");
        assert_eq!(r["dest_ip"], "10.0.1.1", "its victim: {r}");
        assert_eq!(
            r["alert"]["metadata"]["netanom_incident_id"][0],
            a["incident"]["id"]
        );
        assert_eq!(
            r["timestamp"].as_str().unwrap(),
            a["timestamp"].as_str().unwrap().replace("+00:00", "+0000")
        );
    }
    assert_eq!(
        records[1]["alert"]["metadata"]["netanom_end_reason"][0],
        "shutdown"
    );
    let mode = file_mode(&eve);
    assert_eq!(
        mode & !0o640,
        0,
        "EVE log created at most 0640, got {mode:o}"
    );
}

// ---------------------------------------------------------------------------------------------
// Settings errors
// ---------------------------------------------------------------------------------------------

fn run_expect_failure(args: &[&str], envs: &[(&str, &str)], what: &str) -> Finished {
    let mut cmd = netanom_command();
    cmd.arg("run").args(args).envs(envs.iter().copied());
    let f = run_with_timeout(cmd, Duration::from_secs(60), what);
    assert!(
        !f.stderr.contains("panicked"),
        "{what} panicked:\n{}",
        f.stderr
    );
    assert_ne!(f.status.code(), Some(0), "{what} succeeded:\n{}", f.stderr);
    assert!(f.status.code().is_some(), "{what} was killed by a signal");
    f
}

fn normal_pcap(tmp: &Path) -> PathBuf {
    let pcap = tmp.join("n.pcap");
    capture(&pcap, 10, 3, &[]);
    pcap
}

#[test]
fn bad_metrics_listen_is_a_settings_error() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = normal_pcap(tmp.path());
    let (p, m, l) = (
        pcap.to_str().unwrap(),
        fx.model.to_str().unwrap(),
        tmp.path().join("a.jsonl"),
    );
    let l = l.to_str().unwrap();
    // From the flag: named by the flag.
    let f = run_expect_failure(
        &[
            "--pcap",
            p,
            "--model",
            m,
            "--alert-log",
            l,
            "--metrics-listen",
            "localhost:99999",
        ],
        &[],
        "--metrics-listen localhost:99999",
    );
    assert!(
        f.stderr
            .contains("--metrics-listen = \"localhost:99999\": not a socket address"),
        "{}",
        f.stderr
    );
    // From the file and the environment: named by the key.
    let config = tmp.path().join("netanom.toml");
    std::fs::write(&config, "[metrics]\nlisten = \"9405\"\n").unwrap();
    let f = run_expect_failure(
        &[
            "--config",
            config.to_str().unwrap(),
            "--pcap",
            p,
            "--model",
            m,
            "--alert-log",
            l,
        ],
        &[],
        "metrics.listen = \"9405\"",
    );
    assert!(
        f.stderr.contains(
            "metrics.listen = \"9405\": not a socket address (expected e.g. 127.0.0.1:9405"
        ),
        "{}",
        f.stderr
    );
    let f = run_expect_failure(
        &["--pcap", p, "--model", m, "--alert-log", l],
        &[("NETANOM_METRICS__LISTEN", "127.0.0.1")],
        "NETANOM_METRICS__LISTEN=127.0.0.1",
    );
    assert!(
        f.stderr
            .contains("metrics.listen = \"127.0.0.1\": not a socket address"),
        "{}",
        f.stderr
    );
}

#[test]
fn missing_model_dir_names_it_and_hints_train() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = normal_pcap(tmp.path());
    let missing = tmp.path().join("no-such-model");
    let l = tmp.path().join("a.jsonl");
    let f = run_expect_failure(
        &[
            "--pcap",
            pcap.to_str().unwrap(),
            "--model",
            missing.to_str().unwrap(),
            "--alert-log",
            l.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
        "missing model dir",
    );
    assert!(
        f.stderr.contains(missing.to_str().unwrap()),
        "the message names the dir:\n{}",
        f.stderr
    );
    assert!(
        f.stderr.contains("netanom train"),
        "the message hints `netanom train`:\n{}",
        f.stderr
    );
    assert!(f.stderr.contains("netanom: error: "), "{}", f.stderr);
}

#[test]
fn metrics_address_in_use_fails_the_start() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = normal_pcap(tmp.path());
    let busy = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap();
    let l = tmp.path().join("a.jsonl");
    let f = run_expect_failure(
        &[
            "--pcap",
            pcap.to_str().unwrap(),
            "--model",
            fx.model.to_str().unwrap(),
            "--alert-log",
            l.to_str().unwrap(),
            "--metrics-listen",
            &addr.to_string(),
        ],
        &[],
        "metrics address in use",
    );
    assert!(
        f.stderr.contains(&format!(
            "metrics address {addr} is in use: set metrics.listen or --metrics-listen"
        )),
        "{}",
        f.stderr
    );
    drop(busy);
}

#[test]
fn window_omega_must_match_the_model() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = normal_pcap(tmp.path());
    let l = tmp.path().join("a.jsonl");
    let f = run_expect_failure(
        &[
            "--pcap",
            pcap.to_str().unwrap(),
            "--model",
            fx.model.to_str().unwrap(),
            "--alert-log",
            l.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[("NETANOM_WINDOW__OMEGA", "30")],
        "window.omega = 30 with a 0.5 s model",
    );
    assert!(
        f.stderr
            .contains("window.omega = 30: does not match the model's window length of 0.5 s"),
        "{}",
        f.stderr
    );
}

#[test]
fn alert_log_that_cannot_be_opened_fails_the_start() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = normal_pcap(tmp.path());
    let l = tmp.path().join("no-such-dir").join("alerts.jsonl");
    let f = run_expect_failure(
        &[
            "--pcap",
            pcap.to_str().unwrap(),
            "--model",
            fx.model.to_str().unwrap(),
            "--alert-log",
            l.to_str().unwrap(),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &[],
        "alert log in a missing directory",
    );
    assert!(
        f.stderr
            .contains(&format!("cannot open alert log {}", l.display())),
        "{}",
        f.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// Backpressure: replaying files never drops a window
// ---------------------------------------------------------------------------------------------

#[test]
fn a_replay_longer_than_the_window_queue_scores_every_window() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    // 12,000 windows (100 minutes at ω = 0.5 s): three times the daemon's queue of 4,096
    // windows, read far faster than the scorer scores. Floods late in the file, where a reader
    // that never waits had already dropped windows.
    let windows = 12_000;
    let pcap = tmp.path().join("long.pcap");
    capture(
        &pcap,
        windows,
        21,
        &[(500, 2), (5_000, 3), (9_000, 2), (11_900, 2)],
    );
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&pcap], &log, &[], &[]);
    run.assert_ok("netanom run --pcap (long)");
    let recs = records(&run);
    assert!(
        !recs.iter().any(|r| log_message(r).contains("dropped")),
        "a replay dropped windows:\n{}",
        run.stderr
    );
    let finished = recs
        .iter()
        .find(|r| log_message(r) == "scorer finished")
        .unwrap_or_else(|| panic!("no closing line of the scorer:\n{}", run.stderr));
    let rows = score_windows(&fx.model, &pcap);
    assert_eq!(rows.len() as i64, windows);
    assert_eq!(
        finished["fields"]["windows"].as_u64(),
        Some(rows.len() as u64),
        "windows the daemon scored vs `netanom score`: {finished}"
    );
    let scored = rows.iter().filter(|r| r.score.is_some()).count() as u64;
    assert_eq!(finished["fields"]["scored"].as_u64(), Some(scored));
    let events = read_alerts(&log);
    for e in &events {
        check_event(e, 0.5);
    }
    // Same windows, same scores: the incidents are exactly those of the offline scores,
    // the last flood (window 11,900) included.
    assert_matches_oracle(&events, &rows, 3);
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 4, "one incident per flood:\n{events:#?}");
    assert!(close(
        pairs[3].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(11_900)
    ));
}

#[test]
fn a_cut_off_file_is_logged_and_the_replay_goes_on_with_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    // a.pcap: 100 normal windows, its last record cut in half (a capture killed mid-write).
    let a = tmp.path().join("a.pcap");
    capture(&a, 100, 31, &[]);
    let bytes = std::fs::read(&a).unwrap();
    std::fs::write(&a, &bytes[..bytes.len() - 20]).unwrap();
    // b.pcap: the next 100 windows, a flood in 150..152.
    let b = tmp.path().join("b.pcap");
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(32), win(100), 100);
    t.syn_flood(
        win(150),
        2 * OMEGA_NS,
        2 * FLOOD_PER_WINDOW,
        FLOODER,
        VICTIM,
        &ports(6000),
    );
    t.write(&b);
    let log = tmp.path().join("alerts.jsonl");
    let run = replay(&[&a, &b], &log, &[], &[]);
    run.assert_ok("netanom run --pcap cut --pcap good");
    let a_name = a.display().to_string();
    assert!(
        records(&run).iter().any(|r| r["level"] == "ERROR"
            && log_message(r).contains(&a_name)
            && log_message(r).contains("cut off")),
        "no error naming the cut file:\n{}",
        run.stderr
    );
    let pairs = pair_incidents(&read_alerts(&log), false);
    assert_eq!(pairs.len(), 1, "the flood in the second file");
    assert!(close(
        pairs[0].0["incident"]["start_epoch"].as_f64().unwrap(),
        win_s(150)
    ));
}

// ---------------------------------------------------------------------------------------------
// A thread's death: the incident is ended with a reason, the exit is non-zero
// ---------------------------------------------------------------------------------------------

/// Replays a flood in windows 40–43 with a panic injected (debug builds) into `thread` at
/// window 43, mid-incident; returns the run and the alert events.
fn replay_with_injected_panic(tmp: &Path, fault: &str) -> (Finished, Vec<Value>) {
    let pcap = tmp.join("flood.pcap");
    capture(&pcap, 80, 41, &[(40, 4)]);
    let log = tmp.join("alerts.jsonl");
    let run = replay(
        &[&pcap],
        &log,
        &[],
        &[("NETANOM_FAULT_INJECT", &format!("{fault}=43"))],
    );
    let events = read_alerts(&log);
    for e in &events {
        check_event(e, 0.5);
    }
    (run, events)
}

#[test]
fn a_scorer_panic_ends_the_incident_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, events) = replay_with_injected_panic(tmp.path(), "scorer-panic-at-window");
    assert_eq!(run.code(), Some(1), "exit status:\n{}", run.stderr);
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "{events:#?}");
    let end = pairs[0]
        .1
        .as_ref()
        .expect("an incident_end although the scorer died");
    assert_eq!(end["incident"]["end_reason"], "internal_error", "{end}");
    assert!(
        run.stderr
            .contains("the scorer stopped on an internal error")
            && run.stderr.contains("injected fault"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_capture_panic_ends_the_incident_and_exits_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, events) = replay_with_injected_panic(tmp.path(), "capture-panic-at-window");
    assert_eq!(run.code(), Some(1), "exit status:\n{}", run.stderr);
    let pairs = pair_incidents(&events, false);
    assert_eq!(pairs.len(), 1, "{events:#?}");
    let end = pairs[0]
        .1
        .as_ref()
        .expect("an incident_end although the capture died");
    assert_eq!(end["incident"]["end_reason"], "capture_failed", "{end}");
    assert!(
        run.stderr.contains("the capture thread panicked"),
        "{}",
        run.stderr
    );
}
