//! `netanom score`: score every window of captures with a model bundle.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use netanom::detect::score::ScoringStage;
use netanom::model::Bundle;
use netanom::pipeline::{log_summary, pump, Pace, PacketSource, SinkError, WindowSink, Windower};
use netanom::timestamp::format_ts;
use netanom::window::{Window, WindowConfig};
use netanom_cli::ScoreArgs;

/// Scores windows and writes `window_start,window_end,score,threshold,alert` per window.
struct ScoreCsv {
    stage: ScoringStage,
    threshold: f64,
    out: Box<dyn Write>,
    out_name: String,
    scored: u64,
    alerts: u64,
}

impl WindowSink for ScoreCsv {
    fn window(&mut self, w: Window) -> Result<(), SinkError> {
        let (start, end) = (w.start_ns, w.end_ns);
        let scored = self
            .stage
            .push(w)
            .with_context(|| format!("scoring the window at {}", format_ts(start)))?;
        let threshold = self.threshold;
        let (s, alert) = match scored.score {
            Some(s) => {
                self.scored += 1;
                let alert = s > threshold;
                self.alerts += u64::from(alert);
                (s.to_string(), if alert { "1" } else { "0" })
            }
            None => (String::new(), ""),
        };
        writeln!(
            self.out,
            "{},{},{s},{threshold},{alert}",
            format_ts(start),
            format_ts(end)
        )
        .with_context(|| format!("writing {}", self.out_name))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.out_name))?;
        Ok(())
    }
}

/// Runs the scoring; exit 1 (after writing what was read) for a damaged file.
pub fn run(args: ScoreArgs) -> anyhow::Result<ExitCode> {
    let bundle = Bundle::load(&args.model, None)?;
    let threshold = args.threshold.unwrap_or_else(|| bundle.threshold());
    let omega = bundle.omega();
    let model_id = bundle.model_id().to_string();
    // Inputs first: a typo in --pcap must not truncate an existing output file.
    let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
    let (mut out, out_name) = netanom_cli::open_output(args.output.as_deref())?;
    writeln!(out, "window_start,window_end,score,threshold,alert")
        .with_context(|| format!("writing {out_name}"))?;
    let mut config = WindowConfig::new(omega);
    config.max_gap_windows = args.max_gap_windows;
    let sink = ScoreCsv {
        stage: ScoringStage::from_bundle(bundle),
        threshold,
        out,
        out_name,
        scored: 0,
        alerts: 0,
    };
    let mut windows = Windower::new(config, sink);
    let report = pump(source, &mut windows, &mut ())?;
    let s = windows.sink();
    eprintln!(
        "model {model_id}: {} windows scored, {} over the threshold {threshold}",
        s.scored, s.alerts
    );
    Ok(log_summary(&report, windows.stats()))
}
