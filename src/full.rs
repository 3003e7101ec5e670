//! `netanom-full`: every subcommand, the model ones included (this binary links libtorch).
//! `netanom` hands every subcommand but `extract` to it; see crates/cli/src/main.rs.

mod cmd;

use std::process::ExitCode;

use clap::Parser;

use netanom_cli::{self as cli, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        cli::init_logging("info", false);
    }
    let result = match cli.command {
        Command::Extract(args) => cli::extract::run(args),
        Command::Train(args) => cmd::train::run(args),
        Command::Score(args) => cmd::score::run(args),
        Command::Evaluate(args) => cmd::evaluate::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::History(args) => cmd::history::run(args),
        Command::Feedback(args) => cmd::feedback::run(args),
        Command::Sensor(args) => cli::sensor::run(args),
    };
    result.unwrap_or_else(|e| cli::report_error(&e))
}
