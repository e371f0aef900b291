//! The rate RNN's forward pass as ordinary burn tensor ops, differentiated by burn's autodiff
//! (one graph node per op and time step). This is the engine on libtorch (CPU or CUDA), where
//! the backend's own kernels do the work, and on flex it is the naive reference the fused kernel
//! is checked against. It computes exactly what [`super::kernel`] computes: the same effective
//! weights in, the same recurrent noise (drawn on the host in the kernel's order), gradients with
//! respect to the effective weights out.

use burn::Tensor;
use burn::tensor::{Device, TensorData, activation};

use super::kernel::{Dims, Forward, Grads, Weights, swap_bt};
use crate::model::Transfer;

/// A `[dims]` tensor on `device` holding `data` (row-major), tracked when `grad`.
pub(crate) fn tensor<const D: usize>(data: &[f32], shape: [usize; D], device: &Device, grad: bool) -> Tensor<D> {
    let t = Tensor::from_data(TensorData::new(data.to_vec(), shape), device);
    if grad { t.require_grad() } else { t }
}

/// The values of a float tensor, row-major.
pub(crate) fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("float32 tensor")
}

/// `f(x)` as tensor ops.
pub(crate) fn transfer<const D: usize>(f: Transfer, x: Tensor<D>) -> Tensor<D> {
    match f {
        Transfer::Relu => activation::relu(x),
        Transfer::Tanh => x.tanh(),
        Transfer::Sigmoid => activation::sigmoid(x),
        Transfer::Softplus => activation::softplus(x, 1.0),
        Transfer::Linear => x,
    }
}

/// The six effective-weight leaves, in [`Weights`] order.
struct Leaves {
    w_in: Tensor<2>,
    w_rec: Tensor<2>,
    w_out: Tensor<2>,
    b_rec: Tensor<1>,
    b_out: Tensor<1>,
    init_state: Tensor<1>,
}

/// A forward pass whose graph is kept for [`GraphForward::backward`].
pub struct GraphForward {
    leaves: Leaves,
    /// Pre-activation states `[T, B, N]` (tracked).
    states: Tensor<3>,
    /// Outputs `[T, B, O]` (tracked).
    outputs: Tensor<3>,
    /// The same run on the host, in the kernel's layout, for the loss.
    pub host: Forward<f32>,
}

/// Runs the network on `device` (an autodiff device). `x` is `[B, T, I]`; `noise`, when given, is
/// the already scaled `σ·sqrt(2α)·ξ`, time-major `[T, B, N]`.
pub fn forward(
    device: &Device,
    dims: Dims,
    w: &Weights<'_, f32>,
    f: Transfer,
    x: &[f32],
    noise: Option<&[f32]>,
) -> GraphForward {
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = dims;
    let leaves = Leaves {
        w_in: tensor(w.w_in, [n, i], device, true),
        w_rec: tensor(w.w_rec, [n, n], device, true),
        w_out: tensor(w.w_out, [o, n], device, true),
        b_rec: tensor(w.b_rec, [n], device, true),
        b_out: tensor(w.b_out, [o], device, true),
        init_state: tensor(w.init_state, [n], device, true),
    };
    let x_tb = swap_bt(x, b, t, i);
    let alpha = tensor(w.alpha, [1, n], device, false);
    let leak = tensor(
        &w.alpha.iter().map(|a| 1.0 - a).collect::<Vec<_>>(),
        [1, n],
        device,
        false,
    );
    // Input drive of all steps at once: u·W_inᵀ + b_rec, [T, B, N].
    let drive = (tensor(&x_tb, [t * b, i], device, false).matmul(leaves.w_in.clone().transpose())
        + leaves.b_rec.clone().reshape([1, n]))
    .reshape([t, b, n])
    .chunk(t, 0);
    let noise = noise.map(|z| tensor(z, [t, b, n], device, false).chunk(t, 0));
    let w_rec_t = leaves.w_rec.clone().transpose();
    let mut state = leaves.init_state.clone().reshape([1, n]).repeat_dim(0, b);
    let mut states = Vec::with_capacity(t);
    for (k, drive_k) in drive.into_iter().enumerate() {
        let rec = transfer(f, state.clone()).matmul(w_rec_t.clone());
        state = state * leak.clone() + (rec + drive_k.reshape([b, n])) * alpha.clone();
        if let Some(z) = &noise {
            state = state + z[k].clone().reshape([b, n]);
        }
        states.push(state.clone());
    }
    let states: Tensor<3> = Tensor::stack(states, 0);
    let outputs = (transfer(f, states.clone().reshape([t * b, n])).matmul(leaves.w_out.clone().transpose())
        + leaves.b_out.clone().reshape([1, o]))
    .reshape([t, b, o]);
    let rates = values(states.clone()).iter().map(|&v| f.apply_f(v)).collect();
    let host = Forward::from_time_major(dims, x_tb, rates, values(outputs.clone()));
    GraphForward {
        leaves,
        states,
        outputs,
        host,
    }
}

impl GraphForward {
    /// Gradients with respect to the effective weights, given `∂L/∂z` (time-major `[T, B, O]`)
    /// and optionally `∂L/∂x` (time-major `[T, B, N]`): the backward of `Σ z⊙G_z + Σ x⊙G_x`.
    pub fn backward(self, g_outputs: &[f32], g_states: Option<&[f32]>) -> Grads<f32> {
        let Dims {
            n_in: i,
            n_rec: n,
            n_out: o,
            ..
        } = self.host.dims;
        let grads = surrogate_backward(self.outputs, g_outputs, self.states, g_states, self.host.dims);
        let l = &self.leaves;
        let or_zero = |g: Option<Vec<f32>>, len: usize| g.unwrap_or_else(|| vec![0.0; len]);
        Grads {
            w_in: or_zero(l.w_in.grad(&grads).map(values), n * i),
            w_rec: or_zero(l.w_rec.grad(&grads).map(values), n * n),
            w_out: or_zero(l.w_out.grad(&grads).map(values), o * n),
            b_rec: or_zero(l.b_rec.grad(&grads).map(values), n),
            b_out: or_zero(l.b_out.grad(&grads).map(values), o),
            init_state: or_zero(l.init_state.grad(&grads).map(values), n),
        }
    }
}

/// Backpropagates `Σ z⊙G_z + Σ s⊙G_s`, whose parameter gradients are the loss's given
/// `G_z = ∂L/∂z` (`[T, B, O]`) and `G_s = ∂L/∂states` (`[T, B, N]`).
fn surrogate_backward(
    outputs: Tensor<3>,
    g_outputs: &[f32],
    states: Tensor<3>,
    g_states: Option<&[f32]>,
    dims: Dims,
) -> burn::tensor::Gradients {
    let (b, t, n, o) = (dims.batch, dims.steps, dims.n_rec, dims.n_out);
    let device = outputs.device();
    let mut surrogate = (outputs * tensor(g_outputs, [t, b, o], &device, false)).sum();
    if let Some(gs) = g_states {
        surrogate = surrogate + (states * tensor(gs, [t, b, n], &device, false)).sum();
    }
    surrogate.backward()
}

/// The CPU autodiff device: flex (libtorch when psychrnn is built without flex).
pub fn cpu_device() -> Device {
    #[cfg(feature = "flex")]
    let base = Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    let base = Device::libtorch();
    base.autodiff()
}

/// A gated network's forward pass whose graph is kept for [`GatedForward::backward`].
pub struct GatedForward {
    /// Every trainable tensor as a 2-d leaf (vectors as `[1, len]`), in parameter order.
    leaves: Vec<Tensor<2>>,
    /// Hidden states `[T, B, N]` (tracked).
    hidden: Tensor<3>,
    /// Outputs `[T, B, O]` (tracked).
    outputs: Tensor<3>,
    /// The same run on the host; its rates are the hidden states.
    pub host: Forward<f32>,
}

/// Runs a gated network (equations in [`crate::model::GatedRnn`]'s module docs) on `device`.
pub fn gated_forward(device: &Device, net: &crate::model::GatedRnn, dims: Dims, x: &[f32]) -> GatedForward {
    use crate::model::Cell;
    let Dims {
        batch: b,
        steps: t,
        n_in: i,
        n_rec: n,
        n_out: o,
    } = dims;
    let leaves: Vec<Tensor<2>> = net
        .slices()
        .into_iter()
        .zip(net.param_shapes())
        .map(|(data, shape)| {
            let (r, c) = if shape.len() == 2 {
                (shape[0], shape[1])
            } else {
                (1, shape[0])
            };
            tensor(data, [r, c], device, true)
        })
        .collect();
    let cell = net.config.cell;
    let k = cell.gates().len();
    let first = if cell.has_cell_state() { 4 } else { 3 };
    let x_tb = swap_bt(x, b, t, i);
    let x_all = tensor(&x_tb, [t * b, i], device, false);
    // Per gate: the hidden rows, and the input drive of all steps at once (u·W_u + b), per step.
    let mut w_hidden = Vec::with_capacity(k);
    let mut drive: Vec<Vec<Tensor<2>>> = Vec::with_capacity(k);
    for g in 0..k {
        let w = leaves[first + g].clone();
        w_hidden.push(w.clone().slice([0..n, 0..n]));
        let d = x_all.clone().matmul(w.slice([n..n + i, 0..n])) + leaves[first + k + g].clone();
        drive.push(
            d.reshape([t, b, n])
                .chunk(t, 0)
                .into_iter()
                .map(|c| c.reshape([b, n]))
                .collect(),
        );
    }
    let mut h = leaves[2].clone().repeat_dim(0, b);
    let mut c = if cell.has_cell_state() {
        Some(leaves[3].clone().repeat_dim(0, b))
    } else {
        None
    };
    let gate = |g: usize, h: Tensor<2>, step: usize| h.matmul(w_hidden[g].clone()) + drive[g][step].clone();
    let mut hidden = Vec::with_capacity(t);
    for step in 0..t {
        h = match (cell, c.take()) {
            (Cell::Gru, _) => {
                let z = activation::sigmoid(gate(0, h.clone(), step));
                let r = activation::sigmoid(gate(1, h.clone(), step));
                let cand = gate(2, r * h.clone(), step).tanh();
                z.clone() * h + z.neg().add_scalar(1.0) * cand
            }
            (_, Some(c_prev)) => {
                let f = activation::sigmoid(gate(0, h.clone(), step));
                let inp = activation::sigmoid(gate(1, h.clone(), step));
                let cand = gate(2, h.clone(), step).tanh();
                let out = activation::sigmoid(gate(3, h, step));
                let c_new = f * c_prev + inp * cand;
                let squashed = if cell == Cell::Lstm {
                    c_new.clone().tanh()
                } else {
                    activation::sigmoid(c_new.clone())
                };
                c = Some(c_new);
                out * squashed
            }
            (_, None) => unreachable!("LSTMs carry a cell state"),
        };
        hidden.push(h.clone());
    }
    let hidden: Tensor<3> = Tensor::stack(hidden, 0);
    let outputs = (hidden.clone().reshape([t * b, n]).matmul(leaves[0].clone().transpose()) + leaves[1].clone())
        .reshape([t, b, o]);
    let host = Forward::from_time_major(dims, x_tb, values(hidden.clone()), values(outputs.clone()));
    GatedForward {
        leaves,
        hidden,
        outputs,
        host,
    }
}

impl GatedForward {
    /// Gradients of every tensor (parameter order, row-major) given `∂L/∂z` (time-major
    /// `[T, B, O]`) and optionally `∂L/∂h` (time-major `[T, B, N]`).
    pub fn backward(self, g_outputs: &[f32], g_hidden: Option<&[f32]>) -> Vec<Vec<f32>> {
        let grads = surrogate_backward(self.outputs, g_outputs, self.hidden, g_hidden, self.host.dims);
        self.leaves
            .iter()
            .map(|leaf| {
                let len = leaf.dims().iter().product();
                leaf.grad(&grads).map(values).unwrap_or_else(|| vec![0.0; len])
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{RateRnnConfig, Tau};
    use crate::rng::TrialRng;
    use crate::train::kernel::{self, Effective};

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    /// burn's autodiff through the naive per-step graph (on flex) and the fused kernel agree on
    /// outputs, rates and every gradient: all transfer functions, Dale's law with all three
    /// masks, per-unit α, recurrent noise from one seed, and a direct state gradient. Tolerance
    /// 1e-5 of each tensor's largest entry: both are float32 with different summation orders.
    #[test]
    fn graph_engine_matches_the_fused_kernel() {
        let device = Device::flex().autodiff();
        for (k, f) in Transfer::ALL.into_iter().enumerate() {
            let n = 9;
            let mut rec_mask = ndarray::Array2::ones((n, n));
            rec_mask[[2, 5]] = 0.0;
            let mut in_mask = ndarray::Array2::ones((n, 2));
            in_mask[[0, 1]] = 0.0;
            let mut out_mask = ndarray::Array2::ones((2, n));
            out_mask[[1, 3]] = 0.0;
            let model = RateRnnConfig {
                n_rec: n,
                transfer: f,
                dale_ratio: Some(0.7),
                autapses: false,
                rec_noise: 0.1,
                tau: Tau::PerUnit((0..n).map(|j| 50.0 + 20.0 * j as f64).collect()),
                input_connectivity: Some(in_mask),
                rec_connectivity: Some(rec_mask),
                output_connectivity: Some(out_mask),
                ..Default::default()
            }
            .init(&mut TrialRng::seeded(k as u64))
            .unwrap();
            let dims = Dims {
                batch: 5,
                steps: 23,
                n_in: 2,
                n_rec: n,
                n_out: 2,
            };
            let mut rng = TrialRng::seeded(40 + k as u64);
            let x: Vec<f32> = (0..5 * 23 * 2).map(|_| rng.normal() as f32).collect();
            let g_out: Vec<f32> = (0..23 * 5 * 2).map(|_| rng.normal() as f32).collect();
            let g_states: Vec<f32> = (0..23 * 5 * n).map(|_| 0.1 * rng.normal() as f32).collect();
            let eff = Effective::of(&model);
            let w = eff.weights(&model);

            let native = kernel::forward(dims, &w, f, &x, Some((&mut TrialRng::seeded(7), 0.1)));
            let native_grads = kernel::backward(&native, &w, f, &g_out, Some(&g_states));
            let z = kernel::noise(dims, w.alpha, 0.1, &mut TrialRng::seeded(7));
            let graph = forward(&device, dims, &w, f, &x, Some(&z));
            assert!(max_rel(&native.outputs, &graph.host.outputs) < 1e-5, "{f} outputs");
            assert!(max_rel(&native.rates(), &graph.host.rates()) < 1e-5, "{f} rates");
            let graph_grads = graph.backward(&g_out, Some(&g_states));
            for (name, a, b) in [
                ("w_in", &native_grads.w_in, &graph_grads.w_in),
                ("w_rec", &native_grads.w_rec, &graph_grads.w_rec),
                ("w_out", &native_grads.w_out, &graph_grads.w_out),
                ("b_rec", &native_grads.b_rec, &graph_grads.b_rec),
                ("b_out", &native_grads.b_out, &graph_grads.b_out),
                ("init_state", &native_grads.init_state, &graph_grads.init_state),
            ] {
                assert!(max_rel(a, b) < 1e-5, "{f} {name}: {}", max_rel(a, b));
            }
        }
    }
}
