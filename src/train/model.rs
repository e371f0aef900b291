//! What the trainer needs of a network, implemented for the rate RNN and the gated networks: the
//! trainable tensors under PsychRNN's names, a forward pass kept for its backward, and the
//! matrices the regularisers see.

use burn::tensor::Device;
use ndarray::{Array1, Array2, Axis};

use super::graph::{self, GatedForward, GraphForward};
use super::kernel::{self, Dims, Effective, Forward, Grads};
use crate::error::Result;
use crate::io::{LoadOptions, WeightsFile};
use crate::model::{GatedRnn, RateRnn, Transfer};
use crate::rng::TrialRng;

/// The weights the regularisers act on (PsychRNN's effective `W_in`, `W_rec`, `W_out`, and
/// `b_rec`, `b_out`), or gradients of the same shapes.
#[derive(Clone, Debug, PartialEq)]
pub struct Regularized {
    /// Input weights (rate RNN: `[n_rec, n_in]`; gated: the gates' input rows, `[n_in, gates·n_rec]`).
    pub w_in: Array2<f32>,
    /// Recurrent weights (rate RNN: `[n_rec, n_rec]`; gated: hidden rows, `[n_rec, gates·n_rec]`).
    pub w_rec: Array2<f32>,
    /// `[n_out, n_rec]`.
    pub w_out: Array2<f32>,
    /// Recurrent biases (rate RNN: `[n_rec]`; gated: the gate biases, `[gates·n_rec]`).
    pub b_rec: Array1<f32>,
    /// `[n_out]`.
    pub b_out: Array1<f32>,
}

impl Regularized {
    /// Zeros of the same shapes.
    pub fn zeros_like(&self) -> Self {
        Self {
            w_in: Array2::zeros(self.w_in.raw_dim()),
            w_rec: Array2::zeros(self.w_rec.raw_dim()),
            w_out: Array2::zeros(self.w_out.raw_dim()),
            b_rec: Array1::zeros(self.b_rec.len()),
            b_out: Array1::zeros(self.b_out.len()),
        }
    }
}

/// A forward pass kept for its backward; its host copy feeds the loss.
pub enum Pass {
    /// The rate RNN's fused kernel.
    Native(Box<(Forward<f32>, Effective)>),
    /// The rate RNN as burn ops.
    Graph(Box<GraphForward>),
    /// A gated network as burn ops.
    Gated(Box<GatedForward>),
}

impl Pass {
    /// Inputs, states, rates and outputs on the host, time-major.
    pub fn host(&self) -> &Forward<f32> {
        match self {
            Pass::Native(n) => &n.0,
            Pass::Graph(g) => &g.host,
            Pass::Gated(g) => &g.host,
        }
    }
}

/// A network the [`super::Trainer`] can train.
pub trait TrainModel: Clone {
    /// `(n_in, n_rec, n_out)`.
    fn sizes(&self) -> (usize, usize, usize);
    /// PsychRNN's names of the trainable tensors, in variable-creation order.
    fn param_names(&self) -> Vec<String>;
    /// Their shapes as PsychRNN saves them.
    fn param_shapes(&self) -> Vec<Vec<usize>>;
    /// Their raw values, row-major, in [`TrainModel::param_names`] order.
    fn param_slices(&self) -> Vec<&[f32]>;
    /// Mutable [`TrainModel::param_slices`].
    fn param_slices_mut(&mut self) -> Vec<&mut [f32]>;
    /// Which tensors training changes.
    fn trainable(&self) -> Vec<bool>;
    /// Sets [`TrainModel::trainable`].
    fn set_trainable(&mut self, flags: &[bool]);
    /// The weights file without optimiser state (PsychRNN's format).
    fn weights_file(&self) -> WeightsFile;
    /// Rebuilds the network from a weights file.
    fn load(file: &WeightsFile, options: &LoadOptions) -> Result<Self>;
    /// The function from states to the rates the firing-rate regulariser penalises.
    fn rate_transfer(&self) -> Transfer;
    /// The regularised weights.
    fn regularized(&self) -> Regularized;
    /// Runs `x` (`[B, T, I]`), on `device` or (`None`) on the CPU's default path.
    fn forward(&self, device: Option<&Device>, dims: Dims, x: &[f32], noise: &mut TrialRng) -> Pass;
    /// Gradients with respect to the raw tensors, in [`TrainModel::param_names`] order, from
    /// `∂L/∂z` (time-major `[T, B, O]`), an optional `∂L/∂states` and `∂L/∂` of the regularised
    /// weights.
    fn backward(&self, pass: Pass, g_out: &[f32], g_states: Option<&[f32]>, g_reg: Regularized) -> Vec<Vec<f32>>;
}

fn add(dst: &mut [f32], src: &Array2<f32>) {
    dst.iter_mut().zip(src.iter()).for_each(|(a, b)| *a += b);
}

impl TrainModel for RateRnn {
    fn sizes(&self) -> (usize, usize, usize) {
        (self.n_in(), self.n_rec(), self.n_out())
    }

    fn param_names(&self) -> Vec<String> {
        super::PARAM_NAMES.iter().map(|s| s.to_string()).collect()
    }

    fn param_shapes(&self) -> Vec<Vec<usize>> {
        let (i, n, o) = (self.n_in(), self.n_rec(), self.n_out());
        vec![vec![1, n], vec![n, i], vec![n, n], vec![o, n], vec![n], vec![o]]
    }

    fn param_slices(&self) -> Vec<&[f32]> {
        self.params.slices().to_vec()
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [f32]> {
        self.params.slices_mut().into_iter().collect()
    }

    fn trainable(&self) -> Vec<bool> {
        self.config.trainable.flags().to_vec()
    }

    fn set_trainable(&mut self, flags: &[bool]) {
        let f = |k: usize| flags.get(k).copied().unwrap_or(true);
        self.config.trainable = crate::model::Trainable::from_flags(std::array::from_fn(f));
    }

    fn weights_file(&self) -> WeightsFile {
        self.to_weights()
    }

    fn load(file: &WeightsFile, options: &LoadOptions) -> Result<Self> {
        RateRnn::from_weights(file, options)
    }

    fn rate_transfer(&self) -> Transfer {
        self.config.transfer
    }

    fn regularized(&self) -> Regularized {
        Regularized {
            w_in: self.effective_w_in(),
            w_rec: self.effective_w_rec(),
            w_out: self.effective_w_out(),
            b_rec: self.params.b_rec.clone(),
            b_out: self.params.b_out.clone(),
        }
    }

    fn forward(&self, device: Option<&Device>, dims: Dims, x: &[f32], noise: &mut TrialRng) -> Pass {
        let eff = Effective::of(self);
        let w = eff.weights(self);
        let (transfer, sigma) = (self.config.transfer, self.config.rec_noise);
        match device {
            None => {
                let fwd = kernel::forward(dims, &w, transfer, x, (sigma > 0.0).then_some((noise, sigma)));
                Pass::Native(Box::new((fwd, eff)))
            }
            Some(device) => {
                let z = (sigma > 0.0).then(|| kernel::noise(dims, w.alpha, sigma, noise));
                Pass::Graph(Box::new(graph::forward(device, dims, &w, transfer, x, z.as_deref())))
            }
        }
    }

    fn backward(&self, pass: Pass, g_out: &[f32], g_states: Option<&[f32]>, g_reg: Regularized) -> Vec<Vec<f32>> {
        let mut g: Grads<f32> = match pass {
            Pass::Native(n) => {
                let (fwd, eff) = &*n;
                kernel::backward(fwd, &eff.weights(self), self.config.transfer, g_out, g_states)
            }
            Pass::Graph(fwd) => fwd.backward(g_out, g_states),
            Pass::Gated(_) => unreachable!("a rate RNN runs no gated pass"),
        };
        add(&mut g.w_in, &g_reg.w_in);
        add(&mut g.w_rec, &g_reg.w_rec);
        add(&mut g.w_out, &g_reg.w_out);
        g.b_rec.iter_mut().zip(&g_reg.b_rec).for_each(|(a, b)| *a += b);
        g.b_out.iter_mut().zip(&g_reg.b_out).for_each(|(a, b)| *a += b);
        to_raw(self, g)
    }
}

/// Chain rule through the constraints: `W ⊙ C`, or `|W ⊙ C|·D` under Dale's law.
fn to_raw(m: &RateRnn, g: Grads<f32>) -> Vec<Vec<f32>> {
    let c = &m.constraints;
    let raw = |g_eff: Vec<f32>, w: &Array2<f32>, mask: &Array2<f32>, dale: Option<&Array1<f32>>| -> Vec<f32> {
        let cols = w.ncols();
        g_eff
            .iter()
            .zip(w.iter().zip(mask.iter()))
            .enumerate()
            .map(|(idx, (&ge, (&wv, &cv)))| {
                if !c.dale {
                    return ge * cv;
                }
                let masked = wv * cv;
                let sign = if masked > 0.0 {
                    1.0
                } else if masked < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                let d = dale.map_or(1.0, |d| d[idx % cols]);
                ge * d * sign * cv
            })
            .collect()
    };
    vec![
        g.init_state,
        raw(g.w_in, &m.params.w_in, &c.input_connectivity, None),
        raw(g.w_rec, &m.params.w_rec, &c.rec_connectivity, Some(&c.dale_rec)),
        raw(g.w_out, &m.params.w_out, &c.output_connectivity, Some(&c.dale_out)),
        g.b_rec,
        g.b_out,
    ]
}

/// Index of the first gate matrix among a gated network's tensors.
fn first_gate(net: &GatedRnn) -> usize {
    if net.config.cell.has_cell_state() { 4 } else { 3 }
}

impl TrainModel for GatedRnn {
    fn sizes(&self) -> (usize, usize, usize) {
        (self.n_in(), self.n_rec(), self.n_out())
    }

    fn param_names(&self) -> Vec<String> {
        GatedRnn::param_names(self)
    }

    fn param_shapes(&self) -> Vec<Vec<usize>> {
        GatedRnn::param_shapes(self)
    }

    fn param_slices(&self) -> Vec<&[f32]> {
        self.slices()
    }

    fn param_slices_mut(&mut self) -> Vec<&mut [f32]> {
        self.slices_mut()
    }

    /// All tensors train (PsychRNN's LSTM variables ignore the `*_train` flags).
    fn trainable(&self) -> Vec<bool> {
        vec![true; self.slices().len()]
    }

    fn set_trainable(&mut self, _flags: &[bool]) {}

    fn weights_file(&self) -> WeightsFile {
        self.to_weights()
    }

    fn load(file: &WeightsFile, options: &LoadOptions) -> Result<Self> {
        GatedRnn::from_weights(file, None, options.dt)
    }

    /// The hidden states are the rates.
    fn rate_transfer(&self) -> Transfer {
        Transfer::Linear
    }

    fn regularized(&self) -> Regularized {
        let n = self.n_rec();
        let p = &self.params;
        let views: Vec<_> = p.w_gates.iter().map(|w| w.view()).collect();
        let all = ndarray::concatenate(Axis(1), &views).expect("gates share their rows");
        let biases: Vec<_> = p.b_gates.iter().map(|b| b.view()).collect();
        Regularized {
            w_in: all.slice(ndarray::s![n.., ..]).to_owned(),
            w_rec: all.slice(ndarray::s![..n, ..]).to_owned(),
            w_out: p.w_out.clone(),
            b_rec: ndarray::concatenate(Axis(0), &biases).expect("vectors"),
            b_out: p.b_out.clone(),
        }
    }

    fn forward(&self, device: Option<&Device>, dims: Dims, x: &[f32], _noise: &mut TrialRng) -> Pass {
        let cpu = graph::cpu_device();
        Pass::Gated(Box::new(graph::gated_forward(device.unwrap_or(&cpu), self, dims, x)))
    }

    fn backward(&self, pass: Pass, g_out: &[f32], g_states: Option<&[f32]>, g_reg: Regularized) -> Vec<Vec<f32>> {
        let Pass::Gated(fwd) = pass else {
            unreachable!("a gated network runs only gated passes")
        };
        let mut grads = fwd.backward(g_out, g_states);
        let n = self.n_rec();
        let first = first_gate(self);
        let k = self.config.cell.gates().len();
        for (idx, v) in g_reg.w_out.iter().enumerate() {
            grads[0][idx] += v;
        }
        for (idx, v) in g_reg.b_out.iter().enumerate() {
            grads[1][idx] += v;
        }
        // Gate g's matrix is rows [hidden; input] × columns g·n .. (g+1)·n of the stacked views.
        for g in 0..k {
            let dst = &mut grads[first + g];
            let cols = g * n..(g + 1) * n;
            let rec = g_reg.w_rec.slice(ndarray::s![.., cols.clone()]);
            let inp = g_reg.w_in.slice(ndarray::s![.., cols.clone()]);
            for (idx, v) in rec.iter().chain(inp.iter()).enumerate() {
                dst[idx] += v;
            }
            for (idx, v) in g_reg.b_rec.slice(ndarray::s![cols]).iter().enumerate() {
                grads[first + k + g][idx] += v;
            }
        }
        grads
    }
}
