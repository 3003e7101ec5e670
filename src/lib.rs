//! netanom: network anomaly detection by LSTM over windowed header features.
//!
//! The modules follow the data: [`capture`] → [`decode`] → [`window`] → model → detect → outputs.
//! Lower layers never import higher ones.

pub mod capture;
pub mod decode;
pub mod extract;
pub mod window;
