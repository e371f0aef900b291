//! Two-alternative forced choice on noisy evidence ("random dot motion").
//!
//! Britten, Shadlen, Newsome & Movshon (1992), *J. Neurosci.* 12(12):4745–4765.

use serde::{Deserialize, Serialize};

use super::{Step, Task, TaskSpec, check_trial_values, pd_noise_sigma};
use crate::error::{Error, Result};
use crate::rng::TrialRng;

/// Coherences drawn when none is fixed.
pub const PD_COHERENCES: [f64; 4] = [0.1, 0.3, 0.5, 0.7];

/// Configuration; JSON keys are PsychRNN's constructor arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PerceptualDiscriminationConfig {
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
    /// Fixed coherence; `None` draws from {0.1, 0.3, 0.5, 0.7}.
    pub coherence: Option<f64>,
    /// Fixed direction (0 or 1); `None` draws it. PsychRNN ignores this argument; psychrnn
    /// honours it (the random draw still happens, so the stream stays PsychRNN's).
    pub direction: Option<usize>,
    /// Delay (ms) between stimulus offset and the start of the target, during which the mask is
    /// on and the target is 0. PsychRNN hard-codes 20.
    pub target_delay: f64,
}

impl Default for PerceptualDiscriminationConfig {
    fn default() -> Self {
        Self {
            dt: 10.0,
            tau: 100.0,
            t_total: 2000.0,
            n_batch: 128,
            coherence: None,
            direction: None,
            target_delay: 20.0,
        }
    }
}

/// Parameters of one trial (PsychRNN's keys).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerceptualDiscriminationParams {
    /// Extra input on the correct channel.
    pub coherence: f64,
    /// Correct channel (0 or 1).
    pub direction: usize,
    /// Stimulus onset (ms).
    pub onset_time: f64,
    /// Stimulus duration (ms).
    pub stim_duration: f64,
    /// Input-noise scale (0 for noise-free trials).
    #[serde(default = "default_stim_noise")]
    pub stim_noise: f64,
}

fn default_stim_noise() -> f64 {
    0.1
}

/// The PerceptualDiscrimination task: two noisy inputs from `onset` to `onset + duration`
/// (strict), channel `direction` carrying `1 + coherence` and the other `1`; after
/// `onset + duration + target_delay` the target is 1.0 on `direction` and 0.2 on the other.
/// The mask is on from stimulus offset.
#[derive(Clone, Debug)]
pub struct PerceptualDiscrimination {
    spec: TaskSpec,
    config: PerceptualDiscriminationConfig,
}

impl PerceptualDiscrimination {
    /// High and low target values.
    pub const HI: f64 = 1.0;
    /// See [`Self::HI`].
    pub const LO: f64 = 0.2;

    /// Checks the configuration.
    pub fn new(config: PerceptualDiscriminationConfig) -> Result<Self> {
        let spec = TaskSpec::new(2, 2, config.dt, config.tau, config.t_total, config.n_batch)?;
        if let Some(d) = config.direction
            && d > 1
        {
            return Err(Error::range("direction", d, "0 or 1"));
        }
        if let Some(c) = config.coherence
            && !c.is_finite()
        {
            return Err(Error::range("coherence", c, "finite"));
        }
        if !(config.target_delay.is_finite() && config.target_delay >= 0.0) {
            return Err(Error::range(
                "target_delay",
                config.target_delay,
                "finite and >= 0 (ms)",
            ));
        }
        Ok(Self { spec, config })
    }

    /// The configuration.
    pub fn config(&self) -> &PerceptualDiscriminationConfig {
        &self.config
    }
}

impl Task for PerceptualDiscrimination {
    type Params = PerceptualDiscriminationParams;

    fn spec(&self) -> &TaskSpec {
        &self.spec
    }

    fn name(&self) -> &str {
        "perceptual-discrimination"
    }

    fn generate_trial_params(&self, rng: &mut TrialRng, _batch: usize, _trial: usize) -> Self::Params {
        let t = self.spec.t_total;
        let coherence = match self.config.coherence {
            Some(c) => c,
            None => PD_COHERENCES[rng.choice(PD_COHERENCES.len())],
        };
        let drawn = rng.choice(2);
        let direction = self.config.direction.unwrap_or(drawn);
        let onset_time = rng.uniform() * t / 2.0;
        let stim_duration = rng.uniform() * t / 4.0 + t / 8.0;
        PerceptualDiscriminationParams {
            coherence,
            direction,
            onset_time,
            stim_duration,
            stim_noise: 0.1,
        }
    }

    fn trial_function(&self, t: f64, p: &Self::Params, rng: &mut TrialRng, step: Step<'_>) {
        let sigma = pd_noise_sigma(self.spec.dt, p.stim_noise);
        for x in step.x.iter_mut() {
            *x = sigma * rng.normal();
        }
        let end = p.onset_time + p.stim_duration;
        if p.onset_time < t && t < end {
            step.x[p.direction] += 1.0 + p.coherence;
            step.x[1 - p.direction] += 1.0;
        }
        if t > end + self.config.target_delay {
            step.y[p.direction] = Self::HI;
            step.y[1 - p.direction] = Self::LO;
        }
        if t >= end {
            step.mask.fill(1.0);
        }
    }

    fn validate_params(&self, p: &Self::Params) -> Result<()> {
        if p.direction > 1 {
            return Err(Error::range("direction", p.direction, "0 or 1"));
        }
        check_trial_values(
            &[
                ("coherence", p.coherence),
                ("onset_time", p.onset_time),
                ("stim_duration", p.stim_duration),
            ],
            p.stim_noise,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(onset: f64, dur: f64) -> PerceptualDiscriminationParams {
        PerceptualDiscriminationParams {
            coherence: 0.5,
            direction: 1,
            onset_time: onset,
            stim_duration: dur,
            stim_noise: 0.0,
        }
    }

    #[test]
    fn noise_free_trial_follows_strict_windows() {
        let task = PerceptualDiscrimination::new(Default::default()).unwrap();
        let b = task
            .batch_from_params(vec![trial(500.0, 300.0)], &mut TrialRng::seeded(0))
            .unwrap();
        // t = 500 (k 50): not yet (strict); t = 510: stimulus; t = 800 (k 80): over (strict).
        assert_eq!(b.x[[0, 50, 1]], 0.0);
        assert_eq!(b.x[[0, 51, 1]], 1.5);
        assert_eq!(b.x[[0, 51, 0]], 1.0);
        assert_eq!(b.x[[0, 79, 0]], 1.0);
        assert_eq!(b.x[[0, 80, 0]], 0.0);
        // mask from t >= 800, target from t > 820.
        assert_eq!(b.mask[[0, 79, 0]], 0.0);
        assert_eq!(b.mask[[0, 80, 0]], 1.0);
        assert_eq!(b.y[[0, 82, 1]], 0.0);
        assert_eq!(b.y[[0, 83, 1]], 1.0);
        assert_eq!(b.y[[0, 83, 0]], 0.2);
    }

    #[test]
    fn noise_sigma_matches_psychrnn_at_dt_10() {
        // sqrt(0.002) from spec §2.2.
        assert!((pd_noise_sigma(10.0, 0.1) - 0.002f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn fixed_direction_is_honoured() {
        let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            direction: Some(0),
            n_batch: 32,
            ..Default::default()
        })
        .unwrap();
        let b = task.batch(&mut TrialRng::seeded(3));
        assert!(b.params.iter().all(|p| p.direction == 0));
    }

    #[test]
    fn invalid_config_and_params_are_rejected() {
        let bad = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            direction: Some(2),
            ..Default::default()
        });
        assert!(matches!(bad, Err(Error::OutOfRange { ref field, .. }) if field == "direction"));
        let task = PerceptualDiscrimination::new(Default::default()).unwrap();
        let mut p = trial(0.0, 1.0);
        p.direction = 3;
        let err = task.batch_from_params(vec![p], &mut TrialRng::seeded(0)).unwrap_err();
        assert!(matches!(err, Error::OutOfRange { ref field, .. } if field == "direction"));
        let err = task.batch_from_params(vec![], &mut TrialRng::seeded(0)).unwrap_err();
        assert!(matches!(err, Error::Empty { .. }));
    }
}
