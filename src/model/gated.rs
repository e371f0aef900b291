//! Gated recurrent networks beside the rate RNN: the LSTM (standard, or PsychRNN's variant), and
//! the GRU. They take no biological constraints (as in PsychRNN) and no time constant: one step
//! per time bin.
//!
//! With `z = [h, u]` (hidden first, then input, PsychRNN's layout) and gate matrices
//! `[n_rec + n_in, n_rec]`:
//!
//! ```text
//! LSTM:  f = σ(z·W_f + b_f)   i = σ(z·W_i + b_i)   c̃ = tanh(z·W_c + b_c)   o = σ(z·W_o + b_o)
//!        c' = f⊙c + i⊙c̃      h' = o⊙tanh(c')      (PsychRNN's LSTM: h' = o⊙σ(c'), spec §3.4)
//! GRU:   g = σ(z·W_z + b_z)   r = σ(z·W_r + b_r)   h̃ = tanh([r⊙h, u]·W_h + b_h)
//!        h' = g⊙h + (1 − g)⊙h̃                      (Cho et al. 2014; TensorFlow's GRUCell)
//! out = h'·W_outᵀ + b_out
//! ```
//!
//! ```
//! use psychrnn::prelude::*;
//! let lstm = GatedRnnConfig { n_rec: 16, ..GatedRnnConfig::new(Cell::Lstm) }.init(&mut TrialRng::seeded(0))?;
//! let x = Array3::<f32>::zeros((3, 40, 2));                   // [batch, time, n_in]
//! let sim = lstm.simulate(&x)?;
//! assert_eq!(sim.states.shape(), &[3, 40, 16]);              // hidden states h
//! # Ok::<(), psychrnn::Error>(())
//! ```

use ndarray::{Array1, Array2, Array3, ArrayBase, Data, Ix3};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, check_positive};
use crate::rng::TrialRng;
use crate::simulate::Simulation;
use crate::task::TaskSpec;

/// Which gated cell.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// The standard LSTM (`h = o⊙tanh(c)`).
    #[default]
    Lstm,
    /// PsychRNN's LSTM (`h = o⊙σ(c)`), so its LSTM weight files run as they were trained.
    PsychrnnLstm,
    /// The gated recurrent unit.
    Gru,
}

impl Cell {
    /// Gate names (suffixes of `W_*`/`b_*`), in PsychRNN's order for the LSTM.
    pub fn gates(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm | Cell::PsychrnnLstm => &["f", "i", "c", "o"],
            Cell::Gru => &["z", "r", "h"],
        }
    }

    /// Whether the cell has a cell state `c` (the LSTMs).
    pub fn has_cell_state(self) -> bool {
        self != Cell::Gru
    }

    /// Initial bias of each gate: 1 for all LSTM gates (PsychRNN), 1 for the GRU's gates and 0
    /// for its candidate (TensorFlow's GRUCell).
    fn initial_bias(self, gate: &str) -> f32 {
        if self == Cell::Gru && gate == "h" { 0.0 } else { 1.0 }
    }
}

/// Sizes and cell of a gated network. Weights start as PsychRNN's LSTM does: gate matrices,
/// `init_hidden`, `init_cell` and `W_out` drawn from N(0, `init_std`²), gate biases as
/// [`Cell`] says, `b_out` 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatedRnnConfig {
    /// Which cell.
    pub cell: Cell,
    /// Inputs.
    pub n_in: usize,
    /// Hidden units.
    pub n_rec: usize,
    /// Outputs.
    pub n_out: usize,
    /// Time step of the task grid (ms); kept for the record, the update has no time constant.
    pub dt: f64,
    /// σ of the initial weights.
    pub init_std: f64,
}

impl Default for GatedRnnConfig {
    fn default() -> Self {
        Self::new(Cell::Lstm)
    }
}

impl GatedRnnConfig {
    /// PsychRNN's default sizes (2 → 50 → 2) with `cell`.
    pub fn new(cell: Cell) -> Self {
        Self {
            cell,
            n_in: 2,
            n_rec: 50,
            n_out: 2,
            dt: 10.0,
            init_std: 0.1,
        }
    }

    /// Sized for a task.
    pub fn for_task(cell: Cell, spec: &TaskSpec) -> Self {
        Self {
            n_in: spec.n_in,
            n_out: spec.n_out,
            dt: spec.dt,
            ..Self::new(cell)
        }
    }

    /// Checks every field.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [("n_in", self.n_in), ("n_rec", self.n_rec), ("n_out", self.n_out)] {
            if v == 0 {
                return Err(Error::range(field, v, ">= 1"));
            }
        }
        check_positive("dt", self.dt)?;
        if !(self.init_std.is_finite() && self.init_std >= 0.0) {
            return Err(Error::range("init_std", self.init_std, "finite and >= 0"));
        }
        Ok(())
    }

    /// Validates, then draws the weights from `rng`.
    pub fn init(&self, rng: &mut TrialRng) -> Result<GatedRnn> {
        self.validate()?;
        let (i, n, o) = (self.n_in, self.n_rec, self.n_out);
        let s = self.init_std;
        let mut normal = |len: usize| -> Vec<f32> { (0..len).map(|_| (s * rng.normal()) as f32).collect() };
        let gates = self.cell.gates();
        let w_gates = gates
            .iter()
            .map(|_| Array2::from_shape_vec((n + i, n), normal((n + i) * n)).expect("sizes"))
            .collect();
        let b_gates = gates
            .iter()
            .map(|g| Array1::from_elem(n, self.cell.initial_bias(g)))
            .collect();
        let params = GatedRnnParams {
            w_out: Array2::from_shape_vec((o, n), normal(o * n)).expect("sizes"),
            b_out: Array1::zeros(o),
            init_hidden: Array1::from(normal(n)),
            init_cell: if self.cell.has_cell_state() {
                Array1::from(normal(n))
            } else {
                Array1::zeros(0)
            },
            w_gates,
            b_gates,
        };
        GatedRnn::from_parts(self.clone(), params)
    }
}

/// The trainable tensors of a gated network.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedRnnParams {
    /// `[n_out, n_rec]`.
    pub w_out: Array2<f32>,
    /// `[n_out]`.
    pub b_out: Array1<f32>,
    /// `[n_rec]`.
    pub init_hidden: Array1<f32>,
    /// `[n_rec]` for the LSTMs, empty for the GRU.
    pub init_cell: Array1<f32>,
    /// One `[n_rec + n_in, n_rec]` matrix per gate, in [`Cell::gates`] order.
    pub w_gates: Vec<Array2<f32>>,
    /// One `[n_rec]` bias per gate.
    pub b_gates: Vec<Array1<f32>>,
}

/// An LSTM or GRU network.
#[derive(Clone, Debug, PartialEq)]
pub struct GatedRnn {
    /// Sizes and cell.
    pub config: GatedRnnConfig,
    /// Weights.
    pub params: GatedRnnParams,
}

impl GatedRnn {
    /// Builds a network from explicit weights, checking every shape.
    pub fn from_parts(config: GatedRnnConfig, params: GatedRnnParams) -> Result<Self> {
        config.validate()?;
        let (i, n, o) = (config.n_in, config.n_rec, config.n_out);
        let gates = config.cell.gates();
        if params.w_gates.len() != gates.len() || params.b_gates.len() != gates.len() {
            return Err(Error::shape("gates", &[gates.len()], &[params.w_gates.len()]));
        }
        let cell = if config.cell.has_cell_state() { n } else { 0 };
        let mut checks: Vec<(String, Vec<usize>, Vec<usize>)> = vec![
            ("W_out".into(), params.w_out.shape().to_vec(), vec![o, n]),
            ("b_out".into(), params.b_out.shape().to_vec(), vec![o]),
            ("init_hidden".into(), params.init_hidden.shape().to_vec(), vec![n]),
            ("init_cell".into(), params.init_cell.shape().to_vec(), vec![cell]),
        ];
        for (g, (w, b)) in gates.iter().zip(params.w_gates.iter().zip(&params.b_gates)) {
            checks.push((format!("W_{g}"), w.shape().to_vec(), vec![n + i, n]));
            checks.push((format!("b_{g}"), b.shape().to_vec(), vec![n]));
        }
        for (field, got, expected) in checks {
            if got != expected {
                return Err(Error::shape(field, &expected, &got));
            }
        }
        Ok(Self { config, params })
    }

    /// Number of inputs.
    pub fn n_in(&self) -> usize {
        self.config.n_in
    }
    /// Number of hidden units.
    pub fn n_rec(&self) -> usize {
        self.config.n_rec
    }
    /// Number of outputs.
    pub fn n_out(&self) -> usize {
        self.config.n_out
    }

    /// PsychRNN's names of the trainable tensors, in the order of [`GatedRnn::slices`].
    pub fn param_names(&self) -> Vec<String> {
        let mut names: Vec<String> = vec!["W_out".into(), "b_out".into(), "init_hidden".into()];
        if self.config.cell.has_cell_state() {
            names.push("init_cell".into());
        }
        let gates = self.config.cell.gates();
        names.extend(gates.iter().map(|g| format!("W_{g}")));
        names.extend(gates.iter().map(|g| format!("b_{g}")));
        names
    }

    /// The trainable tensors flattened row-major, in [`GatedRnn::param_names`] order.
    pub fn slices(&self) -> Vec<&[f32]> {
        let c = "parameters are contiguous";
        let p = &self.params;
        let mut out = vec![
            p.w_out.as_slice().expect(c),
            p.b_out.as_slice().expect(c),
            p.init_hidden.as_slice().expect(c),
        ];
        if self.config.cell.has_cell_state() {
            out.push(p.init_cell.as_slice().expect(c));
        }
        out.extend(p.w_gates.iter().map(|w| w.as_slice().expect(c)));
        out.extend(p.b_gates.iter().map(|b| b.as_slice().expect(c)));
        out
    }

    /// Mutable [`GatedRnn::slices`].
    pub fn slices_mut(&mut self) -> Vec<&mut [f32]> {
        let c = "parameters are contiguous";
        let has_cell = self.config.cell.has_cell_state();
        let p = &mut self.params;
        let mut out = vec![
            p.w_out.as_slice_mut().expect(c),
            p.b_out.as_slice_mut().expect(c),
            p.init_hidden.as_slice_mut().expect(c),
        ];
        if has_cell {
            out.push(p.init_cell.as_slice_mut().expect(c));
        }
        out.extend(p.w_gates.iter_mut().map(|w| w.as_slice_mut().expect(c)));
        out.extend(p.b_gates.iter_mut().map(|b| b.as_slice_mut().expect(c)));
        out
    }

    /// Shapes of [`GatedRnn::slices`] as files store them (`init_hidden`/`init_cell` `[1, n_rec]`).
    pub fn param_shapes(&self) -> Vec<Vec<usize>> {
        let (i, n, o) = (self.n_in(), self.n_rec(), self.n_out());
        let mut out = vec![vec![o, n], vec![o], vec![1, n]];
        if self.config.cell.has_cell_state() {
            out.push(vec![1, n]);
        }
        let k = self.config.cell.gates().len();
        out.extend((0..k).map(|_| vec![n + i, n]));
        out.extend((0..k).map(|_| vec![n]));
        out
    }

    /// One step on the host in f64: `(h, c)` → `(h', c')`, rows of `[batch, n_rec]`, `u` `[batch, n_in]`.
    pub fn step(&self, h: &Array2<f64>, c: &Array2<f64>, u: &Array2<f64>) -> (Array2<f64>, Array2<f64>) {
        let n = self.n_rec();
        let p = &self.params;
        let w: Vec<Array2<f64>> = p.w_gates.iter().map(|w| w.mapv(f64::from)).collect();
        let b: Vec<Array1<f64>> = p.b_gates.iter().map(|b| b.mapv(f64::from)).collect();
        let z = ndarray::concatenate(ndarray::Axis(1), &[h.view(), u.view()]).expect("same rows");
        let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
        let pre = |k: usize, z: &Array2<f64>| z.dot(&w[k]) + &b[k];
        match self.config.cell {
            Cell::Lstm | Cell::PsychrnnLstm => {
                let f = pre(0, &z).mapv(sigmoid);
                let i = pre(1, &z).mapv(sigmoid);
                let cand = pre(2, &z).mapv(f64::tanh);
                let o = pre(3, &z).mapv(sigmoid);
                let c_new = f * c + i * cand;
                let squash = if self.config.cell == Cell::Lstm {
                    f64::tanh
                } else {
                    sigmoid
                };
                (o * c_new.mapv(squash), c_new)
            }
            Cell::Gru => {
                let g = pre(0, &z).mapv(sigmoid);
                let r = pre(1, &z).mapv(sigmoid);
                let zr = ndarray::concatenate(ndarray::Axis(1), &[(&r * h).view(), u.view()]).expect("same rows");
                let cand = pre(2, &zr).mapv(f64::tanh);
                let h_new = &g * h + (1.0 - &g) * cand;
                debug_assert_eq!(h_new.ncols(), n);
                (h_new, c.clone())
            }
        }
    }

    /// Runs inputs `x` `[batch, time, n_in]` in f64 from the initial state; `states` are the
    /// hidden states `h` `[batch, time, n_rec]`.
    pub fn simulate<S, A>(&self, x: &ArrayBase<S, Ix3>) -> Result<Simulation>
    where
        S: Data<Elem = A>,
        A: Copy + Into<f64>,
    {
        let (b, t, n_in) = x.dim();
        if n_in != self.n_in() {
            return Err(Error::shape("inputs", &[b, t, self.n_in()], &[b, t, n_in]));
        }
        if b == 0 || t == 0 {
            return Err(Error::Empty {
                what: format!("input batch of shape [{b}, {t}, {n_in}]"),
            });
        }
        let (n, o) = (self.n_rec(), self.n_out());
        let p = &self.params;
        let tile = |v: &Array1<f32>| Array2::from_shape_fn((b, v.len()), |(_, j)| v[j] as f64);
        let (mut h, mut c) = (tile(&p.init_hidden), tile(&p.init_cell));
        let w_out = p.w_out.mapv(f64::from);
        let b_out = p.b_out.mapv(f64::from);
        let mut states = Array3::zeros((b, t, n));
        let mut outputs = Array3::zeros((b, t, o));
        for k in 0..t {
            let u = Array2::from_shape_fn((b, n_in), |(r, j)| x[[r, k, j]].into());
            (h, c) = self.step(&h, &c, &u);
            let z = h.dot(&w_out.t()) + &b_out;
            states.slice_mut(ndarray::s![.., k, ..]).assign(&h);
            outputs.slice_mut(ndarray::s![.., k, ..]).assign(&z);
        }
        Ok(Simulation {
            outputs,
            states,
            dt: self.config.dt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One LSTM and one GRU step on a 1-unit, 1-input network, worked by hand.
    #[test]
    fn one_step_by_hand() {
        let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
        // Gate k's matrix is [[a_k], [b_k]] (hidden row, input row); biases 0.1·k.
        let mats = |k: usize| Array2::from_shape_vec((2, 1), vec![0.2 * k as f32 + 0.1, 0.5 - 0.3 * k as f32]).unwrap();
        let make = |cell: Cell| {
            let k = cell.gates().len();
            let config = GatedRnnConfig {
                n_in: 1,
                n_rec: 1,
                n_out: 1,
                ..GatedRnnConfig::new(cell)
            };
            let params = GatedRnnParams {
                w_out: Array2::from_elem((1, 1), 2.0),
                b_out: Array1::from_elem(1, 0.5),
                init_hidden: Array1::from_elem(1, 0.3),
                init_cell: if cell.has_cell_state() {
                    Array1::from_elem(1, -0.4)
                } else {
                    Array1::zeros(0)
                },
                w_gates: (0..k).map(mats).collect(),
                b_gates: (0..k).map(|j| Array1::from_elem(1, 0.1 * j as f32)).collect(),
            };
            GatedRnn::from_parts(config, params).unwrap()
        };
        let x = Array3::from_elem((1, 1, 1), 0.8f32);
        let (h, u) = (0.3f32 as f64, 0.8f32 as f64);
        let a = |k: usize| (0.2 * k as f32 + 0.1) as f64;
        let bw = |k: usize| (0.5 - 0.3 * k as f32) as f64;
        let pre = |k: usize, hh: f64| a(k) * hh + bw(k) * u + (0.1 * k as f32) as f64;
        for (cell, squash) in [(Cell::Lstm, f64::tanh as fn(f64) -> f64), (Cell::PsychrnnLstm, sig)] {
            let c = sig(pre(0, h)) * -0.4f32 as f64 + sig(pre(1, h)) * pre(2, h).tanh();
            let h_new = sig(pre(3, h)) * squash(c);
            let sim = make(cell).simulate(&x).unwrap();
            assert!((sim.states[[0, 0, 0]] - h_new).abs() < 1e-12, "{cell:?}");
            assert!((sim.outputs[[0, 0, 0]] - (2.0 * h_new + 0.5)).abs() < 1e-12);
        }
        let g = sig(pre(0, h));
        let r = sig(pre(1, h));
        let cand = pre(2, r * h).tanh();
        let h_new = g * h + (1.0 - g) * cand;
        let sim = make(Cell::Gru).simulate(&x).unwrap();
        assert!((sim.states[[0, 0, 0]] - h_new).abs() < 1e-12);
    }

    #[test]
    fn shapes_and_bad_sizes() {
        let gru = GatedRnnConfig {
            n_rec: 6,
            ..GatedRnnConfig::new(Cell::Gru)
        }
        .init(&mut TrialRng::seeded(1))
        .unwrap();
        assert_eq!(
            gru.param_names(),
            [
                "W_out",
                "b_out",
                "init_hidden",
                "W_z",
                "W_r",
                "W_h",
                "b_z",
                "b_r",
                "b_h"
            ]
        );
        assert_eq!(gru.params.w_gates[0].shape(), &[8, 6]);
        assert_eq!(gru.params.b_gates[2].sum(), 0.0);
        assert_eq!(gru.params.b_gates[0].sum(), 6.0);
        let bad = GatedRnnConfig {
            n_rec: 0,
            ..Default::default()
        };
        assert!(matches!(
            bad.init(&mut TrialRng::seeded(0)),
            Err(Error::OutOfRange { .. })
        ));
        let err = gru.simulate(&Array3::<f32>::zeros((2, 3, 5))).unwrap_err();
        assert!(matches!(err, Error::Shape { .. }));
    }
}
