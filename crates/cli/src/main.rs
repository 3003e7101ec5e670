//! `netanom`: parse the command line; run `extract` here, hand everything else to
//! `netanom-full` next to this binary.
//!
//! Why two binaries: loading libtorch (static initialisers registering thousands of operators)
//! costs about 0.3 s of CPU before `main`, whatever the subcommand. `extract` needs no model,
//! and on a few million packets that start-up alone would cost more than reading them. This
//! crate depends on nothing that links libtorch (tests/lean.rs); the model subcommands `exec`
//! the sibling (same process id, so systemd's notify and signals work).

// This binary runs `extract` and `sensor` (a tap host needs no libtorch): the other
// subcommands' options are parsed (for --help and early errors) but read in netanom-full.

use std::os::unix::process::CommandExt;
use std::process::ExitCode;

use clap::Parser;

use netanom_cli::{self as cli, extract, sensor, Cli, Command};

/// The sibling binary with the model subcommands.
const FULL: &str = "netanom-full";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Extract(args) => {
            cli::init_logging("info", false);
            extract::run(args)
        }
        Command::Sensor(args) => {
            cli::init_logging("info", false);
            sensor::run(args)
        }
        _ => exec_full(),
    };
    result.unwrap_or_else(|e| cli::report_error(&e))
}

/// Replaces this process with `netanom-full` and the same arguments; returns only on failure.
fn exec_full() -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find this program's path to start {FULL}: {e}"))?;
    let full = exe.with_file_name(FULL);
    let error = std::process::Command::new(&full)
        .args(std::env::args_os().skip(1))
        .exec();
    Err(anyhow::anyhow!(
        "cannot start {} ({error}): install it next to {} (the model subcommands live there, see docs/install.md)",
        full.display(),
        exe.display()
    ))
}
