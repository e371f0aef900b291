//! The leaky rate RNN of PsychRNN, its biological constraints and initialisers.
//!
//! With pre-activation state `x` (`[batch, n_rec]`), input `u_k`, rate `f(x)` and `α = dt/τ`:
//!
//! ```text
//! x_k = (1 − α)·x_{k−1} + α·( f(x_{k−1})·W_recᵀ + u_k·W_inᵀ + b_rec ) + rec_noise·sqrt(2α)·ξ_k
//! z_k = f(x_k)·W_outᵀ + b_out          (the output reads the new state)
//! ```
//!
//! `x_{−1}` is the trainable `init_state`. The weights used are the *effective* weights, derived
//! from the raw parameters and the constraints each time they are needed (never stored apart):
//! `W ⊙ C`, or under Dale's law `|W_rec ⊙ C_rec|·D_rec`, `|W_in ⊙ C_in|`, `|W_out ⊙ C_out|·D_out`.
//!
//! ```
//! use psychrnn::prelude::*;
//! let config = RateRnnConfig { n_rec: 20, dale_ratio: Some(0.8), ..Default::default() };
//! let model = config.init(&mut TrialRng::seeded(0))?;
//! let w = model.effective_w_rec(); // [n_rec, n_rec]; columns of inhibitory units ≤ 0
//! assert!(w.column(19).iter().all(|&v| v <= 0.0));
//! # Ok::<(), psychrnn::Error>(())
//! ```

mod gated;
mod init;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

pub use gated::{Cell, GatedRnn, GatedRnnConfig, GatedRnnParams};
pub use init::{Initializer, RandInit};

use crate::error::{Error, Result, check_positive};
use crate::rng::TrialRng;
use crate::task::TaskSpec;

/// Transfer (activation) function `f` turning states into rates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transfer {
    /// `max(x, 0)` (PsychRNN's default).
    #[default]
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x`.
    Linear,
}

impl Transfer {
    /// All transfer functions, in a fixed order.
    pub const ALL: [Transfer; 5] = [Self::Relu, Self::Tanh, Self::Sigmoid, Self::Softplus, Self::Linear];

    /// `f(x)`.
    #[inline]
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Self::Relu => x.max(0.0),
            Self::Tanh => x.tanh(),
            Self::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Self::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
            Self::Linear => x,
        }
    }

    /// `f′(x)` (relu′(0) = 0, as TensorFlow).
    #[inline]
    pub fn derivative(self, x: f64) -> f64 {
        match self {
            Self::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Tanh => 1.0 - x.tanh().powi(2),
            Self::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                s * (1.0 - s)
            }
            Self::Softplus => 1.0 / (1.0 + (-x).exp()),
            Self::Linear => 1.0,
        }
    }

    /// The name used in configs and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Relu => "relu",
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Softplus => "softplus",
            Self::Linear => "linear",
        }
    }

    /// Parses a name (`relu`, `tanh`, `sigmoid`, `softplus`, `linear`; `identity` is `linear`).
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "identity" => Ok(Self::Linear),
            _ => Self::ALL
                .into_iter()
                .find(|t| t.name() == name)
                .ok_or_else(|| Error::Unknown {
                    kind: "transfer function",
                    name: name.to_string(),
                    known: "relu, tanh, sigmoid, softplus, linear".into(),
                }),
        }
    }

    /// The TensorFlow function (module, qualified name) PsychRNN pickles for this transfer
    /// function in weight files.
    pub fn tensorflow_reference(self) -> (&'static str, &'static str) {
        match self {
            Self::Relu => ("tensorflow.python.ops.gen_nn_ops", "relu"),
            Self::Tanh => ("tensorflow.python.ops.gen_math_ops", "tanh"),
            Self::Sigmoid => ("tensorflow.python.ops.math_ops", "sigmoid"),
            Self::Softplus => ("tensorflow.python.ops.math_ops", "softplus"),
            Self::Linear => ("tensorflow.python.ops.array_ops", "identity"),
        }
    }

    /// Maps a pickled function reference (TensorFlow's or PsychRNN's NumPy simulator's) by its
    /// final name: `relu`, `tanh`, `sigmoid`, `softplus`, `identity`/`linear`.
    pub fn from_function_name(qualified_name: &str) -> Option<Self> {
        let last = qualified_name.rsplit('.').next().unwrap_or(qualified_name);
        Self::from_name(last).ok()
    }
}

impl std::fmt::Display for Transfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Transfer {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::from_name(s)
    }
}

/// Time constant(s) in ms: one for all units, or one per recurrent unit (per-unit α).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Tau {
    /// The same τ for every unit.
    Scalar(f64),
    /// τ of each recurrent unit, `[n_rec]`.
    PerUnit(Vec<f64>),
}

impl Default for Tau {
    fn default() -> Self {
        Tau::Scalar(100.0)
    }
}

/// Which parameters training may change (PsychRNN's `*_train` flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Trainable {
    /// `W_in_train`.
    pub w_in: bool,
    /// `W_rec_train`.
    pub w_rec: bool,
    /// `W_out_train`.
    pub w_out: bool,
    /// `b_rec_train`.
    pub b_rec: bool,
    /// `b_out_train`.
    pub b_out: bool,
    /// `init_state_train`.
    pub init_state: bool,
}

impl Default for Trainable {
    fn default() -> Self {
        Self {
            w_in: true,
            w_rec: true,
            w_out: true,
            b_rec: true,
            b_out: true,
            init_state: true,
        }
    }
}

/// Everything that defines a rate RNN before its weights are drawn.
///
/// Defaults are PsychRNN's: 2 → 50 → 2 units, dt 10 ms, τ 100 ms, relu, no noise, no Dale,
/// autapses on, full connectivity, GaussianSpectralRadius(1.1) with glorot-gauss W_in/W_out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateRnnConfig {
    /// Inputs.
    pub n_in: usize,
    /// Recurrent units.
    pub n_rec: usize,
    /// Outputs.
    pub n_out: usize,
    /// Time step (ms).
    pub dt: f64,
    /// Time constant(s) (ms).
    pub tau: Tau,
    /// σ of the recurrent noise; the per-step std is `rec_noise·sqrt(2α)`.
    pub rec_noise: f64,
    /// Transfer function.
    pub transfer: Transfer,
    /// Fraction of excitatory units (the first `floor(dale_ratio·n_rec)`); `None` = no Dale's law.
    /// As in PsychRNN, `Some(0.0)` also disables Dale's law.
    pub dale_ratio: Option<f64>,
    /// Self-connections allowed; `false` zeroes the diagonal of `rec_connectivity`.
    pub autapses: bool,
    /// 0/1 mask `[n_rec, n_in]`; `None` = all ones.
    pub input_connectivity: Option<Array2<f32>>,
    /// 0/1 mask `[n_rec, n_rec]` (row = postsynaptic); `None` = all ones.
    pub rec_connectivity: Option<Array2<f32>>,
    /// 0/1 mask `[n_out, n_rec]`; `None` = all ones.
    pub output_connectivity: Option<Array2<f32>>,
    /// How `W_rec` is initialised.
    pub initializer: Initializer,
    /// Random init of `W_in`, `W_out` (and `W_rec` for [`Initializer::Random`]).
    pub which_rand_init: RandInit,
    /// Random init of `W_rec` for [`Initializer::Random`]; `None` = `which_rand_init`.
    pub which_rand_w_rec_init: Option<RandInit>,
    /// Per-matrix trainable flags.
    pub trainable: Trainable,
}

impl Default for RateRnnConfig {
    fn default() -> Self {
        Self {
            n_in: 2,
            n_rec: 50,
            n_out: 2,
            dt: 10.0,
            tau: Tau::default(),
            rec_noise: 0.0,
            transfer: Transfer::Relu,
            dale_ratio: None,
            autapses: true,
            input_connectivity: None,
            rec_connectivity: None,
            output_connectivity: None,
            initializer: Initializer::default(),
            which_rand_init: RandInit::GlorotGauss,
            which_rand_w_rec_init: None,
            trainable: Trainable::default(),
        }
    }
}

impl RateRnnConfig {
    /// A default config sized and timed for a task (`n_in`, `n_out`, `dt`, `tau` from its spec).
    pub fn for_task(spec: &TaskSpec) -> Self {
        Self {
            n_in: spec.n_in,
            n_out: spec.n_out,
            dt: spec.dt,
            tau: Tau::Scalar(spec.tau),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first bad one and its allowed range.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("n_in", self.n_in), ("n_rec", self.n_rec), ("n_out", self.n_out)] {
            if v == 0 {
                return Err(Error::range(field, v, ">= 1"));
            }
        }
        check_positive("dt", self.dt)?;
        match &self.tau {
            Tau::Scalar(t) => check_positive("tau", *t)?,
            Tau::PerUnit(ts) => {
                if ts.len() != self.n_rec {
                    return Err(Error::shape("tau", &[self.n_rec], &[ts.len()]));
                }
                for t in ts {
                    check_positive("tau", *t)?;
                }
            }
        }
        if !(self.rec_noise.is_finite() && self.rec_noise >= 0.0) {
            return Err(Error::range("rec_noise", self.rec_noise, "finite and >= 0"));
        }
        if let Some(r) = self.dale_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(Error::range("dale_ratio", r, "in [0, 1]"));
        }
        let masks = [
            ("input_connectivity", &self.input_connectivity, [self.n_rec, self.n_in]),
            ("rec_connectivity", &self.rec_connectivity, [self.n_rec, self.n_rec]),
            (
                "output_connectivity",
                &self.output_connectivity,
                [self.n_out, self.n_rec],
            ),
        ];
        for (field, mask, shape) in masks {
            if let Some(m) = mask {
                check_mask(field, m, shape)?;
            }
        }
        self.initializer.validate(self)?;
        self.which_rand_init.validate("which_rand_init")?;
        if let Some(r) = &self.which_rand_w_rec_init {
            r.validate("which_rand_w_rec_init")?;
        }
        Ok(())
    }

    /// `α = dt/τ` of each recurrent unit, `[n_rec]`.
    pub fn alpha(&self) -> Vec<f64> {
        match &self.tau {
            Tau::Scalar(t) => vec![self.dt / t; self.n_rec],
            Tau::PerUnit(ts) => ts.iter().map(|t| self.dt / t).collect(),
        }
    }

    /// Validates, then draws the initial weights from `rng` (in PsychRNN's draw order, so
    /// `TrialRng::numpy(s)` reproduces `np.random.seed(s)` + PsychRNN's initialiser).
    pub fn init(&self, rng: &mut TrialRng) -> Result<RateRnn> {
        self.validate()?;
        init::initialise(self, rng)
    }
}

fn check_mask(field: &str, m: &Array2<f32>, shape: [usize; 2]) -> Result<()> {
    if m.shape() != shape {
        return Err(Error::shape(field, &shape, m.shape()));
    }
    if let Some(v) = m.iter().find(|&&v| v != 0.0 && v != 1.0) {
        return Err(Error::range(field, v, "entries 0 or 1"));
    }
    Ok(())
}

/// The constraints that turn raw parameters into effective weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Constraints {
    /// Whether Dale's law is applied (PsychRNN: `dale_ratio` truthy).
    pub dale: bool,
    /// Diagonal of `Dale_rec`: +1 excitatory, −1 inhibitory, `[n_rec]`.
    pub dale_rec: Array1<f32>,
    /// Diagonal of `Dale_out`: 1 excitatory, 0 inhibitory (GitHub master; PyPI 1.0.0 wrote ±1), `[n_rec]`.
    pub dale_out: Array1<f32>,
    /// `[n_rec, n_in]`.
    pub input_connectivity: Array2<f32>,
    /// `[n_rec, n_rec]`, zero diagonal without autapses.
    pub rec_connectivity: Array2<f32>,
    /// `[n_out, n_rec]`.
    pub output_connectivity: Array2<f32>,
}

/// The trainable parameters (raw, before constraints), f32 as in PsychRNN.
#[derive(Clone, Debug, PartialEq)]
pub struct RateRnnParams {
    /// `[n_rec, n_in]`.
    pub w_in: Array2<f32>,
    /// `[n_rec, n_rec]`, `w_rec[i, j]` from unit j to unit i.
    pub w_rec: Array2<f32>,
    /// `[n_out, n_rec]`.
    pub w_out: Array2<f32>,
    /// `[n_rec]`.
    pub b_rec: Array1<f32>,
    /// `[n_out]`.
    pub b_out: Array1<f32>,
    /// `[n_rec]`.
    pub init_state: Array1<f32>,
}

impl RateRnnParams {
    /// The six tensors flattened row-major, in PsychRNN's variable order:
    /// `init_state, W_in, W_rec, W_out, b_rec, b_out`.
    pub fn slices(&self) -> [&[f32]; 6] {
        let c = "parameters are contiguous";
        [
            self.init_state.as_slice().expect(c),
            self.w_in.as_slice().expect(c),
            self.w_rec.as_slice().expect(c),
            self.w_out.as_slice().expect(c),
            self.b_rec.as_slice().expect(c),
            self.b_out.as_slice().expect(c),
        ]
    }

    /// Mutable [`RateRnnParams::slices`].
    pub fn slices_mut(&mut self) -> [&mut [f32]; 6] {
        let c = "parameters are contiguous";
        [
            self.init_state.as_slice_mut().expect(c),
            self.w_in.as_slice_mut().expect(c),
            self.w_rec.as_slice_mut().expect(c),
            self.w_out.as_slice_mut().expect(c),
            self.b_rec.as_slice_mut().expect(c),
            self.b_out.as_slice_mut().expect(c),
        ]
    }
}

impl Trainable {
    /// The flags in PsychRNN's variable order (see [`RateRnnParams::slices`]).
    pub fn flags(&self) -> [bool; 6] {
        [
            self.init_state,
            self.w_in,
            self.w_rec,
            self.w_out,
            self.b_rec,
            self.b_out,
        ]
    }

    /// From flags in PsychRNN's variable order.
    pub fn from_flags(f: [bool; 6]) -> Self {
        Self {
            init_state: f[0],
            w_in: f[1],
            w_rec: f[2],
            w_out: f[3],
            b_rec: f[4],
            b_out: f[5],
        }
    }
}

/// A rate RNN: its configuration, raw parameters and constraints.
#[derive(Clone, Debug, PartialEq)]
pub struct RateRnn {
    /// The configuration it was built from (sizes, time constants, noise, transfer function).
    pub config: RateRnnConfig,
    /// Raw parameters.
    pub params: RateRnnParams,
    /// Dale vectors and connectivity masks.
    pub constraints: Constraints,
}

impl RateRnn {
    /// Builds a model from explicit parameters and constraints, checking all shapes.
    pub fn from_parts(config: RateRnnConfig, params: RateRnnParams, constraints: Constraints) -> Result<Self> {
        config.validate()?;
        let (i, n, o) = (config.n_in, config.n_rec, config.n_out);
        let checks: [(&str, &[usize], Vec<usize>); 12] = [
            ("W_in", params.w_in.shape(), vec![n, i]),
            ("W_rec", params.w_rec.shape(), vec![n, n]),
            ("W_out", params.w_out.shape(), vec![o, n]),
            ("b_rec", params.b_rec.shape(), vec![n]),
            ("b_out", params.b_out.shape(), vec![o]),
            ("init_state", params.init_state.shape(), vec![n]),
            ("Dale_rec", constraints.dale_rec.shape(), vec![n]),
            ("Dale_out", constraints.dale_out.shape(), vec![n]),
            ("input_connectivity", constraints.input_connectivity.shape(), vec![n, i]),
            ("rec_connectivity", constraints.rec_connectivity.shape(), vec![n, n]),
            (
                "output_connectivity",
                constraints.output_connectivity.shape(),
                vec![o, n],
            ),
            ("tau", &[config.alpha().len()], vec![n]),
        ];
        for (field, got, expected) in checks {
            if got != expected.as_slice() {
                return Err(Error::shape(field, &expected, got));
            }
        }
        Ok(Self {
            config,
            params,
            constraints,
        })
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.config.n_in
    }
    /// Number of recurrent units.
    pub fn n_rec(&self) -> usize {
        self.config.n_rec
    }
    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.config.n_out
    }

    /// `α` per recurrent unit, `[n_rec]`.
    pub fn alpha(&self) -> Vec<f64> {
        self.config.alpha()
    }

    /// Effective input weights `[n_rec, n_in]`: `W_in ⊙ C_in`, or `|W_in ⊙ C_in|` under Dale.
    pub fn effective_w_in(&self) -> Array2<f32> {
        self.effective(&self.params.w_in, &self.constraints.input_connectivity, None)
    }

    /// Effective recurrent weights `[n_rec, n_rec]`: `W_rec ⊙ C_rec`, or `|W_rec ⊙ C_rec|·D_rec`.
    pub fn effective_w_rec(&self) -> Array2<f32> {
        self.effective(
            &self.params.w_rec,
            &self.constraints.rec_connectivity,
            Some(&self.constraints.dale_rec),
        )
    }

    /// Effective output weights `[n_out, n_rec]`: `W_out ⊙ C_out`, or `|W_out ⊙ C_out|·D_out`.
    pub fn effective_w_out(&self) -> Array2<f32> {
        self.effective(
            &self.params.w_out,
            &self.constraints.output_connectivity,
            Some(&self.constraints.dale_out),
        )
    }

    fn effective(&self, w: &Array2<f32>, c: &Array2<f32>, dale: Option<&Array1<f32>>) -> Array2<f32> {
        let mut out = w * c;
        if self.constraints.dale {
            out.mapv_inplace(f32::abs);
            if let Some(d) = dale {
                // `|W ⊙ C| · diag(d)`: column j scaled by d_j.
                out *= &d.view().insert_axis(ndarray::Axis(0));
            }
        }
        out
    }
}

/// Excitatory count `floor(dale_ratio · n_rec)` and the two Dale diagonals (master's 1/0 `Dale_out`).
pub(crate) fn dale_vectors(dale_ratio: Option<f64>, n_rec: usize) -> (Array1<f32>, Array1<f32>) {
    match dale_ratio {
        None => (Array1::ones(n_rec), Array1::ones(n_rec)),
        Some(r) => {
            let n_e = (r * n_rec as f64) as usize;
            let rec = Array1::from_shape_fn(n_rec, |j| if j < n_e { 1.0 } else { -1.0 });
            let out = Array1::from_shape_fn(n_rec, |j| if j < n_e { 1.0 } else { 0.0 });
            (rec, out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_values_and_derivatives() {
        assert_eq!(Transfer::Relu.apply(-1.0), 0.0);
        assert_eq!(Transfer::Sigmoid.apply(0.0), 0.5);
        assert!((Transfer::Softplus.apply(0.0) - 2f64.ln()).abs() < 1e-15);
        // Softplus stays finite for large arguments.
        assert_eq!(Transfer::Softplus.apply(1000.0), 1000.0);
        for t in Transfer::ALL {
            for x in [-1.3, -0.2, 0.4, 2.1] {
                let h = 1e-6;
                let fd = (t.apply(x + h) - t.apply(x - h)) / (2.0 * h);
                assert!((fd - t.derivative(x)).abs() < 1e-8, "{t} at {x}");
            }
        }
    }

    #[test]
    fn transfer_names_round_trip_and_unknown_is_an_error() {
        for t in Transfer::ALL {
            assert_eq!(Transfer::from_name(t.name()).unwrap(), t);
            let (module, name) = t.tensorflow_reference();
            assert_eq!(Transfer::from_function_name(&format!("{module}.{name}")), Some(t));
        }
        assert!(matches!(Transfer::from_name("gelu"), Err(Error::Unknown { .. })));
    }

    fn expect_range(config: RateRnnConfig, field: &str) {
        match config.validate() {
            Err(Error::OutOfRange { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected OutOfRange on {field}, got {other:?}"),
        }
    }

    #[test]
    fn invalid_configs_name_their_field() {
        expect_range(
            RateRnnConfig {
                dale_ratio: Some(1.5),
                ..Default::default()
            },
            "dale_ratio",
        );
        expect_range(
            RateRnnConfig {
                dale_ratio: Some(-0.1),
                ..Default::default()
            },
            "dale_ratio",
        );
        expect_range(
            RateRnnConfig {
                dt: 0.0,
                ..Default::default()
            },
            "dt",
        );
        expect_range(
            RateRnnConfig {
                dt: -10.0,
                ..Default::default()
            },
            "dt",
        );
        expect_range(
            RateRnnConfig {
                tau: Tau::Scalar(0.0),
                ..Default::default()
            },
            "tau",
        );
        expect_range(
            RateRnnConfig {
                tau: Tau::Scalar(-5.0),
                ..Default::default()
            },
            "tau",
        );
        expect_range(
            RateRnnConfig {
                rec_noise: -0.1,
                ..Default::default()
            },
            "rec_noise",
        );
        expect_range(
            RateRnnConfig {
                n_rec: 0,
                ..Default::default()
            },
            "n_rec",
        );
        let bad_values = Array2::from_elem((50, 50), 0.5);
        expect_range(
            RateRnnConfig {
                rec_connectivity: Some(bad_values),
                ..Default::default()
            },
            "rec_connectivity",
        );
    }

    #[test]
    fn masks_of_the_wrong_shape_are_shape_errors() {
        for (config, field) in [
            (
                RateRnnConfig {
                    input_connectivity: Some(Array2::ones((50, 3))),
                    ..Default::default()
                },
                "input_connectivity",
            ),
            (
                RateRnnConfig {
                    rec_connectivity: Some(Array2::ones((49, 50))),
                    ..Default::default()
                },
                "rec_connectivity",
            ),
            (
                RateRnnConfig {
                    output_connectivity: Some(Array2::ones((50, 2))),
                    ..Default::default()
                },
                "output_connectivity",
            ),
            (
                RateRnnConfig {
                    tau: Tau::PerUnit(vec![100.0; 3]),
                    ..Default::default()
                },
                "tau",
            ),
        ] {
            match config.validate() {
                Err(Error::Shape { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn dale_effective_weights_have_fixed_signs_and_respect_masks() {
        let mut mask = Array2::<f32>::ones((10, 10));
        mask[[0, 9]] = 0.0;
        let config = RateRnnConfig {
            n_rec: 10,
            dale_ratio: Some(0.8),
            rec_connectivity: Some(mask),
            autapses: false,
            ..Default::default()
        };
        let m = config.init(&mut TrialRng::seeded(2)).unwrap();
        let w = m.effective_w_rec();
        for i in 0..10 {
            assert_eq!(w[[i, i]], 0.0, "autapse {i}");
            for j in 0..10 {
                if j < 8 {
                    assert!(w[[i, j]] >= 0.0);
                } else {
                    assert!(w[[i, j]] <= 0.0);
                }
            }
        }
        assert_eq!(w[[0, 9]], 0.0);
        assert!(m.effective_w_in().iter().all(|&v| v >= 0.0));
        let w_out = m.effective_w_out();
        assert!(w_out.column(8).iter().chain(w_out.column(9).iter()).all(|&v| v == 0.0));
        assert!(w_out.iter().all(|&v| v >= 0.0));
    }

    #[test]
    fn dale_ratio_zero_disables_dale_as_in_psychrnn() {
        let config = RateRnnConfig {
            n_rec: 6,
            dale_ratio: Some(0.0),
            ..Default::default()
        };
        let m = config.init(&mut TrialRng::seeded(2)).unwrap();
        assert!(!m.constraints.dale);
        assert_eq!(m.effective_w_rec(), m.params.w_rec);
    }

    #[test]
    fn per_unit_tau_gives_per_unit_alpha() {
        let config = RateRnnConfig {
            n_rec: 3,
            tau: Tau::PerUnit(vec![100.0, 50.0, 20.0]),
            ..Default::default()
        };
        assert_eq!(config.alpha(), vec![0.1, 0.2, 0.5]);
    }
}
