//! `netanom run` through faults on its output side, each provoked for real:
//!
//! - hundreds of idle and half-sent connections to the metrics port from 127.0.0.2 and
//!   127.0.0.3, while 127.0.0.1 scrapes;
//! - the alert log on a full 64 KiB tmpfs (root only; skipped loudly otherwise), then space
//!   freed;
//! - the alert log renamed and deleted while the daemon runs, no signal sent;
//! - SIGHUP after the settings file changed live and restart-only keys.
//!
//! Captures are replayed with `--realtime` (0.5 s windows) so the daemon runs while the test
//! acts; a model is trained once per test binary, as in tests/daemon_replay.rs.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use daemon_support::*;
use serde_json::Value;

/// The trained model.
struct Fixture {
    /// Its bundle directory.
    model: PathBuf,
}

/// Trains the model once per test binary, in a directory of this binary's own.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults_output-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let normal = dir.join("normal.pcap");
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(1), T0, 600);
        t.write(&normal);
        let model = dir.join("model");
        train(&normal, &model, &["--threshold-factor", "3"]);
        Fixture { model }
    })
}

/// Test captures start here (after the training capture).
const T1: i64 = T0 + 10_000 * OMEGA_NS;

/// Start of window `k` of a test capture.
fn win(k: i64) -> i64 {
    T1 + k * OMEGA_NS
}

/// `windows` windows of normal traffic with SYN floods (2000 SYNs a window) filling the
/// windows `[first, first + n)` of each `(first, n)`.
fn capture(path: &Path, windows: i64, seed: u64, floods: &[(i64, i64)]) {
    let mut t = Traffic::new();
    t.lan(&mut Rng::new(seed), T1, windows);
    for &(first, n) in floods {
        t.syn_flood(
            win(first),
            n * OMEGA_NS,
            2000 * n as usize,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
    }
    t.write(path);
}

/// `--pcap P --model M --realtime` plus `extra`.
fn args(pcap: &Path, extra: &[&Path]) -> Vec<std::ffi::OsString> {
    let mut a = os_args(["--pcap"]);
    a.push(pcap.into());
    a.extend(os_args(["--model"]));
    a.push(fixture().model.as_os_str().into());
    a.push("--realtime".into());
    a.extend(extra.iter().map(|p| p.as_os_str().to_owned()));
    a
}

/// `args` with `--alert-log LOG --metrics-listen 127.0.0.1:0`.
fn args_with_log(pcap: &Path, log: &Path) -> Vec<std::ffi::OsString> {
    let mut a = args(pcap, &[]);
    a.extend(os_args(["--alert-log"]));
    a.push(log.into());
    a.extend(os_args(["--metrics-listen", "127.0.0.1:0"]));
    a
}

/// Waits up to `timeout` for `pred`, polling every 50 ms; true if it held.
fn wait_until(timeout: Duration, mut pred: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pred() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stops the daemon with SIGTERM and checks it exits 0 within 10 s.
fn stop(d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running 10 s after SIGTERM:\n{}", d.log_text()));
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
}

// ---------------------------------------------------------------------------------------------
// The metrics endpoint
// ---------------------------------------------------------------------------------------------

/// Connections a peer may hold (docs/metrics.md) and the request timeout.
const PER_PEER: usize = 8;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[test]
fn a_scrape_gets_through_hundreds_of_idle_and_half_sent_connections() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("calm.pcap");
    capture(&pcap, 60, 21, &[]);
    let log = tmp.path().join("alerts.jsonl");
    let mut d = Daemon::start(&args_with_log(&pcap, &log), &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));
    let (a, b) = (Ipv4Addr::new(127, 0, 0, 2), Ipv4Addr::new(127, 0, 0, 3));
    const HALF: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";

    // First the ones the daemon keeps: 8 half-sent requests from .2, 8 idle from .3.
    let opened = Instant::now();
    let mut half: Vec<TcpStream> = Vec::new();
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..PER_PEER {
        let mut s = connect_from(a, addr).expect("connect from 127.0.0.2");
        s.write_all(HALF).expect("half a request");
        half.push(s);
        idle.push(connect_from(b, addr).expect("connect from 127.0.0.3"));
    }
    // Then 284 more, half-sent and idle, that each peer has no room for.
    let mut over: Vec<TcpStream> = Vec::new();
    for i in 0..284 {
        let from = if i % 2 == 0 { a } else { b };
        let mut s = connect_from(from, addr).expect("connect");
        if i % 4 < 2 {
            // The daemon may already have reset it.
            let _ = s.write_all(HALF);
        }
        over.push(s);
    }
    let burst = opened.elapsed();
    assert!(
        burst < Duration::from_secs(3),
        "opening 300 connections took {burst:?}: too slow for the 5 s request timeout"
    );

    // 127.0.0.1 scrapes, promptly.
    let t = Instant::now();
    let r = http_get(addr, "/metrics").expect("scrape from 127.0.0.1 while 300 are open");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{r:?}");
    assert!(took < Duration::from_secs(2), "the scrape took {took:?}");
    let e = parse_exposition(&r.body);
    assert_eq!(
        labelled(
            &e,
            "netanom_metrics_connections_refused_total",
            "reason",
            "peer_limit"
        ),
        Some(284.0),
        "every connection over a peer's 8 is refused"
    );
    assert_eq!(
        labelled(
            &e,
            "netanom_metrics_connections_refused_total",
            "reason",
            "total_limit"
        ),
        Some(0.0)
    );
    // The refused ones are closed at once.
    for s in &mut over {
        let t = Instant::now();
        assert!(
            closed_within(s, t, Duration::from_secs(2)).is_some(),
            "a connection over the peer limit is still open"
        );
    }

    // The kept ones are closed once the request timeout passes: half-sent and idle alike.
    for (kind, list) in [("half-sent", &mut half), ("idle", &mut idle)] {
        for s in list.iter_mut() {
            let closed = closed_within(s, opened, Duration::from_secs(12))
                .unwrap_or_else(|| panic!("a {kind} connection is open 12 s later"));
            assert!(
                closed >= REQUEST_TIMEOUT - Duration::from_millis(100),
                "a {kind} connection closed after {closed:?}, before the request timeout"
            );
        }
    }
    let e = scrape(addr);
    for (phase, n) in [("request", 8.0), ("idle", 8.0), ("response", 0.0)] {
        assert_eq!(
            labelled(
                &e,
                "netanom_metrics_connections_timed_out_total",
                "phase",
                phase
            ),
            Some(n),
            "phase {phase}"
        );
    }
    assert!(d.running(), "the daemon stopped:\n{}", d.log_text());
    stop(&mut d);
}

// ---------------------------------------------------------------------------------------------
// The alert log
// ---------------------------------------------------------------------------------------------

/// Panics unless the file holds the seed line and nothing else: what a failed write put in
/// was cut off again.
fn assert_only_seed(path: &Path, seed: &[u8]) {
    let text = std::fs::read(path).expect("read the alert log");
    assert!(
        text == seed,
        "{} bytes instead of the {}-byte seed; after it: {:?}",
        text.len(),
        seed.len(),
        String::from_utf8_lossy(text.get(seed.len()..).unwrap_or_default())
    );
}

/// The alert events of a file whose first line is the seed written before the daemon started.
fn events_after_seed(path: &Path, seed: &[u8]) -> Vec<Value> {
    let text = std::fs::read(path).expect("read the alert log");
    assert!(text.starts_with(seed), "the seed line changed");
    let rest = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rest.path(), &text[seed.len()..]).unwrap();
    read_alerts(rest.path())
}

#[test]
fn a_full_disk_leaves_no_partial_line_and_queued_events_are_written_when_space_returns() {
    if !is_root() {
        eprintln!(
            "SKIPPED a_full_disk_leaves_no_partial_line_...: mounting a tmpfs needs root; run the tests as root to provoke a full disk"
        );
        return;
    }
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let fs = match Tmpfs::mount(&mnt, 64 * 1024) {
        Ok(fs) => fs,
        Err(MountError::NotPermitted(e)) => {
            eprintln!(
                "SKIPPED a_full_disk_leaves_no_partial_line_...: cannot mount a tmpfs here ({e}); needs CAP_SYS_ADMIN"
            );
            return;
        }
        Err(MountError::Other(e)) => panic!("mounting a tmpfs on {}: {e}", mnt.display()),
    };
    // A complete line of 3000 bytes: its page has 1096 bytes free, so the first event's write
    // goes in part (a short write) before the disk is full.
    let log = fs.dir.join("alerts.jsonl");
    let mut seed = format!("{{\"seed\":\"{}\"}}", "s".repeat(3000 - 12)).into_bytes();
    seed.push(b'\n');
    assert_eq!(seed.len(), 3000);
    std::fs::write(&log, &seed).unwrap();
    let filler = fs.fill("filler");

    let pcap = tmp.path().join("flood.pcap");
    capture(&pcap, 40, 22, &[(2, 2)]);
    let mut d = Daemon::start(&args_with_log(&pcap, &log), &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));

    // The incident starts and ends (≈ 4.5 s) while the disk is full: both events wait.
    let (ok, e) = scrape_until(addr, Duration::from_secs(20), |e| {
        e.value("netanom_incidents_total") >= 1.0
            && e.value("netanom_incident_active") == 0.0
            && e.value("netanom_alert_events_queued") == 2.0
    });
    assert!(ok, "two events queued on a full disk:\n{}", d.log_text());
    assert!(
        e.value("netanom_alert_write_errors_total") >= 2.0,
        "every failed write is counted"
    );
    assert_eq!(e.value("netanom_alert_events_dropped_total"), 0.0);
    assert_only_seed(&log, &seed);
    let failed = d
        .log_records()
        .into_iter()
        .find(|r| log_message(r).starts_with("cannot write alert log"))
        .unwrap_or_else(|| panic!("no write error logged:\n{}", d.log_text()));
    assert_eq!(failed["level"], "ERROR");
    assert!(
        log_message(&failed).contains("No space left on device"),
        "{failed}"
    );
    // Retried while full: the count keeps growing, still no partial line.
    let errors = e.value("netanom_alert_write_errors_total");
    let (ok, _) = scrape_until(addr, Duration::from_secs(5), |e| {
        e.value("netanom_alert_write_errors_total") > errors
    });
    assert!(ok, "no retry while the disk is full");
    assert_only_seed(&log, &seed);

    // Space again: the queue is written within a retry interval (1 s) and a window.
    std::fs::remove_file(&filler).unwrap();
    let (ok, e) = scrape_until(addr, Duration::from_secs(5), |e| {
        e.value("netanom_alert_events_queued") == 0.0
    });
    assert!(
        ok,
        "queued events not written after space returned:\n{}",
        d.log_text()
    );
    let errors = e.value("netanom_alert_write_errors_total");
    let events = events_after_seed(&log, &seed);
    assert_eq!(events.len(), 2, "{events:#?}");
    for ev in &events {
        check_event(ev, 0.5);
    }
    let pairs = pair_incidents(&events, false);
    assert_eq!(
        pairs[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "cooldown"
    );
    assert!(d
        .wait_for_message("alert log writable again", 0, Duration::from_secs(2))
        .is_some());
    stop(&mut d);
    assert_eq!(
        scrape_or_none(addr),
        None,
        "the daemon exited, the port is closed"
    );
    assert!(errors >= 2.0);
}

/// `/metrics` if the port still answers.
fn scrape_or_none(addr: std::net::SocketAddr) -> Option<u16> {
    http_get(addr, "/metrics").ok().map(|r| r.status)
}

#[test]
fn a_renamed_or_deleted_alert_log_is_followed_without_a_signal() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("three.pcap");
    // Three incidents: ending at about 4.5 s, 10.5 s and 17.5 s.
    capture(&pcap, 40, 23, &[(2, 2), (14, 2), (28, 2)]);
    let log = tmp.path().join("alerts.jsonl");
    let rotated = tmp.path().join("alerts.jsonl.1");
    let mut d = Daemon::start(&args_with_log(&pcap, &log), &[]);

    assert!(
        wait_until(Duration::from_secs(20), || read_alerts(&log).len() == 2),
        "first incident:\n{}",
        d.log_text()
    );
    let first = read_alerts(&log);
    std::fs::rename(&log, &rotated).unwrap();

    // The second incident lands in a new file at the path.
    assert!(
        wait_until(Duration::from_secs(20), || read_alerts(&log).len() == 2),
        "second incident not in a new file at the path:\n{}",
        d.log_text()
    );
    let second = read_alerts(&log);
    assert_eq!(read_alerts(&rotated), first, "the renamed file changed");
    std::fs::remove_file(&log).unwrap();

    // The third in a new file again, after a deletion.
    let status = d
        .wait_exit(Duration::from_secs(30))
        .expect("the replay ends");
    assert_eq!(status.code(), Some(0), "{}", d.log_text());
    let third = read_alerts(&log);
    assert_eq!(
        third.len(),
        2,
        "third incident:\n{third:#?}\n{}",
        d.log_text()
    );
    for (events, n) in [(&first, 1), (&second, 2), (&third, 3)] {
        for e in events.iter() {
            check_event(e, 0.5);
        }
        let p = pair_incidents(events, false);
        assert_eq!(p.len(), 1, "incident {n}");
        assert!(
            p[0].0["incident"]["id"]
                .as_str()
                .is_some_and(|id| id.ends_with(&format!("-{n}"))),
            "incident {n}: {}",
            p[0].0["incident"]["id"]
        );
    }
    assert_eq!(
        d.count_messages("alert log reopened: the file at alerts.path was moved or deleted"),
        2,
        "{}",
        d.log_text()
    );
    assert_eq!(d.count_messages("SIGHUP"), 0);
    let mode = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(&log).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode & !0o640, 0, "recreated at most 0640, got {mode:o}");
}

// ---------------------------------------------------------------------------------------------
// SIGHUP
// ---------------------------------------------------------------------------------------------

/// A settings file: alerts to `path` with `top` features and host `host`, metrics on `listen`,
/// `snaplen`, `bpf` (none when empty), `level`, `fsync`.
#[allow(clippy::too_many_arguments)]
fn settings_file(
    file: &Path,
    path: &Path,
    top: u32,
    host: &str,
    listen: &str,
    snaplen: u32,
    bpf: &str,
    level: &str,
    fsync: bool,
) {
    let text = format!(
        "[capture]\nsnaplen = {snaplen}\nbpf_filter = {bpf:?}\n\
         [alerts]\npath = {:?}\ntop_features = {top}\nhost = {host:?}\nfsync = {fsync}\n\
         [metrics]\nlisten = {listen:?}\n\
         [log]\nlevel = {level:?}\nformat = \"json\"\n",
        path.display().to_string()
    );
    std::fs::write(file, text).unwrap();
}

#[test]
fn sighup_applies_live_keys_and_names_each_one_that_needs_a_restart() {
    fixture();
    let tmp = tempfile::tempdir().unwrap();
    let pcap = tmp.path().join("signals.pcap");
    // A flood in windows 2–3 (its incident ends at about 4.5 s), then from window 24 (12 s)
    // to the end.
    capture(&pcap, 40, 24, &[(2, 2), (24, 16)]);
    let (a, b) = (tmp.path().join("a.jsonl"), tmp.path().join("b.jsonl"));
    let config = tmp.path().join("netanom.toml");
    settings_file(
        &config,
        &a,
        5,
        "tap-a",
        "127.0.0.1:0",
        160,
        "",
        "info",
        true,
    );
    let mut d = Daemon::start(&args(&pcap, &[Path::new("--config"), &config]), &[]);
    let addr = d.metrics_addr(Duration::from_secs(30));

    assert!(
        wait_until(Duration::from_secs(20), || read_alerts(&a).len() == 2),
        "first incident:\n{}",
        d.log_text()
    );
    let first = read_alerts(&a);
    assert_eq!(first[0]["host"], "tap-a");
    assert_eq!(first[0]["top_features"].as_array().unwrap().len(), 5);
    let debug_before = d
        .log_records()
        .iter()
        .filter(|r| r["level"] == "DEBUG")
        .count();
    assert_eq!(debug_before, 0, "log.level info logs no debug lines");

    // Live: alerts.path, top_features, host, fsync, log.level. Restart: capture.snaplen,
    // capture.bpf_filter, metrics.listen.
    settings_file(
        &config,
        &b,
        2,
        "tap-b",
        "127.0.0.1:1",
        200,
        "tcp",
        "debug",
        false,
    );
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_message("settings reloaded", 0, Duration::from_secs(10))
            .is_some(),
        "{}",
        d.log_text()
    );
    let warnings: Vec<(String, String)> = d
        .log_records()
        .iter()
        .filter(|r| r["level"] == "WARN" && log_message(r).contains("needs a restart"))
        .map(|r| {
            (
                r["fields"]["key"].as_str().unwrap_or("").to_string(),
                log_message(r).to_string(),
            )
        })
        .collect();
    assert_eq!(
        warnings,
        [
            (
                "capture.bpf_filter".to_string(),
                "capture.bpf_filter changed to \"tcp\": needs a restart, still filtering with (unset)".to_string()
            ),
            (
                "capture.snaplen".to_string(),
                "capture.snaplen changed to 200: needs a restart, still using 160".to_string()
            ),
            (
                "metrics.listen".to_string(),
                "metrics.listen changed to 127.0.0.1:1: needs a restart, still listening on 127.0.0.1:0".to_string()
            ),
        ],
        "{}",
        d.log_text()
    );
    let applied: Vec<String> = d
        .log_records()
        .iter()
        .filter(|r| log_message(r).ends_with(": applied"))
        .map(|r| r["fields"]["key"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        applied,
        [
            "alerts.path",
            "alerts.top_features",
            "alerts.host",
            "alerts.fsync",
            "log.level"
        ],
        "{}",
        d.log_text()
    );
    // log.level took effect: debug lines now.
    assert!(
        d.wait_for_message("reload compared every setting", 0, Duration::from_secs(5))
            .is_some_and(|r| r["level"] == "DEBUG"),
        "{}",
        d.log_text()
    );
    assert!(d
        .wait_for_message(
            "alert log switched to the new alerts.path",
            0,
            Duration::from_secs(5)
        )
        .is_some());
    // Still serving metrics on the old port.
    assert_eq!(scrape(addr).value("netanom_model_loaded"), 1.0);

    // The second incident goes to the new path, with the new host and feature count.
    assert!(
        wait_until(Duration::from_secs(20), || !read_alerts(&b).is_empty()),
        "second incident not in the new alerts.path:\n{}",
        d.log_text()
    );
    let second = read_alerts(&b);
    assert_eq!(second[0]["event_type"], "incident_start");
    assert_eq!(second[0]["host"], "tap-b");
    assert_eq!(second[0]["top_features"].as_array().unwrap().len(), 2);

    // A second SIGHUP, file unchanged: the restart-only keys are still not in force, so they
    // are named again; the live ones are in force and are not.
    d.signal(libc::SIGHUP);
    assert!(d
        .wait_for_message("settings reloaded", 1, Duration::from_secs(10))
        .is_some());
    assert_eq!(d.count_messages("capture.snaplen changed to 200"), 2);
    assert_eq!(d.count_messages("alerts.path changed"), 1);
    assert_eq!(d.count_messages("log.level changed"), 1);

    stop(&mut d);
    assert_eq!(
        read_alerts(&a),
        first,
        "the old alerts.path got more events"
    );
    let second = read_alerts(&b);
    for e in &second {
        assert_eq!(e["host"], "tap-b");
    }
    let p = pair_incidents(&second, false);
    assert_eq!(
        p[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "shutdown"
    );
}
