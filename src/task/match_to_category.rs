//! Match-to-category on a ring of inputs.
//!
//! Freedman & Assad (2006), *Nature* 443:85–88.

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::{Step, Task, TaskSpec, check_trial_values};
use crate::error::{Error, Result};
use crate::rng::TrialRng;

/// Configuration; JSON keys are PsychRNN's constructor arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchToCategoryConfig {
    /// Time step (ms).
    pub dt: f64,
    /// Time constant (ms).
    pub tau: f64,
    /// Trial length (ms).
    #[serde(rename = "T")]
    pub t_total: f64,
    /// Trials per batch.
    #[serde(rename = "N_batch")]
    pub n_batch: usize,
    /// Input channels on the ring (PsychRNN default 16).
    #[serde(rename = "N_in")]
    pub n_in: usize,
    /// Categories (equal slices of the circle).
    #[serde(rename = "N_out")]
    pub n_out: usize,
}

impl Default for MatchToCategoryConfig {
    fn default() -> Self {
        Self {
            dt: 10.0,
            tau: 100.0,
            t_total: 2000.0,
            n_batch: 128,
            n_in: 16,
            n_out: 2,
        }
    }
}

/// Parameters of one trial (PsychRNN's keys; times in ms, angle in radians).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchToCategoryParams {
    /// Stimulus angle in `[0, 2π)`.
    pub angle: f64,
    /// Correct output: `floor(angle / (2π / N_out))`.
    pub category: usize,
    /// Stimulus onset (ms), 200 when drawn.
    pub onset_time: f64,
    /// Stimulus duration (ms), 1000 when drawn.
    pub input_dur: f64,
    /// Response period (ms), 800 when drawn.
    pub output_dur: f64,
    /// Input-noise scale (0 for noise-free trials).
    #[serde(default = "default_stim_noise")]
    pub stim_noise: f64,
}

fn default_stim_noise() -> f64 {
    0.1
}

/// The MatchToCategory task: a Gaussian bump on a ring of `N_in` channels (angles
/// `linspace(0, 2π, N_in)`, so the first and last coincide, as in PsychRNN), then a response
/// period with target 1 on the stimulus's category.
#[derive(Clone, Debug)]
pub struct MatchToCategory {
    spec: TaskSpec,
    channel_angles: Vec<f64>,
}

impl MatchToCategory {
    /// Checks the configuration (`N_in ≥ 2`, `N_out ≥ 1`).
    pub fn new(config: MatchToCategoryConfig) -> Result<Self> {
        if config.n_in < 2 {
            return Err(Error::range("N_in", config.n_in, ">= 2"));
        }
        let spec = TaskSpec::new(
            config.n_in,
            config.n_out,
            config.dt,
            config.tau,
            config.t_total,
            config.n_batch,
        )?;
        Ok(Self {
            channel_angles: linspace(0.0, 2.0 * PI, config.n_in),
            spec,
        })
    }

    /// Angular Gaussian `exp(−d²/2)/sqrt(2π)` of each channel's distance `d` to `angle`, wrapped
    /// once into `[−π, π]`.
    pub fn gaussian_input(&self, angle: f64) -> Vec<f64> {
        self.channel_angles
            .iter()
            .map(|&a| {
                let mut d = a - angle;
                if d > PI {
                    d += -2.0 * PI;
                } else if d < -PI {
                    d += 2.0 * PI;
                }
                (-(d * d) / 2.0).exp() / (2.0 * PI).sqrt()
            })
            .collect()
    }
}

/// NumPy's `linspace(start, stop, n)` (endpoint included, last value exactly `stop`).
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    let step = (stop - start) / (n - 1) as f64;
    let mut v: Vec<f64> = (0..n).map(|i| i as f64 * step + start).collect();
    v[n - 1] = stop;
    v
}

impl Task for MatchToCategory {
    type Params = MatchToCategoryParams;

    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    fn name(&self) -> &str {
        "match-to-category"
    }

    fn generate_trial_params(&self, rng: &mut TrialRng, _batch: usize, _trial: usize) -> Self::Params {
        let angle = 2.0 * PI * rng.uniform();
        MatchToCategoryParams {
            angle,
            category: (angle / (2.0 * PI / self.spec.n_out as f64)) as usize,
            onset_time: 200.0,
            input_dur: 1000.0,
            output_dur: 800.0,
            stim_noise: 0.1,
        }
    }

    fn trial_function(&self, t: f64, p: &Self::Params, rng: &mut TrialRng, step: Step<'_>) {
        let sigma = (1.0 / (2.0 * self.spec.dt)) * p.stim_noise;
        for x in step.x.iter_mut() {
            *x = sigma * rng.normal();
        }
        let stim_end = p.onset_time + p.input_dur;
        if p.onset_time <= t && t < stim_end {
            for (x, g) in step.x.iter_mut().zip(self.gaussian_input(p.angle)) {
                *x += g;
            }
        }
        if stim_end <= t && t < stim_end + p.output_dur {
            step.y[p.category] += 1.0;
            step.mask.fill(1.0);
        }
    }

    fn validate_params(&self, p: &Self::Params) -> Result<()> {
        if p.category >= self.spec.n_out {
            return Err(Error::range(
                "category",
                p.category,
                format!("< N_out = {}", self.spec.n_out),
            ));
        }
        check_trial_values(
            &[
                ("angle", p.angle),
                ("onset_time", p.onset_time),
                ("input_dur", p.input_dur),
                ("output_dur", p.output_dur),
            ],
            p.stim_noise,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_duplicates_zero_and_peaks_at_the_stimulus() {
        let task = MatchToCategory::new(Default::default()).unwrap();
        let g = task.gaussian_input(0.0);
        // Channels 0 (angle 0) and 15 (angle 2π, wrapped to 0) both sit on the stimulus.
        let peak = 1.0 / (2.0 * PI).sqrt();
        assert!((g[0] - peak).abs() < 1e-15 && (g[15] - peak).abs() < 1e-15);
        assert!((peak - 0.398_942_280_401_432_7).abs() < 1e-15);
        assert!(g[8] < g[1]);
    }

    #[test]
    fn category_of_drawn_trials_is_the_slice_of_the_angle() {
        let task = MatchToCategory::new(MatchToCategoryConfig {
            n_out: 4,
            n_batch: 50,
            ..Default::default()
        })
        .unwrap();
        let b = task.batch(&mut TrialRng::seeded(5));
        for p in &b.params {
            assert_eq!(p.category, (p.angle / (PI / 2.0)).floor() as usize);
        }
    }

    #[test]
    fn out_of_range_category_is_an_error() {
        let task = MatchToCategory::new(Default::default()).unwrap();
        let p = MatchToCategoryParams {
            angle: 2.0 * PI,
            category: 2,
            onset_time: 200.0,
            input_dur: 1000.0,
            output_dur: 800.0,
            stim_noise: 0.0,
        };
        let err = task.batch_from_params(vec![p], &mut TrialRng::seeded(0)).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { ref field, .. } if field == "category"));
    }
}
