//! `netanom score`: score every window of captures with a model bundle.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ScoreArgs;
use netanom::detect::score::ScoreRing;
use netanom::extract::{format_ts, log_report, OfflineInput};
use netanom::model::Bundle;
use netanom::window::WindowConfig;

/// Writes `window_start,window_end,score,threshold,alert` per window.
pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.model, None)?;
    let threshold = args.threshold.unwrap_or_else(|| bundle.threshold());
    let omega_us = bundle.omega_us();
    let model_id = bundle.model_id().to_string();
    let mut ring = ScoreRing::from_bundle(bundle);
    // Inputs first: a typo in --pcap must not truncate an existing output file.
    let input = OfflineInput::open(&args.pcaps)?;
    let (mut out, out_name) = crate::cli::open_output(args.output.as_deref())?;
    writeln!(out, "window_start,window_end,score,threshold,alert")
        .with_context(|| format!("writing {out_name}"))?;
    let mut config = WindowConfig::new(omega_us);
    config.max_gap_windows = args.max_gap_windows;
    let mut failure: Option<anyhow::Error> = None;
    let (mut scored, mut alerts) = (0u64, 0u64);
    let report = input.run(
        config,
        |_| {},
        |w| {
            if failure.is_some() {
                return;
            }
            if w.after_time_jump {
                ring.reset();
            }
            let result = ring
                .push(&w.features)
                .map_err(anyhow::Error::from)
                .and_then(|score| {
                    let (s, alert) = match score {
                        Some(s) => {
                            scored += 1;
                            let alert = s > threshold;
                            alerts += u64::from(alert);
                            (s.to_string(), if alert { "1" } else { "0" })
                        }
                        None => (String::new(), ""),
                    };
                    writeln!(
                        out,
                        "{},{},{s},{threshold},{alert}",
                        format_ts(w.start_ns),
                        format_ts(w.end_ns)
                    )
                    .with_context(|| format!("writing {out_name}"))
                });
            if let Err(e) = result {
                failure = Some(e);
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e);
    }
    out.flush().with_context(|| format!("writing {out_name}"))?;
    eprintln!("model {model_id}: {scored} windows scored, {alerts} over the threshold {threshold}");
    Ok(log_report(&report))
}
