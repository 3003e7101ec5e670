//! Writes a synthetic feature history (what `netanom run` records) for the training benchmark.
//!
//! ```text
//! cargo run --release --example synth_history -- --out DIR [--days 7] [--omega 0.5] [--seed 1]
//! ```
//!
//! Windows come from the office-link generator of the model tests (`normal_windows`), their
//! counts scaled by a daily cycle (night at 30 % of the afternoon peak, weekends at 60 %);
//! 0.05 % of the windows are marked alerted, 0.02 % have capture drops, and the recorder is
//! "down" for 10 minutes each day (a gap). They are written through the recorder itself
//! (`HistoryWriter`, hourly segments), so the files are what the daemon writes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netanom::history::{HistoryConfig, HistoryRow, HistoryWriter};
use netanom::model::train::synthetic::normal_windows;
use netanom::output::metrics::Metrics;
use netanom::window::features::{FEATURE_NAMES, NUM_FEATURES};
use netanom::window::Omega;

/// First window: 2023-11-13T00:00:00Z (a Monday).
const START_NS: i64 = 1_699_833_600 * 1_000_000_000;

/// Parsed command line.
struct Args {
    out: PathBuf,
    days: u64,
    omega: Omega,
    seed: u64,
}

/// Reads `--out`, `--days`, `--omega`, `--seed`.
fn args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::new(),
        days: 7,
        omega: Omega::from_micros(500_000).ok_or("ω")?,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--out" => a.out = value.into(),
            "--days" => a.days = value.parse().map_err(|e| format!("--days: {e}"))?,
            "--omega" => a.omega = value.parse().map_err(|e| format!("--omega: {e}"))?,
            "--seed" => a.seed = value.parse().map_err(|e| format!("--seed: {e}"))?,
            _ => return Err(format!("unknown option {flag}")),
        }
    }
    if a.out.as_os_str().is_empty() {
        return Err("--out DIR is required".into());
    }
    Ok(a)
}

/// Traffic level at `t_ns`: 0.3 at 04:00, 1.0 at 16:00, weekends × 0.6.
fn level(t_ns: i64) -> f64 {
    let secs = (t_ns - START_NS) as f64 / 1e9;
    let day = secs / 86_400.0;
    let hour = (day.fract()) * 24.0;
    let daily = 0.3 + 0.7 * (0.5 - 0.5 * ((hour - 4.0) / 24.0 * std::f64::consts::TAU).cos());
    let weekend = if (day as u64) % 7 >= 5 { 0.6 } else { 1.0 };
    daily * weekend
}

fn main() -> ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("synth_history: {e}");
            return ExitCode::from(2);
        }
    };
    let counts: Vec<usize> = FEATURE_NAMES
        .iter()
        .enumerate()
        .filter(|(_, n)| n.ends_with("_count") || n.ends_with("_distinct"))
        .map(|(i, _)| i)
        .collect();
    let metrics = Arc::new(Metrics::new());
    let config = HistoryConfig {
        dir: a.out.clone(),
        retention: Duration::from_secs(3650 * 86_400),
        segment: Duration::from_secs(3600),
        queue: HistoryConfig::DEFAULT_QUEUE,
    };
    let (writer, mut handle) = match HistoryWriter::start(config, metrics.clone()) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("synth_history: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let w_ns = a.omega.nanos();
    let per_day = 86_400_000_000_000 / w_ns;
    let down = 600_000_000_000 / w_ns;
    let mut written = 0u64;
    for day in 0..a.days as i64 {
        let base = normal_windows(per_day as usize, a.seed.wrapping_add(day as u64));
        let mut rng = a.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ day as u64;
        for (k, w) in base.iter().enumerate() {
            let k = k as i64;
            // Down from 03:00 for 10 minutes.
            let outage = 3 * 3600 * 1_000_000_000 / w_ns;
            if (outage..outage + down).contains(&k) {
                continue;
            }
            let start_ns = START_NS + (day * per_day + k) * w_ns;
            let mut features = [0.0; NUM_FEATURES];
            features.copy_from_slice(w);
            let f = level(start_ns);
            for &i in &counts {
                features[i] = (features[i] * f).round();
            }
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let r = rng % 10_000;
            let row = HistoryRow {
                omega: a.omega,
                start_ns,
                end_ns: start_ns + w_ns,
                packets: features[1] as u64,
                features,
                distinct_estimated: false,
                capture_drops: u64::from(r < 2) * 40,
                alerted: (2..7).contains(&r),
                score: Some(0.01),
            };
            if !handle.record_wait(row) {
                eprintln!("synth_history: the recorder stopped");
                return ExitCode::FAILURE;
            }
            written += 1;
        }
    }
    drop(handle);
    writer.finish();
    eprintln!(
        "synth_history: {written} windows of {} s over {} days in {} ({:.1} s; {} write errors)",
        a.omega,
        a.days,
        a.out.display(),
        started.elapsed().as_secs_f64(),
        metrics.history_write_errors_total.get()
    );
    ExitCode::SUCCESS
}
