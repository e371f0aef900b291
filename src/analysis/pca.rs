//! Principal components of network states or rates, condition averages, principal angles and the
//! participation ratio.
//!
//! ```
//! use psychrnn::analysis::Pca;
//! use psychrnn::prelude::*;
//! let states = Array3::from_shape_fn((4, 10, 3), |(b, t, n)| (b + t * n) as f64); // [batch, time, n_rec]
//! let pca = Pca::fit_trials(&states, 2)?;
//! let projected = pca.transform_trials(&states)?; // [batch, time, 2]
//! assert_eq!(projected.dim(), (4, 10, 2));
//! # Ok::<(), psychrnn::Error>(())
//! ```

use nalgebra::DMatrix;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A fitted PCA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pca {
    /// Mean of the fitted samples, `[n_features]`.
    pub mean: Array1<f64>,
    /// Orthonormal principal axes as rows, `[n_components, n_features]`; each axis's largest
    /// entry (in magnitude) is positive, so fits are reproducible.
    pub components: Array2<f64>,
    /// Variance along every principal axis (all of them, not only the kept ones), decreasing.
    pub variances: Array1<f64>,
}

impl Pca {
    /// Fits `n_components` axes to `data` `[samples, features]` by an SVD of the centred data.
    pub fn fit(data: ArrayView2<f64>, n_components: usize) -> Result<Self> {
        let (m, n) = data.dim();
        if m < 2 {
            return Err(Error::range("samples", m, ">= 2 for a variance"));
        }
        if n_components == 0 || n_components > n.min(m) {
            return Err(Error::range(
                "n_components",
                n_components,
                format!("in [1, {}] (min of samples and features)", n.min(m)),
            ));
        }
        if data.iter().any(|v| !v.is_finite()) {
            return Err(Error::range("data", "a non-finite entry", "finite"));
        }
        let mean = data.mean_axis(Axis(0)).expect("m >= 2");
        let centred = &data - &mean;
        let a = DMatrix::from_row_iterator(m, n, centred.iter().copied());
        let svd = a.svd(false, true);
        let v_t = svd.v_t.expect("computed");
        let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
        order.sort_by(|&i, &j| svd.singular_values[j].total_cmp(&svd.singular_values[i]));
        let variances = order
            .iter()
            .map(|&i| svd.singular_values[i].powi(2) / (m - 1) as f64)
            .collect();
        let mut components = Array2::from_shape_fn((n_components, n), |(r, c)| v_t[(order[r], c)]);
        for mut row in components.axis_iter_mut(Axis(0)) {
            let big = row
                .iter()
                .copied()
                .fold(0.0f64, |a, v| if v.abs() > a.abs() { v } else { a });
            if big < 0.0 {
                row.mapv_inplace(|v| -v);
            }
        }
        Ok(Self {
            mean,
            components,
            variances,
        })
    }

    /// Fits to every time step of every trial of `states` `[batch, time, n]`.
    pub fn fit_trials(states: &Array3<f64>, n_components: usize) -> Result<Self> {
        Self::fit(flatten(states).view(), n_components)
    }

    /// Number of kept components.
    pub fn n_components(&self) -> usize {
        self.components.nrows()
    }

    /// Fraction of the total variance along each kept axis.
    pub fn explained_variance_ratio(&self) -> Array1<f64> {
        let total = self.variances.sum();
        self.variances
            .iter()
            .take(self.n_components())
            .map(|v| if total > 0.0 { v / total } else { 0.0 })
            .collect()
    }

    /// `(Σλ)² / Σλ²` over all axes: the effective dimensionality (1 for one axis, n for isotropic).
    pub fn participation_ratio(&self) -> f64 {
        let s: f64 = self.variances.sum();
        let s2: f64 = self.variances.iter().map(|v| v * v).sum();
        if s2 > 0.0 { s * s / s2 } else { 0.0 }
    }

    /// Projects `data` `[samples, features]` onto the axes: `[samples, n_components]`.
    pub fn transform(&self, data: ArrayView2<f64>) -> Result<Array2<f64>> {
        let n = self.mean.len();
        if data.ncols() != n {
            return Err(Error::shape("data", &[data.nrows(), n], data.shape()));
        }
        Ok((&data - &self.mean).dot(&self.components.t()))
    }

    /// Projects trials `[batch, time, n]` onto the axes: `[batch, time, n_components]`.
    pub fn transform_trials(&self, states: &Array3<f64>) -> Result<Array3<f64>> {
        let (b, t, _) = states.dim();
        let p = self.transform(flatten(states).view())?;
        Ok(p.into_shape_with_order((b, t, self.n_components())).expect("dims"))
    }
}

fn flatten(states: &Array3<f64>) -> Array2<f64> {
    let (b, t, n) = states.dim();
    states
        .as_standard_layout()
        .to_owned()
        .into_shape_with_order((b * t, n))
        .expect("dims")
}

/// Trials averaged within each condition: `labels[i]` is trial `i`'s condition; returns the
/// conditions in order of first appearance with their mean trajectory `[time, n]`.
pub fn condition_average(states: &Array3<f64>, labels: &[String]) -> Result<Vec<(String, Array2<f64>)>> {
    let (b, t, n) = states.dim();
    if labels.len() != b {
        return Err(Error::shape("labels", &[b], &[labels.len()]));
    }
    let mut groups: Vec<(String, Array2<f64>, usize)> = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let k = match groups.iter().position(|g| &g.0 == label) {
            Some(k) => k,
            None => {
                groups.push((label.clone(), Array2::zeros((t, n)), 0));
                groups.len() - 1
            }
        };
        groups[k].1 += &states.index_axis(Axis(0), i);
        groups[k].2 += 1;
    }
    Ok(groups.into_iter().map(|(l, sum, c)| (l, sum / c as f64)).collect())
}

/// Principal angles (radians, increasing) between the row spaces of `a` `[k, n]` and `b` `[l, n]`.
pub fn principal_angles(a: &Array2<f64>, b: &Array2<f64>) -> Result<Vec<f64>> {
    if a.ncols() != b.ncols() {
        return Err(Error::shape("b", &[b.nrows(), a.ncols()], b.shape()));
    }
    let basis = |m: &Array2<f64>| {
        let d = DMatrix::from_row_iterator(m.nrows(), m.ncols(), m.iter().copied()).transpose();
        d.qr().q()
    };
    let (qa, qb) = (basis(a), basis(b));
    let s = (qa.transpose() * qb).svd(false, false).singular_values;
    let mut angles: Vec<f64> = s.iter().map(|c| c.clamp(-1.0, 1.0).acos()).collect();
    angles.sort_by(f64::total_cmp);
    Ok(angles)
}
