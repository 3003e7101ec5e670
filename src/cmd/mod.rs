//! The subcommands: each turns parsed arguments into a run of the library's pipeline.

pub mod evaluate;
pub mod extract;
pub mod run;
pub mod score;
pub mod train;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;

/// An output file, or standard output when `path` is `None`, with a name for messages.
pub fn open_output(path: Option<&Path>) -> anyhow::Result<(Box<dyn Write>, String)> {
    Ok(match path {
        Some(path) => (
            Box::new(BufWriter::new(File::create(path).with_context(|| {
                format!("{}: cannot create output file", path.display())
            })?)),
            path.display().to_string(),
        ),
        None => (
            Box::new(BufWriter::new(std::io::stdout().lock())),
            "standard output".into(),
        ),
    })
}
