//! Cognitive tasks: the two-function contract of PsychRNN, typed.
//!
//! A task samples per-trial parameters from a seeded RNG ([`Task::generate_trial_params`]) and
//! says what input, target and mask hold at time `t` ms of a trial ([`Task::trial_function`]).
//! Batching, seeding, accuracy and the trial pictures come from the library.
//!
//! The time grid is `t_k = k·dt` for `k = 0 … N_steps − 1` with `N_steps = ceil(T / dt)`: it starts
//! at 0 and never reaches `T`, exactly as in PsychRNN.
//!
//! ```
//! use psychrnn::prelude::*;
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
//!     n_batch: 4,
//!     ..Default::default()
//! })?;
//! let batch = task.batch(&mut TrialRng::seeded(1));
//! assert_eq!(batch.x.shape(), &[4, 200, 2]); // [batch, time, n_in]
//! # Ok::<(), psychrnn::Error>(())
//! ```

mod builtin;
mod delayed_discrimination;
mod match_to_category;
mod perceptual_discrimination;

use ndarray::{Array3, ArrayView3, Axis};
use serde::{Serialize, de::DeserializeOwned};

pub use builtin::{BuiltinTask, TaskVisitor, params_to_arrays};
pub use delayed_discrimination::{DelayedDiscrimination, DelayedDiscriminationConfig, DelayedDiscriminationParams};
pub use match_to_category::{MatchToCategory, MatchToCategoryConfig, MatchToCategoryParams};
pub use perceptual_discrimination::{
    PerceptualDiscrimination, PerceptualDiscriminationConfig, PerceptualDiscriminationParams,
};

use crate::error::{Error, Result, check_positive};
use crate::rng::TrialRng;

/// The sizes and time grid every task shares (PsychRNN's `Task(N_in, N_out, dt, tau, T, N_batch)`).
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// Number of input channels.
    pub n_in: usize,
    /// Number of output channels.
    pub n_out: usize,
    /// Simulation time step (ms).
    pub dt: f64,
    /// Neural time constant (ms); the model's default `alpha = dt / tau`.
    pub tau: f64,
    /// Trial length (ms).
    pub t_total: f64,
    /// Trials per batch.
    pub n_batch: usize,
}

impl TaskSpec {
    /// Checks every field: sizes ≥ 1, `dt`, `tau`, `T` finite and > 0.
    pub fn new(n_in: usize, n_out: usize, dt: f64, tau: f64, t_total: f64, n_batch: usize) -> Result<Self> {
        for (field, v) in [("N_in", n_in), ("N_out", n_out), ("N_batch", n_batch)] {
            if v == 0 {
                return Err(Error::range(field, v, ">= 1"));
            }
        }
        check_positive("dt", dt)?;
        check_positive("tau", tau)?;
        check_positive("T", t_total)?;
        Ok(Self {
            n_in,
            n_out,
            dt,
            tau,
            t_total,
            n_batch,
        })
    }

    /// `N_steps = ceil(T / dt)`.
    pub fn n_steps(&self) -> usize {
        (self.t_total / self.dt).ceil() as usize
    }

    /// `alpha = dt / tau`.
    pub fn alpha(&self) -> f64 {
        self.dt / self.tau
    }

    /// Time of step `k` (ms): `k·dt`.
    pub fn time(&self, k: usize) -> f64 {
        k as f64 * self.dt
    }
}

/// Per-trial parameters: any serialisable struct. The serde field names are the keys used in
/// JSON trial files and in `p_<name>` arrays (PsychRNN's keys for the built-in tasks).
pub trait TrialParams: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static {}
impl<T: Clone + std::fmt::Debug + Serialize + DeserializeOwned + Send + Sync + 'static> TrialParams for T {}

/// Where [`Task::trial_function`] writes one time step. All three slices arrive zeroed.
pub struct Step<'a> {
    /// Input, `[n_in]`.
    pub x: &'a mut [f64],
    /// Target, `[n_out]`.
    pub y: &'a mut [f64],
    /// Loss mask, `[n_out]` (0 = ignored, 1 = trained).
    pub mask: &'a mut [f64],
}

/// A cognitive task (PsychRNN's `generate_trial_params` + `trial_function`, typed).
///
/// Implement the three required methods; everything else is provided.
pub trait Task {
    /// The per-trial parameters.
    type Params: TrialParams;

    /// Sizes and time grid.
    fn spec(&self) -> &TaskSpec;

    /// Draws the parameters of trial `trial` (0-based) of batch `batch` (1-based, as PsychRNN).
    fn generate_trial_params(&self, rng: &mut TrialRng, batch: usize, trial: usize) -> Self::Params;

    /// Input, target and mask at time `t` (ms). Input noise is drawn here, from `rng`.
    fn trial_function(&self, t: f64, params: &Self::Params, rng: &mut TrialRng, step: Step<'_>);

    /// Checks explicitly given parameters (e.g. a direction index within range).
    fn validate_params(&self, _params: &Self::Params) -> Result<()> {
        Ok(())
    }

    /// Short name used in files and on the command line.
    fn name(&self) -> &str {
        "custom"
    }

    /// Fraction of trials answered correctly; by default PsychRNN's argmax of the masked
    /// time-mean ([`default_accuracy`]). Arrays are `[batch, time, n_out]`.
    fn accuracy(&self, target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
        default_accuracy(target, output, mask)
    }

    /// One trial as `(x [time, n_in], y [time, n_out], mask [time, n_out])`, in f64.
    fn generate_trial(&self, params: &Self::Params, rng: &mut TrialRng) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let spec = self.spec();
        let n = spec.n_steps();
        let (mut x, mut y, mut m) = (
            vec![0.0; n * spec.n_in],
            vec![0.0; n * spec.n_out],
            vec![0.0; n * spec.n_out],
        );
        for k in 0..n {
            let step = Step {
                x: &mut x[k * spec.n_in..(k + 1) * spec.n_in],
                y: &mut y[k * spec.n_out..(k + 1) * spec.n_out],
                mask: &mut m[k * spec.n_out..(k + 1) * spec.n_out],
            };
            self.trial_function(spec.time(k), params, rng, step);
        }
        (x, y, m)
    }

    /// A batch of `n_batch` fresh trials (batch number 1). Draws are interleaved as PsychRNN
    /// does: params of trial 0, noise of trial 0, params of trial 1, …
    fn batch(&self, rng: &mut TrialRng) -> TrialBatch<Self::Params>
    where
        Self: Sized,
    {
        self.numbered_batch(rng, 1)
    }

    /// Like [`Task::batch`], passing `batch_number` to `generate_trial_params`.
    fn numbered_batch(&self, rng: &mut TrialRng, batch_number: usize) -> TrialBatch<Self::Params>
    where
        Self: Sized,
    {
        let spec = self.spec();
        let mut builder = BatchBuilder::new(spec, spec.n_batch);
        let mut params = Vec::with_capacity(spec.n_batch);
        for trial in 0..spec.n_batch {
            let p = self.generate_trial_params(rng, batch_number, trial);
            builder.push(self, &p, rng);
            params.push(p);
        }
        builder.finish(params)
    }

    /// A batch made of exactly these trials (e.g. a coherence sweep), in order. Noise is still
    /// drawn from `rng`; trials with `stim_noise = 0` are noise-free.
    fn batch_from_params(&self, params: Vec<Self::Params>, rng: &mut TrialRng) -> Result<TrialBatch<Self::Params>>
    where
        Self: Sized,
    {
        if params.is_empty() {
            return Err(Error::Empty {
                what: "trial parameter list".into(),
            });
        }
        for p in &params {
            self.validate_params(p)?;
        }
        let mut builder = BatchBuilder::new(self.spec(), params.len());
        for p in &params {
            builder.push(self, p, rng);
        }
        Ok(builder.finish(params))
    }

    /// An endless sequence of batches numbered 1, 2, … (PsychRNN's `batch_generator`).
    fn batches<'a>(&'a self, rng: &'a mut TrialRng) -> Batches<'a, Self>
    where
        Self: Sized,
    {
        Batches {
            task: self,
            rng,
            next: 1,
        }
    }
}

/// Iterator returned by [`Task::batches`].
pub struct Batches<'a, T: Task> {
    task: &'a T,
    rng: &'a mut TrialRng,
    next: usize,
}

impl<T: Task> Iterator for Batches<'_, T> {
    type Item = TrialBatch<T::Params>;
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.task.numbered_batch(self.rng, self.next);
        self.next += 1;
        Some(b)
    }
}

struct BatchBuilder {
    n_steps: usize,
    n_in: usize,
    n_out: usize,
    dt: f64,
    x: Vec<f32>,
    y: Vec<f32>,
    mask: Vec<f32>,
}

impl BatchBuilder {
    fn new(spec: &TaskSpec, n_trials: usize) -> Self {
        let n_steps = spec.n_steps();
        Self {
            n_steps,
            n_in: spec.n_in,
            n_out: spec.n_out,
            dt: spec.dt,
            x: Vec::with_capacity(n_trials * n_steps * spec.n_in),
            y: Vec::with_capacity(n_trials * n_steps * spec.n_out),
            mask: Vec::with_capacity(n_trials * n_steps * spec.n_out),
        }
    }

    fn push<T: Task + ?Sized>(&mut self, task: &T, p: &T::Params, rng: &mut TrialRng) {
        let (x, y, m) = task.generate_trial(p, rng);
        self.x.extend(x.iter().map(|&v| v as f32));
        self.y.extend(y.iter().map(|&v| v as f32));
        self.mask.extend(m.iter().map(|&v| v as f32));
    }

    fn finish<P>(self, params: Vec<P>) -> TrialBatch<P> {
        let b = params.len();
        let shape = |n| (b, self.n_steps, n);
        TrialBatch {
            x: Array3::from_shape_vec(shape(self.n_in), self.x).expect("sizes follow the spec"),
            y: Array3::from_shape_vec(shape(self.n_out), self.y).expect("sizes follow the spec"),
            mask: Array3::from_shape_vec(shape(self.n_out), self.mask).expect("sizes follow the spec"),
            params,
            dt: self.dt,
        }
    }
}

/// A batch of trials: inputs, targets, masks (all f32) and the parameters of each trial.
#[derive(Clone, Debug)]
pub struct TrialBatch<P> {
    /// Inputs `[batch, time, n_in]`.
    pub x: Array3<f32>,
    /// Targets `[batch, time, n_out]`.
    pub y: Array3<f32>,
    /// Loss mask `[batch, time, n_out]`.
    pub mask: Array3<f32>,
    /// Parameters of each trial, `len == batch`.
    pub params: Vec<P>,
    /// Time step (ms) of the grid.
    pub dt: f64,
}

impl<P> TrialBatch<P> {
    /// Number of trials.
    pub fn n_trials(&self) -> usize {
        self.x.len_of(Axis(0))
    }

    /// Number of time steps.
    pub fn n_steps(&self) -> usize {
        self.x.len_of(Axis(1))
    }

    /// Times of the steps (ms): `[0, dt, 2·dt, …]`.
    pub fn times(&self) -> Vec<f64> {
        (0..self.n_steps()).map(|k| k as f64 * self.dt).collect()
    }
}

/// Index of the largest value; ties go to the lowest index and a NaN wins (as `np.argmax`).
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if v > values[best] {
            best = i;
        }
    }
    best
}

/// Per trial, the channel with the largest masked time-mean: `argmax_c mean_t(a[b,t,c]·mask[b,t,c])`.
pub fn masked_choice(a: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> Vec<usize> {
    let (b, t, c) = a.dim();
    (0..b)
        .map(|i| {
            let mut sums = vec![0.0f64; c];
            for k in 0..t {
                for (j, s) in sums.iter_mut().enumerate() {
                    *s += a[[i, k, j]] as f64 * mask[[i, k, j]] as f64;
                }
            }
            sums.iter_mut().for_each(|s| *s /= t as f64);
            argmax(&sums)
        })
        .collect()
}

/// PsychRNN's accuracy: the fraction of trials whose chosen channel (see [`masked_choice`]) of
/// `output` equals that of `target`. Arrays are `[batch, time, n_out]`; a trial with an all-zero
/// mask counts as correct (both choices are channel 0), as in PsychRNN.
///
/// # Panics
/// If the three shapes differ (a programming error; the CLI checks shapes first).
pub fn default_accuracy(target: ArrayView3<'_, f32>, output: ArrayView3<'_, f32>, mask: ArrayView3<'_, f32>) -> f64 {
    assert_eq!(target.shape(), output.shape(), "target and output shapes differ");
    assert_eq!(target.shape(), mask.shape(), "target and mask shapes differ");
    let truth = masked_choice(target, mask);
    let chosen = masked_choice(output, mask);
    if truth.is_empty() {
        return f64::NAN;
    }
    truth.iter().zip(&chosen).filter(|(a, b)| a == b).count() as f64 / truth.len() as f64
}

/// Checks explicitly given trial values: each finite, `stim_noise` finite and ≥ 0.
pub(crate) fn check_trial_values(values: &[(&str, f64)], stim_noise: f64) -> Result<()> {
    if let Some((field, v)) = values.iter().find(|(_, v)| !v.is_finite()) {
        return Err(Error::range(*field, v, "finite"));
    }
    if !(stim_noise.is_finite() && stim_noise >= 0.0) {
        return Err(Error::range("stim_noise", stim_noise, "finite and >= 0"));
    }
    Ok(())
}

/// `sqrt(2·0.01·sqrt(10)·sqrt(dt)·stim_noise²)`: the input-noise σ of PD and DD, evaluated in
/// PsychRNN's operation order so NumPy-seeded batches match bit for bit.
pub(crate) fn pd_noise_sigma(dt: f64, stim_noise: f64) -> f64 {
    (2.0 * 0.01 * 10f64.sqrt() * dt.sqrt() * stim_noise * stim_noise).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array3;

    #[test]
    fn n_steps_is_ceil_of_t_over_dt() {
        assert_eq!(TaskSpec::new(2, 2, 10.0, 100.0, 2000.0, 1).unwrap().n_steps(), 200);
        assert_eq!(TaskSpec::new(2, 2, 7.0, 100.0, 1000.0, 1).unwrap().n_steps(), 143);
    }

    #[test]
    fn spec_rejects_non_positive_times_and_zero_sizes() {
        for (dt, tau, t) in [
            (0.0, 100.0, 2000.0),
            (-1.0, 100.0, 2000.0),
            (10.0, 0.0, 2000.0),
            (10.0, 100.0, f64::NAN),
        ] {
            assert!(matches!(
                TaskSpec::new(2, 2, dt, tau, t, 1),
                Err(Error::OutOfRange { .. })
            ));
        }
        match TaskSpec::new(2, 2, 10.0, 100.0, 2000.0, 0) {
            Err(Error::OutOfRange { field, .. }) => assert_eq!(field, "N_batch"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn accuracy_ties_go_to_lowest_index_and_empty_mask_counts_correct() {
        // trial 0: target says channel 1, output ties (both 0.5) -> chosen 0 -> wrong.
        // trial 1: all-zero mask -> both choose 0 -> correct.
        let mut y = Array3::<f32>::zeros((2, 3, 2));
        let mut out = Array3::<f32>::zeros((2, 3, 2));
        let mut mask = Array3::<f32>::zeros((2, 3, 2));
        for k in 0..3 {
            y[[0, k, 1]] = 1.0;
            y[[1, k, 1]] = 1.0;
            out[[0, k, 0]] = 0.5;
            out[[0, k, 1]] = 0.5;
            out[[1, k, 1]] = 9.0;
            mask[[0, k, 0]] = 1.0;
            mask[[0, k, 1]] = 1.0;
        }
        assert_eq!(masked_choice(out.view(), mask.view()), vec![0, 0]);
        assert_eq!(default_accuracy(y.view(), out.view(), mask.view()), 0.5);
    }

    #[test]
    fn argmax_matches_numpy_conventions() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0]), 1);
        assert_eq!(argmax(&[1.0, f64::NAN, 5.0]), 1);
        assert_eq!(argmax(&[-2.0, -1.0]), 1);
    }
}
