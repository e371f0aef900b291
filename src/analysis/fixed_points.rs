//! Fixed and slow points of a rate RNN under constant input (Sussillo & Barak 2013), after
//! FixedPointFinder (Golub & Sussillo 2018): minimise `q(x) = ½‖F(x) − x‖²` from many initial
//! states, where `F` is PsychRNN's noise-free one-step map on the pre-activation state `x`:
//!
//! `F(x) = (1 − α) ⊙ x + α ⊙ (W_rec·f(x) + W_in·u + b_rec)`, Jacobian
//! `J(x) = diag(1 − α) + diag(α)·W_rec·diag(f′(x))` (effective weights: Dale and masks applied).
//!
//! LSTM and GRU networks go through [`GatedDynamics`]: the state is `h` (GRU) or `[h, c]` (LSTM),
//! the map is the cell's step in f64, and `∇q` and the Jacobian come from burn's autodiff of the
//! same step (float32).
//!
//! ```
//! use psychrnn::analysis::{FixedPointOptions, RateDynamics};
//! use psychrnn::prelude::*;
//! let model = RateRnnConfig { n_in: 2, n_rec: 8, n_out: 1, transfer: Transfer::Tanh, ..Default::default() }
//!     .init(&mut TrialRng::seeded(3))?;
//! let dynamics = RateDynamics::new(&model, &[0.0, 0.0])?; // constant input u, [n_in]
//! let inits = Array2::zeros((4, 8));                        // initial states, [k, n_rec]
//! let found = dynamics.find_fixed_points(&inits, &FixedPointOptions::default())?;
//! assert!(found.points[0].q < 1e-12);
//! # Ok::<(), psychrnn::Error>(())
//! ```

use nalgebra::{DMatrix, DVector};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{GatedRnn, RateRnn, Transfer};
use crate::rng::TrialRng;

/// The noise-free one-step map of a rate RNN under a constant input.
#[derive(Clone, Debug)]
pub struct RateDynamics {
    /// Effective recurrent weights `[n_rec, n_rec]`.
    pub w_rec: Array2<f64>,
    /// `W_in·u + b_rec`, `[n_rec]`.
    pub drive: Array1<f64>,
    /// `dt/τ` per unit, `[n_rec]`.
    pub alpha: Array1<f64>,
    /// Transfer function `f`.
    pub transfer: Transfer,
    /// Time step (ms), for time constants of the linearised modes.
    pub dt: f64,
    /// The constant input `u`, `[n_in]`.
    pub input: Vec<f64>,
}

/// Settings of [`RateDynamics::find_fixed_points`]; defaults after FixedPointFinder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FixedPointOptions {
    /// Stop optimising a point once `q` is below this.
    pub tol_q: f64,
    /// ... or once `q` changes by less than this in one iteration.
    pub tol_dq: f64,
    /// Adam iterations at most.
    pub max_iters: usize,
    /// Adam's initial step size; it decays as `lr·decay^(iter/100)`, floored at `min_lr`.
    pub learning_rate: f64,
    /// See `learning_rate`.
    pub lr_decay: f64,
    /// See `learning_rate`.
    pub min_lr: f64,
    /// Adam's ε (FixedPointFinder uses 0.01: steps stay small where gradients vanish).
    pub adam_epsilon: f64,
    /// After Adam, Newton steps `x ← x − (J − I)⁻¹(F(x) − x)`, each kept only if it lowers `q`:
    /// fixed points to machine precision.
    pub newton_steps: usize,
    /// Points closer than this (Euclidean, state units) are one fixed point (the lower `q` kept).
    pub tol_unique: f64,
    /// Drop points farther from the initial states' centroid than this many times the initial
    /// states' mean distance to it (`None` keeps all).
    pub outlier_distance_scale: Option<f64>,
    /// Standard deviation of Gaussian noise added to the initial states.
    pub init_noise: f64,
    /// Seed of that noise.
    pub seed: u64,
}

impl Default for FixedPointOptions {
    fn default() -> Self {
        Self {
            tol_q: 1e-12,
            tol_dq: 1e-20,
            max_iters: 5000,
            learning_rate: 1.0,
            lr_decay: 0.95,
            min_lr: 1e-3,
            adam_epsilon: 0.01,
            newton_steps: 20,
            tol_unique: 1e-3,
            outlier_distance_scale: Some(10.0),
            init_noise: 0.0,
            seed: 0,
        }
    }
}

impl FixedPointOptions {
    fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("tol_q", self.tol_q),
            ("tol_dq", self.tol_dq),
            ("tol_unique", self.tol_unique),
            ("init_noise", self.init_noise),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::range(field, v, "finite and >= 0"));
            }
        }
        for (field, v) in [
            ("learning_rate", self.learning_rate),
            ("min_lr", self.min_lr),
            ("adam_epsilon", self.adam_epsilon),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::range(field, v, "finite and > 0"));
            }
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return Err(Error::range("lr_decay", self.lr_decay, "in (0, 1]"));
        }
        if let Some(s) = self.outlier_distance_scale
            && !(s.is_finite() && s > 0.0)
        {
            return Err(Error::range("outlier_distance_scale", s, "finite and > 0"));
        }
        Ok(())
    }
}

/// How a fixed point's linearisation behaves (discrete-time map: eigenvalues against the unit
/// circle; for uniform α the same as the continuous-time flow against zero).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stability {
    /// Every `|λ| < 1`: an attractor.
    Stable,
    /// Some `|λ| < 1`, some `> 1`.
    Saddle,
    /// Every `|λ| > 1`: a repeller.
    Unstable,
}

/// One fixed (or slow) point.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedPoint {
    /// The state: pre-activation `x` `[n_rec]` of a rate RNN, `h` of a GRU, `[h, c]` of an LSTM.
    pub x: Vec<f64>,
    /// `½‖F(x) − x‖²`.
    pub q: f64,
    /// Jacobian of `F` at `x`, row-major `[dim, dim]`.
    pub jacobian: Vec<f64>,
    /// Eigenvalues of the Jacobian as `[re, im]`, by decreasing modulus.
    pub eigenvalues: Vec<[f64; 2]>,
    /// See [`Stability`].
    pub stability: Stability,
    /// Number of eigenvalues outside the unit circle.
    pub n_unstable: usize,
    /// Time constants (ms) of the slowest stable modes, `−dt / ln|λ|`, for the (at most 5) stable
    /// eigenvalues of largest modulus.
    pub slowest_time_constants_ms: Vec<f64>,
}

/// The result of a fixed-point search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FixedPoints {
    /// Unique points, by increasing `q`.
    pub points: Vec<FixedPoint>,
    /// Initial states tried.
    pub n_inits: usize,
    /// The constant input they were found for, `[n_in]`.
    pub input: Vec<f64>,
    /// Time step (ms).
    pub dt: f64,
    /// Points with `q` below this are fixed points; the others are slow points.
    pub tol_q: f64,
}

impl FixedPoints {
    /// The points with `q < tol_q` (the others are slow points).
    pub fn fixed(&self) -> impl Iterator<Item = &FixedPoint> {
        self.points.iter().filter(|p| p.q < self.tol_q)
    }

    /// States `[n_points, n_rec]`.
    pub fn states(&self) -> Array2<f64> {
        let n = self.points.first().map_or(0, |p| p.x.len());
        Array2::from_shape_fn((self.points.len(), n), |(i, j)| self.points[i].x[j])
    }

    /// Counts of (stable, saddle, unstable) fixed points (slow points not counted).
    pub fn counts(&self) -> (usize, usize, usize) {
        let count = |s| self.fixed().filter(|p| p.stability == s).count();
        (
            count(Stability::Stable),
            count(Stability::Saddle),
            count(Stability::Unstable),
        )
    }
}

impl RateDynamics {
    /// The map of `model` under constant input `input` (`[n_in]`), noise off.
    pub fn new(model: &RateRnn, input: &[f64]) -> Result<Self> {
        if input.len() != model.n_in() {
            return Err(Error::shape("input", &[model.n_in()], &[input.len()]));
        }
        let w_in = model.effective_w_in().mapv(f64::from);
        let u = ArrayView1::from(input);
        Ok(Self {
            w_rec: model.effective_w_rec().mapv(f64::from),
            drive: w_in.dot(&u) + model.params.b_rec.mapv(f64::from),
            alpha: Array1::from(model.alpha()),
            transfer: model.config.transfer,
            dt: model.config.dt,
            input: input.to_vec(),
        })
    }

    /// Number of units.
    pub fn n_rec(&self) -> usize {
        self.w_rec.nrows()
    }

    /// `F(x)` for each row of `x` (`[k, n_rec]`).
    pub fn step(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let rates = x.mapv(|v| self.transfer.apply(v));
        let mut next = rates.dot(&self.w_rec.t()) + &self.drive;
        for (mut row, xr) in next.axis_iter_mut(Axis(0)).zip(x.axis_iter(Axis(0))) {
            for ((v, &xv), &a) in row.iter_mut().zip(xr).zip(&self.alpha) {
                *v = (1.0 - a) * xv + a * *v;
            }
        }
        next
    }

    /// `q(x) = ½‖F(x) − x‖²` of one state.
    pub fn q(&self, x: &[f64]) -> f64 {
        q(self, x)
    }

    /// Closed-form Jacobian of `F` at `x`, `[n_rec, n_rec]`.
    pub fn jacobian(&self, x: &[f64]) -> Array2<f64> {
        let n = self.n_rec();
        Array2::from_shape_fn((n, n), |(i, j)| {
            let diag = if i == j { 1.0 - self.alpha[i] } else { 0.0 };
            diag + self.alpha[i] * self.w_rec[[i, j]] * self.transfer.derivative(x[j])
        })
    }

    /// Minimises `q` from each row of `inits` (`[k, n_rec]`, e.g. states sampled from
    /// trajectories), then deduplicates, drops distance outliers and linearises each point.
    pub fn find_fixed_points(&self, inits: &Array2<f64>, options: &FixedPointOptions) -> Result<FixedPoints> {
        search(self, inits, options)
    }
}

impl StepMap for RateDynamics {
    fn dim(&self) -> usize {
        self.n_rec()
    }

    fn step(&self, x: ArrayView2<f64>) -> Array2<f64> {
        RateDynamics::step(self, x)
    }

    /// `(J − I)ᵀ r` without forming `J`.
    fn grad_q(&self, x: ArrayView2<f64>, r: &Array2<f64>) -> Array2<f64> {
        let back = (r * &self.alpha).dot(&self.w_rec);
        // Jᵀr − r = f′(x) ⊙ Wᵀ(α ⊙ r) + (1 − α) ⊙ r − r.
        back * &x.mapv(|v| self.transfer.derivative(v)) - &(r * &self.alpha)
    }

    fn jacobian(&self, x: &[f64]) -> Array2<f64> {
        RateDynamics::jacobian(self, x)
    }

    fn dt(&self) -> f64 {
        self.dt
    }

    fn input(&self) -> &[f64] {
        &self.input
    }
}

/// The noise-free one-step map of an LSTM or GRU under a constant input. The state is `h`
/// (`[n_rec]`, GRU) or `[h, c]` (`[2·n_rec]`, LSTMs); the step runs in f64 on the host, and `∇q`
/// and the Jacobian come from burn's autodiff of the same step (float32), so any cell works
/// without hand-written derivatives.
///
/// ```
/// use psychrnn::analysis::{FixedPointOptions, GatedDynamics};
/// use psychrnn::prelude::*;
/// let net = GatedRnnConfig { n_in: 1, n_rec: 6, n_out: 1, ..GatedRnnConfig::new(Cell::Gru) }
///     .init(&mut TrialRng::seeded(3))?;
/// let dynamics = GatedDynamics::new(&net, &[0.5])?; // constant input u, [n_in]
/// let found = dynamics.find_fixed_points(&Array2::zeros((4, 6)), &FixedPointOptions::default())?;
/// assert!(found.points[0].q < 1e-12);
/// # Ok::<(), psychrnn::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct GatedDynamics {
    net: GatedRnn,
    input: Vec<f64>,
}

impl GatedDynamics {
    /// The map of `net` under constant input `input` (`[n_in]`).
    pub fn new(net: &GatedRnn, input: &[f64]) -> Result<Self> {
        if input.len() != net.n_in() {
            return Err(Error::shape("input", &[net.n_in()], &[input.len()]));
        }
        if let Some(v) = input.iter().find(|v| !v.is_finite()) {
            return Err(Error::range("input", v, "finite"));
        }
        Ok(Self {
            net: net.clone(),
            input: input.to_vec(),
        })
    }

    /// State size: `n_rec` (GRU) or `2·n_rec` (`[h, c]`, LSTMs).
    pub fn dim(&self) -> usize {
        let n = self.net.n_rec();
        if self.net.config.cell.has_cell_state() {
            2 * n
        } else {
            n
        }
    }

    /// `F(x)` for each row of `x` (`[k, dim]`), in f64.
    pub fn step(&self, x: ArrayView2<f64>) -> Array2<f64> {
        let n = self.net.n_rec();
        let k = x.nrows();
        let h = x.slice(s![.., ..n]).to_owned();
        let c = if self.dim() > n {
            x.slice(s![.., n..]).to_owned()
        } else {
            Array2::zeros((k, n))
        };
        let u = Array2::from_shape_fn((k, self.input.len()), |(_, j)| self.input[j]);
        let (h, c) = self.net.step(&h, &c, &u);
        if self.dim() > n {
            ndarray::concatenate(Axis(1), &[h.view(), c.view()]).expect("same rows")
        } else {
            h
        }
    }

    /// `q(x) = ½‖F(x) − x‖²` of one state.
    pub fn q(&self, x: &[f64]) -> f64 {
        q(self, x)
    }

    /// Jacobian of `F` at `x`, `[dim, dim]`, by autodiff: `dim` copies of `x` through one step and
    /// one backward pass of `Σᵢ F(xᵢ)ᵢ`.
    pub fn jacobian(&self, x: &[f64]) -> Array2<f64> {
        let d = x.len();
        let rows = ArrayView1::from(x).broadcast((d, d)).expect("square").to_owned();
        let eye = Array2::<f64>::eye(d);
        self.vjp(rows.view(), &eye)
    }

    /// `vᵢᵀ·∂F/∂x` at each row `xᵢ` of `x`, by burn's autodiff (float32).
    fn vjp(&self, x: ArrayView2<f64>, v: &Array2<f64>) -> Array2<f64> {
        use burn::tensor::activation::sigmoid;

        use crate::model::Cell;
        use crate::train::graph::{cpu_device, tensor, values};
        let device = cpu_device();
        let (k, d) = x.dim();
        let n = self.net.n_rec();
        let f32s = |a: ArrayView2<f64>| a.iter().map(|&v| v as f32).collect::<Vec<f32>>();
        let xs = tensor(&f32s(x), [k, d], &device, true);
        let h = xs.clone().slice([0..k, 0..n]);
        let u: Vec<f32> = (0..k).flat_map(|_| self.input.iter().map(|&v| v as f32)).collect();
        let u = tensor(&u, [k, self.input.len()], &device, false);
        let p = &self.net.params;
        let w = |g: usize| {
            let w = &p.w_gates[g];
            tensor(w.as_slice().expect("standard"), [w.nrows(), w.ncols()], &device, false)
        };
        let b = |g: usize| tensor(p.b_gates[g].as_slice().expect("standard"), [1, n], &device, false);
        let pre = |g: usize, hh: burn::Tensor<2>| burn::Tensor::cat(vec![hh, u.clone()], 1).matmul(w(g)) + b(g);
        let out = match self.net.config.cell {
            Cell::Gru => {
                let z = sigmoid(pre(0, h.clone()));
                let r = sigmoid(pre(1, h.clone()));
                let cand = pre(2, r * h.clone()).tanh();
                z.clone() * h + z.neg().add_scalar(1.0) * cand
            }
            cell => {
                let c = xs.clone().slice([0..k, n..2 * n]);
                let f = sigmoid(pre(0, h.clone()));
                let i = sigmoid(pre(1, h.clone()));
                let cand = pre(2, h.clone()).tanh();
                let o = sigmoid(pre(3, h));
                let c_new = f * c + i * cand;
                let squashed = if cell == Cell::Lstm {
                    c_new.clone().tanh()
                } else {
                    sigmoid(c_new.clone())
                };
                burn::Tensor::cat(vec![o * squashed, c_new], 1)
            }
        };
        let weights = tensor(&f32s(v.view()), [k, d], &device, false);
        let grads = (out * weights).sum().backward();
        let g = xs.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; k * d]);
        Array2::from_shape_vec((k, d), g.into_iter().map(f64::from).collect()).expect("dims")
    }

    /// Minimises `q` from each row of `inits` (`[k, dim]`: hidden states of a GRU, `[h, c]` of an
    /// LSTM), then deduplicates, drops distance outliers and linearises each point.
    pub fn find_fixed_points(&self, inits: &Array2<f64>, options: &FixedPointOptions) -> Result<FixedPoints> {
        search(self, inits, options)
    }
}

impl StepMap for GatedDynamics {
    fn dim(&self) -> usize {
        GatedDynamics::dim(self)
    }

    fn step(&self, x: ArrayView2<f64>) -> Array2<f64> {
        GatedDynamics::step(self, x)
    }

    fn grad_q(&self, x: ArrayView2<f64>, r: &Array2<f64>) -> Array2<f64> {
        self.vjp(x, r) - r
    }

    fn jacobian(&self, x: &[f64]) -> Array2<f64> {
        GatedDynamics::jacobian(self, x)
    }

    fn dt(&self) -> f64 {
        self.net.config.dt
    }

    fn input(&self) -> &[f64] {
        &self.input
    }
}

/// What the search needs of a network's noise-free one-step map under constant input.
trait StepMap {
    /// State size.
    fn dim(&self) -> usize;
    /// `F(x)` for each row of `x` (`[k, dim]`).
    fn step(&self, x: ArrayView2<f64>) -> Array2<f64>;
    /// `∇q = (J − I)ᵀ r` for each row, `r = F(x) − x`.
    fn grad_q(&self, x: ArrayView2<f64>, r: &Array2<f64>) -> Array2<f64>;
    /// `∂F/∂x` at `x`, `[dim, dim]`.
    fn jacobian(&self, x: &[f64]) -> Array2<f64>;
    /// Time step (ms).
    fn dt(&self) -> f64;
    /// The constant input.
    fn input(&self) -> &[f64];
}

fn q<M: StepMap>(map: &M, x: &[f64]) -> f64 {
    let x = ArrayView2::from_shape((1, x.len()), x).expect("one row");
    let r = map.step(x) - x;
    0.5 * r.iter().map(|v| v * v).sum::<f64>()
}

/// Minimises `q` from each row of `inits`, then deduplicates, drops distance outliers and
/// linearises each point.
fn search<M: StepMap>(map: &M, inits: &Array2<f64>, options: &FixedPointOptions) -> Result<FixedPoints> {
    options.validate()?;
    let n = map.dim();
    let (k, cols) = inits.dim();
    if cols != n {
        return Err(Error::shape("initial states", &[k, n], &[k, cols]));
    }
    if k == 0 {
        return Err(Error::Empty {
            what: "initial states".into(),
        });
    }
    if inits.iter().any(|v| !v.is_finite()) {
        return Err(Error::range("initial states", "a non-finite entry", "finite"));
    }
    let mut x = inits.clone();
    if options.init_noise > 0.0 {
        let mut rng = TrialRng::seeded(options.seed);
        x.mapv_inplace(|v| v + options.init_noise * rng.normal());
    }
    adam(map, &mut x, options);
    let mut points: Vec<(Vec<f64>, f64)> = x
        .axis_iter(Axis(0))
        .map(|row| {
            let mut p = row.to_vec();
            newton(map, &mut p, options.newton_steps);
            let q = q(map, &p);
            (p, q)
        })
        .filter(|(p, q)| q.is_finite() && p.iter().all(|v| v.is_finite()))
        .collect();
    if let Some(scale) = options.outlier_distance_scale {
        let centroid = inits.mean_axis(Axis(0)).expect("k > 0");
        let dist = |p: ArrayView1<f64>| (&p - &centroid).mapv(|v| v * v).sum().sqrt();
        let mean = inits.axis_iter(Axis(0)).map(dist).sum::<f64>() / k as f64;
        // A single initial state (or identical ones) has no spread: keep everything then.
        if mean > 0.0 {
            points.retain(|(p, _)| dist(ArrayView1::from(p.as_slice())) <= scale * mean);
        }
    }
    points.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut unique: Vec<(Vec<f64>, f64)> = Vec::new();
    for (p, q) in points {
        let far = |u: &(Vec<f64>, f64)| u.0.iter().zip(&p).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
        if unique.iter().all(|u| far(u) > options.tol_unique) {
            unique.push((p, q));
        }
    }
    let points = unique
        .into_iter()
        .map(|(x, q)| linearise(map, x, q))
        .collect::<Result<_>>()?;
    Ok(FixedPoints {
        points,
        n_inits: k,
        input: map.input().to_vec(),
        dt: map.dt(),
        tol_q: options.tol_q,
    })
}

/// Adam on every row at once; rows stop once they meet `tol_q` or `tol_dq`.
fn adam<M: StepMap>(map: &M, x: &mut Array2<f64>, o: &FixedPointOptions) {
    let (k, n) = x.dim();
    let (b1, b2) = (0.9f64, 0.999f64);
    let mut m = Array2::<f64>::zeros((k, n));
    let mut v = Array2::<f64>::zeros((k, n));
    let mut active = vec![true; k];
    let mut last_q = vec![f64::INFINITY; k];
    for it in 0..o.max_iters {
        let r = map.step(x.view()) - &*x;
        let q: Vec<f64> = r.axis_iter(Axis(0)).map(|row| 0.5 * row.dot(&row)).collect();
        for i in 0..k {
            if active[i] && (q[i] < o.tol_q || (last_q[i] - q[i]).abs() < o.tol_dq || !q[i].is_finite()) {
                active[i] = false;
            }
            last_q[i] = q[i];
        }
        if !active.iter().any(|&a| a) {
            break;
        }
        let g = map.grad_q(x.view(), &r);
        let lr = (o.learning_rate * o.lr_decay.powf(it as f64 / 100.0)).max(o.min_lr);
        let t = (it + 1) as i32;
        let step = lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
        for i in (0..k).filter(|&i| active[i]) {
            for j in 0..n {
                let gij = g[[i, j]];
                m[[i, j]] = b1 * m[[i, j]] + (1.0 - b1) * gij;
                v[[i, j]] = b2 * v[[i, j]] + (1.0 - b2) * gij * gij;
                x[[i, j]] -= step * m[[i, j]] / (v[[i, j]].sqrt() + o.adam_epsilon);
            }
        }
    }
}

/// Newton steps on `F(x) − x = 0`, each kept only if it lowers `q`.
fn newton<M: StepMap>(map: &M, x: &mut Vec<f64>, steps: usize) {
    let n = x.len();
    let mut q_now = q(map, x);
    for _ in 0..steps {
        if q_now == 0.0 {
            break;
        }
        let xv = ArrayView2::from_shape((1, n), x.as_slice()).expect("one row");
        let r = map.step(xv) - xv;
        let mut jm = map.jacobian(x);
        for i in 0..n {
            jm[[i, i]] -= 1.0;
        }
        let a = DMatrix::from_row_iterator(n, n, jm.iter().copied());
        let Some(delta) = a.lu().solve(&DVector::from_iterator(n, r.iter().copied())) else {
            break;
        };
        let candidate: Vec<f64> = x.iter().zip(delta.iter()).map(|(a, d)| a - d).collect();
        let q_new = q(map, &candidate);
        if q_new.partial_cmp(&q_now) != Some(std::cmp::Ordering::Less) {
            break;
        }
        *x = candidate;
        q_now = q_new;
    }
}

/// Jacobian, eigenvalues, stability and slow modes at `x`.
fn linearise<M: StepMap>(map: &M, x: Vec<f64>, q: f64) -> Result<FixedPoint> {
    let j = map.jacobian(&x);
    let mut eig = eigenvalues(&j)?;
    eig.sort_by(|a, b| modulus(b).total_cmp(&modulus(a)));
    let n_unstable = eig.iter().filter(|e| modulus(e) > 1.0).count();
    let stability = match n_unstable {
        0 => Stability::Stable,
        u if u == eig.len() => Stability::Unstable,
        _ => Stability::Saddle,
    };
    let slowest_time_constants_ms = eig
        .iter()
        .map(modulus)
        .filter(|&m| m < 1.0 && m > 0.0)
        .take(5)
        .map(|m| -map.dt() / m.ln())
        .collect();
    Ok(FixedPoint {
        x,
        q,
        jacobian: j.iter().copied().collect(),
        eigenvalues: eig,
        stability,
        n_unstable,
        slowest_time_constants_ms,
    })
}

fn modulus(e: &[f64; 2]) -> f64 {
    e[0].hypot(e[1])
}

/// Eigenvalues `[re, im]` of a square matrix (real Schur decomposition).
pub fn eigenvalues(m: &Array2<f64>) -> Result<Vec<[f64; 2]>> {
    let n = m.nrows();
    if m.ncols() != n {
        return Err(Error::shape("matrix", &[n, n], m.shape()));
    }
    let a = DMatrix::from_row_iterator(n, n, m.iter().copied());
    // nalgebra's QR iteration can stall at machine epsilon; 1e-14 is ample for eigenvalues.
    let schur = [1e-14, 1e-12]
        .into_iter()
        .find_map(|eps| nalgebra::Schur::try_new(a.clone(), eps, 100_000))
        .ok_or_else(|| {
            Error::invalid(
                "jacobian",
                "the Schur decomposition did not converge (non-finite entries?)",
            )
        })?;
    Ok(schur.complex_eigenvalues().iter().map(|c| [c.re, c.im]).collect())
}
