//! The model bundle: a directory holding `model.json` (metadata) and `weights.safetensors`.
//!
//! [`Bundle::load`] checks everything a wrong score could come from — the format version, the
//! feature list and order, ω, the normalisation vectors, the architecture, the weights' hash,
//! names, shapes, dtype and values — and reports each problem as a [`BundleError`] naming the
//! file and what was expected. Every field is described in `docs/model.md`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::lstm::{Architecture, LstmAutoencoder, WeightsError};
use super::normalize::{MinMax, NormalizeError, Scaling, Smoothing};
use super::spot::SpotState;
use super::train::{ScoreQuantiles, ThresholdRule, TrainedModel};
use super::{ModelError, Run, SEQ_LEN};
use crate::window::features::{FEATURE_NAMES, NUM_FEATURES};
use crate::window::Omega;

/// File name of the metadata inside a bundle directory.
pub const META_FILE: &str = "model.json";
/// File name of the weights inside a bundle directory.
pub const WEIGHTS_FILE: &str = "weights.safetensors";
/// Value of `format` in every bundle.
pub const FORMAT_NAME: &str = "netanom-model";
/// The bundle format version this netanom writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The version of a bundle with `normalization.smoothing`: a netanom older than smoothing
/// would ignore the key and score unsmoothed windows, so it must refuse the bundle instead.
pub const FORMAT_VERSION_SMOOTHED: u32 = 2;

/// `architecture.type` in `model.json`: the kind of network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchitectureKind {
    /// An LSTM autoencoder (`"lstm"`), the only kind.
    Lstm,
}

/// `architecture.head` in `model.json`: the per-time-step output layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// A linear layer (`"linear"`), the only head.
    Linear,
}

/// `architecture.dtype` in `model.json`: the weights' element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// 32-bit floats (`"f32"`), the only element type.
    F32,
}

/// `normalization.method` in `model.json`: how raw features are scaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NormalizationMethod {
    /// Per-feature min–max scaling (`"minmax"`), the paper's.
    MinMax,
    /// `ln(1 + x)` of each feature, then min–max (`"logminmax"`; `netanom train --scaling log`).
    LogMinMax,
}

impl NormalizationMethod {
    /// The method of a scaling.
    pub fn of(scaling: Scaling) -> NormalizationMethod {
        match scaling {
            Scaling::Linear => NormalizationMethod::MinMax,
            Scaling::Log => NormalizationMethod::LogMinMax,
        }
    }

    /// The scaling this method applies.
    pub fn scaling(self) -> Scaling {
        match self {
            NormalizationMethod::MinMax => Scaling::Linear,
            NormalizationMethod::LogMinMax => Scaling::Log,
        }
    }
}

/// `threshold.source` in `model.json`: which scores the threshold rule was applied to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ThresholdSource {
    /// The validation part of the training data (`"validation"`), the only source.
    Validation,
}

/// `architecture` in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchitectureMeta {
    /// Always `"lstm"`.
    #[serde(rename = "type")]
    pub kind: ArchitectureKind,
    /// Values per time step in and out: 53.
    pub input_size: usize,
    /// LSTM hidden size.
    pub hidden: usize,
    /// Stacked LSTM layers.
    pub layers: usize,
    /// Per-time-step output layer: always `"linear"`.
    pub head: HeadKind,
    /// Weight element type: always `"f32"`.
    pub dtype: WeightDtype,
}

/// `normalization` in `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormalizationMeta {
    /// `"minmax"` (the paper's) or `"logminmax"`.
    pub method: NormalizationMethod,
    /// Per-feature minimum over the training windows, in feature order.
    pub min: Vec<f64>,
    /// Per-feature maximum over the training windows, in feature order.
    pub max: Vec<f64>,
    /// Small-window smoothing (`netanom train --smoothing N`; absent: none, the paper's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothing: Option<SmoothingMeta>,
}

/// `normalization.smoothing` in `model.json`: the averaged features shrunk toward their
/// training mean (docs/model.md, "Small-window smoothing").
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SmoothingMeta {
    /// The prior's weight, in packets.
    pub packets: f64,
    /// Per-feature training mean, in feature order.
    pub center: Vec<f64>,
    /// Per-feature minimum of the smoothed training windows.
    pub min: Vec<f64>,
    /// Per-feature maximum of the smoothed training windows.
    pub max: Vec<f64>,
}

/// `threshold` in `model.json`: the value and how it was chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ThresholdMeta {
    /// Alert when score > value.
    pub value: f64,
    /// The rule (`"rule"`) and its parameters, flattened.
    #[serde(flatten)]
    pub rule: ThresholdRule,
    /// Which scores the rule was applied to: `"validation"`.
    pub source: ThresholdSource,
    /// The adaptive threshold's state calibrated on the same scores (SPOT, `model/spot.rs`);
    /// absent in bundles made before it existed, or when the validation scores did not allow
    /// it. Detection chooses between it and `value` (`alerts.threshold_rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spot: Option<SpotState>,
}

/// `training` in `model.json`: where the model came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainingMeta {
    /// The input files (feature CSVs or captures), as given.
    pub files: Vec<String>,
    /// Windows used in all (training + validation).
    pub window_count: usize,
    /// Windows of the training part (the first ones).
    pub train_windows: usize,
    /// Windows of the validation part (the last ones).
    pub validation_windows: usize,
    /// Start of the first window, Unix seconds.
    pub start_unix: f64,
    /// End of the last window, Unix seconds.
    pub end_unix: f64,
    pub epochs: usize,
    pub learning_rate: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub validation_fraction: f64,
    /// The load augmentation's largest factor (`--load-augment`; absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_augment: Option<f64>,
    /// Training loss (MSE per value) of the last epoch.
    pub final_train_loss: f64,
    /// Validation loss (MSE per value) after the last epoch.
    pub final_validation_loss: f64,
}

/// The whole `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Always `"netanom-model"`.
    pub format: String,
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// First 16 hex digits of `weights_sha256`: names the model in alerts and logs.
    pub model_id: String,
    /// SHA-256 of `weights.safetensors`, lower-case hex.
    pub weights_sha256: String,
    /// Version of the netanom that trained the model.
    pub netanom_version: String,
    /// When the bundle was made, Unix seconds.
    pub created_unix: u64,
    /// The 53 feature names in model input order.
    pub feature_names: Vec<String>,
    /// Window length ω (integer microseconds on disk).
    #[serde(rename = "omega_us")]
    pub omega: Omega,
    /// Windows per run: 3.
    pub sequence_length: usize,
    pub architecture: ArchitectureMeta,
    pub normalization: NormalizationMeta,
    pub threshold: ThresholdMeta,
    pub training: TrainingMeta,
    /// Quantiles of the validation scores.
    pub validation_scores: ScoreQuantiles,
}

/// What the caller knows about the training data that the model does not.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrainingData {
    /// Input files, as given on the command line.
    pub files: Vec<String>,
    /// Start of the first window, Unix seconds.
    pub start_unix: f64,
    /// End of the last window, Unix seconds.
    pub end_unix: f64,
}

/// Why a bundle could not be loaded or saved. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The bundle directory does not exist.
    #[error("model bundle directory {path} does not exist")]
    NotFound { path: PathBuf },
    /// The bundle path is a file, not a directory.
    #[error("model bundle {path} is not a directory (a bundle is a directory holding {META_FILE} and {WEIGHTS_FILE})")]
    NotADirectory { path: PathBuf },
    /// `model.json` or `weights.safetensors` is missing.
    #[error("model bundle file {path} is missing (expected the {what})")]
    MissingFile { path: PathBuf, what: &'static str },
    /// A file could not be read, written or renamed.
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// `model.json` is not JSON.
    #[error("{path} is not valid JSON: {source}")]
    CorruptJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// `format` is not `"netanom-model"`.
    #[error("{path} is not a netanom model description (\"format\" is {found}, expected \"{FORMAT_NAME}\")")]
    WrongFormat { path: PathBuf, found: String },
    /// `format_version` is not the one this netanom reads.
    #[error("{path}: bundle format version {found} is not supported (this netanom {} reads versions {FORMAT_VERSION} and {FORMAT_VERSION_SMOOTHED}); retrain the model with this version", env!("CARGO_PKG_VERSION"))]
    FormatVersion { path: PathBuf, found: String },
    /// A field of `model.json` is missing, of the wrong type or out of range.
    #[error("{path}: invalid model description: {reason}")]
    InvalidMetadata { path: PathBuf, reason: String },
    /// The feature list differs from this netanom's.
    #[error("{path}: the model's feature list does not match this netanom's: {detail}")]
    FeatureMismatch { path: PathBuf, detail: String },
    /// The model was trained on another window length.
    #[error("{path}: the model was trained on windows of ω = {bundle} s ({} µs) but the windows here are ω = {expected} s ({} µs); use the same window length or retrain", bundle.micros(), expected.micros())]
    OmegaMismatch {
        path: PathBuf,
        bundle: Omega,
        expected: Omega,
    },
    /// The normalisation vectors are invalid.
    #[error("{path}: invalid normalisation: {source}")]
    Normalization {
        path: PathBuf,
        #[source]
        source: NormalizeError,
    },
    /// The weights' SHA-256 is not the one in `model.json`.
    #[error("{path}: SHA-256 is {found}, but {META_FILE} expects {expected} (the weights file is corrupt or belongs to another model)")]
    WeightsHashMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    /// The weights file is not valid for the architecture.
    #[error("{path}: {source}")]
    Weights {
        path: PathBuf,
        #[source]
        source: WeightsError,
    },
    /// A model-layer error (serialising the weights).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A loaded (or freshly trained) model: metadata, network and normalisation.
#[derive(Debug)]
pub struct Bundle {
    /// The contents of `model.json`.
    pub meta: ModelMeta,
    /// The network.
    pub model: LstmAutoencoder,
    /// The min–max normalisation (same values as `meta.normalization`).
    pub normalizer: MinMax,
}

/// SHA-256 of `bytes` as lower-case hex.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Now, Unix seconds (0 if the clock is before 1970).
fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Bundle {
    /// Makes a bundle from a training result. `omega` is the window length the features
    /// were extracted with.
    pub fn from_trained(
        trained: TrainedModel,
        omega: Omega,
        data: TrainingData,
    ) -> Result<Bundle, BundleError> {
        let weights = trained.model.to_safetensors()?;
        let sha = sha256_hex(&weights);
        let arch = trained.model.architecture();
        let last = trained.history.last();
        let opts = &trained.options;
        let meta = ModelMeta {
            format: FORMAT_NAME.to_string(),
            format_version: if trained.normalizer.smoothing().is_some() {
                FORMAT_VERSION_SMOOTHED
            } else {
                FORMAT_VERSION
            },
            model_id: sha[..16].to_string(),
            weights_sha256: sha,
            netanom_version: env!("CARGO_PKG_VERSION").to_string(),
            created_unix: now_unix(),
            feature_names: FEATURE_NAMES.iter().map(|s| s.to_string()).collect(),
            omega,
            sequence_length: SEQ_LEN,
            architecture: ArchitectureMeta {
                kind: ArchitectureKind::Lstm,
                input_size: NUM_FEATURES,
                hidden: arch.hidden,
                layers: arch.layers,
                head: HeadKind::Linear,
                dtype: WeightDtype::F32,
            },
            normalization: NormalizationMeta {
                method: NormalizationMethod::of(trained.normalizer.scaling()),
                min: trained.normalizer.min().to_vec(),
                max: trained.normalizer.max().to_vec(),
                smoothing: trained.normalizer.smoothing().map(|s| SmoothingMeta {
                    packets: s.packets(),
                    center: s.center().to_vec(),
                    min: s.min().to_vec(),
                    max: s.max().to_vec(),
                }),
            },
            threshold: ThresholdMeta {
                value: trained.threshold,
                rule: opts.threshold_rule,
                source: ThresholdSource::Validation,
                spot: trained.spot,
            },
            training: TrainingMeta {
                files: data.files,
                window_count: trained.train_windows + trained.validation_windows,
                train_windows: trained.train_windows,
                validation_windows: trained.validation_windows,
                start_unix: data.start_unix,
                end_unix: data.end_unix,
                epochs: opts.epochs,
                learning_rate: opts.learning_rate,
                batch_size: opts.batch_size,
                seed: opts.seed,
                validation_fraction: opts.validation_fraction,
                load_augment: opts.load_augment,
                final_train_loss: last.map(|s| s.train_loss).unwrap_or(f64::NAN),
                final_validation_loss: last.map(|s| s.validation_loss).unwrap_or(f64::NAN),
            },
            validation_scores: trained.validation_quantiles,
        };
        Ok(Bundle {
            meta,
            model: trained.model,
            normalizer: trained.normalizer,
        })
    }

    /// Alert threshold: a run alerts when its score is above this.
    pub fn threshold(&self) -> f64 {
        self.meta.threshold.value
    }

    /// Window length the model was trained on.
    pub fn omega(&self) -> Omega {
        self.meta.omega
    }

    /// Short model id (first 16 hex digits of the weights' SHA-256).
    pub fn model_id(&self) -> &str {
        &self.meta.model_id
    }

    /// Normalises three raw windows (oldest first) and scores them.
    pub fn score_raw(&self, run: &Run) -> Result<f64, ModelError> {
        let norm: Run = [
            self.normalizer.transform(&run[0])?,
            self.normalizer.transform(&run[1])?,
            self.normalizer.transform(&run[2])?,
        ];
        self.model.score(&norm)
    }

    /// Writes `dir/weights.safetensors` and `dir/model.json`, creating `dir` if needed.
    /// Each file is written to a temporary name and renamed into place, weights first; the
    /// weights' hash in `model.json` lets `load` detect a half-replaced bundle.
    pub fn save(&self, dir: &Path) -> Result<(), BundleError> {
        let weights = self.model.to_safetensors()?;
        let mut meta = self.meta.clone();
        meta.weights_sha256 = sha256_hex(&weights);
        meta.model_id = meta.weights_sha256[..16].to_string();
        // Refuse to write what load would refuse (e.g. a NaN that JSON cannot even hold).
        check_meta(&meta, &dir.join(META_FILE), None)?;
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| BundleError::InvalidMetadata {
            path: dir.join(META_FILE),
            reason: format!("cannot serialise: {e}"),
        })?;
        fs::create_dir_all(dir).map_err(|source| BundleError::Io {
            action: "create",
            path: dir.to_path_buf(),
            source,
        })?;
        write_replace(&dir.join(WEIGHTS_FILE), &weights)?;
        let mut json = json;
        json.push(b'\n');
        write_replace(&dir.join(META_FILE), &json)?;
        Ok(())
    }

    /// Loads and checks a bundle. With `expected_omega_us`, a model trained on another window
    /// length is refused.
    pub fn load(dir: &Path, expected_omega: Option<Omega>) -> Result<Bundle, BundleError> {
        match fs::metadata(dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BundleError::NotFound {
                    path: dir.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(BundleError::Io {
                    action: "read",
                    path: dir.to_path_buf(),
                    source,
                })
            }
            Ok(m) if !m.is_dir() => {
                return Err(BundleError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
            Ok(_) => {}
        }
        let meta_path = dir.join(META_FILE);
        let weights_path = dir.join(WEIGHTS_FILE);
        let json = read_file(&meta_path, "model description (JSON metadata)")?;
        let (meta, arch, normalizer) = parse_meta(&json, &meta_path, expected_omega)?;

        let weights = read_file(&weights_path, "model weights (safetensors)")?;
        let found = sha256_hex(&weights);
        if found != meta.weights_sha256 {
            return Err(BundleError::WeightsHashMismatch {
                path: weights_path,
                expected: meta.weights_sha256.clone(),
                found,
            });
        }
        let model = LstmAutoencoder::from_safetensors(arch, &weights).map_err(|source| {
            BundleError::Weights {
                path: weights_path,
                source,
            }
        })?;
        tracing::info!(
            model_id = %meta.model_id,
            omega_s = %meta.omega,
            threshold = meta.threshold.value,
            dir = %dir.display(),
            "model bundle loaded"
        );
        Ok(Bundle {
            meta,
            model,
            normalizer,
        })
    }
}

/// The model id recorded in `dir/model.json` (after a save, the hash of the weights written).
pub fn read_model_id(dir: &Path) -> Result<String, BundleError> {
    let meta_path = dir.join(META_FILE);
    let json = read_file(&meta_path, "model description (JSON metadata)")?;
    let (meta, _, _) = parse_meta(&json, &meta_path, None)?;
    Ok(meta.model_id)
}

/// Reads a bundle file; a missing one is [`BundleError::MissingFile`] naming `what` it holds.
fn read_file(path: &Path, what: &'static str) -> Result<Vec<u8>, BundleError> {
    fs::read(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            BundleError::MissingFile {
                path: path.to_path_buf(),
                what,
            }
        } else {
            BundleError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// Writes `path` through a temporary file renamed into place.
fn write_replace(path: &Path, bytes: &[u8]) -> Result<(), BundleError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, bytes).map_err(|source| BundleError::Io {
        action: "write",
        path: tmp.clone(),
        source,
    })?;
    fs::rename(&tmp, path).map_err(|source| BundleError::Io {
        action: "rename into",
        path: path.to_path_buf(),
        source,
    })
}

/// Parses and checks `model.json` (its bytes `json`; `meta_path` names it in errors) without
/// the weights: everything [`Bundle::load`] checks before it reads them.
pub fn parse_meta(
    json: &[u8],
    meta_path: &Path,
    expected_omega: Option<Omega>,
) -> Result<(ModelMeta, Architecture, MinMax), BundleError> {
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|source| BundleError::CorruptJson {
            path: meta_path.to_path_buf(),
            source,
        })?;
    // Format and version first: a future format may have changed any other field.
    match value.get("format") {
        Some(serde_json::Value::String(s)) if s == FORMAT_NAME => {}
        other => {
            return Err(BundleError::WrongFormat {
                path: meta_path.to_path_buf(),
                found: other
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "missing".into()),
            })
        }
    }
    match value.get("format_version") {
        Some(v)
            if v.as_u64() == Some(FORMAT_VERSION as u64)
                || v.as_u64() == Some(FORMAT_VERSION_SMOOTHED as u64) => {}
        other => {
            return Err(BundleError::FormatVersion {
                path: meta_path.to_path_buf(),
                found: other
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "missing".into()),
            })
        }
    }
    // The path names the key of a wrong value: `architecture.type: unknown variant ...`.
    let meta: ModelMeta =
        serde_path_to_error::deserialize(value).map_err(|e| BundleError::InvalidMetadata {
            path: meta_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let (arch, normalizer) = check_meta(&meta, meta_path, expected_omega)?;
    Ok((meta, arch, normalizer))
}

/// Every check of `model.json` that does not need the weights.
fn check_meta(
    meta: &ModelMeta,
    path: &Path,
    expected_omega: Option<Omega>,
) -> Result<(Architecture, MinMax), BundleError> {
    let invalid = |reason: String| BundleError::InvalidMetadata {
        path: path.to_path_buf(),
        reason,
    };
    let features = |detail: String| BundleError::FeatureMismatch {
        path: path.to_path_buf(),
        detail,
    };

    if meta.feature_names.len() != NUM_FEATURES {
        return Err(features(format!(
            "it lists {} features, expected {NUM_FEATURES}",
            meta.feature_names.len()
        )));
    }
    for (i, (found, expected)) in meta.feature_names.iter().zip(FEATURE_NAMES).enumerate() {
        if found != expected {
            return Err(features(format!(
                "feature #{} is \"{found}\", expected \"{expected}\"",
                i + 1
            )));
        }
    }
    if let Some(expected) = expected_omega {
        if meta.omega != expected {
            return Err(BundleError::OmegaMismatch {
                path: path.to_path_buf(),
                bundle: meta.omega,
                expected,
            });
        }
    }
    if meta.sequence_length != SEQ_LEN {
        return Err(invalid(format!(
            "sequence_length is {}, expected {SEQ_LEN}",
            meta.sequence_length
        )));
    }
    // `type`, `head`, `dtype` and `threshold.source` have one valid value each, and
    // `normalization.method` two: their types hold nothing else, and serde refused any other.
    let a = &meta.architecture;
    if a.input_size != NUM_FEATURES {
        return Err(invalid(format!(
            "architecture input_size is {}, expected {NUM_FEATURES}",
            a.input_size
        )));
    }
    let arch = Architecture {
        hidden: a.hidden,
        layers: a.layers,
    };
    arch.validate()
        .map_err(|e| invalid(format!("architecture: {e}")))?;
    match (meta.format_version, &meta.normalization.smoothing) {
        (FORMAT_VERSION_SMOOTHED, None) => {
            return Err(invalid(format!(
                "format_version {FORMAT_VERSION_SMOOTHED} is a smoothed bundle's, but normalization.smoothing is missing"
            )))
        }
        (FORMAT_VERSION, Some(_)) => {
            return Err(invalid(format!(
                "normalization.smoothing needs format_version {FORMAT_VERSION_SMOOTHED} (a netanom older than smoothing would ignore it), found {FORMAT_VERSION}"
            )))
        }
        _ => {}
    }
    let normalization_error = |source| BundleError::Normalization {
        path: path.to_path_buf(),
        source,
    };
    let smoothing = match &meta.normalization.smoothing {
        None => None,
        Some(s) => Some(
            Smoothing::new(s.packets, s.center.clone(), s.min.clone(), s.max.clone())
                .map_err(normalization_error)?,
        ),
    };
    let normalizer = MinMax::new_smoothed(
        meta.normalization.min.clone(),
        meta.normalization.max.clone(),
        meta.normalization.method.scaling(),
        smoothing,
    )
    .map_err(normalization_error)?;
    let t = meta.threshold.value;
    if !(t.is_finite() && t >= 0.0) {
        return Err(invalid(format!(
            "threshold value {t} is not a finite number ≥ 0"
        )));
    }
    meta.threshold
        .rule
        .validate()
        .map_err(|e| invalid(format!("threshold: {e}")))?;
    if let Some(spot) = &meta.threshold.spot {
        spot.validate()
            .map_err(|e| invalid(format!("threshold.spot: {e}")))?;
    }
    let hex_ok = meta.weights_sha256.len() == 64
        && meta.weights_sha256.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex_ok {
        return Err(invalid("weights_sha256 is not 64 hex digits".into()));
    }
    Ok((arch, normalizer))
}

#[cfg(test)]
mod tests {
    use super::super::train::{synthetic::normal_windows, train, TrainOptions};
    use super::*;
    use crate::window::features::FeatureVector;

    /// The shipped bundle, `model/default`.
    const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/model/default");

    /// The ω of the test bundles: 5 s.
    fn omega() -> Omega {
        Omega::from_micros(5_000_000).unwrap()
    }

    /// A small bundle trained on synthetic normal windows, and those windows.
    fn trained_bundle() -> (Bundle, Vec<FeatureVector>) {
        trained_bundle_with(TrainOptions {
            layers: 2,
            ..Default::default()
        })
    }

    /// A small bundle trained on 60 synthetic windows with `opts` (hidden 8, 2 epochs,
    /// batches of 16, seed 9 whatever `opts` says).
    fn trained_bundle_with(opts: TrainOptions) -> (Bundle, Vec<FeatureVector>) {
        let w = normal_windows(60, 11);
        let opts = TrainOptions {
            hidden: 8,
            epochs: 2,
            batch_size: 16,
            seed: 9,
            ..opts
        };
        let t = train(&w, &opts, |_| {}).unwrap();
        let data = TrainingData {
            files: vec!["normal.csv".into()],
            start_unix: 1.7e9,
            end_unix: 1.7e9 + 300.0,
        };
        (Bundle::from_trained(t, omega(), data).unwrap(), w)
    }

    /// A trained bundle saved in a fresh temporary directory.
    fn saved() -> (tempfile::TempDir, Bundle) {
        let (b, _) = trained_bundle();
        let dir = tempfile::tempdir().unwrap();
        b.save(dir.path()).unwrap();
        (dir, b)
    }

    /// Rewrites `dir/model.json` through `f`.
    fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let p = dir.join(META_FILE);
        let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        f(&mut v);
        fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    }

    /// The error of loading `dir` (with an expected ω in µs).
    fn load_error(dir: &Path, omega: Option<u64>) -> BundleError {
        Bundle::load(dir, omega.map(|us| Omega::from_micros(us).unwrap())).unwrap_err()
    }

    #[test]
    fn shipped_bundle_loads_and_saves_byte_identical() {
        let dir = Path::new(SHIPPED);
        let b = Bundle::load(dir, None).unwrap();
        let a = &b.meta.architecture;
        assert_eq!(
            (a.kind, a.head, a.dtype),
            (ArchitectureKind::Lstm, HeadKind::Linear, WeightDtype::F32)
        );
        assert_eq!(b.meta.normalization.method, NormalizationMethod::MinMax);
        assert_eq!(b.meta.threshold.source, ThresholdSource::Validation);
        // What save would write is the file as shipped, byte for byte.
        let mut json = serde_json::to_vec_pretty(&b.meta).unwrap();
        json.push(b'\n');
        let shipped = fs::read(dir.join(META_FILE)).unwrap();
        assert!(
            json == shipped,
            "re-serialised model.json differs from the shipped one:\n{}",
            String::from_utf8_lossy(&json)
        );
    }

    #[test]
    fn wrong_fixed_values_name_the_key_and_the_expected_value() {
        let (dir, _) = saved();
        let p = dir.path().join(META_FILE);
        let good = fs::read(&p).unwrap();
        for (section, key, expected) in [
            ("architecture", "type", "lstm"),
            ("architecture", "head", "linear"),
            ("architecture", "dtype", "f32"),
            ("normalization", "method", "minmax"),
            ("threshold", "source", "validation"),
        ] {
            fs::write(&p, &good).unwrap();
            edit_json(dir.path(), |v| v[section][key] = "gru".into());
            let e = load_error(dir.path(), None);
            assert!(matches!(e, BundleError::InvalidMetadata { .. }), "{e:?}");
            let e = e.to_string();
            assert!(
                e.contains("model.json: invalid model description: ")
                    && e.contains(&format!(
                        "{section}.{key}: unknown variant `gru`, expected `{expected}`"
                    )),
                "{e}"
            );
        }
    }

    #[test]
    fn round_trip_gives_identical_scores_and_metadata() {
        let (b, w) = trained_bundle();
        let dir = tempfile::tempdir().unwrap();
        b.save(dir.path()).unwrap();
        let l = Bundle::load(dir.path(), Some(omega())).unwrap();
        assert_eq!(l.meta, b.meta);
        assert_eq!(l.normalizer, b.normalizer);
        assert_eq!(
            l.model.architecture(),
            Architecture {
                hidden: 8,
                layers: 2
            }
        );
        for i in 0..w.len() - 2 {
            let run = [w[i], w[i + 1], w[i + 2]];
            assert_eq!(b.score_raw(&run).unwrap(), l.score_raw(&run).unwrap());
        }
        let json = fs::read_to_string(dir.path().join(META_FILE)).unwrap();
        for key in [
            "\"format_version\": 1",
            "\"omega_us\": 5000000",
            "\"sequence_length\": 3",
            "\"type\": \"lstm\"",
            "\"rule\": \"quantile_times_factor\"",
            "\"quantile\": 0.995",
            "\"p99_5\"",
            "\"files\"",
        ] {
            assert!(json.contains(key), "{key} not in {json}");
        }
        assert_eq!(l.model_id().len(), 16);
        // Loading without an expected ω works too.
        Bundle::load(dir.path(), None).unwrap();
    }

    /// A model trained with small-window smoothing stores it, loads it back, scores with it,
    /// and a bad stored prior is refused naming the file and what was expected.
    #[test]
    fn smoothing_is_stored_and_used() {
        let (b, w) = trained_bundle_with(TrainOptions {
            smoothing_packets: Some(64.0),
            ..Default::default()
        });
        let dir = tempfile::tempdir().unwrap();
        b.save(dir.path()).unwrap();
        let l = Bundle::load(dir.path(), Some(omega())).unwrap();
        assert_eq!(l.normalizer, b.normalizer);
        let s = l.normalizer.smoothing().expect("smoothing kept");
        assert_eq!(s.packets(), 64.0);
        let json = fs::read_to_string(dir.path().join(META_FILE)).unwrap();
        assert!(json.contains("\"smoothing\": {"), "{json}");
        assert!(json.contains("\"format_version\": 2"), "{json}");
        // The score is of the smoothed windows: the same as scoring them unsmoothed with a
        // plain min–max over the smoothed bounds.
        let run = [w[0], w[1], w[2]];
        let plain = MinMax::new(s.min().to_vec(), s.max().to_vec()).unwrap();
        let norm = [
            plain.transform(&s.apply(&run[0])).unwrap(),
            plain.transform(&s.apply(&run[1])).unwrap(),
            plain.transform(&s.apply(&run[2])).unwrap(),
        ];
        assert_eq!(l.score_raw(&run).unwrap(), l.model.score(&norm).unwrap());
        // A bundle without smoothing writes no key (the paper's model.json is unchanged).
        let (plain_dir, _) = saved();
        let json = fs::read_to_string(plain_dir.path().join(META_FILE)).unwrap();
        assert!(!json.contains("smoothing"), "{json}");

        edit_json(dir.path(), |v| {
            v["normalization"]["smoothing"]["packets"] = 0.0.into()
        });
        let e = load_error(dir.path(), None).to_string();
        assert!(
            e.contains("model.json")
                && e.contains("prior of 0 packets, expected a finite number > 0"),
            "{e}"
        );
        b.save(dir.path()).unwrap();
        edit_json(dir.path(), |v| {
            v["normalization"]["smoothing"]["center"] = serde_json::json!([0.0])
        });
        let e = load_error(dir.path(), None).to_string();
        assert!(
            e.contains("smoothing center vector has 1 values, expected 53"),
            "{e}"
        );
        b.save(dir.path()).unwrap();
        edit_json(dir.path(), |v| v["format_version"] = 1.into());
        let e = load_error(dir.path(), None).to_string();
        assert!(
            e.contains("normalization.smoothing needs format_version 2"),
            "{e}"
        );
    }

    #[test]
    fn missing_dir_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_error(&dir.path().join("nope"), None);
        assert!(matches!(e, BundleError::NotFound { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("nope does not exist"), "{e}");
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::MissingFile { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("model.json is missing"), "{e}");
        let (dir, _) = saved();
        fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::MissingFile { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("weights.safetensors is missing (expected the model weights"),
            "{e}"
        );
        let f = dir.path().join(META_FILE);
        let e = load_error(&f, None);
        assert!(matches!(e, BundleError::NotADirectory { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("is not a directory"), "{e}");
    }

    #[test]
    fn wrong_omega() {
        let (dir, _) = saved();
        let e = load_error(dir.path(), Some(30_000_000));
        assert!(matches!(e, BundleError::OmegaMismatch { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("model.json"), "{e}");
        assert!(
            e.contains("ω = 5 s (5000000 µs)") && e.contains("ω = 30 s (30000000 µs)"),
            "{e}"
        );
    }

    #[test]
    fn wrong_feature_list() {
        let (dir, _) = saved();
        edit_json(dir.path(), |v| v["feature_names"][9] = "syn_cnt".into());
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::FeatureMismatch { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("feature #10 is \"syn_cnt\", expected \"syn_count\""),
            "{e}"
        );
        edit_json(dir.path(), |v| {
            v["feature_names"].as_array_mut().unwrap().pop();
        });
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::FeatureMismatch { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("lists 52 features, expected 53"), "{e}");
    }

    #[test]
    fn corrupt_json_and_bad_format_version() {
        let (dir, _) = saved();
        let p = dir.path().join(META_FILE);
        let good = fs::read(&p).unwrap();
        fs::write(&p, &good[..good.len() / 2]).unwrap();
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::CorruptJson { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("model.json is not valid JSON"), "{e}");

        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| v["format_version"] = 3.into());
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::FormatVersion { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("bundle format version 3 is not supported")
                && e.contains("reads versions 1 and 2"),
            "{e}"
        );
        // Version 2 is a smoothed bundle's: one without smoothing is refused, and so is a
        // smoothed one claiming version 1 (an older netanom would score it unsmoothed).
        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| v["format_version"] = 2.into());
        let e = load_error(dir.path(), None).to_string();
        assert!(
            e.contains(
                "format_version 2 is a smoothed bundle's, but normalization.smoothing is missing"
            ),
            "{e}"
        );

        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| v["format"] = "something-else".into());
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::WrongFormat { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("not a netanom model description"), "{e}");

        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| {
            v.as_object_mut().unwrap().remove("omega_us");
        });
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::InvalidMetadata { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("missing field `omega_us`"), "{e}");

        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| v["normalization"]["max"][1] = (-1.0).into());
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::Normalization { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("invalid normalisation") && e.contains("pkt_count"),
            "{e}"
        );

        fs::write(&p, &good).unwrap();
        edit_json(dir.path(), |v| {
            v["normalization"]["min"].as_array_mut().unwrap().pop();
        });
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::Normalization { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("min vector has 52 values, expected 53"), "{e}");
    }

    #[test]
    fn corrupt_or_wrong_weights() {
        let (dir, _) = saved();
        let p = dir.path().join(WEIGHTS_FILE);
        let good = fs::read(&p).unwrap();
        // A flipped byte in the data: still parses as safetensors, caught by the hash.
        let mut bad = good.clone();
        let last = bad.len() - 3;
        bad[last] ^= 0x40;
        fs::write(&p, &bad).unwrap();
        let e = load_error(dir.path(), None);
        assert!(
            matches!(e, BundleError::WeightsHashMismatch { .. }),
            "{e:?}"
        );
        let e = e.to_string();
        assert!(
            e.contains("weights.safetensors: SHA-256 is") && e.contains("corrupt"),
            "{e}"
        );

        // Truncated, with model.json's hash updated to match: the safetensors parser refuses it.
        let trunc = &good[..good.len() / 2];
        fs::write(&p, trunc).unwrap();
        edit_json(dir.path(), |v| {
            v["weights_sha256"] = sha256_hex(trunc).into()
        });
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::Weights { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("weights.safetensors: not a valid safetensors file"),
            "{e}"
        );

        // Weights of another architecture, hash updated: the shape check refuses them.
        let other = LstmAutoencoder::new(
            Architecture {
                hidden: 4,
                layers: 2,
            },
            1,
        )
        .unwrap()
        .to_safetensors()
        .unwrap();
        fs::write(&p, &other).unwrap();
        edit_json(dir.path(), |v| {
            v["weights_sha256"] = sha256_hex(&other).into()
        });
        let e = load_error(dir.path(), None);
        assert!(matches!(e, BundleError::Weights { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("weights.safetensors: tensor lstm.weight_ih_l0 has shape [16, 53], expected [32, 53]"), "{e}");
    }
}
