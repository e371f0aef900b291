//! Psychometric curves: choice proportions per evidence level with binomial (Wilson) intervals,
//! and a maximum-likelihood fit with bias, slope and two lapse rates,
//!
//! `P(choice = 1 | x) = γ + (1 − γ − λ)·F(s·(x − μ))`, `F` logistic or the normal CDF (probit).
//!
//! ```
//! use psychrnn::analysis::{Link, fit_psychometric};
//! let x = [-1.0, -0.5, 0.0, 0.5, 1.0].repeat(20);
//! let chose = x.iter().map(|&v| v > 0.0).collect::<Vec<_>>();
//! let fit = fit_psychometric(&x, &chose, Link::Logistic, true)?;
//! assert!(fit.slope > 0.0);
//! # Ok::<(), psychrnn::Error>(())
//! ```

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The sigmoid of the psychometric function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Link {
    /// `1 / (1 + e^(−z))`.
    Logistic,
    /// The standard normal CDF.
    Probit,
}

impl Link {
    /// `F(z)`.
    pub fn apply(self, z: f64) -> f64 {
        match self {
            Link::Logistic => 1.0 / (1.0 + (-z).exp()),
            Link::Probit => 0.5 * erfc(-z / std::f64::consts::SQRT_2),
        }
    }
}

/// A maximum-likelihood psychometric fit; standard errors from the observed Fisher information.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsychometricFit {
    /// The sigmoid.
    pub link: Link,
    /// `μ`: the evidence at the curve's midpoint (point of subjective equality).
    pub bias: f64,
    /// `s`: steepness per unit of evidence.
    pub slope: f64,
    /// `γ`: P(choice 1) at strong negative evidence.
    pub lapse_low: f64,
    /// `λ`: P(choice 0) at strong positive evidence.
    pub lapse_high: f64,
    /// Standard errors of (bias, slope, lapse_low, lapse_high); lapses fixed at 0 have 0.
    pub std_errors: [f64; 4],
    /// Log-likelihood at the optimum.
    pub log_likelihood: f64,
    /// Trials fitted.
    pub n_trials: usize,
}

impl PsychometricFit {
    /// The fitted `P(choice = 1 | x)`.
    pub fn predict(&self, x: f64) -> f64 {
        curve(self.link, [self.bias, self.slope, self.lapse_low, self.lapse_high], x)
    }

    /// 95 % Wald intervals `(low, high)` of (bias, slope, lapse_low, lapse_high).
    pub fn intervals(&self) -> [(f64, f64); 4] {
        let v = [self.bias, self.slope, self.lapse_low, self.lapse_high];
        std::array::from_fn(|i| (v[i] - 1.96 * self.std_errors[i], v[i] + 1.96 * self.std_errors[i]))
    }
}

fn curve(link: Link, [mu, s, g, l]: [f64; 4], x: f64) -> f64 {
    g + (1.0 - g - l) * link.apply(s * (x - mu))
}

/// One evidence level of a psychometric table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PsychometricLevel {
    /// Evidence.
    pub level: f64,
    /// Trials.
    pub n: usize,
    /// Trials with choice 1.
    pub k: usize,
    /// `k / n`.
    pub p: f64,
    /// Wilson 95 % interval of `p`.
    pub ci_low: f64,
    /// See `ci_low`.
    pub ci_high: f64,
}

/// Choice proportions per distinct evidence level (increasing), with Wilson 95 % intervals.
pub fn choice_table(evidence: &[f64], chose: &[bool]) -> Result<Vec<PsychometricLevel>> {
    check(evidence, chose)?;
    let mut levels: Vec<f64> = evidence.to_vec();
    levels.sort_by(f64::total_cmp);
    levels.dedup();
    Ok(levels
        .into_iter()
        .map(|level| {
            let (n, k) = evidence
                .iter()
                .zip(chose)
                .filter(|(e, _)| **e == level)
                .fold((0, 0), |(n, k), (_, &c)| (n + 1, k + c as usize));
            let (ci_low, ci_high) = wilson(k, n);
            PsychometricLevel {
                level,
                n,
                k,
                p: k as f64 / n as f64,
                ci_low,
                ci_high,
            }
        })
        .collect())
}

/// Wilson score 95 % interval of `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> (f64, f64) {
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt() / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

fn check(evidence: &[f64], chose: &[bool]) -> Result<()> {
    if evidence.len() != chose.len() {
        return Err(Error::shape("choices", &[evidence.len()], &[chose.len()]));
    }
    if evidence.is_empty() {
        return Err(Error::Empty {
            what: "psychometric trials".into(),
        });
    }
    if let Some(v) = evidence.iter().find(|v| !v.is_finite()) {
        return Err(Error::range("evidence", v, "finite"));
    }
    Ok(())
}

/// Largest lapse rate allowed (each of γ and λ).
const MAX_LAPSE: f64 = 0.5;

/// Fits the psychometric function to per-trial `evidence` and choices by maximum likelihood
/// (Nelder–Mead from a logistic-regression start); `lapses = false` fixes γ = λ = 0.
pub fn fit_psychometric(evidence: &[f64], chose: &[bool], link: Link, lapses: bool) -> Result<PsychometricFit> {
    check(evidence, chose)?;
    let nll = |p: [f64; 4]| -> f64 {
        if !(p[2] >= 0.0 && p[3] >= 0.0 && p[2] <= MAX_LAPSE && p[3] <= MAX_LAPSE) {
            return f64::INFINITY;
        }
        -evidence
            .iter()
            .zip(chose)
            .map(|(&x, &c)| {
                let q = curve(link, p, x).clamp(1e-12, 1.0 - 1e-12);
                if c { q.ln() } else { (1.0 - q).ln() }
            })
            .sum::<f64>()
    };
    let spread = {
        let mean = evidence.iter().sum::<f64>() / evidence.len() as f64;
        (evidence.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / evidence.len() as f64).sqrt()
    };
    if spread == 0.0 {
        return Err(Error::invalid("evidence", "a single level: a slope cannot be fitted"));
    }
    // Free parameters: (μ, s) and, with lapses, (γ, λ) as logit(γ / MAX_LAPSE).
    let to_params = |v: &[f64]| -> [f64; 4] {
        let lapse = |u: f64| MAX_LAPSE / (1.0 + (-u).exp());
        if lapses {
            [v[0], v[1], lapse(v[2]), lapse(v[3])]
        } else {
            [v[0], v[1], 0.0, 0.0]
        }
    };
    let start_lapse = (0.02f64 / MAX_LAPSE).ln() - (1.0 - 0.02 / MAX_LAPSE).ln();
    let mut start = vec![0.0, 1.0 / spread];
    if lapses {
        start.extend([start_lapse, start_lapse]);
    }
    let mut best = nelder_mead(|v| nll(to_params(v)), &start, spread);
    // Restart from the optimum until it stops improving (Nelder–Mead can stall).
    for _ in 0..5 {
        let again = nelder_mead(|v| nll(to_params(v)), &best.0, spread * 0.1);
        if again.1 >= best.1 - 1e-10 {
            break;
        }
        best = again;
    }
    let p = to_params(&best.0);
    // Lapses on the boundary (0 or MAX_LAPSE) have no curvature there: they get no error.
    let interior = |v: f64| v > 1e-5 && v < MAX_LAPSE - 1e-5;
    let free: Vec<usize> = [0, 1]
        .into_iter()
        .chain((2..4).filter(|&i| lapses && interior(p[i])))
        .collect();
    let std_errors = std_errors(nll, p, &free);
    Ok(PsychometricFit {
        link,
        bias: p[0],
        slope: p[1],
        lapse_low: p[2],
        lapse_high: p[3],
        std_errors,
        log_likelihood: -best.1,
        n_trials: evidence.len(),
    })
}

/// `sqrt(diag(H⁻¹))` of the negative log-likelihood's Hessian in the parameters `free`
/// (central differences); NaN where the Hessian is not positive definite.
fn std_errors(nll: impl Fn([f64; 4]) -> f64, p: [f64; 4], free: &[usize]) -> [f64; 4] {
    let h: Vec<f64> = p.iter().map(|v| 1e-5 * v.abs().max(1e-1)).collect();
    let at = |i: usize, si: f64, j: usize, sj: f64| {
        let mut q = p;
        q[i] += si * h[i];
        q[j] += sj * h[j];
        nll(q)
    };
    let k = free.len();
    let hess = nalgebra::DMatrix::<f64>::from_fn(k, k, |a, b| {
        let (i, j) = (free[a], free[b]);
        (at(i, 1.0, j, 1.0) - at(i, 1.0, j, -1.0) - at(i, -1.0, j, 1.0) + at(i, -1.0, j, -1.0)) / (4.0 * h[i] * h[j])
    });
    let mut se = [0.0; 4];
    let inv = hess.cholesky().map(|c| c.inverse());
    for (a, &i) in free.iter().enumerate() {
        se[i] = inv.as_ref().map_or(f64::NAN, |m| m[(a, a)].sqrt());
    }
    se
}

/// Minimises `f` from `x0` (initial simplex step `step`); returns the point and its value.
fn nelder_mead(f: impl Fn(&[f64]) -> f64, x0: &[f64], step: f64) -> (Vec<f64>, f64) {
    let n = x0.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = (0..=n)
        .map(|i| {
            let mut x = x0.to_vec();
            if i > 0 {
                x[i - 1] += if x[i - 1] == 0.0 {
                    step
                } else {
                    0.5 * x[i - 1].abs().max(step)
                };
            }
            let v = f(&x);
            (x, v)
        })
        .collect();
    for _ in 0..4000 * n {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (lo, hi) = (simplex[0].1, simplex[n].1);
        if (hi - lo).abs() <= 1e-12 * (1.0 + lo.abs()) {
            break;
        }
        let centroid: Vec<f64> = (0..n)
            .map(|j| simplex[..n].iter().map(|s| s.0[j]).sum::<f64>() / n as f64)
            .collect();
        let towards = |t: f64| -> Vec<f64> {
            (0..n)
                .map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j]))
                .collect()
        };
        let reflected = towards(-1.0);
        let fr = f(&reflected);
        if fr < simplex[0].1 {
            let expanded = towards(-2.0);
            let fe = f(&expanded);
            simplex[n] = if fe < fr { (expanded, fe) } else { (reflected, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let contracted = if fr < simplex[n].1 { towards(-0.5) } else { towards(0.5) };
            let fc = f(&contracted);
            if fc < simplex[n].1.min(fr) {
                simplex[n] = (contracted, fc);
            } else {
                let best = simplex[0].0.clone();
                for s in simplex.iter_mut().skip(1) {
                    s.0 = s.0.iter().zip(&best).map(|(x, b)| b + 0.5 * (x - b)).collect();
                    s.1 = f(&s.0);
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex.swap_remove(0)
}

/// Complementary error function: Numerical Recipes' `erfcc` (Chebyshev fit), fractional error
/// < 1.2e-7 everywhere, ample for a psychometric curve.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}
