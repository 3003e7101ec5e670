//! `netanom extract`: capture files to the feature CSV.

use std::process::ExitCode;

use netanom_core::csv::CsvWriter;
use netanom_core::pipeline::{log_summary, pump, Pace, PacketSource, Windower};
use netanom_core::window::WindowConfig;

use crate::ExtractArgs;

/// Runs the extraction; exit 1 (after writing what was read) for a damaged file.
pub fn run(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let mut config = WindowConfig::new(args.window);
    config.max_gap_windows = args.max_gap_windows;
    // Inputs first: a typo in --pcap must not truncate an existing output file.
    let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
    let (out, out_name) = crate::open_output(args.output.as_deref())?;
    let mut windows = Windower::new(config, CsvWriter::new(out, out_name)?);
    let report = pump(source, &mut windows, &mut ())?;
    Ok(log_summary(&report, windows.stats()))
}
