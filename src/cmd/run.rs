//! `netanom run`: the long-running service.

use std::process::ExitCode;

use netanom::config::{CliOverrides, LogFormat};
use netanom::daemon::{self, SettingsSource};
use netanom_cli::RunArgs;

/// Starts the daemon with the settings file and the command-line overrides.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let source = SettingsSource {
        file: args.config,
        overrides: CliOverrides {
            interface: args.interface,
            pcap_files: args.pcaps,
            realtime: args.realtime.then_some(true),
            model_dir: args.model,
            metrics_listen: args.metrics_listen,
            alert_log: args.alert_log,
            eve_log: args.eve_log,
            history_dir: args.history_dir,
            omega: args.window,
            learn_for: args.learn_for,
            state_dir: args.state_dir,
            workers: args.workers,
            nats_url: args.nats,
            sensors: args.sensors,
        },
    };
    // Logging follows the settings' [log] section, so read them first.
    let settings = source.load()?;
    let log_level = netanom_cli::init_reloadable_logging(
        settings.log.level.as_str(),
        settings.log.format == LogFormat::Json,
    );
    // SIGHUP can then apply a new log.level.
    daemon::reload::install_log_level_handle(log_level);
    daemon::run(source)?;
    Ok(ExitCode::SUCCESS)
}
