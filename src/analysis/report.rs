//! Every analysis of a trained rate RNN on a built-in task in one call, with its tables, results
//! and figures, and a writer for a run folder (what `psychrnn analyze` does).

use std::path::{Path, PathBuf};
use std::time::Instant;

use ndarray::Array2;
use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};

use super::{
    FixedPointOptions, FixedPoints, Pca, Psychometric, RateDynamics, SignedEvidence, TrialTableOptions,
    condition_average, evidence_table, lesion_table, psychometric, run, trial_table,
};
use crate::error::{Error, Result};
use crate::io::refuse_overwrite;
use crate::model::RateRnn;
use crate::plot::{self, Figure};
use crate::rng::TrialRng;
use crate::task::{BuiltinTask, Task, TrialBatch, masked_choice};
use crate::train::{write_csv, write_parquet};

/// Settings of [`report`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportOptions {
    /// Seed of every trial and of the noise.
    pub seed: u64,
    /// Trials in the trial table, PCA and lesion batch.
    pub n_trials: usize,
    /// Trials per evidence level of the psychometric sweep.
    pub repeats: usize,
    /// Evidence levels of the sweep (`None`: the task's default: PD coherences ±{0, 0.02, 0.05,
    /// 0.1, 0.2, 0.4}; DD `f1 − f2` ±{0, 2, 4, 8, 16} Hz).
    pub levels: Option<Vec<f64>>,
    /// Recurrent noise while testing (`None`: the model's).
    pub rec_noise: Option<f64>,
    /// Principal components kept.
    pub n_components: usize,
    /// Initial states of the fixed-point search (sampled from the trajectories).
    pub n_inits: usize,
    /// The fixed-point search.
    pub fixed_points: FixedPointOptions,
    /// Reaction-time threshold and the like.
    pub trial_table: TrialTableOptions,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            seed: 0,
            n_trials: 256,
            repeats: 100,
            levels: None,
            rec_noise: None,
            n_components: 3,
            n_inits: 128,
            fixed_points: FixedPointOptions {
                init_noise: 0.01,
                ..Default::default()
            },
            trial_table: TrialTableOptions::default(),
        }
    }
}

/// The results of [`report`].
pub struct Report {
    /// One row per trial.
    pub trials: DataFrame,
    /// For tasks with signed evidence.
    pub psychometric: Option<Psychometric>,
    /// PCA of the states of the trial batch.
    pub pca: Pca,
    /// Fixed points under zero input.
    pub fixed_points: FixedPoints,
    /// Accuracy after silencing each unit.
    pub lesions: DataFrame,
    /// Figures by file stem.
    pub figures: Vec<(String, Figure)>,
    /// Seconds each analysis took.
    pub timings: Vec<(String, f64)>,
}

/// Runs every analysis of `model` on `task`.
pub fn report(model: &RateRnn, task: &BuiltinTask, options: &ReportOptions) -> Result<Report> {
    match task {
        BuiltinTask::PerceptualDiscrimination(t) => {
            let levels = [0.0, 0.02, 0.05, 0.1, 0.2, 0.4];
            with_evidence(model, t, options, &levels)
        }
        BuiltinTask::DelayedDiscrimination(t) => with_evidence(model, t, options, &[0.0, 2.0, 4.0, 8.0, 16.0]),
        BuiltinTask::MatchToCategory(t) => {
            let mut timer = Timer::default();
            let batch = batch(t, options)?;
            let trials = timer.time("trial table", || trial_table(model, t, &batch, &options.trial_table))?;
            common(model, t, batch, trials, None, options, timer)
        }
    }
}

#[derive(Default)]
struct Timer(Vec<(String, f64)>);

impl Timer {
    fn time<T>(&mut self, what: &str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        self.0.push((what.into(), start.elapsed().as_secs_f64()));
        out
    }
}

fn batch<T: Task>(task: &T, options: &ReportOptions) -> Result<TrialBatch<T::Params>> {
    if options.n_trials < 2 {
        return Err(Error::range("n_trials", options.n_trials, ">= 2"));
    }
    let mut rng = TrialRng::seeded(options.seed);
    let params = (0..options.n_trials)
        .map(|i| task.generate_trial_params(&mut rng, 1, i))
        .collect();
    task.batch_from_params(params, &mut rng)
}

fn with_evidence<T: SignedEvidence>(
    model: &RateRnn,
    task: &T,
    options: &ReportOptions,
    default_levels: &[f64],
) -> Result<Report> {
    let mut timer = Timer::default();
    let batch = batch(task, options)?;
    let trials = timer.time("trial table", || {
        evidence_table(model, task, &batch, &options.trial_table)
    })?;
    let levels = options.levels.clone().unwrap_or_else(|| {
        let mut l: Vec<f64> = default_levels.iter().flat_map(|&v| [-v, v]).collect();
        l.sort_by(f64::total_cmp);
        l.dedup();
        l
    });
    let curve = timer.time("psychometric sweep and fits", || {
        psychometric(
            model,
            task,
            &levels,
            options.repeats,
            options.rec_noise,
            options.seed ^ 0x5eed,
        )
    })?;
    common(model, task, batch, trials, Some(curve), options, timer)
}

fn common<T: Task>(
    model: &RateRnn,
    task: &T,
    batch: TrialBatch<T::Params>,
    trials: DataFrame,
    curve: Option<Psychometric>,
    options: &ReportOptions,
    mut timer: Timer,
) -> Result<Report> {
    let sim = run(model, &batch, Some(0.0), options.seed)?;
    let (pca, proj) = timer.time("PCA", || -> Result<_> {
        let pca = Pca::fit_trials(&sim.states, options.n_components.min(model.n_rec()))?;
        let proj = pca.transform_trials(&sim.states)?;
        Ok((pca, proj))
    })?;
    let targets: Vec<String> = masked_choice(batch.y.view(), batch.mask.view())
        .into_iter()
        .map(|c| format!("target {c}"))
        .collect();
    let averages = condition_average(&proj, &targets)?;
    let found = timer.time("fixed points", || -> Result<_> {
        let (b, t, n) = sim.states.dim();
        let mut rng = TrialRng::seeded(options.seed ^ 0xf1);
        let k = options.n_inits.max(1);
        let picks: Vec<(usize, usize)> = (0..k).map(|_| (rng.choice(b), rng.choice(t))).collect();
        let starts = Array2::from_shape_fn((k, n), |(i, j)| sim.states[[picks[i].0, picks[i].1, j]]);
        let dynamics = RateDynamics::new(model, &vec![0.0; model.n_in()])?;
        dynamics.find_fixed_points(
            &starts,
            &FixedPointOptions {
                seed: options.seed,
                ..options.fixed_points.clone()
            },
        )
    })?;
    let units: Vec<Vec<usize>> = (0..model.n_rec()).map(|u| vec![u]).collect();
    let lesions = timer.time("single-unit lesions", || lesion_table(model, task, &batch, &units))?;

    let mut figures = vec![
        (
            "trials".to_string(),
            plot::trials(&batch, &[0, 1, 2].map(|i| i.min(batch.n_trials() - 1)))?,
        ),
        ("outputs".into(), plot::outputs(&batch, &sim.outputs, 0)?),
        (
            "states".into(),
            plot::states(&sim, 0, &(0..model.n_rec().min(5)).collect::<Vec<_>>())?,
        ),
        ("weights".into(), plot::weights(model)?),
        ("connectivity".into(), plot::connectivity(model)?),
        ("explained_variance".into(), plot::explained_variance(&pca)?),
    ];
    let fp_proj = pca.transform(found.states().view())?;
    if pca.n_components() >= 2 {
        let fixed = (!found.points.is_empty()).then_some((&fp_proj, &found));
        figures.push(("state_space".into(), plot::trajectories(&averages, fixed)?));
    }
    let fixed: Vec<_> = found.fixed().cloned().collect();
    if !fixed.is_empty() {
        figures.push(("eigenvalues".into(), plot::spectra(&fixed)?));
    }
    if let Some(c) = &curve {
        figures.push(("psychometric".into(), plot::psychometric(c)?));
    }
    Ok(Report {
        trials,
        psychometric: curve,
        pca,
        fixed_points: found,
        lesions,
        figures,
        timings: timer.0,
    })
}

fn write_json(value: &impl Serialize, path: &Path, overwrite: bool) -> Result<()> {
    refuse_overwrite(path, overwrite)?;
    let text =
        serde_json::to_string_pretty(value).map_err(|e| Error::invalid(path.display().to_string(), e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

impl Report {
    /// Writes `trials.{parquet,csv}`, `lesions.csv`, `psychometric.json`, `pca.json`,
    /// `fixed_points.json`, `timings.json` and one SVG per figure into `dir` (created if
    /// missing); never replaces a file unless `overwrite`. Returns the paths written.
    pub fn write(&self, dir: impl AsRef<Path>, overwrite: bool) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        let mut path = |name: &str| {
            let p = dir.join(name);
            written.push(p.clone());
            p
        };
        write_parquet(&mut self.trials.clone(), &path("trials.parquet"), overwrite)?;
        write_csv(&mut self.trials.clone(), &path("trials.csv"), overwrite)?;
        write_csv(&mut self.lesions.clone(), &path("lesions.csv"), overwrite)?;
        if let Some(c) = &self.psychometric {
            write_json(c, &path("psychometric.json"), overwrite)?;
        }
        let pca = serde_json::json!({
            "mean": self.pca.mean,
            "components": self.pca.components,
            "variances": self.pca.variances,
            "explained_variance_ratio": self.pca.explained_variance_ratio(),
            "participation_ratio": self.pca.participation_ratio(),
        });
        write_json(&pca, &path("pca.json"), overwrite)?;
        write_json(&self.fixed_points, &path("fixed_points.json"), overwrite)?;
        let timings: serde_json::Map<String, serde_json::Value> =
            self.timings.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
        write_json(&timings, &path("timings.json"), overwrite)?;
        for (name, fig) in &self.figures {
            fig.save_svg(path(&format!("{name}.svg")), overwrite)?;
        }
        Ok(written)
    }

    /// Writes each figure as `<name>.png` in `dir` (see [`Figure::save_png`]); never overwrites
    /// unless `overwrite`.
    pub fn write_png(&self, dir: impl AsRef<Path>, overwrite: bool) -> Result<Vec<PathBuf>> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut written = Vec::new();
        for (name, fig) in &self.figures {
            let p = dir.join(format!("{name}.png"));
            fig.save_png(&p, overwrite)?;
            written.push(p);
        }
        Ok(written)
    }
}
