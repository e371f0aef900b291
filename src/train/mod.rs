//! Training with PsychRNN's semantics (spec §6–§7): masked MSE (or BCE) plus mean regularisers
//! on effective weights, gradients through Dale's `|W ⊙ C|·D` to the raw weights, fixed-weight
//! masks applied before per-tensor clipping at norm 1, TF1 Adam (ε added to `sqrt(v)`, bias
//! correction folded into the step size), `ceil(training_iters / batch)` updates, the loss
//! recorded every `loss_epoch` updates on the just-used batch, and early stopping on accuracy.
//!
//! Unlike PsychRNN, training again continues from the current weights and optimiser state;
//! [`Trainer::reset_optimizer`] starts the optimiser afresh.
//!
//! ```
//! use psychrnn::prelude::*;
//! use psychrnn::train::{TrainConfig, Trainer};
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 16, ..Default::default() })?;
//! let model = RateRnnConfig { n_rec: 10, ..RateRnnConfig::for_task(task.spec()) }.init(&mut TrialRng::seeded(0))?;
//! let mut trainer = Trainer::new(model, TrainConfig { training_iters: 64, loss_epoch: 2, ..Default::default() })?;
//! let report = trainer.train(&task)?;
//! assert_eq!(report.updates, 4); // ceil(64 / 16)
//! assert_eq!(trainer.history().len(), 2); // a loss every 2 updates
//! # Ok::<(), psychrnn::Error>(())
//! ```

pub mod custom;
pub mod graph;
mod history;
pub mod kernel;
mod source;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array1, Array2, Array3, ArrayView3};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::io::{LoadOptions, NpyArray, NpyData, WeightsFile, refuse_overwrite};
use crate::model::RateRnn;
use crate::rng::TrialRng;
use crate::task::{TaskSpec, TrialBatch};
pub use custom::{CustomLoss, CustomRegularizer, LossInputs, RegularizerInputs};
use history::Reporter;
pub use history::{History, HistoryRow, Progress, write_csv, write_parquet};
use kernel::{Dims, Effective, Grads};
pub use source::{AccuracyFn, Curriculum, TaskMixture, TrainingTask, TrialData};

/// `path` with `.npz` appended when it has another or no extension (as `np.savez`).
fn with_npz(path: &Path) -> PathBuf {
    if path.extension().is_some_and(|e| e == "npz") {
        path.to_path_buf()
    } else {
        let mut s = path.as_os_str().to_owned();
        s.push(".npz");
        PathBuf::from(s)
    }
}

/// PsychRNN's checkpoint name: `<prefix><update>.npz`.
fn checkpoint_path(prefix: &Path, update: usize) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(format!("{update}.npz"));
    PathBuf::from(s)
}

/// Creates the folder `path` goes in (PsychRNN's `makedirs`).
fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e)),
        _ => Ok(()),
    }
}

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

/// Per-element 0/1 masks of entries that must not change (1 = fixed), any subset of parameters.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixedWeights {
    /// `[n_rec, n_in]`.
    pub w_in: Option<Array2<f32>>,
    /// `[n_rec, n_rec]`.
    pub w_rec: Option<Array2<f32>>,
    /// `[n_out, n_rec]`.
    pub w_out: Option<Array2<f32>>,
    /// `[n_rec]`.
    pub b_rec: Option<Array1<f32>>,
    /// `[n_out]`.
    pub b_out: Option<Array1<f32>>,
    /// `[n_rec]`.
    pub init_state: Option<Array1<f32>>,
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
    /// `<prefix><update>.npz` (as PsychRNN), resumable with [`Trainer::resume`]. Never overwrites.
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
    pub fn validate(&self, model: &RateRnn) -> Result<()> {
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
        let fw = &self.fixed_weights;
        let p = &model.params;
        let want_shapes = [
            p.init_state.shape(),
            p.w_in.shape(),
            p.w_rec.shape(),
            p.w_out.shape(),
            p.b_rec.shape(),
            p.b_out.shape(),
        ];
        let fields = ["init_state", "w_in", "w_rec", "w_out", "b_rec", "b_out"];
        for ((name, got), want) in fields.iter().zip(fw.shapes()).zip(want_shapes) {
            if let Some(got) = got
                && got != want
            {
                return Err(Error::shape(format!("fixed_weights.{name}"), want, got));
            }
        }
        for (name, values) in fields.iter().zip(fw.slices()) {
            if let Some(v) = values.into_iter().flatten().find(|&&v| v != 0.0 && v != 1.0) {
                return Err(Error::range(format!("fixed_weights.{name}"), v, "entries 0 or 1"));
            }
        }
        Ok(())
    }
}

impl FixedWeights {
    /// Shapes of the masks given, in [`PARAM_NAMES`] order.
    fn shapes(&self) -> [Option<&[usize]>; 6] {
        [
            self.init_state.as_ref().map(|a| a.shape()),
            self.w_in.as_ref().map(|a| a.shape()),
            self.w_rec.as_ref().map(|a| a.shape()),
            self.w_out.as_ref().map(|a| a.shape()),
            self.b_rec.as_ref().map(|a| a.shape()),
            self.b_out.as_ref().map(|a| a.shape()),
        ]
    }

    /// The masks in [`PARAM_NAMES`] order.
    fn slices(&self) -> [Option<&[f32]>; 6] {
        [
            self.init_state.as_ref().and_then(|a| a.as_slice()),
            self.w_in.as_ref().and_then(|a| a.as_slice()),
            self.w_rec.as_ref().and_then(|a| a.as_slice()),
            self.w_out.as_ref().and_then(|a| a.as_slice()),
            self.b_rec.as_ref().and_then(|a| a.as_slice()),
            self.b_out.as_ref().and_then(|a| a.as_slice()),
        ]
    }
}

/// The six trainable tensors, in PsychRNN's variable order, flattened row-major.
pub const PARAM_NAMES: [&str; 6] = ["init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out"];

/// Shapes of the six parameters as PsychRNN stores them (`init_state` is `[1, n_rec]`).
fn param_shapes(m: &RateRnn) -> Vec<Vec<usize>> {
    let (i, n, o) = (m.n_in(), m.n_rec(), m.n_out());
    vec![vec![1, n], vec![n, i], vec![n, n], vec![o, n], vec![n], vec![o]]
}

/// Gradients or optimiser slots for the six parameters, in [`PARAM_NAMES`] order.
pub type ParamVecs = [Vec<f32>; 6];

/// What a call to [`Trainer::train`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    /// Updates made by this call.
    pub updates: usize,
    /// Why it stopped.
    pub stop: StopReason,
    /// Seconds spent.
    pub seconds: f64,
}

/// Why training stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum StopReason {
    /// All `ceil(training_iters / batch)` updates done.
    IterationsDone,
    /// The performance measure reached `performance_cutoff`.
    PerformanceReached {
        /// The value measured.
        accuracy: f64,
    },
    /// The curriculum's last stage was passed.
    CurriculumDone,
}

/// The value and parts of the objective on one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossParts {
    /// The loss term (MSE or BCE).
    pub loss: f64,
    /// The sum of regularisation terms.
    pub regularization: f64,
}

impl LossParts {
    /// `loss + regularization` (PsychRNN's `reg_loss`).
    pub fn total(&self) -> f64 {
        self.loss + self.regularization
    }
}

/// Trains a [`RateRnn`] in place, keeping its optimiser state between calls.
pub struct Trainer {
    model: RateRnn,
    config: TrainConfig,
    m: ParamVecs,
    v: ParamVecs,
    beta1_power: f32,
    beta2_power: f32,
    updates: usize,
    trials: usize,
    history: History,
    started: Instant,
    custom_loss: Option<CustomLoss>,
    custom_regularizer: Option<CustomRegularizer>,
    performance_fn: Option<PerformanceFn>,
}

/// A custom performance measure: `(batch, outputs [batch, time, n_out]) -> value`.
pub type PerformanceFn = Box<dyn Fn(&TrialBatch<()>, ArrayView3<'_, f32>) -> f64>;

/// A forward pass kept for its backward.
enum Pass {
    Native(kernel::Forward<f32>),
    Graph(Box<graph::GraphForward>),
}

impl Pass {
    fn host(&self) -> &kernel::Forward<f32> {
        match self {
            Pass::Native(f) => f,
            Pass::Graph(g) => &g.host,
        }
    }
}

/// Where one training call takes its batches from.
enum Source<'a> {
    Task(&'a dyn TrainingTask),
    Curriculum(&'a mut Curriculum),
    Mixture(&'a TaskMixture),
    Data(&'a TrialData),
}

impl Source<'_> {
    fn spec(&self) -> &TaskSpec {
        match self {
            Source::Task(t) => t.training_spec(),
            Source::Curriculum(c) => c.current().training_spec(),
            Source::Mixture(m) => m.task(0).training_spec(),
            Source::Data(d) => d.spec(),
        }
    }
}

/// What a derived random stream is for.
#[derive(Clone, Copy)]
enum Purpose {
    Trials = 1,
    Noise = 2,
    Accuracy = 3,
    RecordedLoss = 4,
    Curriculum = 5,
}

/// splitmix64 of `(seed, update, purpose)`: independent streams per update and purpose.
fn stream_seed(seed: u64, update: usize, purpose: Purpose) -> u64 {
    let mut z = seed ^ (update as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((purpose as u64) << 56);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Trainer {
    /// Checks `config` against `model`.
    pub fn new(model: RateRnn, config: TrainConfig) -> Result<Self> {
        config.validate(&model)?;
        let zeros = |model: &RateRnn| -> ParamVecs {
            let (i, n, o) = (model.n_in(), model.n_rec(), model.n_out());
            [
                vec![0.0; n],
                vec![0.0; n * i],
                vec![0.0; n * n],
                vec![0.0; o * n],
                vec![0.0; n],
                vec![0.0; o],
            ]
        };
        Ok(Self {
            m: zeros(&model),
            v: zeros(&model),
            model,
            config,
            beta1_power: 1.0,
            beta2_power: 1.0,
            updates: 0,
            trials: 0,
            history: History::default(),
            started: Instant::now(),
            custom_loss: None,
            custom_regularizer: None,
            performance_fn: None,
        })
    }

    /// Trains with a loss written in burn tensor ops (sets `loss` to [`Loss::Custom`]); see
    /// [`custom`].
    pub fn with_custom_loss(mut self, f: impl Fn(&LossInputs) -> burn::Tensor<1> + 'static) -> Self {
        self.custom_loss = Some(Box::new(f));
        self.config.loss = Loss::Custom;
        self
    }

    /// Adds a regulariser written in burn tensor ops to the objective (PsychRNN's
    /// `custom_regularization`); see [`custom`].
    pub fn with_custom_regularizer(mut self, f: impl Fn(&RegularizerInputs) -> burn::Tensor<1> + 'static) -> Self {
        self.custom_regularizer = Some(Box::new(f));
        self
    }

    /// Measures performance with `f(batch, outputs)` for early stopping at `cutoff` (sets
    /// `performance_measure` to [`PerformanceMeasure::Custom`]).
    pub fn with_performance_measure(
        mut self,
        cutoff: f64,
        f: impl Fn(&TrialBatch<()>, ArrayView3<'_, f32>) -> f64 + 'static,
    ) -> Result<Self> {
        self.performance_fn = Some(Box::new(f));
        self.config.performance_measure = Some(PerformanceMeasure::Custom);
        self.config.performance_cutoff = Some(cutoff);
        self.config.validate(&self.model)?;
        Ok(self)
    }

    /// The model being trained.
    pub fn model(&self) -> &RateRnn {
        &self.model
    }

    /// Takes the trained model out.
    pub fn into_model(self) -> RateRnn {
        self.model
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Recorded losses (every `loss_epoch` updates), accuracies and curriculum stages.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Updates made so far (over all calls).
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Adam's first and second moments, in [`PARAM_NAMES`] order (PsychRNN's `<v>/Adam`, `<v>/Adam_1`).
    pub fn adam_slots(&self) -> (&ParamVecs, &ParamVecs) {
        (&self.m, &self.v)
    }

    /// The model's PsychRNN weights file plus the Adam slots (`<v>/Adam` = m, `<v>/Adam_1` = v),
    /// as PsychRNN saves a trained model.
    pub fn to_weights(&self) -> WeightsFile {
        let mut file = self.model.to_weights();
        let shapes: Vec<Vec<usize>> = param_shapes(&self.model);
        let at = file
            .entries
            .iter()
            .position(|(k, _)| k == "dale_ratio")
            .unwrap_or(file.entries.len());
        let mut slots = Vec::new();
        let flags = self.model.config.trainable.flags();
        for (k, name) in PARAM_NAMES.iter().enumerate().filter(|(k, _)| flags[*k]) {
            for (suffix, data) in [("Adam", &self.m[k]), ("Adam_1", &self.v[k])] {
                slots.push((
                    format!("{name}/{suffix}"),
                    NpyArray::from_f32(shapes[k].clone(), data.clone()),
                ));
            }
        }
        file.entries.splice(at..at, slots);
        file
    }

    /// A checkpoint: the PsychRNN weights file with Adam slots ([`Trainer::to_weights`]), plus
    /// what an exact resume needs and PsychRNN ignores: the raw parameters (`psychrnn/raw/<v>`;
    /// under Dale's law the saved effective weights lose their signs), the update and trial
    /// counts, Adam's β powers and the trainable flags.
    pub fn checkpoint(&self) -> WeightsFile {
        let mut file = self.to_weights();
        for ((name, data), shape) in PARAM_NAMES
            .iter()
            .zip(self.model.params.slices())
            .zip(param_shapes(&self.model))
        {
            file.entries
                .push((format!("psychrnn/raw/{name}"), NpyArray::from_f32(shape, data.to_vec())));
        }
        let int = |v: Vec<i64>| NpyArray {
            shape: vec![v.len()],
            data: NpyData::I64(v),
        };
        file.entries.push((
            "psychrnn/updates_trials".into(),
            int(vec![self.updates as i64, self.trials as i64]),
        ));
        file.entries.push((
            "psychrnn/beta_powers".into(),
            NpyArray::from_f32(vec![2], vec![self.beta1_power, self.beta2_power]),
        ));
        let flags = self.model.config.trainable.flags();
        file.entries.push((
            "psychrnn/trainable".into(),
            int(flags.iter().map(|&f| f as i64).collect()),
        ));
        file
    }

    /// Continues from a [`Trainer::checkpoint`]: same weights, optimiser state, counters and
    /// (through the seed in `config`) the same future trials and noise, so checkpoint + resume
    /// gives the weights of an uninterrupted run. A plain PsychRNN weights file also works (its
    /// Adam slots are used when present; counters start at 0).
    pub fn resume(file: &WeightsFile, options: &LoadOptions, config: TrainConfig) -> Result<Self> {
        let mut model = RateRnn::from_weights(file, options)?;
        if let Some(flags) = file.get("psychrnn/trainable").and_then(NpyArray::to_f64_vec) {
            let f = |k: usize| flags.get(k).is_none_or(|&v| v != 0.0);
            model.config.trainable = crate::model::Trainable::from_flags(std::array::from_fn(f));
        }
        let shapes = param_shapes(&model);
        let read = |key: &str, len: usize| -> Result<Option<Vec<f32>>> {
            let Some(a) = file.get(key) else { return Ok(None) };
            match a.to_f32_vec() {
                Some(v) if v.len() == len => Ok(Some(v)),
                _ => Err(Error::Shape {
                    field: format!("{key} in {}", file.source),
                    expected: vec![len],
                    got: a.shape.clone(),
                }),
            }
        };
        let mut raw: Vec<Option<Vec<f32>>> = Vec::new();
        for (name, shape) in PARAM_NAMES.iter().zip(&shapes) {
            raw.push(read(&format!("psychrnn/raw/{name}"), shape.iter().product())?);
        }
        for (target, values) in model.params.slices_mut().into_iter().zip(raw) {
            if let Some(v) = values {
                target.copy_from_slice(&v);
            }
        }
        let mut trainer = Trainer::new(model, config)?;
        for (k, (name, shape)) in PARAM_NAMES.iter().zip(&shapes).enumerate() {
            let len = shape.iter().product();
            if let Some(m) = read(&format!("{name}/Adam"), len)? {
                trainer.m[k] = m;
            }
            if let Some(v) = read(&format!("{name}/Adam_1"), len)? {
                trainer.v[k] = v;
            }
        }
        if let Some(c) = read("psychrnn/updates_trials", 2)? {
            (trainer.updates, trainer.trials) = (c[0] as usize, c[1] as usize);
        }
        if let Some(b) = read("psychrnn/beta_powers", 2)? {
            (trainer.beta1_power, trainer.beta2_power) = (b[0], b[1]);
        }
        Ok(trainer)
    }

    /// Forgets the optimiser state (moments and step count); the weights stay.
    pub fn reset_optimizer(&mut self) {
        self.m.iter_mut().chain(self.v.iter_mut()).for_each(|s| s.fill(0.0));
        self.beta1_power = 1.0;
        self.beta2_power = 1.0;
    }

    fn stream(&self, purpose: Purpose) -> TrialRng {
        TrialRng::seeded(stream_seed(self.config.seed, self.updates, purpose))
    }

    /// Trains on fresh batches of `task` until `training_iters` trials are used
    /// (`ceil(training_iters / N_batch)` updates), or until the performance measure reaches
    /// `performance_cutoff`. Update k's batch comes from a stream derived from the config's seed
    /// and k, so a second call continues with new trials and a resumed checkpoint sees the trials
    /// an uninterrupted run would have.
    pub fn train<T: TrainingTask>(&mut self, task: &T) -> Result<TrainReport> {
        self.run(Source::Task(task), None)
    }

    /// Like [`Trainer::train`], with the batches (and measurement batches) drawn from `rng`, e.g.
    /// `TrialRng::numpy(s)` for PsychRNN's trial stream.
    pub fn train_with<T: TrainingTask>(&mut self, task: &T, rng: &mut TrialRng) -> Result<TrainReport> {
        self.run(Source::Task(task), Some(rng))
    }

    /// Trains through a curriculum's stages (spec §8): every `metric_epoch` updates the current
    /// stage is scored on a fresh batch, the `[metric, stage]` pair recorded, and the stage
    /// advanced when the score reaches its threshold. Stops when the last stage passes (or when
    /// `training_iters` trials are used; a later call continues at the reached stage).
    pub fn train_curriculum(&mut self, curriculum: &mut Curriculum) -> Result<TrainReport> {
        if let Some(path) = curriculum.saved_to()
            && curriculum.metric_values().is_empty()
        {
            refuse_overwrite(path, false)?;
        }
        if curriculum.is_done() {
            return Ok(TrainReport {
                updates: 0,
                stop: StopReason::CurriculumDone,
                seconds: 0.0,
            });
        }
        self.run(Source::Curriculum(curriculum), None)
    }

    /// Trains on a weighted random mixture of tasks: each update's task is drawn by weight.
    pub fn train_mixture(&mut self, mixture: &TaskMixture) -> Result<TrainReport> {
        if mixture.is_empty() {
            return Err(Error::Empty {
                what: "task mixture".into(),
            });
        }
        self.run(Source::Mixture(mixture), None)
    }

    /// Trains on fixed trials, batch after batch in order (cycling), until `training_iters`
    /// trials are used.
    pub fn train_data(&mut self, data: &TrialData) -> Result<TrainReport> {
        self.run(Source::Data(data), None)
    }

    /// Checks what a training call needs before it starts, so it fails before any work.
    fn check_run(&self, source: &Source<'_>) -> Result<()> {
        self.config.validate(&self.model)?;
        let spec = source.spec();
        if (spec.n_in, spec.n_out) != (self.model.n_in(), self.model.n_out()) {
            return Err(Error::shape(
                "task inputs/outputs",
                &[self.model.n_in(), self.model.n_out()],
                &[spec.n_in, spec.n_out],
            ));
        }
        if self.config.loss == Loss::Custom && self.custom_loss.is_none() {
            return Err(Error::invalid("loss", "custom needs Trainer::with_custom_loss"));
        }
        if self.config.performance_measure == Some(PerformanceMeasure::Custom) && self.performance_fn.is_none() {
            return Err(Error::invalid(
                "performance_measure",
                "custom needs Trainer::with_performance_measure",
            ));
        }
        if let Some(path) = &self.config.save_weights_path {
            refuse_overwrite(&with_npz(path), false)?;
        }
        Ok(())
    }

    fn run(&mut self, mut source: Source<'_>, mut rng: Option<&mut TrialRng>) -> Result<TrainReport> {
        self.check_run(&source)?;
        let start = Instant::now();
        let estimate = self.config.training_iters.div_ceil(source.spec().n_batch);
        if let Some(prefix) = &self.config.training_weights_path {
            let every = self.config.save_training_weights_epoch;
            for u in (self.updates + 1..=self.updates + estimate).filter(|u| u.is_multiple_of(every)) {
                refuse_overwrite(&checkpoint_path(prefix, u), false)?;
            }
        }
        let reporter = Reporter::new(self.config.progress, estimate);
        let result = self.run_loop(&mut source, &mut rng, &reporter);
        reporter.finish();
        let (updates, stop) = result?;
        if let Source::Curriculum(c) = &source
            && let Some(path) = c.saved_to()
        {
            c.save_metric_values(path, true)?;
        }
        if let Some(path) = &self.config.save_weights_path {
            let path = with_npz(path);
            create_parent(&path)?;
            self.to_weights().write(&path, false)?;
        }
        Ok(TrainReport {
            updates,
            stop,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn run_loop(
        &mut self,
        source: &mut Source<'_>,
        rng: &mut Option<&mut TrialRng>,
        reporter: &Reporter,
    ) -> Result<(usize, StopReason)> {
        let (mut done, mut trials) = (0, 0);
        while trials < self.config.training_iters {
            let number = self.updates + 1;
            let mut own = self.stream(Purpose::Trials);
            let r: &mut TrialRng = rng.as_deref_mut().unwrap_or(&mut own);
            let (batch, stage) = match source {
                Source::Task(t) => (t.training_batch(r, number), None),
                Source::Curriculum(c) => (c.current().training_batch(r, number), Some(c.stage())),
                Source::Mixture(m) => {
                    let k = m.draw(r);
                    (m.task(k).training_batch(r, number), None)
                }
                Source::Data(d) => (d.batch(self.updates), None),
            };
            self.step(&batch)?;
            done += 1;
            trials += batch.n_trials();
            let wall = self.started.elapsed().as_secs_f64();
            let mut recorded = false;
            if self.updates.is_multiple_of(self.config.loss_epoch) {
                // PsychRNN records the objective on the same batch after the update.
                let after = self.objective(&batch, &mut self.stream(Purpose::RecordedLoss))?;
                self.history.row(self.updates, self.trials, stage, wall).loss = Some(after.total());
                recorded = true;
            }
            let mut stop = None;
            if let Source::Curriculum(c) = source
                && self.updates.is_multiple_of(c.checks_every())
            {
                let mut own = self.stream(Purpose::Curriculum);
                let r: &mut TrialRng = rng.as_deref_mut().unwrap_or(&mut own);
                let (check, outputs) = self.evaluate(c.current(), r)?;
                let value = c.score_current(check.y.view(), outputs.view(), check.mask.view());
                self.history.row(self.updates, self.trials, stage, wall).accuracy = Some(value);
                recorded = true;
                if c.record(value) && c.is_done() {
                    stop = Some(StopReason::CurriculumDone);
                }
            }
            if let Some(prefix) = &self.config.training_weights_path
                && self.updates.is_multiple_of(self.config.save_training_weights_epoch)
            {
                let path = checkpoint_path(prefix, self.updates);
                create_parent(&path)?;
                self.checkpoint().write(&path, false)?;
            }
            if let (Some(cutoff), None) = (self.config.performance_cutoff, &stop) {
                let mut own = self.stream(Purpose::Accuracy);
                let r: &mut TrialRng = rng.as_deref_mut().unwrap_or(&mut own);
                let value = self.measure(source, r)?;
                self.history.row(self.updates, self.trials, stage, wall).accuracy = Some(value);
                recorded = true;
                if value >= cutoff {
                    stop = Some(StopReason::PerformanceReached { accuracy: value });
                }
            }
            reporter.update(done, recorded.then(|| self.history.last()).flatten());
            if let Some(stop) = stop {
                return Ok((done, stop));
            }
        }
        Ok((done, StopReason::IterationsDone))
    }

    /// A fresh batch of `task` from `rng` and the network's outputs on it `[batch, time, n_out]`
    /// (with the model's recurrent noise, seeded from `rng`).
    fn evaluate(&self, task: &dyn TrainingTask, rng: &mut TrialRng) -> Result<(TrialBatch<()>, Array3<f32>)> {
        let batch = task.training_batch(rng, self.updates + 1);
        let outputs = self.outputs(&batch, &mut TrialRng::seeded(rng.next_seed()))?;
        Ok((batch, outputs))
    }

    /// The performance measure after an update.
    fn measure(&self, source: &Source<'_>, rng: &mut TrialRng) -> Result<f64> {
        let score = |task: &dyn TrainingTask, rng: &mut TrialRng| -> Result<f64> {
            let (batch, outputs) = self.evaluate(task, rng)?;
            Ok(match &self.performance_fn {
                Some(f) => f(&batch, outputs.view()),
                None => task.score(batch.y.view(), outputs.view(), batch.mask.view()),
            })
        };
        match source {
            Source::Task(t) => score(*t, rng),
            Source::Curriculum(c) => {
                let (batch, outputs) = self.evaluate(c.current(), rng)?;
                Ok(match &self.performance_fn {
                    Some(f) => f(&batch, outputs.view()),
                    None => c.score_current(batch.y.view(), outputs.view(), batch.mask.view()),
                })
            }
            Source::Mixture(m) => {
                let mut total = 0.0;
                for k in 0..m.len() {
                    total += score(m.task(k), rng)?;
                }
                Ok(total / m.len() as f64)
            }
            Source::Data(d) => {
                let batch = d.batch(self.updates);
                let outputs = self.outputs(&batch, &mut TrialRng::seeded(rng.next_seed()))?;
                Ok(match &self.performance_fn {
                    Some(f) => f(&batch, outputs.view()),
                    None => d.score(batch.y.view(), outputs.view(), batch.mask.view()),
                })
            }
        }
    }

    /// The network's outputs `[batch, time, n_out]` on `batch`'s inputs, recurrent noise from `noise`.
    pub fn outputs<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<Array3<f32>> {
        self.check_batch(batch)?;
        let eff = Effective::of(&self.model);
        let pass = self.forward(&eff, batch, noise)?;
        let fwd = pass.host();
        let d = fwd.dims;
        Ok(Array3::from_shape_vec(
            (d.batch, d.steps, d.n_out),
            kernel::swap_bt(&fwd.outputs, d.steps, d.batch, d.n_out),
        )
        .expect("dims"))
    }

    /// The task's accuracy on a fresh batch from `rng` (with the model's recurrent noise).
    pub fn accuracy<T: TrainingTask>(&self, task: &T, rng: &mut TrialRng) -> Result<f64> {
        let (batch, outputs) = self.evaluate(task, rng)?;
        Ok(task.score(batch.y.view(), outputs.view(), batch.mask.view()))
    }

    /// The forward pass on the configured device: the fused kernel on flex, burn ops elsewhere.
    fn forward<P>(&self, eff: &Effective, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<Pass> {
        let (b, t, i) = batch.x.dim();
        let dims = Dims {
            batch: b,
            steps: t,
            n_in: i,
            n_rec: self.model.n_rec(),
            n_out: self.model.n_out(),
        };
        let x = batch.x.as_standard_layout();
        let x = x.as_slice().expect("standard");
        let w = eff.weights(&self.model);
        let transfer = self.model.config.transfer;
        let rec_noise = self.model.config.rec_noise;
        Ok(match self.config.device.burn_device()? {
            None => Pass::Native(kernel::forward(
                dims,
                &w,
                transfer,
                x,
                (rec_noise > 0.0).then_some((noise, rec_noise)),
            )),
            Some(device) => {
                let z = (rec_noise > 0.0).then(|| kernel::noise(dims, w.alpha, rec_noise, noise));
                Pass::Graph(Box::new(graph::forward(&device, dims, &w, transfer, x, z.as_deref())))
            }
        })
    }

    /// The objective on `batch` (no update).
    pub fn objective<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<LossParts> {
        self.check_batch(batch)?;
        let eff = Effective::of(&self.model);
        let pass = self.forward(&eff, batch, noise)?;
        let (parts, _, _) = self.loss_and_output_grads(pass.host(), batch, false)?;
        Ok(LossParts {
            regularization: parts.regularization + self.weight_regularization(&eff, None)?,
            ..parts
        })
    }

    fn check_batch<P>(&self, batch: &TrialBatch<P>) -> Result<()> {
        let (b, t, i) = batch.x.dim();
        if b == 0 || t == 0 {
            return Err(Error::Empty {
                what: format!("training batch of shape [{b}, {t}, {i}]"),
            });
        }
        if i != self.model.n_in() {
            return Err(Error::shape("batch x", &[b, t, self.model.n_in()], &[b, t, i]));
        }
        let want = [b, t, self.model.n_out()];
        for (field, a) in [("batch y", &batch.y), ("batch mask", &batch.mask)] {
            if a.shape() != want {
                return Err(Error::shape(field, &want, a.shape()));
            }
        }
        Ok(())
    }

    /// Loss on the forward's outputs, `∂loss/∂z` (time-major) and the firing-rate term's `∂/∂x`.
    fn loss_and_output_grads<P>(
        &self,
        fwd: &kernel::Forward<f32>,
        batch: &TrialBatch<P>,
        want_grads: bool,
    ) -> Result<(LossParts, Vec<f32>, Option<Vec<f32>>)> {
        let d = fwd.dims;
        let y_btc = batch.y.as_standard_layout();
        let mask_btc = batch.mask.as_standard_layout();
        let (y_btc, mask_btc) = (
            y_btc.as_slice().expect("standard"),
            mask_btc.as_slice().expect("standard"),
        );
        let (loss, g) = if let (Loss::Custom, Some(f)) = (self.config.loss, &self.custom_loss) {
            let z_btc = kernel::swap_bt(&fwd.outputs, d.steps, d.batch, d.n_out);
            let shape = [d.batch, d.steps, d.n_out];
            let (loss, g) = custom::loss_and_grad(f, shape, &z_btc, y_btc, mask_btc, want_grads)?;
            let g = g
                .map(|g| kernel::swap_bt(&g, d.batch, d.steps, d.n_out))
                .unwrap_or_default();
            (loss, g)
        } else {
            let y = kernel::swap_bt(y_btc, d.batch, d.steps, d.n_out);
            let mask = kernel::swap_bt(mask_btc, d.batch, d.steps, d.n_out);
            self.builtin_loss(&fwd.outputs, &y, &mask, d.n_out, want_grads)
        };
        let coef = self.config.l2_firing_rate;
        let (mut reg, mut g_states) = (0.0, None);
        if coef > 0.0 {
            let transfer = self.model.config.transfer;
            let n = fwd.rates.len() as f64;
            reg = coef * fwd.rates.iter().map(|&r| (r as f64).powi(2)).sum::<f64>() / n;
            if want_grads {
                g_states = Some(
                    fwd.states
                        .iter()
                        .zip(&fwd.rates)
                        .map(|(&x, &r)| (2.0 * coef * r as f64 * transfer.derivative_f(x, r) as f64 / n) as f32)
                        .collect(),
                );
            }
        }
        Ok((
            LossParts {
                loss,
                regularization: reg,
            },
            g,
            g_states,
        ))
    }

    /// MSE, BCE or softmax cross-entropy of outputs `z` against `y` under `mask` (any layout whose
    /// rows are the `n_out` channels of one trial and step) and, when asked, `∂loss/∂z`.
    fn builtin_loss(&self, z: &[f32], y: &[f32], mask: &[f32], n_out: usize, want_grads: bool) -> (f64, Vec<f32>) {
        let count = z.len() as f64;
        let mut g = if want_grads { vec![0.0f32; z.len()] } else { Vec::new() };
        let mut loss = 0.0f64;
        if self.config.loss == Loss::SoftmaxCrossEntropy {
            let rows = (z.len() / n_out) as f64;
            for (r, zr) in z.chunks(n_out).enumerate() {
                let at = r * n_out..(r + 1) * n_out;
                let (yr, mr) = (&y[at.clone()], &mask[at.clone()]);
                let max = zr.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
                let log_sum = zr.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln() + max;
                let weight: f64 = yr.iter().zip(mr).map(|(&t, &m)| t as f64 * m as f64).sum();
                for k in 0..n_out {
                    let log_p = zr[k] as f64 - log_sum;
                    let my = yr[k] as f64 * mr[k] as f64;
                    loss -= my * log_p;
                    if want_grads {
                        g[r * n_out + k] = ((log_p.exp() * weight - my) / rows) as f32;
                    }
                }
            }
            return (loss / rows, g);
        }
        for idx in 0..z.len() {
            let (zv, t, m) = (z[idx] as f64, y[idx] as f64, mask[idx] as f64);
            let (l, dz) = match self.config.loss {
                Loss::BinaryCrossEntropy => {
                    // In float32 as TensorFlow, whose graph optimiser also rewrites
                    // `log(1 − p + ε)` as `log((1 + ε) − p)` (1 + ε rounds to 1 + 2⁻²³): near the
                    // clip bound these differ by several percent from the float64 formula.
                    let (zv, t, m) = (zv as f32, t as f32, m as f32);
                    let eps = 1e-7f32;
                    let p = zv.clamp(eps, 1.0 - eps);
                    let one_minus = (1.0 + eps) - p;
                    let l = -m * (t * (p + eps).ln() + (1.0 - t) * one_minus.ln());
                    let inside = (eps..=1.0 - eps).contains(&zv);
                    let dp = -m * (t / (p + eps) - (1.0 - t) / one_minus);
                    (l as f64, if inside { dp as f64 } else { 0.0 })
                }
                _ => {
                    let e = m * (zv - t);
                    (e * e, 2.0 * m * e)
                }
            };
            loss += l;
            if want_grads {
                g[idx] = (dz / count) as f32;
            }
        }
        (loss / count, g)
    }

    /// Weight regularisers (means over effective weights, plus the custom one); adds their
    /// gradients to `grads`.
    fn weight_regularization(&self, eff: &Effective, mut grads: Option<&mut Grads<f32>>) -> Result<f64> {
        let c = &self.config;
        let mut total = 0.0;
        let terms: [(&Array2<f32>, f64, f64, usize); 3] = [
            (&eff.w_in, c.l1_in, c.l2_in, 0),
            (&eff.w_rec, c.l1_rec, c.l2_rec, 1),
            (&eff.w_out, c.l1_out, c.l2_out, 2),
        ];
        for (w, l1, l2, which) in terms {
            if l1 == 0.0 && l2 == 0.0 {
                continue;
            }
            let n = w.len() as f64;
            total += l1 * w.iter().map(|v| v.abs() as f64).sum::<f64>() / n;
            total += l2 * w.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
            if let Some(g) = grads.as_deref_mut() {
                let target = match which {
                    0 => &mut g.w_in,
                    1 => &mut g.w_rec,
                    _ => &mut g.w_out,
                };
                for (gv, &wv) in target.iter_mut().zip(w.iter()) {
                    let sign = if wv > 0.0 {
                        1.0
                    } else if wv < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    *gv += ((l1 * sign + 2.0 * l2 * wv as f64) / n) as f32;
                }
            }
        }
        if let Some(f) = &self.custom_regularizer {
            let p = &self.model.params;
            fn slice(a: &Array2<f32>) -> (&[f32], [usize; 2]) {
                (a.as_slice().expect("standard"), [a.nrows(), a.ncols()])
            }
            let weights = custom::Weights {
                w_in: slice(&eff.w_in),
                w_rec: slice(&eff.w_rec),
                w_out: slice(&eff.w_out),
                b_rec: p.b_rec.as_slice().expect("standard"),
                b_out: p.b_out.as_slice().expect("standard"),
            };
            let (value, g) = custom::regularizer_and_grad(f, &weights, grads.is_some())?;
            total += value;
            if let (Some(dst), Some(src)) = (grads, g) {
                let targets = [
                    &mut dst.w_in,
                    &mut dst.w_rec,
                    &mut dst.w_out,
                    &mut dst.b_rec,
                    &mut dst.b_out,
                ];
                for (t, s) in targets.into_iter().zip(src) {
                    t.iter_mut().zip(s).for_each(|(a, b)| *a += b);
                }
            }
        }
        Ok(total)
    }

    /// Gradients of the objective on `batch` with respect to the raw parameters, before fixed-weight
    /// masking and clipping, in [`PARAM_NAMES`] order; and the objective.
    pub fn gradients<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<(LossParts, ParamVecs)> {
        self.check_batch(batch)?;
        let eff = Effective::of(&self.model);
        let pass = self.forward(&eff, batch, noise)?;
        let (mut parts, g_out, g_states) = self.loss_and_output_grads(pass.host(), batch, true)?;
        let mut grads = match pass {
            Pass::Native(fwd) => kernel::backward(
                &fwd,
                &eff.weights(&self.model),
                self.model.config.transfer,
                &g_out,
                g_states.as_deref(),
            ),
            Pass::Graph(fwd) => fwd.backward(&g_out, g_states.as_deref()),
        };
        parts.regularization += self.weight_regularization(&eff, Some(&mut grads))?;
        Ok((parts, self.to_raw(grads)))
    }

    /// Chain rule through the constraints: `W ⊙ C`, or `|W ⊙ C|·D` under Dale.
    fn to_raw(&self, g: Grads<f32>) -> ParamVecs {
        let m = &self.model;
        let c = &m.constraints;
        let raw = |g_eff: Vec<f32>, w: &Array2<f32>, mask: &Array2<f32>, dale: Option<&Array1<f32>>| -> Vec<f32> {
            let cols = w.ncols();
            g_eff
                .iter()
                .zip(w.iter().zip(mask.iter()))
                .enumerate()
                .map(|(idx, (&ge, (&wv, &cv)))| {
                    if !c.dale {
                        return ge * cv;
                    }
                    let masked = wv * cv;
                    let sign = if masked > 0.0 {
                        1.0
                    } else if masked < 0.0 {
                        -1.0
                    } else {
                        0.0
                    };
                    let d = dale.map_or(1.0, |d| d[idx % cols]);
                    ge * d * sign * cv
                })
                .collect()
        };
        [
            g.init_state,
            raw(g.w_in, &m.params.w_in, &c.input_connectivity, None),
            raw(g.w_rec, &m.params.w_rec, &c.rec_connectivity, Some(&c.dale_rec)),
            raw(g.w_out, &m.params.w_out, &c.output_connectivity, Some(&c.dale_out)),
            g.b_rec,
            g.b_out,
        ]
    }

    /// Fixed-weight masking then per-tensor clipping (TF's `clip_by_norm(g, 1)`), in place.
    pub fn mask_and_clip(&self, grads: &mut ParamVecs) {
        for (g, f) in grads.iter_mut().zip(self.config.fixed_weights.slices()) {
            if let Some(f) = f {
                g.iter_mut().zip(f).for_each(|(gv, &fv)| *gv *= 1.0 - fv);
            }
            if self.config.clip_grads {
                let norm = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32;
                if norm > 1.0 {
                    g.iter_mut().for_each(|v| *v /= norm);
                }
            }
        }
    }

    /// One update on `batch`; returns the objective before it. A non-finite loss or gradient
    /// stops with [`Error::NonFinite`] and leaves the weights as they were.
    pub fn step<P>(&mut self, batch: &TrialBatch<P>) -> Result<LossParts> {
        let (parts, mut grads) = self.gradients(batch, &mut self.stream(Purpose::Noise))?;
        let finite = parts.total().is_finite() && grads.iter().flatten().all(|g| g.is_finite());
        if !finite {
            return Err(Error::NonFinite {
                what: format!("loss {} at update {}", parts.total(), self.updates + 1),
            });
        }
        self.mask_and_clip(&mut grads);
        self.apply(&grads);
        self.updates += 1;
        self.trials += batch.x.dim().0;
        Ok(parts)
    }

    fn apply(&mut self, grads: &ParamVecs) {
        let lr = self.config.learning_rate as f32;
        let flags = self.model.config.trainable.flags();
        let params = self.model.params.slices_mut();
        match self.config.optimizer {
            OptimizerKind::Sgd => {
                for ((param, g), on) in params.into_iter().zip(grads).zip(flags) {
                    if on {
                        param.iter_mut().zip(g).for_each(|(w, &gv)| *w -= lr * gv);
                    }
                }
            }
            OptimizerKind::Adam { beta1, beta2, epsilon } => {
                let (b1, b2, eps) = (beta1 as f32, beta2 as f32, epsilon as f32);
                // TF keeps β^t as float32 variables multiplied once per step.
                self.beta1_power *= b1;
                self.beta2_power *= b2;
                let lr_t = lr * (1.0 - self.beta2_power).sqrt() / (1.0 - self.beta1_power);
                for (k, ((param, g), on)) in params.into_iter().zip(grads).zip(flags).enumerate() {
                    if !on {
                        continue;
                    }
                    let (m, v) = (&mut self.m[k], &mut self.v[k]);
                    for idx in 0..param.len() {
                        let gv = g[idx];
                        m[idx] += (gv - m[idx]) * (1.0 - b1);
                        v[idx] += (gv * gv - v[idx]) * (1.0 - b2);
                        param[idx] -= (m[idx] * lr_t) / (v[idx].sqrt() + eps);
                    }
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RateRnnConfig;
    use crate::task::{PerceptualDiscrimination, PerceptualDiscriminationConfig};

    fn model() -> RateRnn {
        RateRnnConfig {
            n_rec: 8,
            ..Default::default()
        }
        .init(&mut TrialRng::seeded(0))
        .unwrap()
    }

    fn field_of(config: TrainConfig) -> String {
        match Trainer::new(model(), config) {
            Err(Error::OutOfRange { field, .. })
            | Err(Error::Shape { field, .. })
            | Err(Error::Invalid { field, .. }) => field,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn invalid_train_params_name_their_field() {
        let d = TrainConfig::default;
        assert_eq!(
            field_of(TrainConfig {
                learning_rate: 0.0,
                ..d()
            }),
            "learning_rate"
        );
        assert_eq!(
            field_of(TrainConfig {
                learning_rate: f64::NAN,
                ..d()
            }),
            "learning_rate"
        );
        assert_eq!(
            field_of(TrainConfig {
                training_iters: 0,
                ..d()
            }),
            "training_iters"
        );
        assert_eq!(field_of(TrainConfig { loss_epoch: 0, ..d() }), "loss_epoch");
        assert_eq!(field_of(TrainConfig { l2_rec: -1.0, ..d() }), "l2_rec");
        assert_eq!(
            field_of(TrainConfig {
                l2_firing_rate: f64::INFINITY,
                ..d()
            }),
            "l2_firing_rate"
        );
        assert_eq!(
            field_of(TrainConfig {
                performance_measure: Some(PerformanceMeasure::Accuracy),
                performance_cutoff: Some(1.5),
                ..d()
            }),
            "performance_cutoff"
        );
        // PsychRNN: giving only one of the two is an error.
        assert_eq!(
            field_of(TrainConfig {
                performance_cutoff: Some(0.9),
                ..d()
            }),
            "performance_cutoff"
        );
        assert_eq!(
            field_of(TrainConfig {
                performance_measure: Some(PerformanceMeasure::Accuracy),
                ..d()
            }),
            "performance_measure"
        );
        assert_eq!(
            field_of(TrainConfig {
                save_training_weights_epoch: 0,
                ..d()
            }),
            "save_training_weights_epoch"
        );
        let adam = |beta1, beta2, epsilon| TrainConfig {
            optimizer: OptimizerKind::Adam { beta1, beta2, epsilon },
            ..d()
        };
        assert_eq!(field_of(adam(1.0, 0.999, 1e-8)), "beta1");
        assert_eq!(field_of(adam(0.9, -0.1, 1e-8)), "beta2");
        assert_eq!(field_of(adam(0.9, 0.999, 0.0)), "epsilon");
        let fixed = |fw: FixedWeights| TrainConfig {
            fixed_weights: fw,
            ..d()
        };
        assert_eq!(
            field_of(fixed(FixedWeights {
                w_rec: Some(Array2::zeros((8, 7))),
                ..Default::default()
            })),
            "fixed_weights.w_rec"
        );
        assert_eq!(
            field_of(fixed(FixedWeights {
                w_in: Some(Array2::from_elem((8, 2), 0.5)),
                ..Default::default()
            })),
            "fixed_weights.w_in"
        );
    }

    #[test]
    fn nan_loss_stops_with_an_error_and_keeps_the_weights() {
        let mut m = model();
        m.params.w_out[[0, 0]] = f32::NAN;
        let before = m.params.clone();
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch: 4,
            ..Default::default()
        })
        .unwrap();
        let mut trainer = Trainer::new(
            m,
            TrainConfig {
                training_iters: 8,
                ..Default::default()
            },
        )
        .unwrap();
        let err = trainer.train(&task).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{err}");
        assert_eq!(trainer.updates(), 0);
        // NaN != NaN, so compare bit patterns.
        let bits = |p: &crate::model::RateRnnParams| p.w_out.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&trainer.model().params), bits(&before));
    }

    #[test]
    fn training_continues_and_early_stop_reports_accuracy() {
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch: 32,
            ..Default::default()
        })
        .unwrap();
        let config = TrainConfig {
            training_iters: 32 * 3,
            loss_epoch: 1,
            ..Default::default()
        };
        let mut trainer = Trainer::new(model(), config).unwrap();
        trainer.train(&task).unwrap();
        let after_first = trainer.model().params.clone();
        trainer.train(&task).unwrap();
        assert_eq!(trainer.updates(), 6);
        assert_eq!(trainer.history().len(), 6);
        assert_ne!(trainer.model().params, after_first, "second call continues training");
        // A cutoff of 0 stops after the first update, with the accuracy measured.
        let mut trainer = Trainer::new(
            model(),
            TrainConfig {
                training_iters: 320,
                performance_measure: Some(PerformanceMeasure::Accuracy),
                performance_cutoff: Some(0.0),
                ..Default::default()
            },
        )
        .unwrap();
        let report = trainer.train(&task).unwrap();
        assert_eq!(report.updates, 1);
        assert!(matches!(report.stop, StopReason::PerformanceReached { .. }));
        assert!(trainer.history()[0].accuracy.is_some());
    }

    /// Checkpoint after 3 updates, resume from the file, 3 more: bit-identical to 6 in a row
    /// (Dale's law and recurrent noise on, so raw signs and noise streams both matter).
    #[test]
    fn resume_equals_uninterrupted() {
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch: 8,
            ..Default::default()
        })
        .unwrap();
        let mut config = RateRnnConfig {
            n_rec: 10,
            dale_ratio: Some(0.8),
            rec_noise: 0.1,
            ..Default::default()
        };
        config.trainable.b_out = false;
        let start = config.init(&mut TrialRng::seeded(4)).unwrap();
        let train = TrainConfig {
            training_iters: 24,
            learning_rate: 0.05,
            seed: 11,
            ..Default::default()
        };
        let mut straight = Trainer::new(
            start.clone(),
            TrainConfig {
                training_iters: 48,
                ..train.clone()
            },
        )
        .unwrap();
        straight.train(&task).unwrap();

        let mut first = Trainer::new(start, train.clone()).unwrap();
        first.train(&task).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.npz");
        first.checkpoint().write(&path, false).unwrap();
        let file = WeightsFile::read(&path).unwrap();
        let options = LoadOptions {
            rec_noise: 0.1,
            ..LoadOptions::default()
        };
        let mut resumed = Trainer::resume(&file, &options, train).unwrap();
        assert_eq!(resumed.updates(), 3);
        resumed.train(&task).unwrap();
        assert_eq!(resumed.model().params, straight.model().params);
        assert_eq!(resumed.adam_slots(), straight.adam_slots());
        assert!(!resumed.model().config.trainable.b_out);
    }

    #[test]
    fn same_seed_same_weights() {
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch: 8,
            ..Default::default()
        })
        .unwrap();
        let run = || {
            let mut m = model();
            m.config.rec_noise = 0.05;
            let mut t = Trainer::new(
                m,
                TrainConfig {
                    training_iters: 40,
                    seed: 3,
                    ..Default::default()
                },
            )
            .unwrap();
            t.train(&task).unwrap();
            t.into_model().params
        };
        assert_eq!(run(), run());
    }
}
