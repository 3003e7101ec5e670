//! netanom: network anomaly detection by LSTM over windowed header features
//! (Urakawa, Aoki and Miyamoto, "Anomaly Detection of Network by LSTM", IPSJ 2020).
//!
//! The modules follow the data: [`capture`] → [`decode`] → [`window`] → [`model`] →
//! [`detect`] → [`output`]; [`extract`] drives the offline pipeline, [`eval`] measures
//! detection against labels, [`config`] holds the daemon's settings. Lower layers never
//! import higher ones.

pub mod capture;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod detect;
pub mod eval;
pub mod extract;
pub mod featurecsv;
pub mod model;
pub mod output;
pub mod window;
