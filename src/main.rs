//! Entry point: parse the command line, run a subcommand, map errors to exit codes.

mod cli;

use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

use cli::{Cli, Command, ExtractArgs};
use netanom::extract::{csv_header, run_offline, write_csv_row};
use netanom::window::WindowConfig;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("NETANOM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let result = match cli.command {
        Command::Extract(args) => extract(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netanom: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `netanom extract`: capture files to feature CSV.
fn extract(args: ExtractArgs) -> anyhow::Result<ExitCode> {
    let mut config = WindowConfig::new(args.window);
    config.max_gap_windows = args.max_gap_windows;
    let (mut out, out_name): (Box<dyn Write>, String) = match &args.output {
        Some(path) => (
            Box::new(BufWriter::new(File::create(path).with_context(|| {
                format!("{}: cannot create output file", path.display())
            })?)),
            path.display().to_string(),
        ),
        None => (
            Box::new(BufWriter::new(std::io::stdout().lock())),
            "standard output".into(),
        ),
    };
    writeln!(out, "{}", csv_header()).with_context(|| format!("writing {out_name}"))?;
    let mut write_error = None;
    let report = run_offline(
        &args.pcaps,
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
    let a = report.aggregator;
    tracing::info!(
        files = report.files,
        packets = a.packets,
        windows = a.windows,
        non_ip = report.non_ip,
        truncated_headers = report.truncated_headers,
        malformed_headers = report.malformed_headers,
        late_packets = a.late_packets,
        time_jumps = a.time_jumps,
        "extracted"
    );
    if let Some(cut) = report.cut_off {
        tracing::warn!("the windows read before the cut were written");
        eprintln!("netanom: error: {cut}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
