//! Detection: scoring the stream of windows against a trained model.

pub mod incident;
pub mod score;
pub mod threshold;
