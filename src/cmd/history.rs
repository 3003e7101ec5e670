//! `netanom history`: what a feature history holds to train on, per window length.

use std::process::ExitCode;

use serde_json::{json, Value};

use netanom::history::{scan, HistoryRow, OmegaScan, SegmentKind, TimeRange};
use netanom::window::Omega;
use netanom_cli::HistoryArgs;

/// How many of the largest gaps are listed.
const LARGEST_GAPS: usize = 5;

/// Reads the history under `--dir` and prints its summary (text or `--json`).
pub fn run(args: HistoryArgs) -> anyhow::Result<ExitCode> {
    let history = scan(&args.dir)?;
    let streams: Vec<Stream> = history.omegas.iter().map(Stream::of).collect();
    let windows: usize = streams.iter().map(|s| s.windows).sum();
    let first = streams.iter().filter_map(|s| s.first_ns).min();
    let last = streams.iter().filter_map(|s| s.last_ns).max();
    let segments: usize = streams.iter().map(|s| s.segments).sum();
    let unreadable: Vec<&(String, String)> = streams.iter().flat_map(|s| &s.unreadable).collect();
    if args.json {
        let out = json!({
            "dir": args.dir.display().to_string(),
            "windows": windows,
            "first": first.map(secs),
            "last": last.map(secs),
            "segments": segments,
            "unreadable": unreadable.len(),
            "unreadable_segments": unreadable
                .iter()
                .map(|(p, e)| json!({"path": p, "error": e}))
                .collect::<Vec<_>>(),
            "omegas": streams.iter().map(Stream::to_json).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    println!("feature history {}", args.dir.display());
    if streams.is_empty() {
        println!("  no windows recorded yet (no omega_us=… directory)");
    }
    for s in &streams {
        s.print();
    }
    if streams.len() > 1 {
        println!(
            "total: {windows} windows in {segments} segments, {} unreadable",
            unreadable.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Epoch seconds of ns.
fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

/// RFC 3339 (UTC) of ns, for people.
fn when(ns: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ns))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| netanom::timestamp::format_ts(ns))
}

/// A span in seconds as `1 h 2 min 3 s`.
fn span(seconds: f64) -> String {
    humanize(std::time::Duration::from_secs_f64(seconds.max(0.0)))
}

/// A duration, in the largest units that fit.
fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    let (days, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    let frac = d.subsec_millis();
    let mut parts = Vec::new();
    if days > 0 {
        parts.push(format!("{days} d"));
    }
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(if frac > 0 && days == 0 && h == 0 {
            format!("{sec}.{frac:03} s")
        } else {
            format!("{sec} s")
        });
    }
    parts.join(" ")
}

/// A gap between two recorded windows.
struct Gap {
    from_ns: i64,
    to_ns: i64,
}

/// The summary of one ω.
struct Stream {
    omega: Omega,
    segments: usize,
    journals: usize,
    windows: usize,
    first_ns: Option<i64>,
    last_ns: Option<i64>,
    gaps: usize,
    largest: Vec<Gap>,
    alerted: usize,
    with_drops: usize,
    scored: usize,
    duplicates: usize,
    /// Unreadable segments: path, why.
    unreadable: Vec<(String, String)>,
}

impl Stream {
    /// Reads one ω's segments and summarises them.
    fn of(scan: &OmegaScan) -> Stream {
        let read = scan.read(TimeRange::ALL);
        let rows: &[HistoryRow] = &read.rows;
        let mut gaps: Vec<Gap> = rows
            .windows(2)
            .filter(|p| p[1].start_ns != p[0].end_ns)
            .map(|p| Gap {
                from_ns: p[0].end_ns,
                to_ns: p[1].start_ns,
            })
            .collect();
        let gap_count = gaps.len();
        gaps.sort_by_key(|g| std::cmp::Reverse(g.to_ns - g.from_ns));
        gaps.truncate(LARGEST_GAPS);
        let unreadable: Vec<(String, String)> = read
            .unreadable
            .iter()
            .map(|(p, e)| (p.display().to_string(), e.to_string()))
            .collect();
        let journals = scan
            .segments
            .iter()
            .filter(|s| s.kind == SegmentKind::Journal)
            .filter(|s| {
                !unreadable
                    .iter()
                    .any(|(p, _)| *p == s.path.display().to_string())
            })
            .count();
        Stream {
            omega: scan.omega,
            segments: read.segments,
            journals,
            windows: rows.len(),
            first_ns: rows.first().map(|r| r.start_ns),
            last_ns: rows.last().map(|r| r.end_ns),
            gaps: gap_count,
            largest: gaps,
            alerted: rows.iter().filter(|r| r.alerted).count(),
            with_drops: rows.iter().filter(|r| r.capture_drops > 0).count(),
            scored: rows.iter().filter(|r| r.score.is_some()).count(),
            duplicates: read.duplicates,
            unreadable,
        }
    }

    /// The `omegas[]` entry of `--json`.
    fn to_json(&self) -> Value {
        json!({
            "omega_s": self.omega.secs_f64(),
            "omega_us": self.omega.micros(),
            "segments": self.segments,
            "journals": self.journals,
            "windows": self.windows,
            "first": self.first_ns.map(secs),
            "last": self.last_ns.map(secs),
            "gaps": self.gaps,
            "largest_gaps": self.largest.iter().map(|g| json!({
                "from": secs(g.from_ns),
                "to": secs(g.to_ns),
                "seconds": secs(g.to_ns - g.from_ns),
            })).collect::<Vec<_>>(),
            "alerted": self.alerted,
            "with_drops": self.with_drops,
            "scored": self.scored,
            "duplicates": self.duplicates,
            "unreadable": self.unreadable.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<_>>(),
        })
    }

    /// The text summary.
    fn print(&self) {
        let open = if self.journals > 0 {
            format!(" ({} open or recovered journal)", self.journals)
        } else {
            String::new()
        };
        println!(
            "ω = {} s: {} windows in {} segments{open}",
            self.omega, self.windows, self.segments
        );
        if let (Some(f), Some(l)) = (self.first_ns, self.last_ns) {
            println!("  from {} to {} ({})", when(f), when(l), span(secs(l - f)));
        }
        if self.gaps == 0 {
            println!("  gaps: none");
        } else {
            let list: Vec<String> = self
                .largest
                .iter()
                .map(|g| format!("{} at {}", span(secs(g.to_ns - g.from_ns)), when(g.from_ns)))
                .collect();
            println!("  gaps: {} (largest: {})", self.gaps, list.join(", "));
        }
        println!(
            "  alerted: {} windows; with capture drops: {}; scored: {}",
            self.alerted, self.with_drops, self.scored
        );
        if self.duplicates > 0 {
            println!("  windows recorded twice (kept once): {}", self.duplicates);
        }
        for (p, e) in &self.unreadable {
            println!("  unreadable, skipped: {p}: {e}");
        }
    }
}
