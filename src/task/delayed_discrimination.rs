//! Vibrotactile delayed frequency comparison.
//!
//! Romo, Brody, Hernández & Lemus (1999), *Nature* 399:470–473.

use serde::{Deserialize, Serialize};

use super::{Step, Task, TaskSpec, check_trial_values, pd_noise_sigma};
use crate::error::{Error, Result};
use crate::rng::TrialRng;

/// The (higher, lower) frequency pairs (Hz) a trial is drawn from.
pub const DD_FREQUENCY_PAIRS: [(f64, f64); 5] = [(18.0, 10.0), (22.0, 14.0), (26.0, 18.0), (30.0, 22.0), (34.0, 26.0)];

/// Configuration; JSON keys are PsychRNN's constructor arguments. A `None` duration is drawn
/// per trial (onset and decision `U[0,1)·T/8`, the other three `U[0,1)·T/4`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DelayedDiscriminationConfig {
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
    /// Fixed onset of the first stimulus (ms).
    pub onset_time: Option<f64>,
    /// Fixed duration of stimulus 1 (ms).
    pub stim_duration_1: Option<f64>,
    /// Fixed delay (ms).
    pub delay_duration: Option<f64>,
    /// Fixed duration of stimulus 2 (ms).
    pub stim_duration_2: Option<f64>,
    /// Fixed decision period (ms).
    pub decision_duration: Option<f64>,
}

impl Default for DelayedDiscriminationConfig {
    fn default() -> Self {
        Self {
            dt: 10.0,
            tau: 100.0,
            t_total: 2000.0,
            n_batch: 128,
            onset_time: None,
            stim_duration_1: None,
            delay_duration: None,
            stim_duration_2: None,
            decision_duration: None,
        }
    }
}

/// Parameters of one trial (PsychRNN's keys; all times absolute, ms).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DelayedDiscriminationParams {
    /// Start of stimulus 1.
    pub stimulus_1: f64,
    /// Start of the delay (end of stimulus 1).
    pub delay: f64,
    /// Start of stimulus 2.
    pub stimulus_2: f64,
    /// Start of the decision period.
    pub decision: f64,
    /// End of the decision period.
    pub end: f64,
    /// First frequency (Hz).
    pub f1: f64,
    /// Second frequency (Hz).
    pub f2: f64,
    /// Correct output: 0 if `f1 > f2`, 1 otherwise.
    pub choice: usize,
    /// Input-noise scale (0 for noise-free trials).
    #[serde(default = "default_stim_noise")]
    pub stim_noise: f64,
}

fn default_stim_noise() -> f64 {
    0.1
}

/// The DelayedDiscrimination task: two stimuli encoded as `(scale_p(f), scale_n(f))`, then a
/// decision period with target 1.0 on `choice` and 0.2 on the other channel, masked on only there.
#[derive(Clone, Debug)]
pub struct DelayedDiscrimination {
    spec: TaskSpec,
    config: DelayedDiscriminationConfig,
}

/// `0.4 + 0.8·(f − 10)/24`: maps 10 Hz to 0.4 and 34 Hz to 1.2.
pub fn scale_p(f: f64) -> f64 {
    0.4 + 0.8 * (f - 10.0) / 24.0
}

/// `0.4 + 0.8·(34 − f)/24`: the reversed encoding on channel 1.
pub fn scale_n(f: f64) -> f64 {
    0.4 + 0.8 * (34.0 - f) / 24.0
}

impl DelayedDiscrimination {
    /// High and low target values.
    pub const HI: f64 = 1.0;
    /// See [`Self::HI`].
    pub const LO: f64 = 0.2;

    /// Checks the configuration.
    pub fn new(config: DelayedDiscriminationConfig) -> Result<Self> {
        let spec = TaskSpec::new(2, 2, config.dt, config.tau, config.t_total, config.n_batch)?;
        for (field, v) in [
            ("onset_time", config.onset_time),
            ("stim_duration_1", config.stim_duration_1),
            ("delay_duration", config.delay_duration),
            ("stim_duration_2", config.stim_duration_2),
            ("decision_duration", config.decision_duration),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v >= 0.0)
            {
                return Err(Error::range(field, v, "finite and >= 0 (ms)"));
            }
        }
        Ok(Self { spec, config })
    }

    /// The configuration.
    pub fn config(&self) -> &DelayedDiscriminationConfig {
        &self.config
    }
}

impl Task for DelayedDiscrimination {
    type Params = DelayedDiscriminationParams;

    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    fn name(&self) -> &str {
        "delayed-discrimination"
    }

    fn generate_trial_params(&self, rng: &mut TrialRng, _batch: usize, _trial: usize) -> Self::Params {
        let t = self.spec.t_total;
        let c = &self.config;
        // np.random.uniform(0, 1) is exactly random_sample().
        let mut draw = |fixed: Option<f64>, div: f64| fixed.unwrap_or_else(|| rng.uniform() * t / div);
        let onset = draw(c.onset_time, 8.0);
        let stim1 = draw(c.stim_duration_1, 4.0);
        let delay = draw(c.delay_duration, 4.0);
        let stim2 = draw(c.stim_duration_2, 4.0);
        let decision = draw(c.decision_duration, 8.0);
        let (hi, lo) = DD_FREQUENCY_PAIRS[rng.choice(DD_FREQUENCY_PAIRS.len())];
        let (f1, f2, choice) = if rng.choice(2) == 0 { (hi, lo, 0) } else { (lo, hi, 1) };
        DelayedDiscriminationParams {
            stimulus_1: onset,
            delay: onset + stim1,
            stimulus_2: onset + stim1 + delay,
            decision: onset + stim1 + delay + stim2,
            end: onset + stim1 + delay + stim2 + decision,
            f1,
            f2,
            choice,
            stim_noise: 0.1,
        }
    }

    fn trial_function(&self, t: f64, p: &Self::Params, rng: &mut TrialRng, step: Step<'_>) {
        let sigma = pd_noise_sigma(self.spec.dt, p.stim_noise);
        for x in step.x.iter_mut() {
            *x = sigma * rng.normal();
        }
        if p.stimulus_1 <= t && t < p.delay {
            step.x[0] += scale_p(p.f1);
            step.x[1] += scale_n(p.f1);
        }
        if p.stimulus_2 <= t && t < p.decision {
            step.x[0] += scale_p(p.f2);
            step.x[1] += scale_n(p.f2);
        }
        if p.decision <= t && t < p.end {
            step.y[p.choice] = Self::HI;
            step.y[1 - p.choice] = Self::LO;
            step.mask.fill(1.0);
        }
    }

    fn validate_params(&self, p: &Self::Params) -> Result<()> {
        if p.choice > 1 {
            return Err(Error::range("choice", p.choice, "0 or 1"));
        }
        check_trial_values(
            &[
                ("stimulus_1", p.stimulus_1),
                ("delay", p.delay),
                ("stimulus_2", p.stimulus_2),
                ("decision", p.decision),
                ("end", p.end),
                ("f1", p.f1),
                ("f2", p.f2),
            ],
            p.stim_noise,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_scaling_endpoints() {
        assert!((scale_p(10.0) - 0.4).abs() < 1e-15 && (scale_p(34.0) - 1.2).abs() < 1e-15);
        assert!((scale_n(34.0) - 0.4).abs() < 1e-15 && (scale_n(10.0) - 1.2).abs() < 1e-15);
    }

    #[test]
    fn windows_are_half_open() {
        let task = DelayedDiscrimination::new(Default::default()).unwrap();
        let p = DelayedDiscriminationParams {
            stimulus_1: 100.0,
            delay: 300.0,
            stimulus_2: 800.0,
            decision: 1000.0,
            end: 1200.0,
            f1: 18.0,
            f2: 10.0,
            choice: 0,
            stim_noise: 0.0,
        };
        let b = task.batch_from_params(vec![p], &mut TrialRng::seeded(0)).unwrap();
        assert_eq!(b.x[[0, 9, 0]], 0.0);
        assert_eq!(b.x[[0, 10, 0]], scale_p(18.0) as f32);
        assert_eq!(b.x[[0, 29, 1]], scale_n(18.0) as f32);
        assert_eq!(b.x[[0, 30, 0]], 0.0);
        assert_eq!(b.x[[0, 80, 0]], scale_p(10.0) as f32);
        assert_eq!(b.mask[[0, 99, 0]], 0.0);
        assert_eq!(
            (b.y[[0, 100, 0]], b.y[[0, 100, 1]], b.mask[[0, 100, 1]]),
            (1.0, 0.2, 1.0)
        );
        assert_eq!(b.mask[[0, 120, 0]], 0.0);
    }

    #[test]
    fn drawn_trials_respect_ordering_and_choice() {
        let task = DelayedDiscrimination::new(DelayedDiscriminationConfig {
            n_batch: 64,
            ..Default::default()
        })
        .unwrap();
        let b = task.batch(&mut TrialRng::seeded(11));
        for p in &b.params {
            assert!(
                p.stimulus_1 <= p.delay && p.delay <= p.stimulus_2 && p.stimulus_2 <= p.decision && p.decision <= p.end
            );
            assert!(p.end <= 2000.0);
            assert_eq!(p.choice == 0, p.f1 > p.f2);
        }
    }
}
