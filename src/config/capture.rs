//! `[capture]`: where packets come from (a live interface or replayed files) and how libpcap
//! reads them.

use std::path::PathBuf;

use serde::Deserialize;

use super::{quoted, show_value, Checker, CliOverrides};

/// Default capture length per packet, bytes: the largest header stack the decoder reads
/// (Ethernet 14 + two VLAN tags 8 + IPv4 with options 60 + TCP with options 60 = 142; or
/// IPv6 40 + 38 bytes of extension headers + TCP 60) fits; payload is never needed.
pub const DEFAULT_SNAPLEN: u32 = 160;

/// What packets are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureSource {
    /// A live interface (`capture.interface`, `--interface`).
    Interface(String),
    /// Capture files replayed in order (`capture.pcap_files`, `--pcap`); `realtime` paces them
    /// at their recorded speed instead of as fast as possible.
    Replay {
        /// The files, in replay order.
        files: Vec<PathBuf>,
        /// Pace the replay at the recorded speed.
        realtime: bool,
    },
    /// No capture here: windows come from sensors on other taps (`[nats]`, the collector).
    Sensors,
}

/// `[capture]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureSettings {
    /// The interface or the files to read.
    pub source: CaptureSource,
    /// BPF filter applied in the kernel; `None` for all packets.
    pub bpf_filter: Option<String>,
    /// Bytes captured per packet.
    pub snaplen: u32,
    /// Kernel capture buffer (ring) size, MiB.
    pub buffer_size_mb: u32,
    /// Put the interface in promiscuous mode.
    pub promiscuous: bool,
    /// libpcap packet-buffer timeout, ms (how long the kernel may hold packets before waking us).
    pub timeout_ms: u32,
    /// Capture workers: libpcap handles on the interface in one PACKET_FANOUT group, each
    /// with its own aggregators, merged per window (1: one capture thread, as before).
    pub workers: usize,
}

/// Most capture workers (`capture.workers`).
pub const MAX_WORKERS: i64 = 64;

/// `[capture]` as written, with the defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCapture {
    /// `capture.interface`.
    interface: Option<String>,
    /// `capture.pcap_files`: a list, or one name (from the environment); checked in [`validate`].
    pcap_files: Option<config::Value>,
    /// `capture.realtime`.
    realtime: bool,
    /// `capture.bpf_filter`; empty for none.
    bpf_filter: String,
    /// `capture.snaplen`.
    snaplen: i64,
    /// `capture.buffer_size_mb`.
    buffer_size_mb: i64,
    /// `capture.promiscuous`.
    promiscuous: bool,
    /// `capture.timeout_ms`.
    timeout_ms: i64,
    /// `capture.workers`.
    workers: i64,
}

impl Default for RawCapture {
    /// The built-in `[capture]`: no source, all packets, [`DEFAULT_SNAPLEN`].
    fn default() -> Self {
        RawCapture {
            interface: None,
            pcap_files: None,
            realtime: false,
            bpf_filter: String::new(),
            snaplen: i64::from(DEFAULT_SNAPLEN),
            buffer_size_mb: 64,
            promiscuous: true,
            timeout_ms: 100,
            workers: 1,
        }
    }
}

/// Applies the source flags of `cli` to `raw` and validates it; `None` after a problem.
pub(super) fn validate(
    mut raw: RawCapture,
    ck: &mut Checker,
    cli: &CliOverrides,
    collecting: bool,
) -> Option<CaptureSettings> {
    let mark = ck.mark();
    if cli.interface.is_some() && !cli.pcap_files.is_empty() {
        ck.fail(
            "--interface",
            quoted(cli.interface.as_deref().unwrap_or_default()),
            "cannot be combined with --pcap (capture live or replay files, not both)",
        );
    }
    if let Some(i) = &cli.interface {
        raw.interface = Some(i.clone());
        raw.pcap_files = None;
        ck.set_by_flag("capture.interface", "--interface");
    }
    if !cli.pcap_files.is_empty() {
        raw.pcap_files = None;
        raw.interface = None;
        ck.set_by_flag("capture.pcap_files", "--pcap");
    }
    if let Some(r) = cli.realtime {
        raw.realtime = r;
    }
    if let Some(w) = cli.workers {
        raw.workers = i64::from(w);
        ck.set_by_flag("capture.workers", "--workers");
    }

    let source = if collecting {
        collector_source(&raw, ck)
    } else {
        source(&raw, ck, &cli.pcap_files)
    };
    let bpf_filter = Some(raw.bpf_filter.trim().to_string()).filter(|f| !f.is_empty());
    if let Some(f) = &bpf_filter {
        if let Some(why) = bpf_problem(f) {
            ck.fail("capture.bpf_filter", quoted(f), why);
        }
    }
    let snaplen = ck.int_range(
        "capture.snaplen",
        raw.snaplen,
        96,
        262_144,
        "bytes; below 96 even Ethernet + IPv6 + TCP headers are cut",
    ) as u32;
    let buffer_size_mb =
        ck.int_range("capture.buffer_size_mb", raw.buffer_size_mb, 1, 4096, "MiB") as u32;
    let timeout_ms = ck.int_range(
        "capture.timeout_ms",
        raw.timeout_ms,
        1,
        10_000,
        "ms; 0 would wait forever",
    ) as u32;

    let workers = ck.int_range(
        "capture.workers",
        raw.workers,
        1,
        MAX_WORKERS,
        "capture workers (1: one capture thread)",
    ) as usize;
    if workers > 1
        && matches!(
            source,
            Some(CaptureSource::Replay { .. } | CaptureSource::Sensors)
        )
    {
        ck.fail(
            "capture.workers",
            workers.to_string(),
            "capture workers share a live interface (PACKET_FANOUT); a replay is read by one thread and a collector captures nothing (set 1, or capture from capture.interface)",
        );
    }

    if !ck.clean_since(mark) {
        return None;
    }
    Some(CaptureSettings {
        source: source?,
        bpf_filter,
        snaplen,
        buffer_size_mb,
        promiscuous: raw.promiscuous,
        timeout_ms,
        workers,
    })
}

/// The one source `raw` names (`cli_files`, from `--pcap`, replace its files), else a problem.
fn source(raw: &RawCapture, ck: &mut Checker, cli_files: &[PathBuf]) -> Option<CaptureSource> {
    let files = if !cli_files.is_empty() {
        cli_files.to_vec()
    } else {
        match &raw.pcap_files {
            None => Vec::new(),
            Some(v) => pcap_files_of(v).unwrap_or_else(|()| {
                ck.fail(
                    "capture.pcap_files",
                    show_value(v),
                    "not a list of file names (expected e.g. [\"/srv/pcaps/a.pcap\", \"/srv/pcaps/b.pcap\"])",
                );
                Vec::new()
            }),
        }
    };
    let interface = raw.interface.clone().filter(|i| !i.is_empty());
    match (interface, files.is_empty()) {
        (Some(_), false) => {
            let value = quoted(raw.interface.as_deref().unwrap_or_default());
            ck.fail(
                "capture.interface",
                value,
                "capture.pcap_files is set too: capture live or replay files, not both (--interface or --pcap override both)",
            );
            None
        }
        (Some(i), true) => {
            if let Some(why) = interface_problem(&i) {
                ck.fail("capture.interface", quoted(&i), why);
            }
            Some(CaptureSource::Interface(i))
        }
        (None, false) => {
            for f in &files {
                if f.as_os_str().is_empty() {
                    ck.fail(
                        "capture.pcap_files",
                        "\"\"",
                        "an empty file name (expected paths of pcap or pcapng files)",
                    );
                }
            }
            Some(CaptureSource::Replay {
                files,
                realtime: raw.realtime,
            })
        }
        (None, true) => {
            ck.fail(
                "capture.interface",
                "(not set)",
                "nothing to capture: set capture.interface (NETANOM_CAPTURE__INTERFACE, --interface) to an interface, or capture.pcap_files (--pcap) to replay files",
            );
            None
        }
    }
}

/// The collector's source: windows from sensors; an interface or files set too is an error.
fn collector_source(raw: &RawCapture, ck: &mut Checker) -> Option<CaptureSource> {
    let interface = raw.interface.clone().filter(|i| !i.is_empty());
    if let Some(i) = interface {
        ck.fail(
            "capture.interface",
            quoted(&i),
            "nats.url is set too: capture here or collect the windows of sensors, not both",
        );
        return None;
    }
    if let Some(v) = &raw.pcap_files {
        ck.fail(
            "capture.pcap_files",
            show_value(v),
            "nats.url is set too: replay here or collect the windows of sensors, not both",
        );
        return None;
    }
    Some(CaptureSource::Sensors)
}

/// `capture.pcap_files`: a list of paths, or one path (an environment variable holds one).
fn pcap_files_of(v: &config::Value) -> Result<Vec<PathBuf>, ()> {
    match &v.kind {
        config::ValueKind::String(s) => Ok(vec![PathBuf::from(s)]),
        config::ValueKind::Array(items) => items
            .iter()
            .map(|i| match &i.kind {
                config::ValueKind::String(s) => Ok(PathBuf::from(s)),
                _ => Err(()),
            })
            .collect(),
        _ => Err(()),
    }
}

/// Interface names: 1–15 bytes (IFNAMSIZ − 1), no whitespace, no '/'.
fn interface_problem(name: &str) -> Option<&'static str> {
    if name.is_empty()
        || name.len() > 15
        || name.contains('/')
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Some("not an interface name (1 to 15 characters, no spaces or '/'; e.g. eth1, enp3s0f1, any)")
    } else {
        None
    }
}

/// Compiles a BPF filter against Ethernet to catch syntax errors at startup.
fn bpf_problem(filter: &str) -> Option<String> {
    let dead = match pcap::Capture::dead(pcap::Linktype::ETHERNET) {
        Ok(d) => d,
        Err(_) => return None, // cannot check here; the capture will compile it again
    };
    match dead.compile(filter, true) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "not a valid BPF filter: {e} (see pcap-filter(7); e.g. \"not port 22\")"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::{assert_each_named, err, live, load};

    /// Files come from the file or the environment; `--interface` replaces them.
    #[test]
    fn replay_from_file_and_env() {
        let s = load(
            "[capture]\npcap_files = [\"x.pcap\", \"y.pcapng\"]\nrealtime = true\n",
            &[],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.capture.source,
            CaptureSource::Replay {
                files: vec!["x.pcap".into(), "y.pcapng".into()],
                realtime: true
            }
        );
        let s = load(
            "",
            &[("NETANOM_CAPTURE__PCAP_FILES", "one.pcap")],
            &CliOverrides::default(),
        )
        .unwrap();
        assert_eq!(
            s.capture.source,
            CaptureSource::Replay {
                files: vec!["one.pcap".into()],
                realtime: false
            }
        );
        // --interface replaces configured files
        let s = load("[capture]\npcap_files = [\"x.pcap\"]\n", &[], &live()).unwrap();
        assert_eq!(s.capture.source, CaptureSource::Interface("eth0".into()));
    }

    /// Each invalid `[capture]` value is reported with its key, value and what is allowed.
    #[test]
    fn each_invalid_value_is_named() {
        assert_each_named(&[
            (
                "[capture]\nsnaplen = 40",
                "capture.snaplen = 40: out of range (expected 96 to 262144 bytes",
            ),
            (
                "[capture]\nsnaplen = 300000",
                "capture.snaplen = 300000: out of range",
            ),
            (
                "[capture]\nbuffer_size_mb = 0",
                "capture.buffer_size_mb = 0: out of range (expected 1 to 4096 MiB)",
            ),
            (
                "[capture]\ntimeout_ms = 0",
                "capture.timeout_ms = 0: out of range",
            ),
            (
                "[capture]\nbpf_filter = \"prot 80\"",
                "capture.bpf_filter = \"prot 80\": not a valid BPF filter",
            ),
            (
                "[capture]\npcap_files = 3",
                "capture.pcap_files = 3: not a list of file names",
            ),
            (
                "[capture]\npcap_files = [\"a.pcap\", 3]",
                "capture.pcap_files = […]: not a list of file names",
            ),
            (
                "[capture]\nworkers = 0",
                "capture.workers = 0: out of range (expected 1 to 64 capture workers",
            ),
            (
                "[capture]\npcap_files = [\"a.pcap\"]\nworkers = 2",
                "capture.workers = 2: capture workers share a live interface",
            ),
            (
                "[capture]\ninterface = \"eth 0\"",
                "capture.interface = \"eth 0\": not an interface name",
            ),
            (
                "[capture]\ninterface = \"averyveryverylongname\"",
                "capture.interface = \"averyveryverylongname\": not an interface name",
            ),
        ]);
    }

    /// No source, two sources, or two source flags are each an error.
    #[test]
    fn source_problems() {
        let e = err("", &[], &CliOverrides::default());
        assert!(
            e.starts_with("capture.interface = (not set): nothing to capture"),
            "{e}"
        );
        let e = err(
            "[capture]\ninterface = \"eth0\"\npcap_files = [\"a.pcap\"]\n",
            &[],
            &CliOverrides::default(),
        );
        assert!(e.contains("capture.pcap_files is set too"), "{e}");
        let cli = CliOverrides {
            interface: Some("eth0".into()),
            pcap_files: vec!["a.pcap".into()],
            ..Default::default()
        };
        let e = err("", &[], &cli);
        assert!(
            e.contains("--interface = \"eth0\": cannot be combined with --pcap"),
            "{e}"
        );
    }

    /// The section on its own: a valid filter is kept trimmed, a blank one means none, and an
    /// empty `--pcap` name is named by its flag, once however often it is given.
    #[test]
    fn validates_on_its_own() {
        let mut ck = Checker::default();
        let raw = RawCapture {
            bpf_filter: "  not port 22 ".into(),
            ..Default::default()
        };
        let c = validate(raw, &mut ck, &live(), false).unwrap();
        assert_eq!(c.bpf_filter.as_deref(), Some("not port 22"));
        assert_eq!(c.source, CaptureSource::Interface("eth0".into()));

        let raw = RawCapture {
            bpf_filter: "   ".into(),
            ..Default::default()
        };
        assert_eq!(
            validate(raw, &mut ck, &live(), false).unwrap().bpf_filter,
            None
        );
        assert!(ck.into_problems().is_empty());

        let mut ck = Checker::default();
        let cli = CliOverrides {
            pcap_files: vec!["".into(), "".into()],
            ..Default::default()
        };
        assert_eq!(validate(RawCapture::default(), &mut ck, &cli, false), None);
        let problems = ck.into_problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(
            problems[0].to_string(),
            "--pcap = \"\": an empty file name (expected paths of pcap or pcapng files)"
        );
    }
}
