//! netanom-core: the stages of netanom that need no model, shared by the `netanom` command
//! (which must never load libtorch) and `netanom-full`.
//!
//! The modules follow the data: [`capture`] (libpcap) → [`decode`] (header views) →
//! [`window`] (ω windows, 53 features) → windows to whatever consumes them. [`pipeline`] runs
//! that path once for every command: a [`pipeline::PacketSource`], one [`pipeline::pump`], and
//! sinks. [`csv`] is the feature CSV, both directions; [`timestamp`] the one text form of time.
//! Lower layers never import higher ones.

pub mod capture;
pub mod csv;
pub mod decode;
pub mod fault;
pub mod pipeline;
pub mod timestamp;
pub mod window;
