//! Capture workers (`--workers N`, PACKET_FANOUT): on a veth pair between two network
//! namespaces, a daemon with 2 workers and one with 1 worker capture the same interface at
//! the same time (fanout spreads packets only within a group: each daemon sees them all)
//! while tcpreplay sends a generated capture from the other end; both record the feature
//! history, and every window both recorded has the same 53 features, bitwise. Needs root
//! (namespaces, capture) and tcpreplay; CI runs as root.
//!
//! The capture's packets come in bursts in the middle of each 0.5 s window and tcpreplay
//! starts near a window boundary; both daemons read the kernel's timestamps of the same
//! packets, so each puts every packet in the same window.

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/netns.rs"]
mod netns;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use daemon_support::*;
use netanom::history::HistoryRow;
use netns::{in_netns, VethPair};

/// ω of the model (the loopback model of the other daemon tests).
const OMEGA_NS: i64 = 500_000_000;
/// Windows with a burst of traffic.
const BURSTS: i64 = 16;

fn require_root_and_tcpreplay() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "tests/daemon_workers.rs needs root (network namespaces, capture); CI runs as root"
    );
    assert!(
        Command::new("tcpreplay").arg("--version").output().is_ok(),
        "tests/daemon_workers.rs needs tcpreplay (apt-get install tcpreplay)"
    );
}

/// The loopback model (ω = 0.5 s), trained once.
fn model(dir: &Path) -> PathBuf {
    let pcap = dir.join("loopback.pcap");
    let mut t = Traffic::new();
    t.loopback(&mut Rng::new(3), T0, 400);
    t.write(&pcap);
    let model = dir.join("model");
    train(
        &pcap,
        &model,
        &["--threshold-rule", "max", "--threshold-factor", "3"],
    );
    model
}

/// Bursts of many flows (TCP with the usual flags, DNS, other UDP, well-known and random
/// ports, a few hundred hosts) in [0.15 s, 0.35 s) of each window, starting at a window
/// boundary of the capture's clock.
fn bursts(path: &Path) -> usize {
    let mut rng = Rng::new(11);
    let mut t = Traffic::new();
    for w in 0..BURSTS {
        let start = T0 + w * OMEGA_NS + 150_000_000;
        let n = 100 + rng.range(0, 150) as i64;
        for i in 0..n {
            let ts = start + i * (200_000_000 / n);
            let client = [10, 1, rng.range(0, 4) as u8, rng.range(1, 200) as u8];
            let server = [10, 2, 0, rng.range(1, 30) as u8];
            let cport = rng.range(1024, 65535) as u16;
            let frame = match rng.range(0, 10) {
                0..=5 => {
                    let flags =
                        [0x02, 0x12, 0x10, 0x18, 0x11, 0x04, 0x14][rng.range(0, 6) as usize];
                    let sport = [80, 443, 22, 25, 8080][rng.range(0, 4) as usize];
                    if rng.chance(0.5) {
                        tcp_frame((client, cport), (server, sport), 64, flags, 40)
                    } else {
                        tcp_frame((server, sport), (client, cport), 60, flags, 400)
                    }
                }
                6..=7 => udp_frame((client, cport), (server, 53), 64, 40),
                _ => udp_frame(
                    (client, cport),
                    (server, rng.range(1, 65535) as u16),
                    128,
                    100,
                ),
            };
            t.push(ts, frame);
        }
    }
    let n = t.len();
    t.write(path);
    n
}

/// A daemon capturing on the pair's interface in namespace `a`.
fn daemon(net: &VethPair, model: &Path, tmp: &Path, name: &str, workers: u16) -> Daemon {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &net.a])
        .arg(netanom_bin())
        .args(["run", "--interface", &net.if_a, "--model"])
        .arg(model)
        .arg("--alert-log")
        .arg(tmp.join(format!("{name}.jsonl")))
        .arg("--history-dir")
        .arg(tmp.join(format!("{name}-history")))
        .args(["--metrics-listen", "127.0.0.1:0", "--workers"])
        .arg(workers.to_string());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("NETANOM")
        {
            cmd.env_remove(&k);
        }
    }
    // Only the replayed traffic (the kernel's own IPv6 neighbour discovery on a fresh link
    // would add a few packets at moments of its own).
    Daemon::spawn(
        cmd,
        &[(
            "NETANOM_CAPTURE__BPF_FILTER",
            "net 10.1.0.0/16 or net 10.2.0.0/16",
        )],
    )
}

/// Every recorded row of ω = 0.5 s under `dir`.
fn rows(dir: &Path) -> Vec<HistoryRow> {
    history_rows(dir, 500_000)
}

/// Scrapes `addr` inside namespace `ns` until `cond` holds; panics after `timeout`.
fn wait_in(
    ns: &str,
    addr: std::net::SocketAddr,
    timeout: Duration,
    what: &str,
    cond: impl Fn(&Exposition) -> bool,
) {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let e = {
            let ns = ns.to_string();
            in_netns(&ns, move || scrape(addr))
        };
        if cond(&e) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sleeps until the wall clock is on a window boundary (plus 2 ms).
fn sleep_to_boundary() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let next = (now / OMEGA_NS + 1) * OMEGA_NS + 2_000_000;
    std::thread::sleep(Duration::from_nanos((next - now) as u64));
}

#[test]
fn two_workers_and_one_give_the_same_windows() {
    require_root_and_tcpreplay();
    let tmp = tempfile::tempdir().unwrap();
    let model = model(tmp.path());
    let pcap = tmp.path().join("bursts.pcap");
    let sent = bursts(&pcap);
    let net = VethPair::new("w");
    let mut one = daemon(&net, &model, tmp.path(), "one", 1);
    let mut two = daemon(&net, &model, tmp.path(), "two", 2);
    let (a1, a2) = (
        one.metrics_addr(Duration::from_secs(30)),
        two.metrics_addr(Duration::from_secs(30)),
    );
    let ns = net.a.clone();
    // Both capture (a window scored) before the traffic starts.
    for addr in [a1, a2] {
        wait_in(
            &ns,
            addr,
            Duration::from_secs(20),
            "windows before the traffic",
            |e| e.value("netanom_windows_total") >= 2.0,
        );
    }
    sleep_to_boundary();
    let out = Command::new("ip")
        .args(["netns", "exec", &net.b, "tcpreplay", "-q", "-i", &net.if_b])
        .arg(&pcap)
        .output()
        .expect("tcpreplay");
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Until both have counted every packet and closed the last burst's window.
    for addr in [a1, a2] {
        wait_in(
            &ns,
            addr,
            Duration::from_secs(20),
            "every packet counted",
            |e| e.value("netanom_packets_total") >= sent as f64,
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    let e2 = in_netns(&ns, move || scrape(a2));
    let per_worker: Vec<f64> = ["0", "1"]
        .iter()
        .map(|w| labelled(&e2, "netanom_capture_packets_total", "worker", w).unwrap_or(0.0))
        .collect();
    for (d, name) in [(&mut one, "one"), (&mut two, "two")] {
        d.signal(libc::SIGTERM);
        assert!(
            d.wait_exit(Duration::from_secs(20))
                .is_some_and(|s| s.success()),
            "{name}: {}",
            d.log_text()
        );
    }
    // Both workers had flows of their own; together they saw every packet, once.
    assert!(per_worker.iter().all(|&p| p > 0.0), "{per_worker:?}");
    assert!(
        per_worker.iter().sum::<f64>() >= sent as f64,
        "{per_worker:?} of {sent}"
    );
    let (r1, r2) = (
        rows(&tmp.path().join("one-history")),
        rows(&tmp.path().join("two-history")),
    );
    let common: Vec<(&HistoryRow, &HistoryRow)> = r1
        .iter()
        .filter_map(|a| r2.iter().find(|b| b.start_ns == a.start_ns).map(|b| (a, b)))
        .collect();
    let busy: Vec<_> = common.iter().filter(|(a, _)| a.packets > 0).collect();
    // tcpreplay starts within a few ms of a boundary, under load later: a burst may straddle
    // two windows, the same two for both daemons.
    assert!(busy.len() >= BURSTS as usize, "{} busy windows", busy.len());
    assert_eq!(
        busy.iter().map(|(a, _)| a.packets).sum::<u64>(),
        sent as u64
    );
    for (a, b) in &common {
        let (fa, fb): (Vec<u64>, Vec<u64>) = (
            a.features.iter().map(|f| f.to_bits()).collect(),
            b.features.iter().map(|f| f.to_bits()).collect(),
        );
        assert_eq!(
            fa, fb,
            "window at {}: 1 worker {:?}\n2 workers {:?}",
            a.start_ns, a.features, b.features
        );
    }
    assert!(
        two.count_messages("window merged without") == 0,
        "{}",
        two.log_text()
    );
}
