//! Operator feedback end to end (`netanom feedback`, docs/deploy.md "Quieting netanom"):
//!
//! - a periodic benign bulk job alerts with a model that never saw it; its incidents are
//!   marked `benign`; a model retrained from the history (`netanom train --history`) takes
//!   the job's windows in and no longer alerts on it, while a SYN flood still does (and the
//!   same retraining without the feedback still alerts on the job);
//! - `suppress` with the daemon running: a rule added live takes effect without a restart
//!   (the incident is logged with `suppressed_by`, not counted as firing, counted in
//!   `netanom_incidents_suppressed_total{reason="feedback"}`), and it expires;
//! - bad input is refused naming it.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use daemon_support::*;
use serde_json::Value;

/// The backup host and its peer: a bulk UDP job.
const BACKUP: [u8; 4] = [10, 0, 5, 5];
const BACKUP_PEER: [u8; 4] = [10, 0, 5, 6];

/// 400 windows of LAN traffic from `t0` (seed `seed`), the backup job filling windows
/// `[k, k + len)` for each `(k, len)` of `jobs`, and SYN floods in `floods`.
fn capture(
    path: &Path,
    t0: i64,
    seed: u64,
    windows: i64,
    jobs: &[(i64, i64)],
    floods: &[(i64, i64)],
) {
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(seed), t0, windows);
    for &(k, len) in jobs {
        // 150 datagrams of 1,200 bytes a window, evenly spread.
        for i in 0..150 * len {
            let at = t0 + k * OMEGA_NS + i * OMEGA_NS / 150;
            t.push(
                at,
                udp_frame((BACKUP, 40_100), (BACKUP_PEER, 5_001), 64, 1_200),
            );
        }
    }
    for &(k, len) in floods {
        t.syn_flood(
            t0 + k * OMEGA_NS,
            len * OMEGA_NS,
            2_000 * len as usize,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
    }
    t.write(path);
}

/// `netanom run --pcap` (unpaced) with `model`, the history in `history`, alerts in `alerts`,
/// feedback from `state`.
fn replay(pcap: &Path, model: &Path, history: &Path, alerts: &Path, state: &Path) -> Finished {
    replay_with(pcap, model, history, alerts, state, &[])
}

/// [`replay`] with more settings from the environment (`NETANOM_SECTION__KEY`).
fn replay_with(
    pcap: &Path,
    model: &Path,
    history: &Path,
    alerts: &Path,
    state: &Path,
    envs: &[(&str, &str)],
) -> Finished {
    let mut cmd = netanom_command();
    cmd.arg("run")
        .arg("--pcap")
        .arg(pcap)
        .arg("--model")
        .arg(model)
        .arg("--history-dir")
        .arg(history)
        .arg("--alert-log")
        .arg(alerts)
        .arg("--state-dir")
        .arg(state)
        .args(["--metrics-listen", "127.0.0.1:0"])
        .env("NETANOM_HISTORY__ENABLED", "true")
        .env(SPOT_THRESHOLD.0, SPOT_THRESHOLD.1)
        .env("NETANOM_LOG__FORMAT", "json")
        .envs(envs.iter().copied());
    run_with_timeout(cmd, Duration::from_secs(300), "netanom run --pcap")
}

/// `netanom feedback ARGS` with the state directory and alert log given.
fn feedback(state: &Path, alerts: &Path, args: &[&str]) -> Finished {
    let mut cmd = netanom_command();
    cmd.arg("feedback")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .arg("--alert-log")
        .arg(alerts)
        .env_remove("NETANOM_CONFIG");
    run_with_timeout(cmd, Duration::from_secs(60), "netanom feedback")
}

/// The incident starts of an alert log.
fn starts(alerts: &Path) -> Vec<Value> {
    read_alerts(alerts)
        .into_iter()
        .filter(|e| e["event_type"] == "incident_start")
        .collect()
}

/// Whether an event names `ip` (a top feature's contributor or a top source).
fn names(e: &Value, ip: [u8; 4]) -> bool {
    let ip = std::net::Ipv4Addr::from(ip).to_string();
    let contributors = e["top_features"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|f| f["contributors"].as_array().into_iter().flatten())
        .any(|c| c["ip"] == ip.as_str());
    let talkers = e["top_talkers"]["source"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["ip"] == ip.as_str());
    contributors || talkers
}

/// Whether an incident's span overlaps windows `[k, k + len)` of a capture from `t0`.
fn overlaps(e: &Value, t0: i64, (k, len): (i64, i64)) -> bool {
    let start = e["incident"]["start_epoch"].as_f64().unwrap();
    let (a, b) = (
        (t0 + k * OMEGA_NS) as f64 / 1e9,
        (t0 + (k + len + 2) * OMEGA_NS) as f64 / 1e9,
    );
    start >= a - 1.0 && start < b
}

/// `netanom train --history` with the feedback of `state` (and `alerts`).
fn train_history(history: &Path, state: &Path, alerts: &Path, out: &Path) -> Finished {
    let mut cmd = netanom_command();
    cmd.arg("train")
        .arg("--history")
        .arg(history)
        .args(["--window", OMEGA])
        .arg("--state-dir")
        .arg(state)
        .arg("--alert-log")
        .arg(alerts)
        .arg("--out")
        .arg(out)
        .args(["--hidden", "16", "--epochs", "8", "--seed", "7"]);
    run_with_timeout(cmd, Duration::from_secs(300), "netanom train --history")
}

/// The number in "… kept (N alerted but marked benign)" of `train --history`.
fn kept_benign(f: &Finished) -> u64 {
    let at = f
        .stderr
        .find(" alerted but marked benign")
        .unwrap_or_else(|| panic!("{}", f.stderr));
    let head = &f.stderr[..at];
    head[head.rfind('(').unwrap() + 1..].parse().unwrap()
}

#[test]
fn a_benign_job_marked_so_stops_alerting_after_a_retrain_while_a_flood_still_does() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    std::fs::create_dir_all(p("state")).unwrap();
    std::fs::create_dir_all(p("no-feedback")).unwrap();
    // The first model never saw the job.
    capture(&p("normal.pcap"), T0 - 1000 * OMEGA_NS, 1, 400, &[], &[]);
    train(&p("normal.pcap"), &p("model-a"), &[]);
    // Day 1: the job runs four times.
    let jobs1 = [(50, 10), (150, 10), (250, 10), (350, 10)];
    capture(&p("day1.pcap"), T0, 2, 400, &jobs1, &[]);
    replay(
        &p("day1.pcap"),
        &p("model-a"),
        &p("history"),
        &p("alerts-1.jsonl"),
        &p("state"),
    )
    .assert_ok("replay of day 1");
    let job_incidents: Vec<String> = starts(&p("alerts-1.jsonl"))
        .iter()
        .filter(|e| names(e, BACKUP))
        .map(|e| e["incident"]["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        job_incidents.len() >= 3,
        "the job should alert with a model that never saw it: {job_incidents:?}\n{:#?}",
        starts(&p("alerts-1.jsonl"))
    );
    // The analyst marks each of the job's incidents benign.
    for id in &job_incidents {
        let f = feedback(
            &p("state"),
            &p("alerts-1.jsonl"),
            &[
                "benign",
                "--incident",
                id,
                "--comment",
                "nightly backup to 10.0.5.6",
            ],
        );
        f.assert_ok("netanom feedback benign");
        assert!(f.stdout.contains("benign incident"), "{}", f.stdout);
    }
    let listed = feedback(&p("state"), &p("alerts-1.jsonl"), &["list", "--json"]);
    listed.assert_ok("netanom feedback list");
    let rules: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rules.len(), job_incidents.len());
    for r in &rules {
        assert_eq!(r["action"], "benign");
        assert_eq!(r["state"], "active");
        assert!(
            r["incident_span"]["end_epoch"].as_f64().unwrap()
                > r["incident_span"]["start_epoch"].as_f64().unwrap()
        );
        assert!(!r["who"].as_str().unwrap().is_empty());
    }
    // Retrained from the history: with the feedback, and (the control) without it.
    let with = train_history(
        &p("history"),
        &p("state"),
        &p("alerts-1.jsonl"),
        &p("model-b"),
    );
    with.assert_ok("train --history with feedback");
    assert!(kept_benign(&with) >= 30, "{}", with.stderr);
    assert!(
        with.stderr.contains("incidents marked benign"),
        "{}",
        with.stderr
    );
    let without = train_history(
        &p("history"),
        &p("no-feedback"),
        &p("alerts-1.jsonl"),
        &p("model-c"),
    );
    without.assert_ok("train --history without feedback");
    assert_eq!(kept_benign(&without), 0, "{}", without.stderr);
    // Day 2: the job twice, a SYN flood between.
    let t0 = T0 + 1000 * OMEGA_NS;
    let jobs2 = [(100, 10), (300, 10)];
    let flood = (200, 4);
    capture(&p("day2.pcap"), t0, 3, 400, &jobs2, &[flood]);
    replay(
        &p("day2.pcap"),
        &p("model-b"),
        &p("history-2"),
        &p("alerts-b.jsonl"),
        &p("state"),
    )
    .assert_ok("replay of day 2 with the retrained model");
    let b = starts(&p("alerts-b.jsonl"));
    for e in &b {
        check_event(e, 0.5);
    }
    assert!(
        b.iter()
            .any(|e| overlaps(e, t0, flood) && names(e, FLOODER)),
        "the flood must still alert: {b:#?}"
    );
    for job in jobs2 {
        let on_job: Vec<&Value> = b.iter().filter(|e| overlaps(e, t0, job)).collect();
        assert!(
            on_job.is_empty(),
            "the benign job alerted again: {on_job:#?}"
        );
    }
    replay(
        &p("day2.pcap"),
        &p("model-c"),
        &p("history-3"),
        &p("alerts-c.jsonl"),
        &p("no-feedback"),
    )
    .assert_ok("replay of day 2 with the model retrained without feedback");
    let c = starts(&p("alerts-c.jsonl"));
    assert!(
        jobs2
            .iter()
            .any(|&job| c.iter().any(|e| overlaps(e, t0, job) && names(e, BACKUP))),
        "without the feedback the retrained model still alerts on the job: {c:#?}"
    );
    // The daemon's own retraining (learning.retrain_every) takes the benign windows in too:
    // day 2 replayed with the first model, on top of day 1's history and alert log, retrains
    // 200 s in on everything before its last minute.
    copy_dir(&p("model-a"), &p("model-d"));
    let f = replay_with(
        &p("day2.pcap"),
        &p("model-d"),
        &p("history"),
        &p("alerts-1.jsonl"),
        &p("state"),
        &[
            ("NETANOM_LEARNING__RETRAIN_EVERY", "200s"),
            ("NETANOM_LEARNING__HOLDOUT", "60s"),
            ("NETANOM_LEARNING__EPOCHS", "5"),
        ],
    );
    f.assert_ok("replay of day 2 retraining on the history");
    let trainings: Vec<Value> = f
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| log_message(r) == "training a model from the feature history")
        .collect();
    assert!(!trainings.is_empty(), "no retraining ran:\n{}", f.stderr);
    let kept = trainings[0]["fields"]["benign_kept"].as_u64().unwrap_or(0);
    assert!(
        kept >= 30,
        "the learner took {kept} benign windows back in: {:#?}",
        trainings[0]
    );
    assert_eq!(
        trainings[0]["fields"]["benign_incidents"]
            .as_str()
            .unwrap_or("")
            .split(',')
            .filter(|s| !s.is_empty())
            .count(),
        job_incidents.len(),
        "{:#?}",
        trainings[0]
    );
}

/// Copies the files of directory `from` into a new directory `to` (one level).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The sample `name` with exactly the labels `labels`.
fn sample(e: &Exposition, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    e.all(name)
        .into_iter()
        .find(|s| {
            s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Lines of the alert log that `pred` picks, waiting up to `timeout` for `n` of them.
fn wait_alerts(
    path: &Path,
    n: usize,
    timeout: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<Value> = read_alerts(path).into_iter().filter(|e| pred(e)).collect();
        if got.len() >= n || Instant::now() >= deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_suppress_rule_added_while_the_daemon_runs_applies_without_a_restart_and_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name);
    std::fs::create_dir_all(p("state")).unwrap();
    capture(&p("normal.pcap"), T0 - 1000 * OMEGA_NS, 1, 400, &[], &[]);
    train(&p("normal.pcap"), &p("model"), &[]);
    // 56 s paced: the job at 5 s, 25 s and 45 s (3 s each).
    let jobs = [(10, 6), (50, 6), (90, 6)];
    capture(&p("live.pcap"), T0, 4, 112, &jobs, &[]);
    let alerts = p("alerts.jsonl");
    let args: Vec<OsString> = vec![
        "--pcap".into(),
        p("live.pcap").into(),
        "--realtime".into(),
        "--model".into(),
        p("model").into(),
        "--alert-log".into(),
        alerts.clone().into(),
        "--state-dir".into(),
        p("state").into(),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ];
    let mut d = Daemon::start(&args, &[SPOT_THRESHOLD]);
    let addr = d.metrics_addr(Duration::from_secs(60));
    // The first job fires: no rule yet.
    let ends = wait_alerts(&alerts, 1, Duration::from_secs(40), |e| {
        e["event_type"] == "incident_end" && names(e, BACKUP)
    });
    assert_eq!(ends.len(), 1, "{}", d.log_text());
    assert!(ends[0].get("suppressed_by").is_none(), "{}", ends[0]);
    // Now the analyst silences the backup host for 20 s, while the daemon runs.
    let f = feedback(
        &p("state"),
        &alerts,
        &[
            "suppress",
            "--host",
            "10.0.5.5",
            "--comment",
            "backup window",
            "--expires",
            "20s",
        ],
    );
    f.assert_ok("netanom feedback suppress");
    let rule = f
        .stdout
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    assert_eq!(rule.len(), 8, "{}", f.stdout);
    // The second job: logged, suppressed by the rule, not firing.
    let second = wait_alerts(&alerts, 2, Duration::from_secs(40), |e| {
        names(e, BACKUP) && e.get("suppressed_by").is_some()
    });
    assert_eq!(
        second.len(),
        2,
        "start and end of the second job: {}",
        d.log_text()
    );
    for e in &second {
        assert_eq!(e["suppressed_by"], serde_json::json!([rule]), "{e}");
        check_event(e, 0.5);
    }
    let (_, e) = scrape_until(addr, Duration::from_secs(5), |e| {
        sample(
            e,
            "netanom_feedback_rules",
            &[("action", "suppress"), ("state", "active")],
        ) == Some(1.0)
            || sample(
                e,
                "netanom_feedback_rules",
                &[("action", "suppress"), ("state", "expired")],
            ) == Some(1.0)
    });
    assert_eq!(
        sample(
            &e,
            "netanom_incidents_suppressed_total",
            &[("reason", "feedback")]
        ),
        Some(1.0)
    );
    assert_eq!(
        e.get("netanom_incidents_total"),
        Some(1.0),
        "the suppressed one is not counted"
    );
    // The third job, after the rule expired: it fires again.
    let third = wait_alerts(&alerts, 2, Duration::from_secs(40), |e| {
        names(e, BACKUP) && e.get("suppressed_by").is_none() && e["event_type"] == "incident_end"
    });
    assert_eq!(third.len(), 2, "{}", d.log_text());
    let (ok, e) = scrape_until(addr, Duration::from_secs(10), |e| {
        e.get("netanom_incidents_total") == Some(2.0)
    });
    assert!(
        ok,
        "netanom_incidents_total {:?}",
        e.get("netanom_incidents_total")
    );
    assert_eq!(
        sample(
            &e,
            "netanom_feedback_rules",
            &[("action", "suppress"), ("state", "expired")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &e,
            "netanom_incidents_suppressed_total",
            &[("reason", "feedback")]
        ),
        Some(1.0)
    );
    assert_eq!(e.get("netanom_incident_active"), Some(0.0));
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(30))
        .is_some_and(|s| s.success()));
}

#[test]
fn bad_feedback_is_refused_naming_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let alerts = tmp.path().join("alerts.jsonl");
    std::fs::write(
        &alerts,
        "{\"event_type\":\"incident_start\",\"incident\":{\"id\":\"65a1b2c3-1\",\"start_epoch\":1700000000.0,\"duration_s\":0.5},\"top_features\":[],\"top_talkers\":{\"source\":[{\"ip\":\"10.0.0.7\",\"packets\":3}]}}\n",
    )
    .unwrap();
    let run = |args: &[&str]| feedback(&state, &alerts, args);
    for (args, code, needle) in [
        (vec!["suppress", "--host", "10.0.0.5"], 2, "--comment"),
        (
            vec!["suppress", "--incident", "nope-1", "--comment", "x"],
            1,
            "unknown incident id nope-1 in ",
        ),
        (
            vec!["suppress", "--subnet", "0.0.0.0/0", "--comment", "x"],
            1,
            "--force",
        ),
        (
            vec!["benign", "--subnet", "::/0", "--comment", "x"],
            1,
            "matches every incident",
        ),
        (
            vec!["benign", "--comment", "x"],
            1,
            "matches every incident",
        ),
        (
            vec!["suppress", "--feature", "syn_cnt", "--comment", "x"],
            2,
            "unknown feature \"syn_cnt\"",
        ),
        (
            vec!["suppress", "--subnet", "10.0.0.0/33", "--comment", "x"],
            2,
            "--subnet",
        ),
        (
            vec!["suppress", "--host", "10.0.0.999", "--comment", "x"],
            2,
            "--host",
        ),
        (
            vec![
                "suppress",
                "--host",
                "10.0.0.5",
                "--comment",
                "x",
                "--expires",
                "soon",
            ],
            2,
            "--expires",
        ),
        (
            vec!["expire", "deadbeef", "--comment", "x"],
            1,
            "unknown feedback rule id deadbeef",
        ),
        (
            vec!["suppress", "--host", "10.0.0.5", "--comment", "  "],
            1,
            "--comment is empty",
        ),
        (
            vec!["expire", "deadbeef", "--comment", ""],
            1,
            "--comment is empty",
        ),
        (
            vec![
                "suppress",
                "--host",
                "10.0.0.5",
                "--comment",
                "x",
                "--expires",
                "11years",
            ],
            1,
            "longer than ten years",
        ),
    ] {
        let f = run(&args);
        assert_eq!(f.code(), Some(code), "{args:?}: {}", f.stderr);
        assert!(f.stderr.contains(needle), "{args:?}: {}", f.stderr);
    }
    let f = run(&["suppress", "--feature", "syn_cnt", "--comment", "x"]);
    assert!(
        f.stderr.contains("syn_count"),
        "the closest name: {}",
        f.stderr
    );
    let path = state.join("feedback.jsonl");
    assert!(!path.exists(), "nothing was written for bad input");
    // Good input: an incident rule records its span; --force takes everything.
    let f = run(&[
        "suppress",
        "--incident",
        "65a1b2c3-1",
        "--comment",
        "seen it",
    ]);
    f.assert_ok("suppress --incident");
    let id = f
        .stdout
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':')
        .to_string();
    run(&[
        "benign",
        "--subnet",
        "0.0.0.0/0",
        "--force",
        "--comment",
        "lab",
    ])
    .assert_ok("--force");
    let f = run(&["expire", &id, "--comment", "done"]);
    f.assert_ok("expire");
    let f = run(&["expire", &id, "--comment", "again"]);
    assert_eq!(f.code(), Some(1));
    assert!(f.stderr.contains("already expired"), "{}", f.stderr);
    // Append-only: three lines, the expiry last; list hides the expired rule unless --all.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["kind"], "rule");
    assert_eq!(lines[0]["scope"]["incident"], "65a1b2c3-1");
    assert_eq!(lines[0]["incident_span"]["start_epoch"], 1700000000.0);
    assert_eq!(lines[1]["force"], true);
    assert_eq!(
        (lines[2]["kind"].as_str(), lines[2]["id"].as_str()),
        (Some("expire"), Some(id.as_str()))
    );
    let listed = run(&["list"]);
    listed.assert_ok("list");
    assert!(!listed.stdout.contains(&id), "{}", listed.stdout);
    assert!(listed.stdout.contains("lab"), "{}", listed.stdout);
    let all = run(&["list", "--all"]);
    assert!(
        all.stdout.contains(&id) && all.stdout.contains("expired"),
        "{}",
        all.stdout
    );
    // Yesterday's incident is in a rotated, compressed generation of the alert log
    // (logrotate: alerts.jsonl.1, alerts.jsonl.2.gz): it is found there.
    let rotated = tmp.path().join("alerts.jsonl.2.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&rotated).unwrap(),
        flate2::Compression::default(),
    );
    std::io::Write::write_all(
        &mut gz,
        b"{\"event_type\":\"incident_start\",\"incident\":{\"id\":\"0ld1ncd-7\",\"start_epoch\":1699990000.0,\"duration_s\":2.0},\"top_features\":[],\"top_talkers\":{\"source\":[]}}\n",
    )
    .unwrap();
    gz.finish().unwrap();
    std::fs::write(tmp.path().join("alerts.jsonl.1"), "not json\n").unwrap();
    let f = run(&[
        "benign",
        "--incident",
        "0ld1ncd-7",
        "--comment",
        "yesterday's backup",
    ]);
    f.assert_ok("benign --incident in a rotated log");
    let text = std::fs::read_to_string(&path).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["scope"]["incident"], "0ld1ncd-7");
    assert_eq!(last["incident_span"]["start_epoch"], 1699990000.0);
    assert_eq!(last["incident_span"]["end_epoch"], 1699990002.0);
    // A torn last line (a crash mid-append) is skipped and named, never fatal.
    std::fs::write(&path, format!("{text}{{\"kind\":\"rule\",\"id\":")).unwrap();
    let f = run(&["list", "--all"]);
    f.assert_ok("list with a torn line");
    assert!(
        f.stderr.contains("feedback.jsonl:5") && f.stderr.contains("no newline"),
        "{}",
        f.stderr
    );
}
