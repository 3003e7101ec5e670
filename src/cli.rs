//! The command line: subcommands and their options (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Network anomaly detection by LSTM over windowed header features.
#[derive(Debug, Parser)]
#[command(name = "netanom", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Extract the 53 window features from capture files into CSV.
    Extract(ExtractArgs),
}

/// Options of `netanom extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Capture file (pcap or pcapng); repeat for several files in time order.
    #[arg(long = "pcap", value_name = "FILE", required = true)]
    pub pcaps: Vec<PathBuf>,
    /// Window length ω in seconds (e.g. 30, 5, 0.5; at most 6 decimals).
    #[arg(long, value_name = "SECONDS", value_parser = parse_window)]
    pub window: u64,
    /// CSV output file (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Longest run of empty windows written for one gap in packet time; a longer jump
    /// (a bad timestamp) is collapsed and reported.
    #[arg(long, value_name = "WINDOWS", default_value_t = netanom::window::WindowConfig::DEFAULT_MAX_GAP_WINDOWS)]
    pub max_gap_windows: u64,
}

fn parse_window(s: &str) -> Result<u64, String> {
    netanom::window::parse_omega(s)
}
