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
//!
//! Also: a handle that joins the fanout group while packets flow counts none of them twice;
//! on a quiet link with a 5 s buffer timeout, workers that wake at different moments give no
//! incomplete window (the merge waits the timeout, the pump's grace and 2 s).

mod common;
#[path = "support/daemon.rs"]
mod daemon_support;
#[path = "support/netns.rs"]
mod netns;

use std::collections::HashSet;
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
    daemon_with(net, model, tmp, name, workers, &[])
}

/// [`daemon`] with more settings from the environment.
fn daemon_with(
    net: &VethPair,
    model: &Path,
    tmp: &Path,
    name: &str,
    workers: u16,
    envs: &[(&str, &str)],
) -> Daemon {
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
    let mut all = vec![(
        "NETANOM_CAPTURE__BPF_FILTER",
        "net 10.1.0.0/16 or net 10.2.0.0/16",
    )];
    all.extend_from_slice(envs);
    Daemon::spawn(cmd, &all)
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

/// Nanoseconds since the epoch.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// tcpreplay sends `pcap` (at its recorded pace) from the pair's other end.
fn replay(net: &VethPair, pcap: &Path) {
    let out = Command::new("ip")
        .args(["netns", "exec", &net.b, "tcpreplay", "-q", "-i", &net.if_b])
        .arg(pcap)
        .output()
        .expect("tcpreplay");
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
    replay(&net, &pcap);
    // The window of the last packet has ended by now.
    let last_end = (wall_ns() / OMEGA_NS + 1) * OMEGA_NS;
    // Until both have counted every packet and closed the last burst's window.
    for addr in [a1, a2] {
        wait_in(
            &ns,
            addr,
            Duration::from_secs(20),
            "every packet counted and the last window closed",
            |e| {
                e.value("netanom_packets_total") >= sent as f64
                    && e.value("netanom_last_window_end_timestamp_seconds") >= last_end as f64 / 1e9
            },
        );
    }
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
    assert_eq!(
        per_worker.iter().sum::<f64>(),
        sent as f64,
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

#[test]
fn workers_on_a_quiet_link_wait_for_each_other_past_the_buffer_timeout() {
    require_root_and_tcpreplay();
    let tmp = tempfile::tempdir().unwrap();
    let model = model(tmp.path());
    // A packet every 2.3 s, each of another flow: each wakes one worker, so the workers'
    // five-second waits on the idle link end at moments of their own.
    let pcap = tmp.path().join("sparse.pcap");
    let mut t = Traffic::new();
    for i in 0..8u8 {
        let ts = T0 + i64::from(i) * 2_300_000_000;
        t.push(
            ts,
            udp_frame(
                ([10, 1, 0, 10 + i], 4000 + u16::from(i)),
                ([10, 2, 0, 1], 53),
                64,
                40,
            ),
        );
    }
    t.write(&pcap);
    let net = VethPair::new("q");
    let mut two = daemon_with(
        &net,
        &model,
        tmp.path(),
        "quiet",
        2,
        &[("NETANOM_CAPTURE__TIMEOUT_MS", "5000")],
    );
    let addr = two.metrics_addr(Duration::from_secs(30));
    let ns = net.a.clone();
    wait_in(&ns, addr, Duration::from_secs(30), "a window", |e| {
        e.value("netanom_windows_total") >= 1.0
    });
    replay(&net, &pcap);
    // Windows until well after the last packet (each fires up to 12.1 s after its first
    // partial): none without a worker's partial.
    wait_in(
        &ns,
        addr,
        Duration::from_secs(60),
        "windows after the traffic",
        |e| e.value("netanom_packets_total") >= 8.0 && e.value("netanom_windows_total") >= 50.0,
    );
    let e = in_netns(&ns, move || scrape(addr));
    two.signal(libc::SIGTERM);
    assert!(
        two.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        two.log_text()
    );
    let per_worker: Vec<f64> = ["0", "1"]
        .iter()
        .map(|w| labelled(&e, "netanom_capture_packets_total", "worker", w).unwrap_or(0.0))
        .collect();
    assert!(per_worker.iter().all(|&p| p > 0.0), "{per_worker:?}");
    assert_eq!(
        e.value("netanom_windows_incomplete_total"),
        0.0,
        "{}",
        two.log_text()
    );
}

#[test]
fn a_handle_joining_the_fanout_group_while_packets_flow_counts_none_twice() {
    use netanom::capture::{Fanout, LiveCapture, LiveOptions};
    require_root_and_tcpreplay();
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = |fanout| LiveOptions {
        interface: "lo".into(),
        bpf_filter: format!("udp and dst port {port}"),
        snaplen: 128,
        buffer_size_mb: 16,
        promiscuous: false,
        timeout_ms: 20,
        fanout,
    };
    let stop = Arc::new(AtomicBool::new(false));
    // Reads a handle until stopped and idle: the sequence numbers it saw.
    let reader = |mut c: LiveCapture, stop: Arc<AtomicBool>| {
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            loop {
                match c.next_packet() {
                    // lo: 14 bytes of Ethernet, 20 of IPv4, 8 of UDP, then the number.
                    Ok(Some(p)) if p.data.len() >= 50 => {
                        seen.push(u64::from_be_bytes(p.data[42..50].try_into().unwrap()));
                    }
                    Ok(Some(_)) => {}
                    Ok(None) if stop.load(Ordering::Relaxed) => return seen,
                    Ok(None) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let first = LiveCapture::open(&options(Fanout::NewGroup)).unwrap();
    let group = first.fanout_group().expect("a fanout group");
    let first = reader(first, stop.clone());
    // Numbered datagrams from 16 source ports (flows for both handles), at most 200,000 or
    // 10 s, only to 127.0.0.1.
    let sent = Arc::new(AtomicU64::new(0));
    let (sent2, stop2) = (sent.clone(), stop.clone());
    let sender = std::thread::spawn(move || {
        let socks: Vec<UdpSocket> = (0..16)
            .map(|_| UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let until = Instant::now() + Duration::from_secs(10);
        for i in 0..200_000u64 {
            if stop2.load(Ordering::Relaxed) || Instant::now() > until {
                break;
            }
            let _ = socks[(i % 16) as usize].send_to(&i.to_be_bytes(), ("127.0.0.1", port));
            sent2.store(i + 1, Ordering::Relaxed);
        }
    });
    let wait_sent = |n: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sent.load(Ordering::Relaxed) < n && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_sent(5_000);
    // The second handle opens in the middle of the flow, held 50 ms between its activation
    // and its joining the group (debug builds' test hook): packets certainly reach it first.
    // The daemons of the other tests get no NETANOM_* variable (see `daemon_with`).
    std::env::set_var("NETANOM_FAULT_INJECT", "fanout-join-delay-ms=50");
    let second = LiveCapture::open(&options(Fanout::Join(group)));
    std::env::remove_var("NETANOM_FAULT_INJECT");
    let second = second.unwrap();
    let second = reader(second, stop.clone());
    let at_join = sent.load(Ordering::Relaxed);
    wait_sent(at_join + 20_000);
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let (a, b): (HashSet<u64>, HashSet<u64>) = (
        first.join().unwrap().into_iter().collect(),
        second.join().unwrap().into_iter().collect(),
    );
    let twice: Vec<_> = a.intersection(&b).take(10).collect();
    assert!(
        twice.is_empty(),
        "{} packets counted by both handles, e.g. {twice:?} (joined after {at_join})",
        a.intersection(&b).count()
    );
    // After the join both had flows of their own.
    assert!(
        !b.is_empty() && a.iter().any(|&s| s > at_join + 1_000),
        "{} and {}",
        a.len(),
        b.len()
    );
}

#[test]
fn stopped_workers_publish_their_open_window() {
    require_root_and_tcpreplay();
    let tmp = tempfile::tempdir().unwrap();
    let model = model(tmp.path());
    // 40 datagrams of 40 flows (both workers get some), all within a millisecond.
    let pcap = tmp.path().join("burst.pcap");
    let mut t = Traffic::new();
    for i in 0..40u8 {
        t.push(
            T0 + i64::from(i) * 10_000,
            udp_frame(
                ([10, 1, 1, i], 5000 + u16::from(i)),
                ([10, 2, 0, 1], 53),
                64,
                40,
            ),
        );
    }
    let sent = t.len();
    t.write(&pcap);
    let net = VethPair::new("s");
    let mut two = daemon(&net, &model, tmp.path(), "stop", 2);
    let addr = two.metrics_addr(Duration::from_secs(30));
    let ns = net.a.clone();
    wait_in(&ns, addr, Duration::from_secs(30), "a window", |e| {
        e.value("netanom_windows_total") >= 2.0
    });
    // The burst early in a window, the stop as soon as the workers counted it: usually
    // before that window closes (0.2 s after its end), so it is still open in both.
    sleep_to_boundary();
    replay(&net, &pcap);
    wait_in(
        &ns,
        addr,
        Duration::from_secs(10),
        "the burst counted",
        |e| e.value("netanom_packets_total") >= sent as f64,
    );
    two.signal(libc::SIGTERM);
    assert!(
        two.wait_exit(Duration::from_secs(30))
            .is_some_and(|s| s.success()),
        "{}",
        two.log_text()
    );
    // The open window went out merged with every worker's packets, none fired without them.
    let rows = rows(&tmp.path().join("stop-history"));
    assert_eq!(
        rows.iter().map(|r| r.packets).sum::<u64>(),
        sent as u64,
        "{}",
        two.log_text()
    );
}
