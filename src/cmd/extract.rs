//! `netanom extract`: capture files to the feature CSV.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::ExtractArgs;
use netanom::extract::{csv_header, log_report, write_csv_row, OfflineInput};
use netanom::window::WindowConfig;

/// Runs the extraction; exit 1 (after writing what was read) for a cut-off file.
pub fn run(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let mut config = WindowConfig::new(args.window);
    config.max_gap_windows = args.max_gap_windows;
    // Inputs first: a typo in --pcap must not truncate an existing output file.
    let input = OfflineInput::open(&args.pcaps)?;
    let (mut out, out_name) = crate::cli::open_output(args.output.as_deref())?;
    writeln!(out, "{}", csv_header()).with_context(|| format!("writing {out_name}"))?;
    let mut write_error = None;
    let report = input.run(
        config,
        |_| {},
        |w| {
            if write_error.is_none() {
                if let Err(e) = write_csv_row(&mut out, &w) {
                    write_error = Some(e);
                }
            }
        },
    )?;
    if let Some(e) = write_error {
        return Err(e).with_context(|| format!("writing {out_name}"));
    }
    out.flush().with_context(|| format!("writing {out_name}"))?;
    Ok(log_report(&report))
}
