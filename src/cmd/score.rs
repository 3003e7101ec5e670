//! `netanom score`: score every window of captures with a model bundle.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use netanom::detect::score::Scale;
use netanom::model::ModelSet;
use netanom::pipeline::{
    log_summary, pump, MultiWindower, Pace, PacketSource, ScaleSink, SinkError,
};
use netanom::timestamp::format_ts;
use netanom::window::{Window, WindowConfig};
use netanom_cli::ScoreArgs;

/// Scores windows and writes `window_start,window_end,score,threshold,alert` per window (and
/// `omega_s` with several window lengths).
struct ScoreCsv {
    scales: Vec<Scale>,
    out: Box<dyn Write>,
    out_name: String,
    scored: u64,
    alerts: u64,
}

impl ScaleSink for ScoreCsv {
    fn window(&mut self, scale: usize, w: Window) -> Result<(), SinkError> {
        let (start, end) = (w.start_ns, w.end_ns);
        let multi = self.scales.len() > 1;
        let sc = &mut self.scales[scale];
        let judged = sc
            .push(w)
            .with_context(|| format!("scoring the window at {}", format_ts(start)))?;
        let threshold = judged.threshold;
        let (s, alert) = match judged.score {
            Some(s) => {
                self.scored += 1;
                let alert = judged.alerting;
                self.alerts += u64::from(alert);
                (s.to_string(), if alert { "1" } else { "0" })
            }
            None => (String::new(), ""),
        };
        write!(
            self.out,
            "{},{},{s},{threshold},{alert}",
            format_ts(start),
            format_ts(end)
        )
        .and_then(|()| match multi {
            true => writeln!(self.out, ",{}", sc.omega),
            false => writeln!(self.out),
        })
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
    let set = ModelSet::load(&args.model)?;
    let model_id = set.id().to_string();
    let multi = set.is_multi_scale();
    let scales =
        Scale::from_set(set, &super::threshold_config(&args.thresholds)?).context("--threshold")?;
    // Inputs first: a typo in --pcap must not truncate an existing output file.
    let source = PacketSource::open_files(&args.pcaps, Pace::Unpaced)?;
    let (mut out, out_name) = netanom_cli::open_output(args.output.as_deref())?;
    writeln!(
        out,
        "window_start,window_end,score,threshold,alert{}",
        if multi { ",omega_s" } else { "" }
    )
    .with_context(|| format!("writing {out_name}"))?;
    let configs: Vec<WindowConfig> = scales
        .iter()
        .map(|s| {
            let mut config = WindowConfig::new(s.omega);
            config.max_gap_windows = args.max_gap_windows;
            config
        })
        .collect();
    let sink = ScoreCsv {
        scales,
        out,
        out_name,
        scored: 0,
        alerts: 0,
    };
    let mut windows = MultiWindower::new(&configs, sink);
    let report = pump(source, &mut windows, &mut ())?;
    let s = windows.sink();
    let thresholds: Vec<String> = s
        .scales
        .iter()
        .map(|sc| {
            let t = format!(
                "{} {}",
                sc.threshold.in_force().as_str(),
                sc.threshold.value()
            );
            match multi {
                true => format!("{t} (ω = {} s)", sc.omega),
                false => t,
            }
        })
        .collect();
    eprintln!(
        "model {model_id}: {} windows scored, {} over the threshold; threshold at the end: {}",
        s.scored,
        s.alerts,
        thresholds.join(", ")
    );
    Ok(log_summary(&report, windows.stats()[0]))
}
