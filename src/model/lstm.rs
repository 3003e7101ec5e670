//! The LSTM reconstruction model (paper, section 2.2 and Fig. 1).
//!
//! Input: a run of 3 consecutive normalised windows, shape `[batch, 3, 53]` (batch first).
//! An LSTM (input 53, hidden H, L layers) reads the run; a linear head maps each time step's
//! hidden state (H) back to 53 values. The target is the input itself. Everything is f32 on
//! the CPU; the anomaly score is accumulated in f64 against the f64 normalised input.
//!
//! The weights are created here rather than with `tch::nn::lstm` so that (a) initialisation
//! uses our own seeded generator (reproducible even when several models are built at once in
//! one process) and (b) the forward pass can use the fallible `f_lstm`, so a libtorch error is
//! an `Err`, never a panic. The variable names are the ones PyTorch and `tch::nn::lstm` use
//! (`lstm.weight_ih_l0`, …), plus `head.weight` and `head.bias`.

use std::borrow::Cow;
use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::{ModelError, Run, SplitMix64, RUN_VALUES, SEQ_LEN};
use crate::window::features::{FeatureVector, NUM_FEATURES};

/// Largest hidden size and layer count accepted (well beyond anything useful for 53 inputs;
/// the bound only protects against absurd values in a bundle).
pub const MAX_HIDDEN: usize = 4096;
/// See [`MAX_HIDDEN`].
pub const MAX_LAYERS: usize = 16;

/// Runs scored per libtorch call by [`LstmAutoencoder::score_windows`].
const BATCH_SCORE_CHUNK: usize = 4096;

/// Shape of the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Architecture {
    /// LSTM hidden size H.
    pub hidden: usize,
    /// Number of stacked LSTM layers L.
    pub layers: usize,
}

impl Architecture {
    /// Checks the ranges: 1 ≤ hidden ≤ [`MAX_HIDDEN`], 1 ≤ layers ≤ [`MAX_LAYERS`].
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_HIDDEN).contains(&self.hidden) {
            return Err(format!(
                "hidden size {} is outside 1..={MAX_HIDDEN}",
                self.hidden
            ));
        }
        if !(1..=MAX_LAYERS).contains(&self.layers) {
            return Err(format!(
                "layer count {} is outside 1..={MAX_LAYERS}",
                self.layers
            ));
        }
        Ok(())
    }

    /// Every weight tensor of this architecture: name and shape, in a fixed order.
    pub fn tensor_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (h, f) = (self.hidden, NUM_FEATURES);
        let mut v = Vec::with_capacity(4 * self.layers + 2);
        for l in 0..self.layers {
            let input = if l == 0 { f } else { h };
            v.push((format!("lstm.weight_ih_l{l}"), vec![4 * h, input]));
            v.push((format!("lstm.weight_hh_l{l}"), vec![4 * h, h]));
            v.push((format!("lstm.bias_ih_l{l}"), vec![4 * h]));
            v.push((format!("lstm.bias_hh_l{l}"), vec![4 * h]));
        }
        v.push(("head.weight".to_string(), vec![f, h]));
        v.push(("head.bias".to_string(), vec![f]));
        v
    }
}

/// Why a weights file could not be turned into a model.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    /// Not a readable safetensors file.
    #[error("not a valid safetensors file ({0})")]
    Corrupt(String),
    /// A tensor the architecture needs is absent.
    #[error("tensor {name} is missing (expected shape {expected:?} for this architecture)")]
    Missing { name: String, expected: Vec<usize> },
    /// A tensor that this architecture does not have.
    #[error("unexpected tensor {name} (not part of this architecture)")]
    Unexpected { name: String },
    /// Wrong shape.
    #[error("tensor {name} has shape {found:?}, expected {expected:?} for this architecture")]
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// Wrong element type.
    #[error("tensor {name} has dtype {found}, expected F32")]
    Dtype { name: String, found: String },
    /// NaN or infinite weights.
    #[error("tensor {name} holds a non-finite value")]
    NonFinite { name: String },
    /// Invalid architecture.
    #[error("{0}")]
    Architecture(String),
    /// libtorch refused to build the model.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// The LSTM reconstruction model.
#[derive(Debug)]
pub struct LstmAutoencoder {
    vs: VarStore,
    /// w_ih, w_hh, b_ih, b_hh per layer: the flat parameter list `lstm` expects.
    lstm_params: Vec<Tensor>,
    head_w: Tensor,
    head_b: Tensor,
    arch: Architecture,
    /// Zero initial state for one run, [L, 1, H]: allocated once, reused by [`Self::score`].
    zero_state_1: Tensor,
}

impl LstmAutoencoder {
    /// A new model with weights drawn from `seed` as PyTorch would (uniform ±1/√H for the LSTM,
    /// ±1/√H for the head, whose input is H), but from our own generator.
    pub fn new(arch: Architecture, seed: u64) -> Result<Self, ModelError> {
        arch.validate().map_err(ModelError::InvalidOption)?;
        let mut rng = SplitMix64::new(seed);
        let bound = 1.0 / (arch.hidden as f64).sqrt();
        let params = arch
            .tensor_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let n: usize = shape.iter().product();
                let data: Vec<f32> = (0..n).map(|_| rng.uniform(-bound, bound) as f32).collect();
                (name, (shape, data))
            })
            .collect();
        Self::from_params(arch, params)
    }

    /// Builds the model from named f32 tensors (shape, row-major data). The caller has checked
    /// names and shapes against `arch`.
    fn from_params(
        arch: Architecture,
        mut params: HashMap<String, (Vec<usize>, Vec<f32>)>,
    ) -> Result<Self, ModelError> {
        super::use_single_thread();
        let vs = VarStore::new(Device::Cpu);
        let root = vs.root();
        let mut take = |name: &str| -> Result<Tensor, ModelError> {
            let (shape, data) = params
                .remove(name)
                .ok_or(ModelError::InvalidOption(format!(
                    "internal: parameter {name} not provided"
                )))?;
            let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
            let t = Tensor::f_from_slice(&data)
                .and_then(|t| t.f_view(dims.as_slice()))
                .map_err(ModelError::torch("creating a weight tensor"))?;
            // VarStore paths are "group.name"; a name itself may not contain the separator.
            let path = match name.split_once('.') {
                Some((group, leaf)) => (root.sub(group), leaf),
                None => (root.sub("model"), name),
            };
            path.0
                .f_var_copy(path.1, &t)
                .map_err(ModelError::torch("registering a weight tensor"))
        };
        let mut lstm_params = Vec::with_capacity(4 * arch.layers);
        for l in 0..arch.layers {
            for kind in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                lstm_params.push(take(&format!("lstm.{kind}_l{l}"))?);
            }
        }
        let head_w = take("head.weight")?;
        let head_b = take("head.bias")?;
        let zero_state_1 = Tensor::f_zeros(
            [arch.layers as i64, 1, arch.hidden as i64],
            (Kind::Float, Device::Cpu),
        )
        .map_err(ModelError::torch("allocating the initial state"))?;
        Ok(LstmAutoencoder {
            vs,
            lstm_params,
            head_w,
            head_b,
            arch,
            zero_state_1,
        })
    }

    /// The network's shape.
    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    /// The variables, for the optimiser.
    pub(crate) fn var_store(&self) -> &VarStore {
        &self.vs
    }

    /// Forward pass: `xs` is `[batch, 3, 53]` f32, the result has the same shape.
    /// `train` only matters for dropout, which this model does not use.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Result<Tensor, ModelError> {
        let size = xs.size();
        if size.len() != 3 || size[1] != SEQ_LEN as i64 || size[2] != NUM_FEATURES as i64 {
            return Err(ModelError::InvalidOption(format!(
                "model input has shape {size:?}, expected [batch, {SEQ_LEN}, {NUM_FEATURES}]"
            )));
        }
        let h0 = if size[0] == 1 {
            self.zero_state_1.shallow_clone()
        } else {
            Tensor::f_zeros(
                [self.arch.layers as i64, size[0], self.arch.hidden as i64],
                (Kind::Float, Device::Cpu),
            )
            .map_err(ModelError::torch("allocating the initial state"))?
        };
        let (out, _h, _c) = xs
            .f_lstm(
                &[h0.shallow_clone(), h0],
                &self.lstm_params,
                true,
                self.arch.layers as i64,
                0.0,
                train,
                false,
                true,
            )
            .map_err(ModelError::torch("running the LSTM"))?;
        out.f_linear(&self.head_w, Some(&self.head_b))
            .map_err(ModelError::torch("running the output layer"))
    }

    /// Anomaly score of one run of three consecutive *normalised* windows (oldest first):
    /// Σ over the 3 × 53 values of (t' − y')², accumulated in f64.
    ///
    /// Cost: one `[1, 3, 53]` input tensor and libtorch's intermediates; no other allocation.
    /// Runs with gradients off.
    pub fn score(&self, run: &Run) -> Result<f64, ModelError> {
        let mut input = [0f32; RUN_VALUES];
        for (dst, src) in input.iter_mut().zip(run.iter().flatten()) {
            *dst = *src as f32;
        }
        let mut output = [0f32; RUN_VALUES];
        tch::no_grad(|| -> Result<(), ModelError> {
            let xs = Tensor::f_from_slice(&input)
                .and_then(|t| t.f_view([1, SEQ_LEN as i64, NUM_FEATURES as i64]))
                .map_err(ModelError::torch("building the model input"))?;
            let ys = self.forward(&xs, false)?;
            ys.f_contiguous()
                .and_then(|y| y.f_copy_data(&mut output, RUN_VALUES))
                .map_err(ModelError::torch("reading the model output"))
        })?;
        let s = sq_error(run.iter().flatten().copied(), &output);
        if s.is_finite() {
            Ok(s)
        } else {
            Err(ModelError::NonFiniteOutput { what: "score" })
        }
    }

    /// Scores of every run of three consecutive normalised windows (stride 1): element `i` is
    /// the score of windows `i, i+1, i+2`, so the result has `len − 2` elements (none when
    /// fewer than 3 windows). The windows must be consecutive; for offline use.
    pub fn score_windows(&self, windows: &[FeatureVector]) -> Result<Vec<f64>, ModelError> {
        let runs = windows.len().saturating_sub(SEQ_LEN - 1);
        let mut scores = Vec::with_capacity(runs);
        let mut start = 0;
        while start < runs {
            let n = (runs - start).min(BATCH_SCORE_CHUNK);
            let input = runs_to_f32(windows, start..start + n);
            let mut output = vec![0f32; n * RUN_VALUES];
            tch::no_grad(|| -> Result<(), ModelError> {
                let xs = Tensor::f_from_slice(&input)
                    .and_then(|t| t.f_view([n as i64, SEQ_LEN as i64, NUM_FEATURES as i64]))
                    .map_err(ModelError::torch("building the model input"))?;
                let ys = self.forward(&xs, false)?;
                ys.f_contiguous()
                    .and_then(|y| y.f_copy_data(&mut output, n * RUN_VALUES))
                    .map_err(ModelError::torch("reading the model output"))
            })?;
            for r in 0..n {
                let first = start + r;
                let t = windows[first..first + SEQ_LEN].iter().flatten().copied();
                let s = sq_error(t, &output[r * RUN_VALUES..(r + 1) * RUN_VALUES]);
                if !s.is_finite() {
                    return Err(ModelError::NonFiniteOutput { what: "score" });
                }
                scores.push(s);
            }
            start += n;
        }
        Ok(scores)
    }

    /// Scores of the runs of normalised `windows` starting at each of `starts` (each must
    /// leave room for a whole run), in that order.
    pub fn score_runs(
        &self,
        windows: &[FeatureVector],
        starts: &[usize],
    ) -> Result<Vec<f64>, ModelError> {
        let mut scores = Vec::with_capacity(starts.len());
        for chunk in starts.chunks(BATCH_SCORE_CHUNK) {
            let n = chunk.len();
            let input = runs_at_to_f32(windows, chunk);
            let mut output = vec![0f32; n * RUN_VALUES];
            tch::no_grad(|| -> Result<(), ModelError> {
                let xs = Tensor::f_from_slice(&input)
                    .and_then(|t| t.f_view([n as i64, SEQ_LEN as i64, NUM_FEATURES as i64]))
                    .map_err(ModelError::torch("building the model input"))?;
                let ys = self.forward(&xs, false)?;
                ys.f_contiguous()
                    .and_then(|y| y.f_copy_data(&mut output, n * RUN_VALUES))
                    .map_err(ModelError::torch("reading the model output"))
            })?;
            for (r, &first) in chunk.iter().enumerate() {
                let t = windows[first..first + SEQ_LEN].iter().flatten().copied();
                let s = sq_error(t, &output[r * RUN_VALUES..(r + 1) * RUN_VALUES]);
                if !s.is_finite() {
                    return Err(ModelError::NonFiniteOutput { what: "score" });
                }
                scores.push(s);
            }
        }
        Ok(scores)
    }

    /// The weights as a safetensors file image (tensors sorted by name; identical weights give
    /// identical bytes).
    pub fn to_safetensors(&self) -> Result<Vec<u8>, ModelError> {
        let mut named = Vec::new();
        let vars = self.vs.variables();
        for (name, shape) in self.arch.tensor_shapes() {
            let t = vars.get(&name).ok_or(ModelError::InvalidOption(format!(
                "internal: variable {name} missing"
            )))?;
            let n: usize = shape.iter().product();
            let mut data = vec![0f32; n];
            t.f_contiguous()
                .and_then(|t| t.f_copy_data(&mut data, n))
                .map_err(ModelError::torch("reading the weights"))?;
            let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
            named.push((name, F32View { shape, data: bytes }));
        }
        named.sort_by(|a, b| a.0.cmp(&b.0));
        safetensors::tensor::serialize(named, &None)
            .map_err(|e| ModelError::InvalidOption(format!("serialising the weights: {e:?}")))
    }

    /// A model from a safetensors file image, checked against `arch`: every tensor present with
    /// its exact shape, F32, finite, and no other tensor.
    pub fn from_safetensors(arch: Architecture, bytes: &[u8]) -> Result<Self, WeightsError> {
        arch.validate().map_err(WeightsError::Architecture)?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| WeightsError::Corrupt(format!("{e:?}")))?;
        let expected = arch.tensor_shapes();
        for name in st.names() {
            if !expected.iter().any(|(n, _)| n == name) {
                return Err(WeightsError::Unexpected { name: name.clone() });
            }
        }
        let mut params = HashMap::new();
        for (name, shape) in expected {
            let view = match st.tensor(&name) {
                Ok(v) => v,
                Err(_) => {
                    return Err(WeightsError::Missing {
                        name,
                        expected: shape,
                    })
                }
            };
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(WeightsError::Dtype {
                    name,
                    found: format!("{:?}", view.dtype()),
                });
            }
            if view.shape() != shape.as_slice() {
                return Err(WeightsError::Shape {
                    name,
                    expected: shape,
                    found: view.shape().to_vec(),
                });
            }
            let data: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if data.len() != shape.iter().product::<usize>() {
                return Err(WeightsError::Corrupt(format!(
                    "tensor {name} has {} values",
                    data.len()
                )));
            }
            if data.iter().any(|v| !v.is_finite()) {
                return Err(WeightsError::NonFinite { name });
            }
            params.insert(name, (shape, data));
        }
        Ok(Self::from_params(arch, params)?)
    }
}

/// Σ (t − y)² in f64.
fn sq_error(t: impl Iterator<Item = f64>, y: &[f32]) -> f64 {
    t.zip(y).map(|(t, &y)| (t - y as f64).powi(2)).sum()
}

/// The f32 input for the runs starting at `range` (each run = 3 consecutive windows).
pub(crate) fn runs_to_f32(windows: &[FeatureVector], range: std::ops::Range<usize>) -> Vec<f32> {
    let mut v = Vec::with_capacity(range.len() * RUN_VALUES);
    for first in range {
        for w in &windows[first..first + SEQ_LEN] {
            v.extend(w.iter().map(|&x| x as f32));
        }
    }
    v
}

/// The runs of [`SEQ_LEN`] windows starting at each of `starts`, flattened to f32 (a batch).
pub(crate) fn runs_at_to_f32<I: TryInto<usize> + Copy>(
    windows: &[FeatureVector],
    starts: &[I],
) -> Vec<f32> {
    let mut v = Vec::with_capacity(starts.len() * RUN_VALUES);
    for &first in starts {
        let first: usize = first.try_into().unwrap_or(usize::MAX);
        for w in &windows[first..first + SEQ_LEN] {
            v.extend(w.iter().map(|&x| x as f32));
        }
    }
    v
}

/// A little-endian f32 tensor for `safetensors::serialize`.
struct F32View {
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl safetensors::View for F32View {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arch() -> Architecture {
        Architecture {
            hidden: 16,
            layers: 2,
        }
    }

    fn windows(n: usize) -> Vec<FeatureVector> {
        (0..n)
            .map(|k| std::array::from_fn(|i| ((k * 7 + i) % 11) as f64 / 10.0))
            .collect()
    }

    #[test]
    fn same_seed_same_model_different_seed_different_model() {
        let a = LstmAutoencoder::new(arch(), 1).unwrap();
        let b = LstmAutoencoder::new(arch(), 1).unwrap();
        let c = LstmAutoencoder::new(arch(), 2).unwrap();
        assert_eq!(a.to_safetensors().unwrap(), b.to_safetensors().unwrap());
        assert_ne!(a.to_safetensors().unwrap(), c.to_safetensors().unwrap());
    }

    #[test]
    fn single_and_batch_scores_agree() {
        let m = LstmAutoencoder::new(arch(), 3).unwrap();
        let w = windows(10);
        let batch = m.score_windows(&w).unwrap();
        assert_eq!(batch.len(), 8);
        for (i, s) in batch.iter().enumerate() {
            let run: Run = [w[i], w[i + 1], w[i + 2]];
            let one = m.score(&run).unwrap();
            assert!((one - s).abs() <= 1e-5 * s.max(1.0), "{one} vs {s}");
            assert!(one > 0.0);
        }
        assert!(m.score_windows(&w[..2]).unwrap().is_empty());
    }

    #[test]
    fn score_is_sum_of_squared_errors() {
        // A model with all weights zero outputs y' = 0, so the score is Σ t'².
        let a = Architecture {
            hidden: 4,
            layers: 1,
        };
        let params = a
            .tensor_shapes()
            .into_iter()
            .map(|(n, s)| {
                let len = s.iter().product();
                (n, (s, vec![0f32; len]))
            })
            .collect();
        let m = LstmAutoencoder::from_params(a, params).unwrap();
        let run: Run = [
            [1.0; NUM_FEATURES],
            [2.0; NUM_FEATURES],
            [0.5; NUM_FEATURES],
        ];
        let expected = NUM_FEATURES as f64 * (1.0 + 4.0 + 0.25);
        assert!((m.score(&run).unwrap() - expected).abs() < 1e-9);
    }

    #[test]
    fn safetensors_round_trip_and_checks() {
        let m = LstmAutoencoder::new(arch(), 5).unwrap();
        let bytes = m.to_safetensors().unwrap();
        let back = LstmAutoencoder::from_safetensors(arch(), &bytes).unwrap();
        let run: Run = [windows(3)[0], windows(3)[1], windows(3)[2]];
        assert_eq!(m.score(&run).unwrap(), back.score(&run).unwrap());

        let e = LstmAutoencoder::from_safetensors(
            Architecture {
                hidden: 8,
                layers: 2,
            },
            &bytes,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("has shape [64, 53], expected [32, 53]"),
            "{e}"
        );
        let e = LstmAutoencoder::from_safetensors(
            Architecture {
                hidden: 16,
                layers: 1,
            },
            &bytes,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unexpected tensor lstm."), "{e}");
        let e = LstmAutoencoder::from_safetensors(
            Architecture {
                hidden: 16,
                layers: 3,
            },
            &bytes,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("tensor lstm.weight_ih_l2 is missing"),
            "{e}"
        );
        let e = LstmAutoencoder::from_safetensors(arch(), &bytes[..bytes.len() / 2]).unwrap_err();
        assert!(
            e.to_string().contains("not a valid safetensors file"),
            "{e}"
        );
        let e = LstmAutoencoder::from_safetensors(arch(), b"garbage").unwrap_err();
        assert!(
            e.to_string().contains("not a valid safetensors file"),
            "{e}"
        );
    }

    #[test]
    fn forward_rejects_wrong_shape() {
        let m = LstmAutoencoder::new(arch(), 1).unwrap();
        let xs = Tensor::zeros([2, 4, NUM_FEATURES as i64], (Kind::Float, Device::Cpu));
        assert!(m.forward(&xs, false).is_err());
    }
}
