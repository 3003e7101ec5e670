//! The adaptive thresholds' state, kept in the model directory across restarts:
//! `MODEL_DIR/threshold-state.json`, one entry per scale keyed by its bundle's id and ω, so a
//! different model never picks up another's state (it starts from its own calibration).
//!
//! Written whole to `threshold-state.json.tmp`, fsync'ed, renamed over the old file and the
//! directory fsync'ed: a reader finds the old state or the new one, never a mix. Bounded:
//! each scale's state holds at most its capacity of excesses (`model/spot.rs`).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::spot::SpotState;
use crate::window::Omega;

/// The file in the model directory.
pub const STATE_FILE: &str = "threshold-state.json";

/// `format` of [`STATE_FILE`].
const STATE_FORMAT: &str = "netanom-threshold-state";

/// Version of [`STATE_FILE`] this netanom reads and writes.
const STATE_VERSION: u32 = 1;

/// [`STATE_FILE`] on disk.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: String,
    format_version: u32,
    /// Unix seconds of the save.
    saved_unix: u64,
    scales: Vec<SavedScale>,
}

/// One scale's saved state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedScale {
    /// The scale's ω (integer microseconds on disk).
    #[serde(rename = "omega_us")]
    pub omega: Omega,
    /// The bundle's id.
    pub model_id: String,
    /// The SPOT state.
    pub state: SpotState,
}

/// Why the state file could not be read or written; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading, writing, syncing or renaming failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a valid state file (corrupt, another format or version, a state that
    /// breaks an invariant).
    #[error("{} is not a valid threshold state file: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
}

/// The state file of a model directory.
pub fn state_path(model_dir: &Path) -> PathBuf {
    model_dir.join(STATE_FILE)
}

/// Reads the saved states of `model_dir`; `Ok(None)` when there is no file.
pub fn load(model_dir: &Path) -> Result<Option<Vec<SavedScale>>, StateError> {
    let path = state_path(model_dir);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Io {
                action: "read",
                path,
                source,
            })
        }
    };
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.clone(),
        reason,
    };
    let mut de = serde_json::Deserializer::from_slice(&bytes);
    let file: StateFile =
        serde_path_to_error::deserialize(&mut de).map_err(|e| corrupt(e.to_string()))?;
    if file.format != STATE_FORMAT || file.format_version != STATE_VERSION {
        return Err(corrupt(format!(
            "format {:?} version {}, expected {STATE_FORMAT:?} version {STATE_VERSION}",
            file.format, file.format_version
        )));
    }
    for s in &file.scales {
        s.state
            .validate()
            .map_err(|e| corrupt(format!("ω = {} s, model {}: {e}", s.omega, s.model_id)))?;
    }
    Ok(Some(file.scales))
}

/// Writes `scales` as the state of `model_dir`, atomically.
pub fn save(model_dir: &Path, scales: &[SavedScale], saved_unix: u64) -> Result<(), StateError> {
    let path = state_path(model_dir);
    let tmp = model_dir.join(format!("{STATE_FILE}.tmp"));
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| StateError::Io {
            action,
            path,
            source,
        }
    };
    let file = StateFile {
        format: STATE_FORMAT.into(),
        format_version: STATE_VERSION,
        saved_unix,
        scales: scales.to_vec(),
    };
    let mut bytes = serde_json::to_vec(&file).map_err(|e| StateError::Corrupt {
        path: path.clone(),
        reason: format!("cannot serialise: {e}"),
    })?;
    bytes.push(b'\n');
    let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
    f.write_all(&bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io("rename into", &path))?;
    fs::File::open(model_dir)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", model_dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::spot::SpotOptions;

    fn saved(id: &str) -> SavedScale {
        let scores: Vec<f64> = (0..500).map(|k| ((k * 37) % 500) as f64).collect();
        SavedScale {
            omega: Omega::from_micros(500_000).unwrap(),
            model_id: id.into(),
            state: SpotState::calibrate(&scores, &SpotOptions::default()).unwrap(),
        }
    }

    /// A save reads back exactly; no file is `None`; a corrupt or tampered file is an error
    /// naming it, never a panic.
    #[test]
    fn round_trip_missing_and_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path()).unwrap().is_none());
        let scales = vec![saved("a"), saved("b")];
        save(dir.path(), &scales, 1).unwrap();
        assert_eq!(load(dir.path()).unwrap().unwrap(), scales);
        assert!(!dir.path().join("threshold-state.json.tmp").exists());
        let path = state_path(dir.path());
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, &text[..text.len() / 2]).unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("threshold-state.json"), "{e}");
        fs::write(&path, text.replace("\"n_t\":", "\"n_t\":9999999,\"x\":")).unwrap();
        assert!(load(dir.path()).is_err());
        fs::write(
            &path,
            text.replace("\"format_version\":1", "\"format_version\":7"),
        )
        .unwrap();
        assert!(load(dir.path())
            .unwrap_err()
            .to_string()
            .contains("version 7"));
    }
}
