//! The libtorch backend (built with `--features tch`; see scripts/setup-libtorch.sh): the same
//! training on flex and on libtorch gives the same network up to float32 rounding.
#![cfg(feature = "tch")]

use psychrnn::prelude::*;
use psychrnn::train::{TrainDevice, TrainModel};

fn pd() -> PerceptualDiscrimination {
    PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch: 32,
        ..Default::default()
    })
    .unwrap()
}

/// Largest difference over all tensors, relative to each tensor's largest entry.
fn max_rel(a: &[&[f32]], b: &[&[f32]]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(a, b)| {
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
            a.iter().zip(b.iter()).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
        })
        .fold(0.0, f32::max)
}

fn train<M: TrainModel>(model: M, device: TrainDevice) -> (M, Vec<f64>) {
    let config = TrainConfig {
        training_iters: 32 * 10,
        learning_rate: 1e-2,
        loss_epoch: 1,
        progress: Progress::Quiet,
        device,
        seed: 11,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    assert_eq!(trainer.train(&pd()).unwrap().updates, 10);
    let losses = trainer.history().losses().to_vec();
    (trainer.into_model(), losses)
}

/// Rate RNN with Dale's law and recurrent noise: flex runs the fused kernel, libtorch the per-step
/// burn graph; after 10 Adam updates the weights agree to 1e-4 of each tensor's largest entry and
/// every recorded loss to 1e-4 relative (float32 summation order differs, and Adam's first steps
/// move every weight by ~lr whatever the gradient's size, so small gradient differences stay small).
#[test]
fn flex_and_libtorch_agree_after_ten_updates() {
    let model = RateRnnConfig {
        n_rec: 30,
        dale_ratio: Some(0.8),
        rec_noise: 0.05,
        ..RateRnnConfig::for_task(pd().spec())
    }
    .init(&mut TrialRng::seeded(5))
    .unwrap();
    let (flex, flex_losses) = train(model.clone(), TrainDevice::Flex);
    let (torch, torch_losses) = train(model.clone(), TrainDevice::Libtorch);
    let d = max_rel(&flex.param_slices(), &torch.param_slices());
    assert!(d < 1e-4, "weights differ by {d} of their scale");
    assert!(
        max_rel(&model.param_slices(), &flex.param_slices()) > 1e-3,
        "training moved nothing"
    );
    assert_eq!(flex_losses.len(), 10);
    for (a, b) in flex_losses.iter().zip(&torch_losses) {
        assert!((a - b).abs() <= 1e-4 * a.abs(), "loss {a} vs {b}");
    }
}

/// A GRU runs the same burn graph on both backends.
#[test]
fn gru_trains_the_same_on_libtorch() {
    let net = GatedRnnConfig {
        n_rec: 16,
        ..GatedRnnConfig::for_task(Cell::Gru, pd().spec())
    }
    .init(&mut TrialRng::seeded(6))
    .unwrap();
    let (flex, _) = train(net.clone(), TrainDevice::Flex);
    let (torch, _) = train(net, TrainDevice::Libtorch);
    let d = max_rel(&flex.param_slices(), &torch.param_slices());
    assert!(d < 1e-4, "weights differ by {d} of their scale");
}
