//! User-defined losses and regularisers, written with burn tensor ops (PsychRNN's custom
//! `loss_function` and `custom_regularization`). burn's autodiff differentiates them; the
//! gradients join the fused BPTT like those of the built-in terms.
//!
//! ```
//! use psychrnn::prelude::*;
//! use psychrnn::train::{LossInputs, RegularizerInputs};
//! let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig { n_batch: 8, ..Default::default() })?;
//! let model = RateRnnConfig { n_rec: 8, ..RateRnnConfig::for_task(task.spec()) }.init(&mut TrialRng::seeded(0))?;
//! let config = TrainConfig { loss: Loss::Custom, training_iters: 16, ..Default::default() };
//! let mut trainer = Trainer::new(model, config)?
//!     // masked mean absolute error
//!     .with_custom_loss(|i: &LossInputs| ((i.outputs.clone() - i.targets.clone()) * i.mask.clone()).abs().mean())
//!     // Σ W_rec² / N_rec
//!     .with_custom_regularizer(|r: &RegularizerInputs| r.w_rec.clone().powf_scalar(2.0).sum() / 8.0);
//! trainer.train(&task)?;
//! # Ok::<(), psychrnn::Error>(())
//! ```

use burn::Tensor;

use ndarray::{Array1, Array2};

use super::Regularized;
use super::graph::{cpu_device as device, tensor, values};
use crate::error::{Error, Result};

/// What a custom loss sees, all `[batch, time, n_out]`.
pub struct LossInputs {
    /// Network outputs (differentiated).
    pub outputs: Tensor<3>,
    /// Targets `y`.
    pub targets: Tensor<3>,
    /// Loss mask.
    pub mask: Tensor<3>,
}

/// What a custom regulariser sees: the effective weights (after masks and Dale's law) and biases
/// (for a gated network, the stacked gate matrices of [`super::Regularized`]).
pub struct RegularizerInputs {
    /// `[n_rec, n_in]`.
    pub w_in: Tensor<2>,
    /// `[n_rec, n_rec]`.
    pub w_rec: Tensor<2>,
    /// `[n_out, n_rec]`.
    pub w_out: Tensor<2>,
    /// `[n_rec]`.
    pub b_rec: Tensor<1>,
    /// `[n_out]`.
    pub b_out: Tensor<1>,
}

/// A loss: a one-element tensor from [`LossInputs`].
pub type CustomLoss = Box<dyn Fn(&LossInputs) -> Tensor<1>>;
/// A regulariser: a one-element tensor from [`RegularizerInputs`].
pub type CustomRegularizer = Box<dyn Fn(&RegularizerInputs) -> Tensor<1>>;

fn scalar(what: &str, t: &Tensor<1>) -> Result<()> {
    let n = t.dims()[0];
    if n != 1 {
        return Err(Error::shape(format!("{what} result"), &[1], &[n]));
    }
    Ok(())
}

/// The custom loss and its gradient with respect to the outputs; arrays `[batch, time, n_out]`
/// row-major.
pub(crate) fn loss_and_grad(
    f: &CustomLoss,
    shape: [usize; 3],
    outputs: &[f32],
    targets: &[f32],
    mask: &[f32],
    want_grad: bool,
) -> Result<(f64, Option<Vec<f32>>)> {
    let device = device();
    let inputs = LossInputs {
        outputs: tensor(outputs, shape, &device, want_grad),
        targets: tensor(targets, shape, &device, false),
        mask: tensor(mask, shape, &device, false),
    };
    let loss = f(&inputs);
    scalar("custom loss", &loss)?;
    let grad = if want_grad && loss.is_tracked() {
        let grads = loss.backward();
        Some(
            inputs
                .outputs
                .grad(&grads)
                .map(values)
                .unwrap_or_else(|| vec![0.0; outputs.len()]),
        )
    } else {
        want_grad.then(|| vec![0.0; outputs.len()])
    };
    Ok((values(loss)[0] as f64, grad))
}

/// The regulariser's value and its gradients (added to `grads` when given).
pub(crate) fn regularizer_and_grad(
    f: &CustomRegularizer,
    w: &Regularized,
    grads: Option<&mut Regularized>,
) -> Result<f64> {
    let device = device();
    let want = grads.is_some();
    let m2 = |a: &Array2<f32>| tensor(a.as_slice().expect("standard"), [a.nrows(), a.ncols()], &device, want);
    let m1 = |a: &Array1<f32>| tensor(a.as_slice().expect("standard"), [a.len()], &device, want);
    let inputs = RegularizerInputs {
        w_in: m2(&w.w_in),
        w_rec: m2(&w.w_rec),
        w_out: m2(&w.w_out),
        b_rec: m1(&w.b_rec),
        b_out: m1(&w.b_out),
    };
    let reg = f(&inputs);
    scalar("custom regularizer", &reg)?;
    if let Some(dst) = grads
        && reg.is_tracked()
    {
        let g = reg.backward();
        let add2 = |t: &Tensor<2>, d: &mut Array2<f32>| {
            if let Some(v) = t.grad(&g).map(values) {
                d.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
        };
        add2(&inputs.w_in, &mut dst.w_in);
        add2(&inputs.w_rec, &mut dst.w_rec);
        add2(&inputs.w_out, &mut dst.w_out);
        let add1 = |t: &Tensor<1>, d: &mut Array1<f32>| {
            if let Some(v) = t.grad(&g).map(values) {
                d.iter_mut().zip(v).for_each(|(a, b)| *a += b);
            }
        };
        add1(&inputs.b_rec, &mut dst.b_rec);
        add1(&inputs.b_out, &mut dst.b_out);
    }
    Ok(values(reg)[0] as f64)
}
