//! Initialisers, following PsychRNN's `initializations.py` draw for draw.

use std::path::PathBuf;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::{Constraints, RateRnn, RateRnnConfig, RateRnnParams, dale_vectors};
use crate::error::{Error, Result};
use crate::rng::TrialRng;

/// How the recurrent weights are initialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Initializer {
    /// PsychRNN's default: `W_rec ~ N(0,1)`, Dale-balanced, then scaled so the spectral radius of
    /// the raw (signed, balanced, unmasked) matrix is `spec_rad`.
    GaussianSpectralRadius {
        /// Target spectral radius (PsychRNN default 1.1).
        spec_rad: f64,
    },
    /// `W_rec = alpha·I`, then Dale-balanced.
    AlphaIdentity {
        /// Diagonal value.
        alpha: f64,
    },
    /// `W_rec` drawn like `W_in`/`W_out` with `which_rand_w_rec_init` (PsychRNN's base `WeightInitializer`).
    Random,
    /// Every weight, mask, Dale vector and `dale_ratio` from a PsychRNN or psychrnn `.npz`
    /// (PsychRNN's `load_weights_path`); the config's masks and Dale settings are ignored.
    File {
        /// Path of the weights file.
        path: PathBuf,
    },
}

impl Default for Initializer {
    fn default() -> Self {
        Initializer::GaussianSpectralRadius { spec_rad: 1.1 }
    }
}

impl Initializer {
    pub(super) fn validate(&self, _config: &RateRnnConfig) -> Result<()> {
        match self {
            Self::GaussianSpectralRadius { spec_rad } if !(spec_rad.is_finite() && *spec_rad > 0.0) => {
                Err(Error::range("spec_rad", spec_rad, "finite and > 0"))
            }
            Self::AlphaIdentity { alpha } if !alpha.is_finite() => Err(Error::range("alpha", alpha, "finite")),
            _ => Ok(()),
        }
    }
}

/// Elementwise random initialisation of `W_in`, `W_out` (and `W_rec` for [`Initializer::Random`]).
/// Glorot fans are per element, from the connectivity mask's row and column sums.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum RandInit {
    /// `N(0, 1)`.
    ConstGauss,
    /// `U[min, max)` (PsychRNN's `init_minval`/`init_maxval`, default −0.1, 0.1).
    ConstUnif {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
    },
    /// `U(−L, L)`, `L = sqrt(6 / (fan_in_i + fan_out_j))`.
    GlorotUnif,
    /// `N(0, σ²)`, `σ = sqrt(2 / (fan_in_i + fan_out_j))` (PsychRNN's default).
    #[default]
    GlorotGauss,
}

impl RandInit {
    pub(super) fn validate(&self, field: &str) -> Result<()> {
        if let Self::ConstUnif { min, max } = self
            && !(min.is_finite() && max.is_finite() && min < max)
        {
            return Err(Error::range(
                field,
                format!("const_unif [{min}, {max})"),
                "finite with min < max",
            ));
        }
        Ok(())
    }

    /// Draws a matrix shaped like `mask` (row-major draw order, as NumPy).
    pub fn draw(self, mask: &Array2<f64>, rng: &mut TrialRng) -> Array2<f64> {
        let (rows, cols) = mask.dim();
        let fan_in = mask.sum_axis(ndarray::Axis(1));
        let fan_out = mask.sum_axis(ndarray::Axis(0));
        // An unconnected row and column give fan 0: PsychRNN would produce NaN; the draw is still
        // consumed to keep the stream, and the (masked-out) weight is 0.
        let fan = |i: usize, j: usize| fan_in[i] + fan_out[j];
        Array2::from_shape_fn((rows, cols), |(i, j)| match self {
            Self::ConstGauss => rng.normal(),
            Self::ConstUnif { min, max } => (max - min) * rng.uniform() + min,
            Self::GlorotUnif => {
                let l = (6.0 / fan(i, j)).sqrt();
                let u = rng.uniform();
                if l.is_finite() { -l + (l - -l) * u } else { 0.0 }
            }
            Self::GlorotGauss => {
                let s = (2.0 / fan(i, j)).sqrt();
                let g = rng.normal();
                if s.is_finite() { s * g } else { 0.0 }
            }
        })
    }
}

pub(super) fn initialise(config: &RateRnnConfig, rng: &mut TrialRng) -> Result<RateRnn> {
    if let Initializer::File { path } = &config.initializer {
        return from_file(config, path);
    }
    let (n_in, n_rec, n_out) = (config.n_in, config.n_rec, config.n_out);
    let mask = |m: &Option<Array2<f32>>, shape: (usize, usize)| {
        m.as_ref()
            .map(|m| m.mapv(f64::from))
            .unwrap_or_else(|| Array2::ones(shape))
    };
    let c_in = mask(&config.input_connectivity, (n_rec, n_in));
    let mut c_rec = mask(&config.rec_connectivity, (n_rec, n_rec));
    let c_out = mask(&config.output_connectivity, (n_out, n_rec));
    if !config.autapses {
        c_rec.diag_mut().fill(0.0);
    }

    // PsychRNN draws W_in, W_out, W_rec and init_state in this order, always.
    let w_in = config.which_rand_init.draw(&c_in, rng);
    let w_out = config.which_rand_init.draw(&c_out, rng);
    let w_rec_init = config.which_rand_w_rec_init.unwrap_or(config.which_rand_init);
    let mut w_rec = w_rec_init.draw(&c_rec, rng);
    let init_state = Array1::from_shape_fn(n_rec, |_| 0.1 + 0.01 * rng.normal());

    let dale = config.dale_ratio.is_some_and(|r| r != 0.0);
    match config.initializer {
        Initializer::GaussianSpectralRadius { spec_rad } => {
            w_rec = Array2::from_shape_fn((n_rec, n_rec), |_| rng.normal());
            if dale {
                balance_dale(&mut w_rec, &c_rec, config.dale_ratio.unwrap_or(1.0));
            }
            let rho = spectral_radius(&w_rec)?;
            w_rec.mapv_inplace(|w| spec_rad * w / rho);
        }
        Initializer::AlphaIdentity { alpha } => {
            w_rec = Array2::eye(n_rec) * alpha;
            if dale {
                balance_dale(&mut w_rec, &c_rec, config.dale_ratio.unwrap_or(1.0));
            }
        }
        Initializer::Random | Initializer::File { .. } => {}
    }

    let (dale_rec, dale_out) = dale_vectors(config.dale_ratio, n_rec);
    let f32s = |a: Array2<f64>| a.mapv(|v| v as f32);
    RateRnn::from_parts(
        config.clone(),
        RateRnnParams {
            w_in: f32s(w_in),
            w_rec: f32s(w_rec),
            w_out: f32s(w_out),
            b_rec: Array1::zeros(n_rec),
            b_out: Array1::zeros(n_out),
            init_state: init_state.mapv(|v| v as f32),
        },
        Constraints {
            dale,
            dale_rec,
            dale_out,
            input_connectivity: f32s(c_in),
            rec_connectivity: f32s(c_rec),
            output_connectivity: f32s(c_out),
        },
    )
}

/// PsychRNN's `balance_dale_ratio`: with `v_j = 1` for excitatory and `r/(1−r)` for inhibitory
/// units and `n_j = ‖row j of C·diag(v)‖₂`, column j of `W` is scaled by `v_j / n_j`, so
/// excitation and inhibition balance in expectation once signs are applied.
fn balance_dale(w: &mut Array2<f64>, c_rec: &Array2<f64>, ratio: f64) {
    let n = w.nrows();
    let n_e = (ratio * n as f64) as usize;
    let v: Vec<f64> = (0..n)
        .map(|j| if j < n_e { 1.0 } else { ratio / (1.0 - ratio) })
        .collect();
    for j in 0..n {
        let norm = c_rec
            .row(j)
            .iter()
            .zip(&v)
            .map(|(c, v)| (c * v).powi(2))
            .sum::<f64>()
            .sqrt();
        // A unit with no inputs has norm 0 (PsychRNN divides by it); leave its column unscaled.
        let scale = if norm > 0.0 { v[j] / norm } else { 1.0 };
        w.column_mut(j).mapv_inplace(|x| x * scale);
    }
}

/// Largest eigenvalue modulus of a square matrix.
pub(crate) fn spectral_radius(w: &Array2<f64>) -> Result<f64> {
    let n = w.nrows();
    let m = nalgebra::DMatrix::from_row_iterator(n, n, w.iter().copied());
    let schur = nalgebra::linalg::Schur::try_new(m, f64::EPSILON, 100_000)
        .ok_or_else(|| Error::range("W_rec", "non-convergent eigenvalues", "a finite matrix"))?;
    let rho = schur.complex_eigenvalues().iter().map(|z| z.norm()).fold(0.0, f64::max);
    if rho.is_finite() && rho > 0.0 {
        Ok(rho)
    } else {
        Err(Error::range("spectral radius of W_rec", rho, "finite and > 0"))
    }
}

fn from_file(config: &RateRnnConfig, path: &std::path::Path) -> Result<RateRnn> {
    let file = crate::io::WeightsFile::read(path)?;
    let model = RateRnn::from_weights(&file, &crate::io::LoadOptions::from_config(config))?;
    for (field, want, got) in [
        ("n_in", config.n_in, model.n_in()),
        ("n_rec", config.n_rec, model.n_rec()),
        ("n_out", config.n_out, model.n_out()),
    ] {
        if want != got {
            return Err(Error::range(field, want, format!("{got} as in {}", path.display())));
        }
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tau;

    #[test]
    fn gaussian_spectral_radius_hits_target_on_raw_matrix() {
        for dale_ratio in [None, Some(0.8)] {
            let config = RateRnnConfig {
                n_rec: 30,
                dale_ratio,
                ..Default::default()
            };
            let m = config.init(&mut TrialRng::seeded(4)).unwrap();
            let rho = spectral_radius(&m.params.w_rec.mapv(f64::from)).unwrap();
            assert!((rho - 1.1).abs() < 1e-5, "{rho}");
        }
    }

    #[test]
    fn alpha_identity_with_dale_is_balanced() {
        // Spec §5.3: N_rec 4, dale_ratio 0.5, alpha 0.5 gives 0.25 on the diagonal.
        let config = RateRnnConfig {
            n_rec: 4,
            dale_ratio: Some(0.5),
            initializer: Initializer::AlphaIdentity { alpha: 0.5 },
            tau: Tau::Scalar(100.0),
            ..Default::default()
        };
        let m = config.init(&mut TrialRng::seeded(0)).unwrap();
        for i in 0..4 {
            assert_eq!(m.params.w_rec[[i, i]], 0.25);
        }
    }

    #[test]
    fn glorot_scales_follow_fans() {
        let mask = Array2::<f64>::ones((200, 300));
        let w = RandInit::GlorotUnif.draw(&mask, &mut TrialRng::seeded(9));
        let l = (6.0f64 / 500.0).sqrt();
        assert!(w.iter().all(|&v| v.abs() < l));
        let w = RandInit::GlorotGauss.draw(&mask, &mut TrialRng::seeded(9));
        let var = w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64;
        assert!((var - 2.0 / 500.0).abs() < 0.05 * 2.0 / 500.0, "{var}");
    }

    #[test]
    fn bad_initialiser_params_are_rejected() {
        let c = RateRnnConfig {
            initializer: Initializer::GaussianSpectralRadius { spec_rad: 0.0 },
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(Error::OutOfRange { ref field, .. }) if field == "spec_rad"));
        let c = RateRnnConfig {
            which_rand_init: RandInit::ConstUnif { min: 1.0, max: 0.0 },
            ..Default::default()
        };
        assert!(matches!(c.validate(), Err(Error::OutOfRange { ref field, .. }) if field == "which_rand_init"));
    }
}
