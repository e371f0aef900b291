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

mod config;
pub mod custom;
pub mod graph;
mod history;
pub mod kernel;
mod model;
pub mod simd;
mod source;

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::{Array3, ArrayView3};

use crate::error::{Error, Result};
use crate::io::{LoadOptions, NpyArray, NpyData, WeightsFile, refuse_overwrite};
use crate::model::RateRnn;
use crate::rng::TrialRng;
use crate::task::{TaskSpec, TrialBatch};
pub use config::{FixedWeights, Loss, OptimizerKind, PerformanceMeasure, TrainConfig, TrainDevice};
pub use custom::{CustomLoss, CustomRegularizer, LossInputs, RegularizerInputs};
use history::Reporter;
pub use history::{History, HistoryRow, Progress, write_csv, write_parquet};
use kernel::Dims;
pub use model::{Pass, Regularized, TrainModel};
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

/// The rate RNN's six trainable tensors, in PsychRNN's variable order, flattened row-major.
pub const PARAM_NAMES: [&str; 6] = ["init_state", "W_in", "W_rec", "W_out", "b_rec", "b_out"];

/// Gradients or optimiser slots, one vector per trainable tensor in
/// [`TrainModel::param_names`] order ([`PARAM_NAMES`] for the rate RNN).
pub type ParamVecs = Vec<Vec<f32>>;

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

/// Trains a network in place ([`RateRnn`] by default, or a [`crate::model::GatedRnn`]), keeping
/// its optimiser state between calls.
pub struct Trainer<M: TrainModel = RateRnn> {
    model: M,
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

impl<M: TrainModel> Trainer<M> {
    /// Checks `config` against `model`.
    pub fn new(model: M, config: TrainConfig) -> Result<Self> {
        config.validate(&model)?;
        let zeros: ParamVecs = model.param_slices().iter().map(|p| vec![0.0; p.len()]).collect();
        Ok(Self {
            m: zeros.clone(),
            v: zeros,
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
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Takes the trained model out.
    pub fn into_model(self) -> M {
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
        let mut file = self.model.weights_file();
        let shapes = self.model.param_shapes();
        let at = file
            .entries
            .iter()
            .position(|(k, _)| k == "dale_ratio")
            .unwrap_or(file.entries.len());
        let mut slots = Vec::new();
        let flags = self.model.trainable();
        for (k, name) in self.model.param_names().iter().enumerate().filter(|(k, _)| flags[*k]) {
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
        for ((name, data), shape) in self
            .model
            .param_names()
            .iter()
            .zip(self.model.param_slices())
            .zip(self.model.param_shapes())
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
        let flags = self.model.trainable();
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
        let mut model = M::load(file, options)?;
        if let Some(flags) = file.get("psychrnn/trainable").and_then(NpyArray::to_f64_vec) {
            model.set_trainable(&flags.iter().map(|&v| v != 0.0).collect::<Vec<_>>());
        }
        let shapes = model.param_shapes();
        let names = model.param_names();
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
        for (name, shape) in names.iter().zip(&shapes) {
            raw.push(read(&format!("psychrnn/raw/{name}"), shape.iter().product())?);
        }
        for (target, values) in model.param_slices_mut().into_iter().zip(raw) {
            if let Some(v) = values {
                target.copy_from_slice(&v);
            }
        }
        let mut trainer = Trainer::new(model, config)?;
        for (k, (name, shape)) in names.iter().zip(&shapes).enumerate() {
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
        let (n_in, _, n_out) = self.model.sizes();
        if (spec.n_in, spec.n_out) != (n_in, n_out) {
            return Err(Error::shape(
                "task inputs/outputs",
                &[n_in, n_out],
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
        let pass = self.forward(batch, noise)?;
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

    /// The forward pass on the configured device (the rate RNN's fused kernel on flex).
    fn forward<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<Pass> {
        let (b, t, i) = batch.x.dim();
        let (_, n, o) = self.model.sizes();
        let dims = Dims {
            batch: b,
            steps: t,
            n_in: i,
            n_rec: n,
            n_out: o,
        };
        let x = batch.x.as_standard_layout();
        let device = self.config.device.burn_device()?;
        Ok(self
            .model
            .forward(device.as_ref(), dims, x.as_slice().expect("standard"), noise))
    }

    /// The objective on `batch` (no update).
    pub fn objective<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<LossParts> {
        self.check_batch(batch)?;
        let pass = self.forward(batch, noise)?;
        let (parts, _, _) = self.loss_and_output_grads(pass.host(), batch, false)?;
        Ok(LossParts {
            regularization: parts.regularization + self.weight_regularization(&self.model.regularized(), None)?,
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
        let (n_in, _, n_out) = self.model.sizes();
        if i != n_in {
            return Err(Error::shape("batch x", &[b, t, n_in], &[b, t, i]));
        }
        let want = [b, t, n_out];
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
            let transfer = self.model.rate_transfer();
            let rates = fwd.rates();
            let n = rates.len() as f64;
            reg = coef * rates.iter().map(|&r| (r as f64).powi(2)).sum::<f64>() / n;
            if want_grads {
                g_states = Some(
                    rates
                        .iter()
                        .map(|&r| (2.0 * coef * r as f64 * transfer.derivative_f(r) as f64 / n) as f32)
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

    /// Weight regularisers (means over the regularised weights, plus the custom one); adds their
    /// gradients to `grads`.
    fn weight_regularization(&self, w: &Regularized, mut grads: Option<&mut Regularized>) -> Result<f64> {
        let c = &self.config;
        let mut total = 0.0;
        for (which, l1, l2) in [(0, c.l1_in, c.l2_in), (1, c.l1_rec, c.l2_rec), (2, c.l1_out, c.l2_out)] {
            if l1 == 0.0 && l2 == 0.0 {
                continue;
            }
            let pick = |r: &Regularized| [&r.w_in, &r.w_rec, &r.w_out][which].clone();
            let m = pick(w);
            let n = m.len() as f64;
            total += l1 * m.iter().map(|v| v.abs() as f64).sum::<f64>() / n;
            total += l2 * m.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / n;
            if let Some(g) = grads.as_deref_mut() {
                let target = match which {
                    0 => &mut g.w_in,
                    1 => &mut g.w_rec,
                    _ => &mut g.w_out,
                };
                for (gv, &wv) in target.iter_mut().zip(m.iter()) {
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
            total += custom::regularizer_and_grad(f, w, grads)?;
        }
        Ok(total)
    }

    /// Gradients of the objective on `batch` with respect to the raw parameters, before fixed-weight
    /// masking and clipping, in [`TrainModel::param_names`] order; and the objective.
    pub fn gradients<P>(&self, batch: &TrialBatch<P>, noise: &mut TrialRng) -> Result<(LossParts, ParamVecs)> {
        self.check_batch(batch)?;
        let pass = self.forward(batch, noise)?;
        let (mut parts, g_out, g_states) = self.loss_and_output_grads(pass.host(), batch, true)?;
        let reg = self.model.regularized();
        let mut g_reg = reg.zeros_like();
        parts.regularization += self.weight_regularization(&reg, Some(&mut g_reg))?;
        let grads = self.model.backward(pass, &g_out, g_states.as_deref(), g_reg);
        Ok((parts, grads))
    }

    /// Fixed-weight masking then per-tensor clipping (TF's `clip_by_norm(g, 1)`), in place.
    pub fn mask_and_clip(&self, grads: &mut ParamVecs) {
        for (g, name) in grads.iter_mut().zip(self.model.param_names()) {
            if let Some(f) = self.config.fixed_weights.slice(&name) {
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
        let flags = self.model.trainable();
        let params = self.model.param_slices_mut();
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
        let zeros = |r, c| ndarray::Array2::<f32>::zeros((r, c));
        assert_eq!(
            field_of(fixed(FixedWeights::new().with("W_rec", zeros(8, 7)))),
            "fixed_weights.W_rec"
        );
        assert_eq!(
            field_of(fixed(FixedWeights::new().with("W_in", zeros(8, 2) + 0.5))),
            "fixed_weights.W_in"
        );
        // init_state is [1, n_rec] in files; an [n_rec] mask also fits.
        let init = FixedWeights::new().with("init_state", ndarray::Array1::<f32>::zeros(8));
        assert!(Trainer::new(model(), fixed(init)).is_ok());
        let unknown = FixedWeights::new().with("W_f", zeros(8, 8));
        assert!(matches!(
            Trainer::new(model(), fixed(unknown)),
            Err(Error::Unknown {
                kind: "fixed_weights variable",
                ..
            })
        ));
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
        let mut resumed = Trainer::<RateRnn>::resume(&file, &options, train).unwrap();
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
