//! Several taps, one model: `netanom sensor` publishes partial windows to NATS JetStream,
//! `netanom run --nats URL --sensors a,b` merges and scores them. Each test starts its own
//! `nats-server -js` on a free port with a temporary store (scripts/setup.sh installs it).
//!
//! - Two sensors replaying two halves of a capture (each packet in exactly one half) give the
//!   collector the windows of one daemon replaying the whole capture: the same window starts,
//!   features bitwise, none incomplete, and the same incidents.
//! - A sensor killed (-9) mid-run: windows keep coming, flagged incomplete; no stall.
//! - nats-server killed (-9) and started again on its store mid-run: every window arrives,
//!   once.
//! - The collector killed (-9) mid-run while one sensor's windows wait for the other's: the
//!   restarted collector merges what its predecessor had not acknowledged, and the two runs
//!   together recorded every window of the capture, once, complete, with the reference's
//!   features; nothing was delivered twice while the first one ran (progress reminders).
//! - Live sensors on lo: a sensor killed (-9) and restarted with the same name resumes, the
//!   windows after it are complete again; a sensor paused for less than the lateness bound has
//!   its late partials merged, not dropped.
//! - A message larger than the server's max_payload is given up at once and counted, the next
//!   one is published; a replaying sensor with no server fails within its connect bound,
//!   naming the URL.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/nats.rs"]
mod nats;

use std::ffi::OsString;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use daemon_support::*;
use nats::NatsServer;
use netanom::history::HistoryRow;
use serde_json::Value;

/// The LAN model (ω = 0.5 s) and a capture with a SYN flood, split in two halves.
struct Fixture {
    model: PathBuf,
    whole: PathBuf,
    halves: [PathBuf; 2],
    /// The same traffic without the flood, shorter, for the paced tests.
    paced_whole: PathBuf,
    paced_halves: [PathBuf; 2],
}

/// Windows of the capture, and of the flood in it.
const WINDOWS: i64 = 80;
const FLOOD: (i64, i64) = (30, 6);
/// Windows of the paced captures (20 s at ω = 0.5 s).
const PACED_WINDOWS: i64 = 40;

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("nats_sensors-fixture");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("fixture dir");
        let normal = dir.join("normal.pcap");
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(1), T0, 600);
        t.write(&normal);
        let model = dir.join("model");
        train(&normal, &model, &["--threshold-factor", "3"]);
        let t1 = T0 + 10_000 * OMEGA_NS;
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(7), t1, WINDOWS);
        t.syn_flood(
            t1 + FLOOD.0 * OMEGA_NS,
            FLOOD.1 * OMEGA_NS,
            2_000 * FLOOD.1 as usize,
            FLOODER,
            VICTIM,
            &ports(6000),
        );
        let whole = dir.join("whole.pcap");
        t.write(&whole);
        let halves = split(&whole, &dir, "half");
        let mut t = Traffic::new();
        t.lan(&mut Rng::new(9), t1, PACED_WINDOWS);
        let paced_whole = dir.join("paced.pcap");
        t.write(&paced_whole);
        let paced_halves = split(&paced_whole, &dir, "paced-half");
        Fixture {
            model,
            whole,
            halves,
            paced_whole,
            paced_halves,
        }
    })
}

/// Splits a capture in two by the low bit of the IPv4 header checksum (every packet in
/// exactly one half; packets of one connection land on both sides).
fn split(whole: &Path, dir: &Path, name: &str) -> [PathBuf; 2] {
    let filters = ["ip and ip[11] & 1 = 0", "not (ip and ip[11] & 1 = 0)"];
    let out: Vec<PathBuf> = filters
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let p = dir.join(format!("{name}-{i}.pcap"));
            let o = Command::new("tcpdump")
                .args(["-q", "-r"])
                .arg(whole)
                .arg("-w")
                .arg(&p)
                .arg(f)
                .output()
                .expect("tcpdump (apt-get install tcpdump)");
            assert!(
                o.status.success(),
                "tcpdump: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            p
        })
        .collect();
    let count = |p: &Path| pcap_packets(p);
    assert_eq!(count(&out[0]) + count(&out[1]), count(whole));
    assert!(count(&out[0]) > 50 && count(&out[1]) > 50);
    [out[0].clone(), out[1].clone()]
}

/// Packets in a classic pcap file (16-byte record headers).
fn pcap_packets(p: &Path) -> usize {
    let b = std::fs::read(p).unwrap();
    let mut i = 24;
    let mut n = 0;
    while i + 16 <= b.len() {
        let incl = u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()) as usize;
        i += 16 + incl;
        n += 1;
    }
    n
}

/// Every recorded row of ω = 0.5 s under `dir`.
fn rows(dir: &Path) -> Vec<HistoryRow> {
    history_rows(dir, 500_000)
}

/// One daemon replaying `pcap` to its end: its history rows and alert events.
fn reference(pcap: &Path, tmp: &Path) -> (Vec<HistoryRow>, Vec<Value>) {
    let (hist, log) = (tmp.join("ref-history"), tmp.join("ref.jsonl"));
    let mut cmd = netanom_command();
    cmd.arg("run")
        .arg("--pcap")
        .arg(pcap)
        .arg("--model")
        .arg(&fixture().model)
        .arg("--alert-log")
        .arg(&log)
        .arg("--history-dir")
        .arg(&hist)
        .args(["--metrics-listen", "127.0.0.1:0"]);
    run_with_timeout(cmd, Duration::from_secs(120), "netanom run --pcap").assert_ok("reference");
    (rows(&hist), read_alerts(&log))
}

/// The collector of sensors `a` and `b`, recording to `tmp/col-history`.
fn collector(url: &str, tmp: &Path, envs: &[(&str, &str)]) -> Daemon {
    let args: Vec<OsString> = os_args([
        "--nats",
        url,
        "--sensors",
        "a,b",
        "--metrics-listen",
        "127.0.0.1:0",
    ])
    .into_iter()
    .chain(os_args(["--model".as_ref(), fixture().model.as_os_str()]))
    .chain(os_args([
        "--alert-log".as_ref(),
        tmp.join("col.jsonl").as_os_str(),
    ]))
    .chain(os_args([
        "--history-dir".as_ref(),
        tmp.join("col-history").as_os_str(),
    ]))
    .collect();
    Daemon::start(&args, envs)
}

/// `netanom sensor --pcap PCAP --window 0.5 --nats URL --sensor NAME [--realtime]`.
fn sensor(url: &str, name: &str, pcap: &Path, realtime: bool) -> Daemon {
    let mut cmd = netanom_command();
    cmd.args([
        "sensor", "--window", "0.5", "--nats", url, "--sensor", name, "--pcap",
    ])
    .arg(pcap);
    if realtime {
        cmd.arg("--realtime");
    }
    Daemon::spawn(cmd, &[])
}

/// Waits for a sensor to exit 0.
fn sensor_done(s: &mut Daemon, timeout: Duration) {
    let status = s.wait_exit(timeout);
    assert!(
        status.is_some_and(|s| s.success()),
        "sensor: {status:?}\n{}",
        s.log_text()
    );
}

/// Scrapes until `cond` holds; panics after `timeout`.
fn wait_metric(
    d: &Daemon,
    addr: std::net::SocketAddr,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let (ok, e) = scrape_until(addr, timeout, cond);
    assert!(ok, "{what}: not within {timeout:?}\n{}", d.log_text());
    e
}

/// Stops the collector (SIGTERM, exit 0).
fn stop(d: &mut Daemon) {
    d.signal(libc::SIGTERM);
    let status = d.wait_exit(Duration::from_secs(30));
    assert!(
        status.is_some_and(|s| s.success()),
        "collector: {status:?}\n{}",
        d.log_text()
    );
}

/// Rows have unique starts, the reference's starts, and bitwise the same features.
fn assert_same_windows(got: &[HistoryRow], want: &[HistoryRow]) {
    let starts = |r: &[HistoryRow]| r.iter().map(|r| r.start_ns).collect::<Vec<_>>();
    assert_eq!(starts(got), starts(want), "window starts (each once)");
    for (g, w) in got.iter().zip(want) {
        let bits = |r: &HistoryRow| r.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(g),
            bits(w),
            "window at {}: {:?}\nvs {:?}",
            g.start_ns,
            g.features,
            w.features
        );
        assert_eq!(
            (g.packets, g.score.map(f64::to_bits)),
            (w.packets, w.score.map(f64::to_bits))
        );
    }
}

/// The incidents of an alert log: (start, end, peak score, windows, end reason).
fn incidents(events: &[Value]) -> Vec<(String, String, u64, Value)> {
    pair_incidents(events, false)
        .into_iter()
        .map(|(s, e)| {
            let e = e.expect("ended");
            (
                s["incident"]["start"].to_string(),
                e["incident"]["end"].to_string(),
                e["incident"]["peak_score"].as_f64().unwrap().to_bits(),
                e["incident"]["end_reason"].clone(),
            )
        })
        .collect()
}

#[test]
fn two_sensors_on_two_halves_give_one_daemons_windows_and_incidents() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (want, want_alerts) = reference(&fx.whole, tmp.path());
    assert_eq!(want.len(), WINDOWS as usize);
    let want_incidents = incidents(&want_alerts);
    assert_eq!(want_incidents.len(), 1, "{want_alerts:#?}");
    let server = NatsServer::start(&tmp.path().join("js"));
    let mut col = collector(&server.url(), tmp.path(), &[]);
    let addr = col.metrics_addr(Duration::from_secs(30));
    let mut a = sensor(&server.url(), "a", &fx.halves[0], false);
    let mut b = sensor(&server.url(), "b", &fx.halves[1], false);
    sensor_done(&mut a, Duration::from_secs(60));
    sensor_done(&mut b, Duration::from_secs(60));
    let e = wait_metric(
        &col,
        addr,
        Duration::from_secs(60),
        "every window merged",
        |e| e.value("netanom_windows_total") >= WINDOWS as f64,
    );
    assert_eq!(e.value("netanom_windows_incomplete_total"), 0.0);
    for s in ["a", "b"] {
        let merged = e
            .all("netanom_partials_total")
            .into_iter()
            .filter(|x| x.labels.get("source").map(String::as_str) == Some(s))
            .filter(|x| x.labels.get("result").map(String::as_str) == Some("merged"))
            .map(|x| x.value)
            .sum::<f64>();
        assert!(merged > 0.0 && merged <= WINDOWS as f64, "{s}: {merged}");
    }
    stop(&mut col);
    let got = rows(&tmp.path().join("col-history"));
    assert_same_windows(&got, &want);
    assert_eq!(
        incidents(&read_alerts(&tmp.path().join("col.jsonl"))),
        want_incidents
    );
}

#[test]
fn a_sensor_killed_mid_run_gives_incomplete_windows_never_a_stall() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&tmp.path().join("js"));
    let mut col = collector(
        &server.url(),
        tmp.path(),
        &[("NETANOM_NATS__LIVENESS", "2s")],
    );
    let addr = col.metrics_addr(Duration::from_secs(30));
    let mut a = sensor(&server.url(), "a", &fx.paced_halves[0], true);
    let b = sensor(&server.url(), "b", &fx.paced_halves[1], true);
    wait_metric(
        &col,
        addr,
        Duration::from_secs(30),
        "windows of both",
        |e| e.value("netanom_windows_total") >= 4.0,
    );
    // SAFETY: kill(2) on the child's pid.
    assert_eq!(unsafe { libc::kill(b.pid(), libc::SIGKILL) }, 0);
    let killed = Instant::now();
    let before = scrape(addr).value("netanom_windows_total");
    // Windows keep coming, a's alone, flagged incomplete.
    wait_metric(
        &col,
        addr,
        Duration::from_secs(30),
        "windows after the kill",
        |e| {
            e.value("netanom_windows_total") >= before + 8.0
                && e.value("netanom_windows_incomplete_total") >= 4.0
        },
    );
    assert!(killed.elapsed() < Duration::from_secs(20));
    assert!(col.count_messages("window merged without the partial of a sensor") >= 1);
    sensor_done(&mut a, Duration::from_secs(60));
    // a's last window fires by itself once a ended; every window once, none after a's last.
    let last = wait_metric(
        &col,
        addr,
        Duration::from_secs(20),
        "a's last window",
        |x| x.value("netanom_windows_total") >= PACED_WINDOWS as f64 - 1.0,
    );
    stop(&mut col);
    let got = rows(&tmp.path().join("col-history"));
    let starts: Vec<i64> = got.iter().map(|r| r.start_ns).collect();
    let t1 = T0 + 10_000 * OMEGA_NS;
    assert_eq!(
        starts,
        (0..starts.len() as i64)
            .map(|i| t1 + i * OMEGA_NS)
            .collect::<Vec<_>>(),
        "consecutive windows from the capture's first, each once"
    );
    assert!(
        got.len() as i64 <= PACED_WINDOWS
            && got.len() as f64 >= last.value("netanom_windows_total"),
        "{} windows",
        got.len()
    );
    // The windows after the kill hold a's packets only: fewer than the reference's.
    let (want, _) = reference(&fx.paced_whole, tmp.path());
    let after_kill = got.len() - 2;
    assert!(got[after_kill].packets < want[after_kill].packets);
}

#[test]
fn nats_server_killed_and_restarted_loses_nothing() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (want, _) = reference(&fx.paced_whole, tmp.path());
    let mut server = NatsServer::start(&tmp.path().join("js"));
    let mut col = collector(&server.url(), tmp.path(), &[]);
    let addr = col.metrics_addr(Duration::from_secs(30));
    let mut a = sensor(&server.url(), "a", &fx.paced_halves[0], true);
    let mut b = sensor(&server.url(), "b", &fx.paced_halves[1], true);
    wait_metric(
        &col,
        addr,
        Duration::from_secs(30),
        "windows before the restart",
        |e| e.value("netanom_windows_total") >= 6.0,
    );
    server.kill();
    // Longer than the client's 5 s wait for JetStream's acknowledgement: the sensors' pending
    // publishes fail and are retried with the same message ids.
    std::thread::sleep(Duration::from_secs(7));
    server.restart();
    sensor_done(&mut a, Duration::from_secs(90));
    sensor_done(&mut b, Duration::from_secs(90));
    // The sensors did meet the dead server, and retried.
    let logs = format!("{}{}", a.log_text(), b.log_text());
    assert!(logs.contains("publishing failed, retrying"), "{logs}");
    let e = wait_metric(
        &col,
        addr,
        Duration::from_secs(60),
        "every window after the restart",
        |e| e.value("netanom_windows_total") >= want.len() as f64,
    );
    assert_eq!(
        e.value("netanom_windows_incomplete_total"),
        0.0,
        "{}",
        col.log_text()
    );
    stop(&mut col);
    assert_same_windows(&rows(&tmp.path().join("col-history")), &want);
}

/// `partials_total{source, result}` of an exposition.
fn partials(e: &Exposition, source: &str, result: &str) -> f64 {
    e.all("netanom_partials_total")
        .into_iter()
        .filter(|x| x.labels.get("source").map(String::as_str) == Some(source))
        .filter(|x| x.labels.get("result").map(String::as_str) == Some(result))
        .map(|x| x.value)
        .sum()
}

/// Kills `d` with SIGKILL and waits for it.
fn kill9(d: &mut Daemon) {
    d.signal(libc::SIGKILL);
    assert!(d.wait_exit(Duration::from_secs(10)).is_some(), "not killed");
}

/// Waits until no window fires any more (two scrapes 200 ms apart agree) and the history
/// under `dir` holds every window scored (the recorder flushes every second).
fn wait_settled(addr: std::net::SocketAddr, dir: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut last = -1.0;
    loop {
        let w = scrape(addr).value("netanom_windows_total");
        let got = rows(dir).len();
        if w == last && got as f64 >= w {
            return;
        }
        last = w;
        assert!(
            Instant::now() < deadline,
            "{got} history rows of {w} windows"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_collector_killed_mid_run_loses_no_window_jetstream_kept() {
    let fx = fixture();
    let tmp = tempfile::tempdir().unwrap();
    let (want, _) = reference(&fx.paced_whole, tmp.path());
    assert_eq!(want.len(), PACED_WINDOWS as usize);
    let server = NatsServer::start(&tmp.path().join("js"));
    // ack_wait 9 s: much shorter than the 20 s a's windows wait for b's.
    let envs = [
        ("NETANOM_NATS__LIVENESS", "6s"),
        ("NETANOM_NATS__ACK_WAIT", "9s"),
    ];
    let mut col = collector(&server.url(), tmp.path(), &envs);
    let addr = col.metrics_addr(Duration::from_secs(30));
    // a replays at full speed: all its windows wait in the collector for b's, paced.
    let mut a = sensor(&server.url(), "a", &fx.paced_halves[0], false);
    let mut b = sensor(&server.url(), "b", &fx.paced_halves[1], true);
    sensor_done(&mut a, Duration::from_secs(60));
    let e = wait_metric(
        &col,
        addr,
        Duration::from_secs(60),
        "windows past ack_wait",
        |e| e.value("netanom_windows_total") >= 24.0,
    );
    // a's windows waited longer than ack_wait, and none was delivered again.
    assert_eq!(partials(&e, "a", "duplicate"), 0.0, "{}", col.log_text());
    assert_eq!(e.value("netanom_windows_incomplete_total"), 0.0);
    // Hold b, let the recorder write what fired, then kill the collector.
    b.signal(libc::SIGSTOP);
    wait_settled(
        addr,
        &tmp.path().join("col-history"),
        Duration::from_secs(4),
    );
    kill9(&mut col);
    let first_run = rows(&tmp.path().join("col-history")).len();
    assert!(first_run < want.len(), "{first_run}");
    let mut col = collector(&server.url(), tmp.path(), &envs);
    let addr = col.metrics_addr(Duration::from_secs(30));
    b.signal(libc::SIGCONT);
    sensor_done(&mut b, Duration::from_secs(90));
    let e = wait_metric(
        &col,
        addr,
        Duration::from_secs(60),
        "the windows after the restart",
        |e| e.value("netanom_windows_total") >= (want.len() - first_run) as f64,
    );
    assert_eq!(
        e.value("netanom_windows_incomplete_total"),
        0.0,
        "{}",
        col.log_text()
    );
    assert_eq!(partials(&e, "a", "late"), 0.0);
    stop(&mut col);
    // Both runs together: every window once, with the reference's features and packets; the
    // scorer restarts its three-window run after the restart.
    let got = rows(&tmp.path().join("col-history"));
    let starts = |r: &[HistoryRow]| r.iter().map(|r| r.start_ns).collect::<Vec<_>>();
    assert_eq!(starts(&got), starts(&want), "window starts (each once)");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let bits = |r: &HistoryRow| r.features.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!((bits(g), g.packets), (bits(w), w.packets), "window {i}");
        if i < first_run || i >= first_run + 2 {
            assert_eq!(
                g.score.map(f64::to_bits),
                w.score.map(f64::to_bits),
                "window {i}"
            );
        }
    }
}

/// UDP datagrams to 127.0.0.1 on each of `ports`, every 20 ms, until stopped (at most 2
/// minutes).
struct LoopbackTraffic {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackTraffic {
    fn start(ports: &[u16]) -> LoopbackTraffic {
        let stop = Arc::new(AtomicBool::new(false));
        let (ports, stop2) = (ports.to_vec(), stop.clone());
        let thread = std::thread::spawn(move || {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let until = Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < until {
                for &p in &ports {
                    let _ = sock.send_to(b"netanom test", ("127.0.0.1", p));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        LoopbackTraffic {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for LoopbackTraffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Two free UDP ports on 127.0.0.1 (nothing listens: the datagrams only cross lo).
fn free_udp_ports() -> [u16; 2] {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    [
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    ]
}

/// `netanom sensor --interface lo` seeing only UDP to `port`.
fn live_sensor(url: &str, name: &str, port: u16) -> Daemon {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "live sensors capture on lo: run as root (CI does)"
    );
    let mut cmd = netanom_command();
    cmd.args([
        "sensor",
        "--window",
        "0.5",
        "--nats",
        url,
        "--sensor",
        name,
        "--interface",
        "lo",
        "--bpf-filter",
        &format!("udp and dst port {port}"),
    ]);
    Daemon::spawn(cmd, &[])
}

#[test]
fn a_live_sensor_killed_and_restarted_resumes_with_complete_windows() {
    let tmp = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&tmp.path().join("js"));
    let mut col = collector(
        &server.url(),
        tmp.path(),
        &[("NETANOM_NATS__LIVENESS", "3s")],
    );
    let addr = col.metrics_addr(Duration::from_secs(30));
    let ports = free_udp_ports();
    let _traffic = LoopbackTraffic::start(&ports);
    let _a = live_sensor(&server.url(), "a", ports[0]);
    let mut b = live_sensor(&server.url(), "b", ports[1]);
    wait_metric(&col, addr, Duration::from_secs(30), "b merged", |e| {
        partials(e, "b", "merged") >= 6.0
    });
    kill9(&mut b);
    let before = scrape(addr).value("netanom_windows_incomplete_total");
    wait_metric(
        &col,
        addr,
        Duration::from_secs(30),
        "windows without b",
        |e| e.value("netanom_windows_incomplete_total") >= before + 3.0,
    );
    // Restarted with the same name: it resumes, and the collector waits for it again.
    let merged = scrape(addr);
    let b_merged = partials(&merged, "b", "merged");
    let _b = live_sensor(&server.url(), "b", ports[1]);
    let e = wait_metric(&col, addr, Duration::from_secs(30), "b back", |e| {
        partials(e, "b", "merged") >= b_merged + 4.0
    });
    // Every window from now on is complete: b's and a's partials merged. (Its first partial
    // may have come after its window fired: b was dead until heard.)
    let (incomplete, windows, late) = (
        e.value("netanom_windows_incomplete_total"),
        e.value("netanom_windows_total"),
        partials(&e, "b", "late"),
    );
    let e = wait_metric(
        &col,
        addr,
        Duration::from_secs(30),
        "ten more windows",
        |e| e.value("netanom_windows_total") >= windows + 10.0,
    );
    assert_eq!(
        e.value("netanom_windows_incomplete_total"),
        incomplete,
        "{}",
        col.log_text()
    );
    assert!(partials(&e, "b", "merged") >= b_merged + 14.0);
    assert_eq!(partials(&e, "b", "late"), late);
    stop(&mut col);
}

#[test]
fn a_late_partial_within_the_lateness_bound_is_merged() {
    let tmp = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&tmp.path().join("js"));
    let mut col = collector(
        &server.url(),
        tmp.path(),
        &[("NETANOM_NATS__LATENESS", "5s")],
    );
    let addr = col.metrics_addr(Duration::from_secs(30));
    let ports = free_udp_ports();
    let _traffic = LoopbackTraffic::start(&ports);
    let _a = live_sensor(&server.url(), "a", ports[0]);
    let b = live_sensor(&server.url(), "b", ports[1]);
    // Long enough for the windows before b started to have fired (incomplete or not).
    let e = wait_metric(&col, addr, Duration::from_secs(40), "both merged", |e| {
        partials(e, "b", "merged") >= 14.0 && partials(e, "a", "merged") >= 14.0
    });
    let (incomplete, windows, b_merged) = (
        e.value("netanom_windows_incomplete_total"),
        e.value("netanom_windows_total"),
        partials(&e, "b", "merged"),
    );
    // b pauses for 2 s (< 5 s): its partials of those windows arrive about 2 s late.
    b.signal(libc::SIGSTOP);
    let paused = Instant::now();
    wait_metric(&col, addr, Duration::from_secs(10), "a goes on", |e| {
        partials(e, "a", "merged") >= 14.0 + 4.0
    });
    while paused.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    b.signal(libc::SIGCONT);
    let e = wait_metric(&col, addr, Duration::from_secs(30), "windows after", |e| {
        e.value("netanom_windows_total") >= windows + 10.0
    });
    assert_eq!(
        e.value("netanom_windows_incomplete_total"),
        incomplete,
        "{}",
        col.log_text()
    );
    assert_eq!(partials(&e, "b", "late"), 0.0);
    assert!(partials(&e, "b", "merged") >= b_merged + 10.0);
    stop(&mut col);
}

#[test]
fn a_partial_larger_than_max_payload_is_given_up_at_once() {
    use netanom_nats::{Outgoing, PartClock, PublishLimits, Publisher, StreamSettings};
    let tmp = tempfile::tempdir().unwrap();
    let server = NatsServer::start(&tmp.path().join("js"));
    let publisher = Publisher::start(
        StreamSettings::new(server.url()),
        "big",
        PartClock::Replay,
        PublishLimits {
            queue: 8,
            give_up_after: None,
            connect_within: Some(Duration::from_secs(20)),
        },
    )
    .unwrap();
    let q = publisher.queue();
    // Over the default 1 MiB max_payload, then an ordinary window.
    q.wait(Outgoing::Partial {
        omega_us: 500_000,
        start_ns: T0,
        bytes: vec![7; 1_500_000],
    })
    .unwrap();
    let omega = netanom::window::Omega::from_micros(500_000).unwrap();
    let small = netanom::window::PartialWindow::new(omega, T0 / OMEGA_NS + 1);
    q.wait(Outgoing::Partial {
        omega_us: 500_000,
        start_ns: small.start_ns(),
        bytes: small.to_bytes().unwrap(),
    })
    .unwrap();
    drop(q);
    let started = Instant::now();
    let report = publisher.finish(Duration::from_secs(30)).unwrap();
    assert_eq!(
        (
            report.too_large,
            report.published,
            report.retries,
            report.given_up
        ),
        (1, 1, 0, 0),
        "{report:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_replaying_sensor_with_no_server_fails_naming_the_url() {
    let fx = fixture();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut s = sensor(&url, "a", &fx.paced_halves[0], false);
    let status = s.wait_exit(Duration::from_secs(60));
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{}", s.log_text());
    let log = s.log_text();
    assert!(
        log.contains(&url) && log.contains("not reachable within"),
        "{log}"
    );
}
