//! A model set: one bundle per window length, run side by side from one decode.
//!
//! A directory holding `model.json` is a one-scale set: the bundle itself, exactly as before
//! (the paper's method). A multi-scale set is a directory holding [`SCALES_FILE`] and one
//! complete bundle per ω in a subdirectory `omega-<ω>s/` (each usable on its own with
//! `--model DIR/omega-5s`). See docs/model.md, "Several window lengths".

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bundle::{Bundle, BundleError, META_FILE};
use crate::window::{Omega, Scales};

/// The manifest of a multi-scale set.
pub const SCALES_FILE: &str = "scales.json";

/// `format` of [`SCALES_FILE`].
const SCALES_FORMAT: &str = "netanom-scales";

/// Version of [`SCALES_FILE`] this netanom reads and writes.
const SCALES_VERSION: u32 = 1;

/// [`SCALES_FILE`] on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: String,
    format_version: u32,
    scales: Vec<ManifestScale>,
}

/// One scale of [`Manifest`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestScale {
    /// ω, integer microseconds.
    omega_us: Omega,
    /// The bundle's subdirectory, relative to the set.
    dir: String,
    /// The bundle's model id (checked on load: a swapped subdirectory is refused).
    model_id: String,
}

/// Loaded bundles, one per ω, shortest ω first.
#[derive(Debug)]
pub struct ModelSet {
    bundles: Vec<Bundle>,
    id: String,
}

/// The subdirectory of a multi-scale set that holds the bundle of `omega`.
pub fn scale_dir(omega: Omega) -> String {
    format!("omega-{omega}s")
}

/// The id of a set of bundles: the bundle's own for one, else 16 hex digits of the SHA-256
/// of their ids in ω order.
fn set_id(bundles: &[Bundle]) -> String {
    if let [one] = bundles {
        return one.model_id().to_string();
    }
    let mut h = Sha256::new();
    for b in bundles {
        h.update(b.model_id().as_bytes());
        h.update(b"\n");
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ModelSet {
    /// A set of trained bundles (at least one, distinct ω).
    pub fn new(mut bundles: Vec<Bundle>) -> Result<ModelSet, BundleError> {
        bundles.sort_by_key(|b| b.omega());
        Scales::new(bundles.iter().map(|b| b.omega()).collect()).map_err(|e| {
            BundleError::InvalidMetadata {
                path: PathBuf::from(SCALES_FILE),
                reason: e.to_string(),
            }
        })?;
        let id = set_id(&bundles);
        Ok(ModelSet { bundles, id })
    }

    /// Loads `dir`: the model its `current` link names (a model store, `store.rs`), else a
    /// bundle (`model.json`) or a multi-scale set ([`SCALES_FILE`]).
    pub fn load(dir: &Path) -> Result<ModelSet, BundleError> {
        let current = dir.join(super::store::CURRENT);
        if current.exists() {
            return ModelSet::load_set(&current);
        }
        ModelSet::load_set(dir)
    }

    /// Loads a bundle or a multi-scale set from `dir` itself.
    fn load_set(dir: &Path) -> Result<ModelSet, BundleError> {
        let manifest_path = dir.join(SCALES_FILE);
        if dir.join(META_FILE).exists() || !manifest_path.exists() {
            // One bundle (or the bundle's own error: missing directory, missing model.json).
            return ModelSet::new(vec![Bundle::load(dir, None)?]);
        }
        let bytes = fs::read(&manifest_path).map_err(|source| BundleError::Io {
            action: "read",
            path: manifest_path.clone(),
            source,
        })?;
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let manifest: Manifest = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            BundleError::InvalidMetadata {
                path: manifest_path.clone(),
                reason: e.to_string(),
            }
        })?;
        let invalid = |reason: String| BundleError::InvalidMetadata {
            path: manifest_path.clone(),
            reason,
        };
        if manifest.format != SCALES_FORMAT {
            return Err(invalid(format!(
                "format is {:?}, expected {SCALES_FORMAT:?}",
                manifest.format
            )));
        }
        if manifest.format_version != SCALES_VERSION {
            return Err(invalid(format!(
                "format_version {} is not supported (this netanom reads {SCALES_VERSION})",
                manifest.format_version
            )));
        }
        let mut bundles = Vec::with_capacity(manifest.scales.len());
        for (i, s) in manifest.scales.iter().enumerate() {
            let sub = Path::new(&s.dir);
            if sub.is_absolute() || sub.components().count() != 1 {
                return Err(invalid(format!(
                    "scales[{i}].dir {:?}: expected a subdirectory name",
                    s.dir
                )));
            }
            let bundle = Bundle::load(&dir.join(sub), Some(s.omega_us))?;
            if bundle.model_id() != s.model_id {
                return Err(invalid(format!(
                    "scales[{i}]: {} holds model {}, but the manifest expects {}",
                    dir.join(sub).display(),
                    bundle.model_id(),
                    s.model_id
                )));
            }
            bundles.push(bundle);
        }
        ModelSet::new(bundles).map_err(|e| invalid(e.to_string()))
    }

    /// Writes the set to `dir`: one scale as a plain bundle, several as subdirectories and
    /// [`SCALES_FILE`] (written last, through a temporary name).
    pub fn save(&self, dir: &Path) -> Result<(), BundleError> {
        if let [one] = self.bundles.as_slice() {
            return one.save(dir);
        }
        let mut manifest = Manifest {
            format: SCALES_FORMAT.to_string(),
            format_version: SCALES_VERSION,
            scales: Vec::new(),
        };
        for b in &self.bundles {
            let sub = scale_dir(b.omega());
            b.save(&dir.join(&sub))?;
            // The id is the hash of the weights as saved.
            let saved = super::bundle::read_model_id(&dir.join(&sub))?;
            manifest.scales.push(ManifestScale {
                omega_us: b.omega(),
                dir: sub,
                model_id: saved,
            });
        }
        let path = dir.join(SCALES_FILE);
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| BundleError::InvalidMetadata {
                path: path.clone(),
                reason: format!("cannot serialise: {e}"),
            })?;
        json.push(b'\n');
        let tmp = dir.join(format!("{SCALES_FILE}.tmp"));
        fs::write(&tmp, &json)
            .and_then(|()| fs::rename(&tmp, &path))
            .map_err(|source: io::Error| BundleError::Io {
                action: "write",
                path,
                source,
            })
    }

    /// The bundles, shortest ω first.
    pub fn bundles(&self) -> &[Bundle] {
        &self.bundles
    }

    /// The bundles, taken.
    pub fn into_bundles(self) -> Vec<Bundle> {
        self.bundles
    }

    /// The window lengths, shortest first.
    pub fn scales(&self) -> Scales {
        // Checked in `new`.
        Scales::new(self.bundles.iter().map(|b| b.omega()).collect())
            .unwrap_or_else(|_| Scales::one(self.bundles[0].omega()))
    }

    /// The set's id: the bundle's id for one scale (names the model in alerts and metrics).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// True for more than one scale.
    pub fn is_multi_scale(&self) -> bool {
        self.bundles.len() > 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bundle::TrainingData;
    use crate::model::train::synthetic::normal_windows;
    use crate::model::{train, TrainOptions};

    fn bundle(omega: &str, seed: u64) -> Bundle {
        let opts = TrainOptions {
            epochs: 1,
            hidden: 4,
            seed,
            ..TrainOptions::default()
        };
        let trained = train(&normal_windows(40, seed), &opts, |_| {}).unwrap();
        Bundle::from_trained(trained, omega.parse().unwrap(), TrainingData::default()).unwrap()
    }

    #[test]
    fn a_multi_scale_set_round_trips_and_a_one_scale_set_is_a_plain_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let set = ModelSet::new(vec![bundle("5", 2), bundle("0.5", 1)]).unwrap();
        assert_eq!(set.scales().to_string(), "0.5,5");
        set.save(dir.path()).unwrap();
        assert!(dir.path().join("scales.json").exists());
        assert!(dir.path().join("omega-0.5s/model.json").exists());
        assert!(dir.path().join("omega-5s/weights.safetensors").exists());
        let loaded = ModelSet::load(dir.path()).unwrap();
        assert_eq!(loaded.scales().to_string(), "0.5,5");
        assert_eq!(loaded.id().len(), 16);
        assert!(loaded.is_multi_scale());
        // A sub-bundle is a bundle of its own.
        let sub = ModelSet::load(&dir.path().join("omega-5s")).unwrap();
        assert!(!sub.is_multi_scale());
        assert_eq!(sub.id(), loaded.bundles()[1].model_id());

        let one = tempfile::tempdir().unwrap();
        ModelSet::new(vec![bundle("0.5", 1)])
            .unwrap()
            .save(one.path())
            .unwrap();
        assert!(one.path().join("model.json").exists());
        assert!(!one.path().join("scales.json").exists());
    }

    #[test]
    fn a_manifest_that_does_not_match_its_bundles_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        ModelSet::new(vec![bundle("0.5", 1), bundle("5", 2)])
            .unwrap()
            .save(dir.path())
            .unwrap();
        let path = dir.path().join("scales.json");
        let text = std::fs::read_to_string(&path).unwrap();
        // Swap the two subdirectories: ω of the bundle no longer matches.
        let swapped = text
            .replace("omega-0.5s", "X")
            .replace("omega-5s", "omega-0.5s")
            .replace("X", "omega-5s");
        std::fs::write(&path, swapped).unwrap();
        let e = ModelSet::load(dir.path()).unwrap_err();
        assert!(matches!(e, BundleError::OmegaMismatch { .. }), "{e}");
        std::fs::write(
            &path,
            text.replace("\"format_version\": 1", "\"format_version\": 9"),
        )
        .unwrap();
        let e = ModelSet::load(dir.path()).unwrap_err();
        assert!(matches!(e, BundleError::InvalidMetadata { .. }), "{e}");
        assert!(e.to_string().contains("scales.json"), "{e}");
        std::fs::write(&path, text.replace("omega-5s", "../omega-5s")).unwrap();
        let e = ModelSet::load(dir.path()).unwrap_err();
        assert!(
            e.to_string().contains("expected a subdirectory name"),
            "{e}"
        );
        let e = ModelSet::new(vec![bundle("0.5", 1), bundle("0.5", 2)]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }
}
