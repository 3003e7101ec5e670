//! Entry point: parse the command line, run a subcommand, map errors to exit codes.

mod cli;
mod cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        init_logging("info", false);
    }
    let result = match cli.command {
        Command::Extract(args) => cmd::extract::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Evaluate(args) => cmd::evaluate::run(args),
        Command::Run(args) => cmd::run::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("netanom: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (the journal, under systemd); `NETANOM_LOG` overrides `level`.
pub fn init_logging(level: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("NETANOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
