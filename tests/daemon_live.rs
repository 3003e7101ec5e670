//! `netanom run --interface lo`: the daemon on a live interface, end to end. Needs root
//! (capturing on `lo`, hping3's raw socket) and hping3; CI runs as root. Without either the
//! test fails with a message saying so: it does not pass silently.
//!
//! Everything it sends goes to 127.0.0.1 only, bounded by packet count and time.
//!
//! The model (ω = 0.5 s) is trained on a generated capture of quiet loopback traffic: idle
//! windows, bursts of UDP datagrams, short TCP connections. The metrics port is excluded from
//! the capture by `capture.bpf_filter` (our own scrapes would otherwise be traffic). Then, in
//! one daemon's life:
//! (a) idle link: windows close by the clock (about 4 in 2 s);
//! (b) normal-ish loopback traffic: no incident;
//! (c) a SYN flood (hping3): the score gauge goes above the threshold, exactly one incident,
//!     ended by the cooldown;
//! (d) SIGHUP: settings and model reloaded, capture goes on; logrotate (rename + SIGHUP):
//!     later events go to the new file;
//! (e) SIGTERM during a second flood: exit 0 within seconds, the open incident is ended with
//!     `end_reason: "shutdown"`;
//! (f) SIGTERM to a daemon on the idle link: exit 0 within seconds too.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use daemon_support::*;
use serde_json::Value;

struct Fixture {
    model: PathBuf,
    model_id: String,
    threshold: f64,
}

/// The loopback model, trained once per test binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("daemon_live-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let pcap = dir.join("loopback.pcap");
        let mut t = Traffic::new();
        t.loopback(&mut Rng::new(3), T0, 800);
        t.write(&pcap);
        let model = dir.join("model");
        // Threshold: 3 × the largest validation score; floods score thousands of times more.
        train(
            &pcap,
            &model,
            &["--threshold-rule", "max", "--threshold-factor", "3"],
        );
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

fn require_root_and_hping3() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        panic!(
            "tests/daemon_live.rs needs root: it captures on `lo` (CAP_NET_RAW) and runs \
             hping3, which needs a raw socket. Run it as root (CI does), e.g. \
             `sudo -E cargo test --test daemon_live`."
        );
    }
    hping3();
}

/// Where hping3 is: on PATH, or in /usr/sbin or /sbin (not always on a user's PATH).
fn hping3() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|d| d.join("hping3"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tests/daemon_live.rs needs hping3 for the SYN flood on 127.0.0.1 \
                 (`apt-get install hping3`)"
            )
        })
}

fn wall_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A free TCP port on 127.0.0.1 (bound, then released). The daemon must know it in advance:
/// the capture filter excludes it.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// hping3 sending `count` SYNs to 127.0.0.1:80, one per 100 µs (loopback only).
fn start_syn_flood(count: u32) -> ChildGuard {
    let child = Command::new(hping3())
        .args(["-q", "-S", "-p", "80", "-i", "u100", "-c"])
        .arg(count.to_string())
        .arg("127.0.0.1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start hping3");
    ChildGuard(Some(child))
}

/// Waits for the flood to end (it is bounded by its count), at most `timeout`.
fn wait_flood(flood: &mut ChildGuard, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let c = flood.0.as_mut().expect("hping3");
    while c.try_wait().expect("try_wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "hping3 still running after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Normal-ish loopback traffic: `datagrams` UDP datagrams of 64 bytes, 5 ms apart, to a
/// socket that reads them; then `connections` short TCP exchanges with a local listener,
/// 50 ms apart. Returns the packets sent at least (UDP datagrams + 3 per TCP handshake).
fn normal_loopback_traffic(datagrams: usize, connections: usize) -> usize {
    let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let rx_addr = rx.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_rx = stop.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let mut n = 0usize;
        while !stop_rx.load(Ordering::Relaxed) {
            if rx.recv_from(&mut buf).is_ok() {
                n += 1;
            }
        }
        n
    });
    let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..datagrams {
        let payload = [i as u8; 64];
        tx.send_to(&payload, rx_addr).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for _ in 0..connections {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut req = [0u8; 16];
            if s.read_exact(&mut req).is_ok() {
                let _ = s.write_all(&[0x5a; 16]);
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
            }
        }
    });
    for _ in 0..connections {
        let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(&[0xa5; 16]).unwrap();
        let mut resp = [0u8; 16];
        c.read_exact(&mut resp).unwrap();
        drop(c);
        std::thread::sleep(Duration::from_millis(50));
    }
    server.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let received = reader.join().unwrap();
    assert_eq!(received, datagrams, "UDP datagrams lost on loopback");
    datagrams + 3 * connections
}

/// Polls until the alert log at `path` has at least `n` events, at most `timeout`.
fn wait_events(path: &Path, n: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let e = read_alerts(path);
        if e.len() >= n || Instant::now() >= deadline {
            return e;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_loopback_flood_event(e: &Value) {
    check_event(e, 0.5);
    assert_eq!(e["top_talkers"]["source"][0]["ip"], "127.0.0.1", "{e}");
    assert_eq!(e["top_talkers"]["destination"][0]["ip"], "127.0.0.1", "{e}");
    assert_eq!(e["top_talkers"]["destination_port"][0]["port"], 80, "{e}");
    let names: Vec<&str> = e["top_features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("syn_")),
        "no SYN feature among the top features {names:?}"
    );
}

/// The live tests of this binary both send traffic on `lo`: one at a time.
fn lo_lock() -> std::sync::MutexGuard<'static, ()> {
    static LO: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LO.lock().unwrap_or_else(|p| p.into_inner())
}

#[test]
fn live_loopback_daemon() {
    require_root_and_hping3();
    let _lo = lo_lock();
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("alerts.jsonl");
    let rotated = tmp.path().join("alerts.jsonl.1");
    let port = free_port();
    let filter = format!("not tcp port {port}");
    let listen = format!("127.0.0.1:{port}");
    let args = os_args([
        "--interface",
        "lo",
        "--model",
        fx.model.to_str().unwrap(),
        "--alert-log",
        log.to_str().unwrap(),
        "--metrics-listen",
        &listen,
    ]);
    let mut d = Daemon::start(&args, &[("NETANOM_CAPTURE__BPF_FILTER", &filter)]);
    assert!(
        d.wait_for_message("netanom running", 0, Duration::from_secs(30))
            .is_some(),
        "the daemon did not start:\n{}",
        d.log_text()
    );
    let addr = d.metrics_addr(Duration::from_secs(5));
    assert_eq!(addr.port(), port);

    // (a) Idle link: windows close by the wall clock.
    std::thread::sleep(Duration::from_millis(700));
    let before = scrape(addr);
    let t = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = scrape(addr);
    let dt = t.elapsed().as_secs_f64();
    let advanced = after.value("netanom_windows_total") - before.value("netanom_windows_total");
    let expected = dt / 0.5;
    assert!(
        (advanced - expected).abs() <= 1.5,
        "(a) idle lo: {advanced} windows closed in {dt:.2} s, expected about {expected:.1}:\n{}",
        d.log_text()
    );
    let lag = wall_s() - after.value("netanom_last_window_end_timestamp_seconds");
    assert!(
        (0.0..2.0).contains(&lag),
        "(a) the last window ended {lag:.2} s ago: windows follow the wall clock"
    );
    let h = http_get(addr, "/healthz").expect("GET /healthz");
    assert_eq!((h.status, h.body.trim()), (200, "ok"), "(a) {h:?}");

    // (b) Normal-ish traffic: counted, scored, no incident.
    let p0 = after.value("netanom_packets_total");
    let sent = normal_loopback_traffic(300, 20);
    std::thread::sleep(Duration::from_millis(2500));
    let e = scrape(addr);
    assert!(
        e.value("netanom_packets_total") - p0 >= sent as f64,
        "(b) netanom_packets_total grew by {} for at least {sent} packets sent",
        e.value("netanom_packets_total") - p0
    );
    assert_eq!(
        e.value("netanom_alert_windows_total"),
        0.0,
        "(b) normal loopback traffic scored above the threshold {}:\n{}",
        fx.threshold,
        d.log_text()
    );
    assert!(
        read_alerts(&log).is_empty(),
        "(b) incidents on normal traffic"
    );
    assert!(e.value("netanom_windows_scored_total") >= 8.0);

    // (c) SYN flood: the gauge goes above the threshold; one incident, ended by the cooldown.
    let flood_start = wall_s();
    let mut flood = start_syn_flood(20_000);
    let mut max_score = 0.0f64;
    let mut saw_active = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while flood.0.as_mut().unwrap().try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "(c) hping3 still running after 30 s"
        );
        let e = scrape(addr);
        max_score = max_score.max(e.value("netanom_anomaly_score"));
        saw_active |= e.value("netanom_incident_active") == 1.0;
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_flood(&mut flood, Duration::from_secs(1));
    let flood_end = wall_s();
    // Cooldown: the runs of three still holding flood windows, then 3 calm windows.
    let events = wait_events(&log, 2, Duration::from_secs(15));
    let e = scrape(addr);
    max_score = max_score.max(e.value("netanom_anomaly_score"));
    assert!(
        max_score > fx.threshold,
        "(c) the score gauge never went above the threshold {}: max {max_score}",
        fx.threshold
    );
    assert!(
        saw_active,
        "(c) netanom_incident_active was never 1 during the flood"
    );
    assert_eq!(
        events.len(),
        2,
        "(c) one incident for the flood:\n{events:#?}\n{}",
        d.log_text()
    );
    let first = pair_incidents(&events, false);
    let (start, end) = (&first[0].0, first[0].1.as_ref().unwrap());
    for ev in [start, end] {
        check_loopback_flood_event(ev);
        assert_eq!(ev["model"]["id"], fx.model_id.as_str());
    }
    assert_eq!(end["incident"]["end_reason"], "cooldown", "(c) {end}");
    let inc_start = start["incident"]["start_epoch"].as_f64().unwrap();
    assert!(
        inc_start >= flood_start - 1.0 && inc_start <= flood_end,
        "(c) the incident starts at {inc_start}, the flood ran {flood_start:.2}–{flood_end:.2}"
    );
    assert!(
        start["score"].as_f64().unwrap() > fx.threshold,
        "(c) start score"
    );
    assert_eq!(e.value("netanom_incidents_total"), 1.0);
    assert_eq!(e.value("netanom_incident_active"), 0.0);
    assert!(e.value("netanom_alert_windows_total") >= 2.0);

    // (d) SIGHUP: reload; capture goes on with the same model.
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_message("settings reloaded", 0, Duration::from_secs(10))
            .is_some(),
        "(d) no 'reloaded' log line after SIGHUP:\n{}",
        d.log_text()
    );
    assert!(
        d.wait_for_message("alert log reopened", 0, Duration::from_secs(5))
            .is_some(),
        "(d) {}",
        d.log_text()
    );
    let w0 = scrape(addr).value("netanom_windows_total");
    std::thread::sleep(Duration::from_millis(1600));
    let e = scrape(addr);
    assert!(
        e.value("netanom_windows_total") >= w0 + 2.0,
        "(d) windows stopped after SIGHUP: {w0} then {}",
        e.value("netanom_windows_total")
    );
    let info = e.all("netanom_model_info");
    assert_eq!(info.len(), 1, "(d) {info:?}");
    assert_eq!(info[0].value, 1.0);
    assert_eq!(
        info[0].labels.get("model_id").map(String::as_str),
        Some(fx.model_id.as_str())
    );
    assert!(d.running(), "(d) the daemon exited on SIGHUP");

    // logrotate: rename the file, SIGHUP; the next events go to a new file at the path.
    std::fs::rename(&log, &rotated).unwrap();
    d.signal(libc::SIGHUP);
    assert!(
        d.wait_for_message("alert log reopened", 1, Duration::from_secs(10))
            .is_some(),
        "(d) the alert log was not reopened on the second SIGHUP:\n{}",
        d.log_text()
    );
    assert!(log.is_file(), "(d) no new alert log after SIGHUP");

    // (e) A second flood; SIGTERM while its incident is open.
    let mut flood = start_syn_flood(100_000);
    let started = wait_events(&log, 1, Duration::from_secs(15));
    assert_eq!(
        started.len(),
        1,
        "(e) the second flood's incident_start in the new file:\n{started:#?}\n{}",
        d.log_text()
    );
    d.signal(libc::SIGTERM);
    let t = Instant::now();
    let status = d.wait_exit(Duration::from_secs(5));
    // The flood is not needed any more, whatever happened.
    if let Some(c) = flood.0.as_mut() {
        let _ = c.kill();
    }
    let status = status.unwrap_or_else(|| {
        panic!(
            "(e) still running {:?} after SIGTERM:\n{}",
            t.elapsed(),
            d.log_text()
        )
    });
    assert_eq!(
        status.code(),
        Some(0),
        "(e) exit status after SIGTERM:\n{}",
        d.log_text()
    );

    // The rotated file: the first incident, complete, nothing after the rename.
    assert_eq!(
        read_alerts(&rotated),
        events,
        "(d) the rotated file changed"
    );
    // The new file: the second incident, ended by the shutdown.
    let new = read_alerts(&log);
    let second = pair_incidents(&new, false);
    assert_eq!(second.len(), 1, "(e) {new:#?}");
    for ev in &new {
        check_loopback_flood_event(ev);
    }
    assert_eq!(
        second[0].1.as_ref().unwrap()["incident"]["end_reason"],
        "shutdown"
    );
    assert_ne!(
        second[0].0["incident"]["id"], start["incident"]["id"],
        "incident ids repeat"
    );
    let stopping = d
        .log_records()
        .into_iter()
        .find(|r| log_message(r) == "stopping")
        .expect("a 'stopping' log line");
    assert_eq!(stopping["fields"]["reason"], "SIGTERM");
    assert!(d.count_messages("stopped") >= 1, "{}", d.log_text());

    // (f) A second daemon on the idle link (nothing sends any more): SIGTERM must not wait
    // for a packet.
    let log2 = tmp.path().join("idle.jsonl");
    let port2 = free_port();
    let filter2 = format!("not tcp port {port2}");
    let listen2 = format!("127.0.0.1:{port2}");
    let args2 = os_args([
        "--interface",
        "lo",
        "--model",
        fx.model.to_str().unwrap(),
        "--alert-log",
        log2.to_str().unwrap(),
        "--metrics-listen",
        &listen2,
    ]);
    let mut d2 = Daemon::start(&args2, &[("NETANOM_CAPTURE__BPF_FILTER", &filter2)]);
    assert!(
        d2.wait_for_message("netanom running", 0, Duration::from_secs(30))
            .is_some(),
        "(f) {}",
        d2.log_text()
    );
    std::thread::sleep(Duration::from_secs(1));
    d2.signal(libc::SIGTERM);
    let status = d2
        .wait_exit(Duration::from_secs(3))
        .unwrap_or_else(|| panic!("(f) still running 3 s after SIGTERM on an idle link"));
    assert_eq!(status.code(), Some(0), "(f) {}", d2.log_text());
    assert!(
        read_alerts(&log2).is_empty(),
        "(f) incidents on an idle link"
    );
}

/// Learning mode, live: a fresh daemon with no model captures `lo`, records the history,
/// serves metrics and alerts nothing while it learns from light real traffic; after 20 s it
/// trains in the background, installs the model (temporary directory, then rename), loads it
/// and reports an incident for a bounded SYN flood.
#[test]
fn a_fresh_daemon_learns_the_link_then_reports_a_flood() {
    require_root_and_hping3();
    let _lo = lo_lock();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    let history = tmp.path().join("history");
    let log = tmp.path().join("alerts.jsonl");
    let port = free_port();
    let filter = format!("not tcp port {port}");
    let listen = format!("127.0.0.1:{port}");
    let args = os_args([
        "--interface",
        "lo",
        "--window",
        "0.5",
        "--learn-for",
        "20s",
        "--model",
        model.to_str().unwrap(),
        "--history-dir",
        history.to_str().unwrap(),
        "--alert-log",
        log.to_str().unwrap(),
        "--metrics-listen",
        &listen,
    ]);
    let mut d = Daemon::start(
        &args,
        &[
            ("NETANOM_CAPTURE__BPF_FILTER", &filter),
            ("NETANOM_LEARNING__EPOCHS", "20"),
            ("NETANOM_LEARNING__HIDDEN", "16"),
        ],
    );
    assert!(
        d.wait_for_message("netanom running", 0, Duration::from_secs(30))
            .is_some(),
        "the daemon did not start:\n{}",
        d.log_text()
    );
    let addr = d.metrics_addr(Duration::from_secs(5));
    // Light real traffic while it learns.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_traffic = stop.clone();
    let traffic = std::thread::spawn(move || {
        while !stop_traffic.load(Ordering::Relaxed) {
            normal_loopback_traffic(40, 4);
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let learning = scrape(addr);
    assert_eq!(learning.value("netanom_model_loaded"), 0.0, "no model yet");
    let progress = learning.value("netanom_learning_progress_ratio");
    assert!((0.0..1.0).contains(&progress), "progress {progress}");
    assert_eq!(learning.value("netanom_windows_scored_total"), 0.0);
    // Learning is a healthy state: the watchdog and /healthz see windows go through.
    let h = http_get(addr, "/healthz").expect("GET /healthz");
    assert_eq!((h.status, h.body.trim()), (200, "ok"), "learning: {h:?}");
    // The traffic goes on after learning: it is this link's normal.
    let learned = d.wait_for_message("learning done", 0, Duration::from_secs(180));
    assert!(
        learned.is_some(),
        "no model learned within 180 s:\n{}",
        d.log_text()
    );
    assert!(
        read_alerts(&log).is_empty(),
        "alerts while learning: {:?}",
        read_alerts(&log)
    );
    let current = std::fs::read_link(model.join("current")).expect("model/current link");
    assert!(current.starts_with("bundles"), "{current:?}");
    assert!(model.join("current/model.json").is_file());
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("current/model.json")).unwrap())
            .unwrap();
    let model_id = meta["model_id"].as_str().unwrap().to_string();
    let (ok, trained) = scrape_until(addr, Duration::from_secs(10), |e| {
        e.get("netanom_model_loaded") == Some(1.0)
            && e.get("netanom_windows_scored_total").unwrap_or(0.0) > 0.0
    });
    assert!(ok, "the learned model is not scoring:\n{}", d.log_text());
    assert_eq!(
        labelled(&trained, "netanom_retrains_total", "result", "learned"),
        Some(1.0)
    );
    assert_eq!(trained.value("netanom_learning_progress_ratio"), 1.0);

    // Now it detects. A model learned from 20 s of traffic may still flag an odd window of
    // it; what must hold is that the flood is reported, by the learned model, and explained
    // by its SYNs (the end event explains the peak window).
    let flood_start = wall_s();
    let mut flood = start_syn_flood(20_000);
    wait_flood(&mut flood, Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(30);
    let flood_end = loop {
        let end = read_alerts(&log).into_iter().find(|e| {
            e["event_type"] == "incident_end"
                && e["incident"]["end_epoch"].as_f64().unwrap_or(0.0) >= flood_start
        });
        if let Some(e) = end {
            break e;
        }
        assert!(
            Instant::now() < deadline,
            "the learned model reported no incident for the flood:\n{}",
            d.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    assert_eq!(flood_end["model"]["id"], model_id.as_str());
    check_loopback_flood_event(&flood_end);
    let peak_end = flood_end["incident"]["peak_window"]["end_epoch"]
        .as_f64()
        .unwrap();
    assert!(
        peak_end >= flood_start,
        "the peak is the flood's: {flood_end}"
    );
    d.signal(libc::SIGTERM);
    let status = d
        .wait_exit(Duration::from_secs(20))
        .expect("exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", d.log_text());
    // The history holds what it learned from.
    let out = std::process::Command::new(netanom_bin())
        .args(["history", "--json", "--dir"])
        .arg(&history)
        .output()
        .unwrap();
    let h: Value = serde_json::from_slice(&out.stdout).expect("history --json");
    assert!(h["windows"].as_u64().unwrap() >= 40, "{h}");
}
