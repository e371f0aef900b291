//! Training parameters: PsychRNN's `train_params` with the same meaning and defaults, the loss,
//! the optimiser and the device.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ndarray::{Array, ArrayD, Dimension};
use serde::{Deserialize, Serialize};

use super::TrainModel;
use super::history::Progress;
use crate::error::{Error, Result};

/// The training loss (PsychRNN's `loss_function`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// `mean((mask ⊙ (z − y))²)` over all `B·T·N_out` elements (masked-out ones count as 0).
    #[default]
    MeanSquaredError,
    /// `mean(mask ⊙ −(y·log(p + 1e-7) + (1 − y)·log(1 − p + 1e-7)))`, `p = clip(z, 1e-7, 1 − 1e-7)`.
    BinaryCrossEntropy,
    /// `Σ_{b,t} −Σ_k mask·y_k·log softmax(z)_k / (B·T)`: the outputs are logits over choices at
    /// every time step.
    SoftmaxCrossEntropy,
    /// A closure given with [`Trainer::with_custom_loss`].
    Custom,
}

/// What decides early stopping (PsychRNN's `performance_measure`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceMeasure {
    /// The task's accuracy (the current curriculum stage's; the mean over a mixture's tasks).
    Accuracy,
    /// A closure given with [`Trainer::with_performance_measure`].
    Custom,
}

/// Per-element 0/1 masks (1 = fixed) of entries that never move, keyed by PsychRNN's variable
/// names (`W_rec`, `W_in`, `b_out`, …, or `W_f` for an LSTM), each the variable's shape
/// (`init_state` may be `[n_rec]` or `[1, n_rec]`). As PsychRNN's `fixed_weights`, they zero the
/// masked gradients before clipping, so fixed entries stay bit for bit.
///
/// ```
/// use psychrnn::train::FixedWeights;
/// let mut mask = ndarray::Array2::<f32>::zeros((50, 50));
/// mask.row_mut(0).fill(1.0); // unit 0's inputs stay as they are
/// let fixed = FixedWeights::new().with("W_rec", mask);
/// assert_eq!(fixed.names().collect::<Vec<_>>(), ["W_rec"]);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FixedWeights(pub BTreeMap<String, ArrayD<f32>>);

impl FixedWeights {
    /// No fixed entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the mask of variable `name`.
    pub fn with<D: Dimension>(mut self, name: impl Into<String>, mask: Array<f32, D>) -> Self {
        self.0.insert(name.into(), mask.into_dyn());
        self
    }

    /// Names of the variables with a mask.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The mask of `name`, row-major.
    pub(crate) fn slice(&self, name: &str) -> Option<&[f32]> {
        self.0.get(name).and_then(|a| a.as_slice())
    }

    /// Every mask names a variable of `model`, has its shape and holds only 0 and 1.
    fn validate<M: TrainModel>(&self, model: &M) -> Result<()> {
        let names = model.param_names();
        let shapes = model.param_shapes();
        for (name, mask) in &self.0 {
            let field = format!("fixed_weights.{name}");
            let Some(k) = names.iter().position(|n| n == name) else {
                return Err(Error::Unknown {
                    kind: "fixed_weights variable",
                    name: name.clone(),
                    known: names.join(", "),
                });
            };
            let want = &shapes[k];
            // A [1, n] variable also takes an [n] mask.
            let squeezed: Vec<usize> = want.iter().copied().filter(|&d| d != 1).collect();
            if mask.shape() != want.as_slice() && !(want.len() == 2 && want[0] == 1 && mask.shape() == squeezed) {
                return Err(Error::shape(field, want, mask.shape()));
            }
            if mask.as_slice().is_none() {
                return Err(Error::invalid(field, "must be in standard (row-major) layout"));
            }
            if let Some(v) = mask.iter().find(|&&v| v != 0.0 && v != 1.0) {
                return Err(Error::range(field, v, "entries 0 or 1"));
            }
        }
        Ok(())
    }
}

/// Training parameters, PsychRNN's `train_params` with the same meaning and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Adam (or SGD) step size.
    pub learning_rate: f64,
    /// Trials to train on; `ceil(training_iters / batch)` updates. (PsychRNN 1.0.0 on PyPI ran one
    /// update fewer; GitHub master and psychrnn run the full count.)
    pub training_iters: usize,
    /// Record the loss every this many updates.
    pub loss_epoch: usize,
    /// Clip each gradient tensor to L2 norm ≤ 1.
    pub clip_grads: bool,
    /// Loss function.
    pub loss: Loss,
    /// Adam (TF1) or plain SGD.
    pub optimizer: OptimizerKind,
    /// `L1_in · mean|W_in_eff|`.
    pub l1_in: f64,
    /// `L1_rec · mean|W_rec_eff|`.
    pub l1_rec: f64,
    /// `L1_out · mean|W_out_eff|`.
    pub l1_out: f64,
    /// `L2_in · mean(W_in_eff²)`.
    pub l2_in: f64,
    /// `L2_rec · mean(W_rec_eff²)`.
    pub l2_rec: f64,
    /// `L2_out · mean(W_out_eff²)`.
    pub l2_out: f64,
    /// `L2_firing_rate · mean(f(states)²)`.
    pub l2_firing_rate: f64,
    /// Entries that never move.
    pub fixed_weights: FixedWeights,
    /// Measured on a fresh batch after every update; training stops once it reaches
    /// `performance_cutoff`. Give both or neither.
    pub performance_measure: Option<PerformanceMeasure>,
    /// See `performance_measure`.
    pub performance_cutoff: Option<f64>,
    /// Where the trained weights are written when a training call ends (PsychRNN format with Adam
    /// slots; `.npz` appended when missing). Never overwrites.
    pub save_weights_path: Option<PathBuf>,
    /// Prefix of checkpoints written every `save_training_weights_epoch` updates during training:
    /// `<prefix><update>.npz` (as PsychRNN), resumable with [`super::Trainer::resume`]. Never overwrites.
    pub training_weights_path: Option<PathBuf>,
    /// Updates between checkpoints.
    pub save_training_weights_epoch: usize,
    /// Progress bar, plain lines or nothing.
    pub progress: Progress,
    /// Where the forward and backward pass run.
    pub device: TrainDevice,
    /// Seed of the trials, the recurrent noise and the accuracy batches: update k uses streams
    /// derived from `(seed, k)`, so a resumed run continues exactly where it stopped.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            learning_rate: 1e-3,
            training_iters: 50_000,
            loss_epoch: 10,
            clip_grads: true,
            loss: Loss::MeanSquaredError,
            optimizer: OptimizerKind::default(),
            l1_in: 0.0,
            l1_rec: 0.0,
            l1_out: 0.0,
            l2_in: 0.0,
            l2_rec: 0.0,
            l2_out: 0.0,
            l2_firing_rate: 0.0,
            fixed_weights: FixedWeights::default(),
            performance_measure: None,
            performance_cutoff: None,
            save_weights_path: None,
            training_weights_path: None,
            save_training_weights_epoch: 100,
            progress: Progress::Auto,
            device: TrainDevice::Flex,
            seed: 0,
        }
    }
}

/// Where training computes its forward and backward passes. The optimiser, the loss and the
/// constraints run on the host in every case, so the devices differ only by float rounding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainDevice {
    /// Pure-Rust CPU: the rate RNN's fused forward/BPTT kernel (other models: burn-flex autodiff).
    #[default]
    Flex,
    /// libtorch on the CPU, through burn-tch (psychrnn built with `--features tch`).
    Libtorch,
    /// libtorch on CUDA GPU `index` (psychrnn built with `--features tch`, libtorch with CUDA).
    LibtorchCuda(usize),
}

impl TrainDevice {
    /// Parses `flex`, `libtorch`, `libtorch-cuda` (GPU 0) or `libtorch-cuda:N`.
    pub fn from_name(name: &str) -> Result<Self> {
        let unknown = || Error::Unknown {
            kind: "device",
            name: name.to_string(),
            known: "flex, libtorch, libtorch-cuda, libtorch-cuda:N".into(),
        };
        match name {
            "flex" => Ok(Self::Flex),
            "libtorch" => Ok(Self::Libtorch),
            "libtorch-cuda" => Ok(Self::LibtorchCuda(0)),
            _ => name
                .strip_prefix("libtorch-cuda:")
                .and_then(|i| i.parse().ok())
                .map(Self::LibtorchCuda)
                .ok_or_else(unknown),
        }
    }

    /// The burn autodiff device of the graph engine; `None` for the fused kernel. Fails when this
    /// build has no libtorch, or libtorch sees no such CUDA device.
    pub fn burn_device(self) -> Result<Option<burn::tensor::Device>> {
        match self {
            Self::Flex => Ok(None),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::Libtorch => Ok(Some(burn::tensor::Device::libtorch().autodiff())),
            #[cfg(feature = "tch")]
            #[allow(deprecated)]
            Self::LibtorchCuda(index) => {
                let available = tch::Cuda::device_count().max(0) as usize;
                if index >= available {
                    return Err(Error::range(
                        "device",
                        format!("libtorch-cuda:{index}"),
                        format!("a CUDA device index < {available} (libtorch sees {available})"),
                    ));
                }
                Ok(Some(burn::tensor::Device::libtorch_cuda(index).autodiff()))
            }
            #[cfg(not(feature = "tch"))]
            Self::Libtorch | Self::LibtorchCuda(_) => Err(Error::invalid(
                "device",
                "libtorch needs psychrnn built with `--features tch` (see scripts/setup-libtorch.sh)",
            )),
        }
    }
}

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerKind {
    /// TF1 Adam (PsychRNN's default): β1 0.9, β2 0.999, ε 1e-8.
    Adam {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Added to `sqrt(v)`.
        epsilon: f64,
    },
    /// `θ ← θ − lr·g`.
    Sgd,
}

impl Default for OptimizerKind {
    fn default() -> Self {
        OptimizerKind::Adam {
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

impl TrainConfig {
    /// Checks every field against the model it will train.
    pub fn validate<M: TrainModel>(&self, model: &M) -> Result<()> {
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::range("learning_rate", self.learning_rate, "finite and > 0"));
        }
        if self.training_iters == 0 {
            return Err(Error::range("training_iters", 0, ">= 1"));
        }
        if self.loss_epoch == 0 {
            return Err(Error::range("loss_epoch", 0, ">= 1"));
        }
        if self.save_training_weights_epoch == 0 {
            return Err(Error::range("save_training_weights_epoch", 0, ">= 1"));
        }
        self.device.burn_device()?;
        match (self.performance_measure, self.performance_cutoff) {
            (Some(_), None) => {
                return Err(Error::invalid(
                    "performance_measure",
                    "given without performance_cutoff; set both or neither",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "performance_cutoff",
                    "given without performance_measure; set both or neither",
                ));
            }
            _ => {}
        }
        for (field, v) in [
            ("l1_in", self.l1_in),
            ("l1_rec", self.l1_rec),
            ("l1_out", self.l1_out),
            ("l2_in", self.l2_in),
            ("l2_rec", self.l2_rec),
            ("l2_out", self.l2_out),
            ("l2_firing_rate", self.l2_firing_rate),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::range(field, v, "finite and >= 0"));
            }
        }
        if let Some(c) = self.performance_cutoff {
            if self.performance_measure == Some(PerformanceMeasure::Accuracy) && !(0.0..=1.0).contains(&c) {
                return Err(Error::range("performance_cutoff", c, "in [0, 1] for an accuracy"));
            }
            if !c.is_finite() {
                return Err(Error::range("performance_cutoff", c, "finite"));
            }
        }
        if let OptimizerKind::Adam { beta1, beta2, epsilon } = self.optimizer {
            for (field, v) in [("beta1", beta1), ("beta2", beta2)] {
                if !(0.0..1.0).contains(&v) {
                    return Err(Error::range(field, v, "in [0, 1)"));
                }
            }
            if !(epsilon.is_finite() && epsilon > 0.0) {
                return Err(Error::range("epsilon", epsilon, "finite and > 0"));
            }
        }
        self.fixed_weights.validate(model)
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Loss::MeanSquaredError => "mean_squared_error",
            Loss::BinaryCrossEntropy => "binary_cross_entropy",
            Loss::SoftmaxCrossEntropy => "softmax_cross_entropy",
            Loss::Custom => "custom",
        })
    }
}
