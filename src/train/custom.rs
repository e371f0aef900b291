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
use burn::tensor::Device;

use super::graph::{tensor, values};
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

/// What a custom regulariser sees: the effective weights (after masks and Dale's law) and biases.
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

/// The autodiff device custom terms run on.
fn device() -> Device {
    #[cfg(feature = "flex")]
    let base = Device::flex();
    #[cfg(not(feature = "flex"))]
    #[allow(deprecated)]
    let base = Device::libtorch();
    base.autodiff()
}

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

/// Effective weights and biases with their shapes, in [`RegularizerInputs`] order.
pub(crate) struct Weights<'a> {
    pub w_in: (&'a [f32], [usize; 2]),
    pub w_rec: (&'a [f32], [usize; 2]),
    pub w_out: (&'a [f32], [usize; 2]),
    pub b_rec: &'a [f32],
    pub b_out: &'a [f32],
}

/// Gradients of a custom regulariser in [`RegularizerInputs`] order.
pub(crate) type RegularizerGrads = [Vec<f32>; 5];

/// The regulariser's value and (when asked) its gradients.
pub(crate) fn regularizer_and_grad(
    f: &CustomRegularizer,
    w: &Weights<'_>,
    want_grad: bool,
) -> Result<(f64, Option<RegularizerGrads>)> {
    let device = device();
    let inputs = RegularizerInputs {
        w_in: tensor(w.w_in.0, w.w_in.1, &device, want_grad),
        w_rec: tensor(w.w_rec.0, w.w_rec.1, &device, want_grad),
        w_out: tensor(w.w_out.0, w.w_out.1, &device, want_grad),
        b_rec: tensor(w.b_rec, [w.b_rec.len()], &device, want_grad),
        b_out: tensor(w.b_out, [w.b_out.len()], &device, want_grad),
    };
    let reg = f(&inputs);
    scalar("custom regularizer", &reg)?;
    let grads = if want_grad && reg.is_tracked() {
        let g = reg.backward();
        let or_zero2 = |t: &Tensor<2>, len: usize| t.grad(&g).map(values).unwrap_or_else(|| vec![0.0; len]);
        let or_zero1 = |t: &Tensor<1>, len: usize| t.grad(&g).map(values).unwrap_or_else(|| vec![0.0; len]);
        Some([
            or_zero2(&inputs.w_in, w.w_in.0.len()),
            or_zero2(&inputs.w_rec, w.w_rec.0.len()),
            or_zero2(&inputs.w_out, w.w_out.0.len()),
            or_zero1(&inputs.b_rec, w.b_rec.len()),
            or_zero1(&inputs.b_out, w.b_out.len()),
        ])
    } else {
        want_grad.then(|| {
            [
                vec![0.0; w.w_in.0.len()],
                vec![0.0; w.w_rec.0.len()],
                vec![0.0; w.w_out.0.len()],
                vec![0.0; w.b_rec.len()],
                vec![0.0; w.b_out.len()],
            ]
        })
    };
    Ok((values(reg)[0] as f64, grads))
}
