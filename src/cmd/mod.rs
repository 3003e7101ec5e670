//! The subcommands: each turns parsed arguments into a run of the library's pipeline.

pub mod evaluate;
pub mod feedback;
pub mod history;
pub mod run;
pub mod score;
pub mod train;

/// The thresholds' configuration `score` and `evaluate` were asked for.
pub fn threshold_config(
    a: &netanom_cli::ThresholdArgs,
) -> anyhow::Result<netanom::detect::threshold::ThresholdConfig> {
    use netanom::detect::threshold::{RuleChoice, ThresholdConfig};
    let config = ThresholdConfig {
        rule: match a.threshold_rule {
            netanom_cli::DetectRuleArg::Spot => RuleChoice::Spot,
            netanom_cli::DetectRuleArg::Fixed => RuleChoice::Fixed,
        },
        false_rate: a.false_rate,
        manual: a.threshold,
    };
    config
        .validate()
        .map_err(|e| anyhow::anyhow!("--false-rate: {e}"))?;
    Ok(config)
}
