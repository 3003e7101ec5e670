//! netanom: network anomaly detection by LSTM over windowed header features
//! (Urakawa, Aoki and Miyamoto, "Anomaly Detection of Network by LSTM", IPSJ 2020).
//!
//! The modules follow the data: [`capture`] → [`decode`] → [`window`] (from `netanom-core`,
//! which has no libtorch) → [`model`] → [`detect`] → [`output`]; [`pipeline`] runs that path
//! for every command, [`eval`] measures detection against labels, [`config`] holds the
//! daemon's settings, [`daemon`] its threads, [`feedback`] the operators' rules (suppress,
//! benign). Lower layers never import higher ones.

pub use netanom_core::{capture, csv, decode, fault, pipeline, timestamp, window};

pub mod config;
pub mod daemon;
pub mod detect;
pub mod eval;
pub mod feedback;
pub mod history;
pub mod model;
pub mod output;
