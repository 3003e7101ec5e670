//! The subcommands: each turns parsed arguments into a run of the library's pipeline.

pub mod evaluate;
pub mod history;
pub mod run;
pub mod score;
pub mod train;
