//! Where training batches come from: one task, a curriculum of tasks (PsychRNN's `Curriculum`,
//! spec §8), a weighted random mixture of tasks (multi-task training as in Yang et al. 2019), or
//! fixed arrays (externally generated trials, in order).

use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3, ArrayView3, s};

use crate::error::{Error, Result};
use crate::io::npy::write_npy;
use crate::io::{NpyArray, refuse_overwrite};
use crate::rng::TrialRng;
use crate::task::{BuiltinTask, Task, TaskSpec, TrialBatch, default_accuracy};

/// A task as training sees it: sizes, batches without their trial parameters, and a score.
/// Every [`Task`] is one, and so is a [`BuiltinTask`]; object-safe, so different task types
/// can share a curriculum or a mixture.
pub trait TrainingTask {
    /// Sizes and time grid.
    fn training_spec(&self) -> &TaskSpec;
    /// Batch number `number` (1-based, passed to `generate_trial_params`), drawn from `rng`.
    fn training_batch(&self, rng: &mut TrialRng, number: usize) -> TrialBatch<()>;
    /// Fraction correct, arrays `[batch, time, n_out]`.
    fn score(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64;
}

fn erase<P>(b: TrialBatch<P>) -> TrialBatch<()> {
    let n = b.params.len();
    TrialBatch {
        x: b.x,
        y: b.y,
        mask: b.mask,
        params: vec![(); n],
        dt: b.dt,
    }
}

impl<T: Task> TrainingTask for T {
    fn training_spec(&self) -> &TaskSpec {
        self.spec()
    }
    fn training_batch(&self, rng: &mut TrialRng, number: usize) -> TrialBatch<()> {
        erase(self.numbered_batch(rng, number))
    }
    fn score(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
        self.accuracy(target, output, mask)
    }
}

impl TrainingTask for BuiltinTask {
    fn training_spec(&self) -> &TaskSpec {
        self.spec()
    }
    fn training_batch(&self, rng: &mut TrialRng, number: usize) -> TrialBatch<()> {
        match self {
            BuiltinTask::PerceptualDiscrimination(t) => t.training_batch(rng, number),
            BuiltinTask::DelayedDiscrimination(t) => t.training_batch(rng, number),
            BuiltinTask::MatchToCategory(t) => t.training_batch(rng, number),
        }
    }
    fn score(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
        self.accuracy(target, output, mask)
    }
}

/// A per-stage accuracy function `(target, output, mask) -> fraction correct`.
pub type AccuracyFn = Box<dyn Fn(ArrayView3<'_, f32>, ArrayView3<'_, f32>, ArrayView3<'_, f32>) -> f64>;

/// Tasks of increasing difficulty (PsychRNN's `Curriculum`): train on the current stage; every
/// `metric_epoch` updates score the network on a fresh batch of that stage and advance when the
/// score reaches the stage's threshold. Passing the last stage ends training.
///
/// ```
/// use psychrnn::prelude::*;
/// let stages = [0.7, 0.5, 0.3, 0.1].map(|coherence| {
///     PerceptualDiscrimination::new(PerceptualDiscriminationConfig { coherence: Some(coherence), ..Default::default() })
/// });
/// let curriculum = Curriculum::new(stages.into_iter().collect::<Result<Vec<_>>>()?)?
///     .thresholds(vec![0.9; 4])?
///     .metric_epoch(5)?;
/// assert_eq!(curriculum.stage(), 0);
/// # Ok::<(), psychrnn::Error>(())
/// ```
pub struct Curriculum {
    stages: Vec<Box<dyn TrainingTask>>,
    accuracies: Vec<Option<AccuracyFn>>,
    thresholds: Vec<f64>,
    metric_epoch: usize,
    output_file: Option<PathBuf>,
    stage: usize,
    metric_values: Vec<[f64; 2]>,
}

impl std::fmt::Debug for Curriculum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Curriculum")
            .field("stages", &self.stages.len())
            .field("thresholds", &self.thresholds)
            .field("metric_epoch", &self.metric_epoch)
            .field("stage", &self.stage)
            .field("checks", &self.metric_values.len())
            .finish()
    }
}

/// Checks that `spec` has the inputs, outputs and time step of `first`.
fn check_compatible(what: &str, first: &TaskSpec, spec: &TaskSpec) -> Result<()> {
    if (spec.n_in, spec.n_out) != (first.n_in, first.n_out) {
        return Err(Error::shape(
            format!("{what} inputs/outputs"),
            &[first.n_in, first.n_out],
            &[spec.n_in, spec.n_out],
        ));
    }
    if spec.dt != first.dt {
        return Err(Error::range(
            format!("{what} dt"),
            spec.dt,
            format!("{} as the first", first.dt),
        ));
    }
    Ok(())
}

impl Curriculum {
    /// Stages in order; thresholds 0.9 and `metric_epoch` 10 as PsychRNN. All stages need the same
    /// inputs, outputs and `dt`.
    pub fn new<T: TrainingTask + 'static>(stages: impl IntoIterator<Item = T>) -> Result<Self> {
        let stages: Vec<Box<dyn TrainingTask>> = stages
            .into_iter()
            .map(|t| Box::new(t) as Box<dyn TrainingTask>)
            .collect();
        Self::from_boxed(stages)
    }

    /// Stages of different task types.
    pub fn from_boxed(stages: Vec<Box<dyn TrainingTask>>) -> Result<Self> {
        let Some(first) = stages.first() else {
            return Err(Error::Empty {
                what: "curriculum stage list".into(),
            });
        };
        for (k, stage) in stages.iter().enumerate() {
            check_compatible(
                &format!("curriculum stage {k}"),
                first.training_spec(),
                stage.training_spec(),
            )?;
        }
        let n = stages.len();
        Ok(Self {
            stages,
            accuracies: (0..n).map(|_| None).collect(),
            thresholds: vec![0.9; n],
            metric_epoch: 10,
            output_file: None,
            stage: 0,
            metric_values: Vec::new(),
        })
    }

    /// One threshold per stage, each in [0, 1].
    pub fn thresholds(mut self, thresholds: Vec<f64>) -> Result<Self> {
        if thresholds.len() != self.stages.len() {
            return Err(Error::shape(
                "curriculum thresholds",
                &[self.stages.len()],
                &[thresholds.len()],
            ));
        }
        if let Some(t) = thresholds.iter().find(|t| !(0.0..=1.0).contains(*t)) {
            return Err(Error::range("curriculum threshold", t, "in [0, 1]"));
        }
        self.thresholds = thresholds;
        Ok(self)
    }

    /// Score the current stage every `n ≥ 1` updates.
    pub fn metric_epoch(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::range("metric_epoch", 0, ">= 1"));
        }
        self.metric_epoch = n;
        Ok(self)
    }

    /// Scores stage `stage` with `f` instead of its task's accuracy.
    pub fn accuracy(mut self, stage: usize, f: AccuracyFn) -> Result<Self> {
        let n = self.stages.len();
        let slot = self
            .accuracies
            .get_mut(stage)
            .ok_or_else(|| Error::range("curriculum stage", stage, format!("< {n}")))?;
        *slot = Some(f);
        Ok(self)
    }

    /// Where the `[metric, stage]` record is saved (`.npy`, `(n_checks, 2)` float64, as PsychRNN)
    /// when training ends. An existing file is not overwritten.
    pub fn output_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.output_file = Some(path.into());
        self
    }

    /// The current stage (0-based); equals the number of stages once all are passed.
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// Number of stages.
    pub fn n_stages(&self) -> usize {
        self.stages.len()
    }

    /// Whether the last stage has been passed.
    pub fn is_done(&self) -> bool {
        self.stage >= self.stages.len()
    }

    /// Updates between checks.
    pub fn checks_every(&self) -> usize {
        self.metric_epoch
    }

    /// Every check so far as `[metric, stage]` (the stage before any advance), `[n_checks, 2]`.
    pub fn metric_values(&self) -> Array2<f64> {
        let flat: Vec<f64> = self.metric_values.iter().flatten().copied().collect();
        Array2::from_shape_vec((self.metric_values.len(), 2), flat).expect("rows of 2")
    }

    /// Writes [`Curriculum::metric_values`] as `.npy`.
    pub fn save_metric_values(&self, path: &Path, overwrite: bool) -> Result<()> {
        refuse_overwrite(path, overwrite)?;
        let arr = NpyArray::from_f64(
            vec![self.metric_values.len(), 2],
            self.metric_values().into_iter().collect(),
        );
        std::fs::write(path, write_npy(&arr)).map_err(|e| Error::io(path, e))
    }

    /// The task of the current stage (the last one once done).
    pub(crate) fn current(&self) -> &dyn TrainingTask {
        self.stages[self.stage.min(self.stages.len() - 1)].as_ref()
    }

    pub(crate) fn score_current(
        &self,
        target: ArrayView3<'_, f32>,
        output: ArrayView3<'_, f32>,
        mask: ArrayView3<'_, f32>,
    ) -> f64 {
        let k = self.stage.min(self.stages.len() - 1);
        match &self.accuracies[k] {
            Some(f) => f(target, output, mask),
            None => self.stages[k].score(target, output, mask),
        }
    }

    /// Records `value` for the current stage and advances when it reaches the threshold; true
    /// when it advanced.
    pub(crate) fn record(&mut self, value: f64) -> bool {
        self.metric_values.push([value, self.stage as f64]);
        if value >= self.thresholds[self.stage] {
            self.stage += 1;
            true
        } else {
            false
        }
    }

    pub(crate) fn saved_to(&self) -> Option<&Path> {
        self.output_file.as_deref()
    }
}

/// Several tasks trained together: each update draws one task with probability proportional to
/// its weight, then a batch of it (multi-task training as in Yang et al., Nat. Neurosci. 2019).
/// All tasks need the same inputs, outputs and `dt`.
#[derive(Default)]
pub struct TaskMixture {
    tasks: Vec<(Box<dyn TrainingTask>, f64)>,
}

impl std::fmt::Debug for TaskMixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let weights: Vec<f64> = self.tasks.iter().map(|(_, w)| *w).collect();
        f.debug_struct("TaskMixture").field("weights", &weights).finish()
    }
}

impl TaskMixture {
    /// An empty mixture.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `task` with `weight` (finite, > 0).
    pub fn with<T: TrainingTask + 'static>(mut self, task: T, weight: f64) -> Result<Self> {
        if !(weight.is_finite() && weight > 0.0) {
            return Err(Error::range("mixture weight", weight, "finite and > 0"));
        }
        if let Some((first, _)) = self.tasks.first() {
            check_compatible(
                &format!("mixture task {}", self.tasks.len()),
                first.training_spec(),
                task.training_spec(),
            )?;
        }
        self.tasks.push((Box::new(task), weight));
        Ok(self)
    }

    /// Number of tasks.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether no task was added.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The task drawn by one uniform number from `rng`.
    pub(crate) fn draw(&self, rng: &mut TrialRng) -> usize {
        let total: f64 = self.tasks.iter().map(|(_, w)| w).sum();
        let mut u = rng.uniform_range(0.0, total);
        for (k, (_, w)) in self.tasks.iter().enumerate() {
            if u < *w {
                return k;
            }
            u -= w;
        }
        self.tasks.len() - 1
    }

    pub(crate) fn task(&self, k: usize) -> &dyn TrainingTask {
        self.tasks[k].0.as_ref()
    }
}

/// Fixed trials `(x, y, mask)`, `[trials, time, ·]`, cut in order into batches of `batch_size`
/// (the last one shorter when it does not divide); training cycles through them.
#[derive(Clone, Debug)]
pub struct TrialData {
    x: Array3<f32>,
    y: Array3<f32>,
    mask: Array3<f32>,
    batch_size: usize,
    spec: TaskSpec,
}

impl TrialData {
    /// Checks shapes (`y` and `mask` share a shape, all share trials and steps), finiteness and
    /// `batch_size ≥ 1`. `dt` and `tau` (ms) describe the grid the trials were made on.
    pub fn new(
        x: Array3<f32>,
        y: Array3<f32>,
        mask: Array3<f32>,
        batch_size: usize,
        dt: f64,
        tau: f64,
    ) -> Result<Self> {
        let (n, t, n_in) = x.dim();
        let n_out = y.dim().2;
        if n == 0 || t == 0 {
            return Err(Error::Empty {
                what: format!("training data x of shape [{n}, {t}, {n_in}]"),
            });
        }
        for (field, a) in [("data y", &y), ("data mask", &mask)] {
            if a.shape() != [n, t, n_out] {
                return Err(Error::shape(field, &[n, t, n_out], a.shape()));
            }
        }
        for (field, a) in [("data x", &x), ("data y", &y), ("data mask", &mask)] {
            if let Some(v) = a.iter().find(|v| !v.is_finite()) {
                return Err(Error::range(field, v, "finite"));
            }
        }
        if batch_size == 0 {
            return Err(Error::range("batch_size", 0, ">= 1"));
        }
        let spec = TaskSpec::new(n_in, n_out, dt, tau, t as f64 * dt, batch_size.min(n))?;
        Ok(Self {
            x,
            y,
            mask,
            batch_size: batch_size.min(n),
            spec,
        })
    }

    /// Number of trials.
    pub fn n_trials(&self) -> usize {
        self.x.dim().0
    }

    /// Batches per pass through the data.
    pub fn n_batches(&self) -> usize {
        self.n_trials().div_ceil(self.batch_size)
    }

    /// Batch `k` (0-based, cycling).
    pub fn batch(&self, k: usize) -> TrialBatch<()> {
        let lo = (k % self.n_batches()) * self.batch_size;
        let hi = (lo + self.batch_size).min(self.n_trials());
        TrialBatch {
            x: self.x.slice(s![lo..hi, .., ..]).to_owned(),
            y: self.y.slice(s![lo..hi, .., ..]).to_owned(),
            mask: self.mask.slice(s![lo..hi, .., ..]).to_owned(),
            params: vec![(); hi - lo],
            dt: self.spec.dt,
        }
    }

    /// All trials as one batch.
    pub fn all(&self) -> TrialBatch<()> {
        TrialBatch {
            x: self.x.clone(),
            y: self.y.clone(),
            mask: self.mask.clone(),
            params: vec![(); self.n_trials()],
            dt: self.spec.dt,
        }
    }

    /// Sizes and grid (`n_batch` = the batch size).
    pub fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    /// Fraction correct by PsychRNN's default accuracy.
    pub fn score(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
        default_accuracy(target, output, mask)
    }
}
