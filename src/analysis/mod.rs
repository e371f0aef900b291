//! Analysis of trained networks: trial tables, psychometric curves, state-space (PCA) analysis,
//! fixed points with their linearisation, lesions and per-unit task variance.
//!
//! ```
//! use psychrnn::analysis::{self, TrialTableOptions};
//! use psychrnn::prelude::*;
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 16, ..Default::default() })?;
//! let model = RateRnnConfig::for_task(task.spec()).init(&mut TrialRng::seeded(1))?;
//! let batch = task.batch(&mut TrialRng::seeded(2));
//! let table = analysis::trial_table(&model, &task, &batch, &TrialTableOptions::default())?;
//! assert_eq!(table.height(), 16); // one row per trial: params, choice, correct, rt_ms
//! # Ok::<(), psychrnn::Error>(())
//! ```

mod fixed_points;
mod pca;
mod psychometric;
mod report;

pub use fixed_points::{
    FixedPoint, FixedPointOptions, FixedPoints, GatedDynamics, RateDynamics, Stability, eigenvalues,
};
pub use pca::{Pca, condition_average, principal_angles};
pub use psychometric::{Link, PsychometricFit, PsychometricLevel, choice_table, fit_psychometric, wilson};
pub use report::{Report, ReportOptions, report};

use ndarray::{Array1, Array3, ArrayView3, Axis};
use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::RateRnn;
use crate::rng::TrialRng;
use crate::simulate::{SimOptions, Simulation, Simulator};
use crate::task::{
    DelayedDiscrimination, DelayedDiscriminationParams, PerceptualDiscrimination, PerceptualDiscriminationParams, Task,
    TrialBatch, masked_choice,
};

/// How choices and reaction times are read off the outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrialTableOptions {
    /// Reaction time: the first time (ms) an output reaches this, counted from the evidence onset
    /// ([`evidence_table`], [`psychometric`]) or from the trial start ([`trial_table`]).
    pub rt_threshold: f64,
    /// Recurrent noise σ while running (`None`: the model's own).
    pub rec_noise: Option<f64>,
    /// Seed of that noise.
    pub seed: u64,
}

impl Default for TrialTableOptions {
    fn default() -> Self {
        Self {
            rt_threshold: 0.6,
            rec_noise: None,
            seed: 0,
        }
    }
}

/// A task whose trials carry a signed amount of evidence for one output channel.
pub trait SignedEvidence: Task {
    /// Evidence of a trial: positive favours [`SignedEvidence::evidence_channel`].
    fn evidence(&self, params: &Self::Params) -> f64;
    /// The output channel positive evidence favours.
    fn evidence_channel(&self) -> usize;
    /// When the evidence starts (ms): reaction times count from here.
    fn evidence_onset(&self, params: &Self::Params) -> f64;
    /// A trial with evidence `level` (other parameters drawn as usual).
    fn trial_with_evidence(&self, level: f64, rng: &mut TrialRng, trial: usize) -> Result<Self::Params>;
}

impl SignedEvidence for PerceptualDiscrimination {
    /// `coherence` for direction 1, `−coherence` for direction 0.
    fn evidence(&self, p: &PerceptualDiscriminationParams) -> f64 {
        if p.direction == 1 { p.coherence } else { -p.coherence }
    }

    fn evidence_channel(&self) -> usize {
        1
    }

    fn evidence_onset(&self, p: &PerceptualDiscriminationParams) -> f64 {
        p.onset_time
    }

    fn trial_with_evidence(
        &self,
        level: f64,
        rng: &mut TrialRng,
        trial: usize,
    ) -> Result<PerceptualDiscriminationParams> {
        let drawn = self.generate_trial_params(rng, 1, trial);
        let p = PerceptualDiscriminationParams {
            coherence: level.abs(),
            // Zero coherence: either direction is the same stimulus; alternate for balance.
            direction: if level > 0.0 || (level == 0.0 && trial % 2 == 1) {
                1
            } else {
                0
            },
            ..drawn
        };
        self.validate_params(&p)?;
        Ok(p)
    }
}

impl SignedEvidence for DelayedDiscrimination {
    /// `f1 − f2` (Hz): positive means "f1 higher", output channel 0.
    fn evidence(&self, p: &DelayedDiscriminationParams) -> f64 {
        p.f1 - p.f2
    }

    fn evidence_channel(&self) -> usize {
        0
    }

    fn evidence_onset(&self, p: &DelayedDiscriminationParams) -> f64 {
        p.decision
    }

    /// `f1 − f2 = level` around the middle of PsychRNN's frequency range (18 Hz).
    fn trial_with_evidence(&self, level: f64, rng: &mut TrialRng, trial: usize) -> Result<DelayedDiscriminationParams> {
        let drawn = self.generate_trial_params(rng, 1, trial);
        let p = DelayedDiscriminationParams {
            f1: 18.0 + level / 2.0,
            f2: 18.0 - level / 2.0,
            choice: if level > 0.0 || (level == 0.0 && trial.is_multiple_of(2)) {
                0
            } else {
                1
            },
            ..drawn
        };
        self.validate_params(&p)?;
        Ok(p)
    }
}

/// Runs `model` on `batch` and returns the outputs and states.
pub fn run<P>(model: &RateRnn, batch: &TrialBatch<P>, rec_noise: Option<f64>, seed: u64) -> Result<Simulation> {
    let options = SimOptions {
        rec_noise,
        seed: Some(seed),
        connectivity: None,
    };
    Simulator::from_model(model).run(&batch.x, &options)
}

/// First time (ms) at or after `onset` that any output of trial `b` reaches `threshold`.
fn reaction_time(outputs: ArrayView3<f64>, b: usize, dt: f64, onset: f64, threshold: f64) -> Option<f64> {
    let t = outputs.dim().1;
    (0..t)
        .filter(|&k| k as f64 * dt >= onset)
        .find(|&k| outputs.slice(ndarray::s![b, k, ..]).iter().any(|&v| v >= threshold))
        .map(|k| k as f64 * dt - onset)
}

/// One row per trial: every numeric trial parameter, the `target` and chosen (`choice`) channels
/// (masked time-mean argmax, as PsychRNN's accuracy), `correct`, and `rt_ms` (null when the
/// threshold is never reached). A parameter named like one of these columns is renamed `p_<name>`.
/// For tasks with [`SignedEvidence`] see [`evidence_table`].
pub fn trial_table<T: Task>(
    model: &RateRnn,
    task: &T,
    batch: &TrialBatch<T::Params>,
    options: &TrialTableOptions,
) -> Result<DataFrame> {
    let sim = run(model, batch, options.rec_noise, options.seed)?;
    table(batch, &sim, options, |_| 0.0, None::<fn(&T::Params) -> f64>).map_err(|e| table_error(task.name(), e))
}

/// [`trial_table`] plus `evidence`, with reaction times counted from the evidence onset.
pub fn evidence_table<T: SignedEvidence>(
    model: &RateRnn,
    task: &T,
    batch: &TrialBatch<T::Params>,
    options: &TrialTableOptions,
) -> Result<DataFrame> {
    let sim = run(model, batch, options.rec_noise, options.seed)?;
    table(
        batch,
        &sim,
        options,
        |p| task.evidence_onset(p),
        Some(|p: &T::Params| task.evidence(p)),
    )
    .map_err(|e| table_error(task.name(), e))
}

fn table_error(task: &str, e: polars::error::PolarsError) -> Error {
    Error::Table {
        what: format!("trial table of {task}"),
        message: e.to_string(),
    }
}

/// The columns [`trial_table`] computes.
const COMPUTED: [&str; 5] = ["evidence", "target", "choice", "correct", "rt_ms"];

fn table<P: Serialize>(
    batch: &TrialBatch<P>,
    sim: &Simulation,
    options: &TrialTableOptions,
    onset: impl Fn(&P) -> f64,
    evidence: Option<impl Fn(&P) -> f64>,
) -> polars::error::PolarsResult<DataFrame> {
    let outputs32 = sim.outputs.mapv(|v| v as f32);
    let target = masked_choice(batch.y.view(), batch.mask.view());
    let chosen = masked_choice(outputs32.view(), batch.mask.view());
    let mut columns: Vec<Column> = Vec::new();
    let params: Vec<Value> = batch
        .params
        .iter()
        .map(|p| serde_json::to_value(p).unwrap_or(Value::Null))
        .collect();
    if let Some(Value::Object(first)) = params.first() {
        for key in first.keys() {
            let values: Vec<Option<f64>> = params.iter().map(|p| p.get(key).and_then(Value::as_f64)).collect();
            if values.iter().all(Option::is_some) {
                // A parameter named like a computed column (DelayedDiscrimination's `choice`) keeps
                // its value under `p_<name>`, as in batch files.
                let name = if COMPUTED.contains(&key.as_str()) {
                    format!("p_{key}")
                } else {
                    key.clone()
                };
                columns.push(Column::new(name.into(), values));
            }
        }
    }
    if let Some(ev) = evidence {
        let e: Vec<f64> = batch.params.iter().map(ev).collect();
        columns.push(Column::new("evidence".into(), e));
    }
    let as_i64 = |v: &[usize]| v.iter().map(|&c| c as i64).collect::<Vec<_>>();
    columns.push(Column::new("target".into(), as_i64(&target)));
    columns.push(Column::new("choice".into(), as_i64(&chosen)));
    let correct: Vec<bool> = target.iter().zip(&chosen).map(|(a, b)| a == b).collect();
    columns.push(Column::new("correct".into(), correct));
    let rt: Vec<Option<f64>> = batch
        .params
        .iter()
        .enumerate()
        .map(|(b, p)| reaction_time(sim.outputs.view(), b, batch.dt, onset(p), options.rt_threshold))
        .collect();
    columns.push(Column::new("rt_ms".into(), rt));
    DataFrame::new(batch.params.len(), columns)
}

/// A psychometric experiment: the table of choice proportions and mean reaction times per
/// evidence level, and logistic and probit fits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Psychometric {
    /// Per level (increasing).
    pub levels: Vec<PsychometricLevel>,
    /// Mean reaction time (ms) per level over trials that reached the threshold (NaN if none):
    /// the chronometric curve.
    pub mean_rt_ms: Vec<f64>,
    /// Logistic fit with lapses.
    pub logistic: PsychometricFit,
    /// Probit fit with lapses.
    pub probit: PsychometricFit,
    /// Per-trial evidence.
    pub evidence: Vec<f64>,
    /// Per-trial "chose the evidence channel".
    pub chose: Vec<bool>,
}

impl Psychometric {
    /// From per-trial evidence, choices and reaction times (NaN: none).
    pub fn from_trials(evidence: Vec<f64>, chose: Vec<bool>, rt_ms: &[f64]) -> Result<Self> {
        let levels = choice_table(&evidence, &chose)?;
        if rt_ms.len() != evidence.len() {
            return Err(Error::shape("rt_ms", &[evidence.len()], &[rt_ms.len()]));
        }
        let mean_rt_ms = levels
            .iter()
            .map(|l| {
                let rts: Vec<f64> = evidence
                    .iter()
                    .zip(rt_ms)
                    .filter(|(e, r)| **e == l.level && r.is_finite())
                    .map(|(_, &r)| r)
                    .collect();
                if rts.is_empty() {
                    f64::NAN
                } else {
                    rts.iter().sum::<f64>() / rts.len() as f64
                }
            })
            .collect();
        Ok(Self {
            logistic: fit_psychometric(&evidence, &chose, Link::Logistic, true)?,
            probit: fit_psychometric(&evidence, &chose, Link::Probit, true)?,
            levels,
            mean_rt_ms,
            evidence,
            chose,
        })
    }
}

/// Runs a controlled sweep: `repeats` trials at each evidence level (other parameters drawn from
/// `seed`), recurrent noise `rec_noise` (`None`: the model's), and fits the psychometric curve.
pub fn psychometric<T: SignedEvidence>(
    model: &RateRnn,
    task: &T,
    levels: &[f64],
    repeats: usize,
    rec_noise: Option<f64>,
    seed: u64,
) -> Result<Psychometric> {
    if levels.is_empty() || repeats == 0 {
        return Err(Error::Empty {
            what: "psychometric sweep (levels × repeats)".into(),
        });
    }
    let mut rng = TrialRng::seeded(seed);
    let mut params = Vec::with_capacity(levels.len() * repeats);
    for &level in levels {
        for r in 0..repeats {
            params.push(task.trial_with_evidence(level, &mut rng, r)?);
        }
    }
    let batch = task.batch_from_params(params, &mut rng)?;
    let options = TrialTableOptions {
        rec_noise,
        seed: rng.next_seed(),
        ..Default::default()
    };
    let sim = run(model, &batch, options.rec_noise, options.seed)?;
    let outputs32 = sim.outputs.mapv(|v| v as f32);
    let chosen = masked_choice(outputs32.view(), batch.mask.view());
    let evidence: Vec<f64> = batch.params.iter().map(|p| task.evidence(p)).collect();
    let chose: Vec<bool> = chosen.iter().map(|&c| c == task.evidence_channel()).collect();
    let rt: Vec<f64> = batch
        .params
        .iter()
        .enumerate()
        .map(|(b, p)| {
            reaction_time(
                sim.outputs.view(),
                b,
                batch.dt,
                task.evidence_onset(p),
                options.rt_threshold,
            )
            .unwrap_or(f64::NAN)
        })
        .collect();
    Psychometric::from_trials(evidence, chose, &rt)
}

/// The network with `units` silenced: their rates reach no unit and no output.
pub fn silence_units(model: &RateRnn, units: &[usize]) -> Result<RateRnn> {
    let n = model.n_rec();
    let mut lesioned = model.clone();
    for &u in units {
        if u >= n {
            return Err(Error::range("unit", u, format!("< n_rec = {n}")));
        }
        lesioned.constraints.rec_connectivity.column_mut(u).fill(0.0);
        lesioned.constraints.output_connectivity.column_mut(u).fill(0.0);
    }
    Ok(lesioned)
}

/// Accuracy of `model` on `batch`, recurrent noise off.
pub fn accuracy<T: Task>(model: &RateRnn, task: &T, batch: &TrialBatch<T::Params>) -> Result<f64> {
    let sim = run(model, batch, Some(0.0), 0)?;
    let out = sim.outputs.mapv(|v| v as f32);
    Ok(task.accuracy(batch.y.view(), out.view(), batch.mask.view()))
}

/// Silences each group of units in turn (noise off) and tabulates `lesion` (the units, e.g.
/// `"3"` or `"0,4,7"`), `accuracy` and `delta` (lesioned − intact accuracy) on `batch`.
pub fn lesion_table<T: Task>(
    model: &RateRnn,
    task: &T,
    batch: &TrialBatch<T::Params>,
    groups: &[Vec<usize>],
) -> Result<DataFrame> {
    let intact = accuracy(model, task, batch)?;
    let mut names = Vec::new();
    let mut acc = Vec::new();
    for g in groups {
        let a = accuracy(&silence_units(model, g)?, task, batch)?;
        names.push(g.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(","));
        acc.push(a);
    }
    let delta: Vec<f64> = acc.iter().map(|a| a - intact).collect();
    DataFrame::new(
        groups.len(),
        vec![
            Column::new("lesion".into(), names),
            Column::new("accuracy".into(), acc),
            Column::new("delta".into(), delta),
        ],
    )
    .map_err(|e| table_error(task.name(), e))
}

/// Task variance of each unit (Yang et al. 2019): the variance across trials of its rate at each
/// time step, averaged over time. `rates` is `[batch, time, n_rec]`; returns `[n_rec]`.
pub fn task_variance(rates: &Array3<f64>) -> Result<Array1<f64>> {
    let (b, t, _) = rates.dim();
    if b < 2 || t == 0 {
        return Err(Error::range("trials", b, ">= 2 (and >= 1 time step) for a variance"));
    }
    let var = rates.var_axis(Axis(0), 0.0); // [time, n]
    Ok(var.mean_axis(Axis(0)).expect("t > 0"))
}
