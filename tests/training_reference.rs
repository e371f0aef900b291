//! Training against PsychRNN 1.0.0: from the same starting weights and the same 16 trials, the
//! loss, raw gradients, clipped gradients, weights and Adam moments after 1 and 2 steps.
//! Expected values: `scripts/reference/make_training_reference.py` (TensorFlow 2.21, float32).

use std::path::PathBuf;

use ndarray::{Array2, Array3};
use psychrnn::io::WeightsFile;
use psychrnn::prelude::*;
use psychrnn::train::{FixedWeights, PARAM_NAMES, ParamVecs};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn vec_of(f: &WeightsFile, key: &str) -> Vec<f32> {
    f.require(key).unwrap().to_f32_vec().unwrap()
}

fn array3(f: &WeightsFile, key: &str) -> Array3<f32> {
    let a = f.require(key).unwrap();
    let s = &a.shape;
    Array3::from_shape_vec((s[0], s[1], s[2]), a.to_f32_vec().unwrap()).unwrap()
}

fn matrix(f: &WeightsFile, key: &str) -> Option<Array2<f32>> {
    let a = f.get(key)?;
    Some(Array2::from_shape_vec((a.shape[0], a.shape[1]), a.to_f32_vec().unwrap()).unwrap())
}

/// Gradients agree to 1e-3 of the tensor's largest entry (float32 sums in another order).
fn assert_grads(case: &str, what: &str, ours: &ParamVecs, reference: &WeightsFile, prefix: &str) {
    for (name, g) in PARAM_NAMES.iter().zip(ours) {
        let theirs = vec_of(reference, &format!("{prefix}/{name}"));
        let scale = theirs.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1e-12);
        let worst = g.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(
            worst <= 1e-3 * scale,
            "{case} {what} {name}: max |diff| {worst:e} vs max |g| {scale:e}"
        );
    }
}

/// Weights agree to 1e-5, except entries whose step-1 gradient is so close to zero that float32
/// rounding in a different summation order can flip its sign: Adam's first step moves every
/// weight by ≈ lr·sign(g), so a flipped sign moves it by 2·lr the other way.
fn assert_weights(case: &str, step: usize, model: &RateRnn, reference: &WeightsFile) {
    for (name, w) in PARAM_NAMES.iter().zip(model.params.slices()) {
        let theirs = vec_of(reference, &format!("var_{step}/{name}"));
        let g1 = vec_of(reference, &format!("grad_raw_1/{name}"));
        let g_scale = g1.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (k, (a, b)) in w.iter().zip(&theirs).enumerate() {
            let near_zero_gradient = g1[k].abs() <= 1e-4 * g_scale;
            assert!(
                (a - b).abs() <= 1e-5 || near_zero_gradient,
                "{case} step {step} {name}[{k}]: ours {a}, PsychRNN {b} (gradient {})",
                g1[k]
            );
        }
    }
}

#[test]
fn two_adam_steps_match_psychrnn() {
    for case in ["plain", "dale", "masked", "reg", "clip", "bce"] {
        let meta: Value =
            serde_json::from_str(&std::fs::read_to_string(data(&format!("train_{case}.json"))).unwrap()).unwrap();
        let reference = WeightsFile::read(data(&format!("train_{case}.npz"))).unwrap();
        let start = WeightsFile::read(data(&format!("train_{case}_start.npz"))).unwrap();
        let model = RateRnn::from_weights(&start, &LoadOptions::default()).unwrap();
        let mp = &meta["model_params"];
        let coef = |k: &str| mp[k].as_f64().unwrap_or(0.0);
        let config = TrainConfig {
            loss: match mp["loss_function"].as_str() {
                Some("binary_cross_entropy") => Loss::BinaryCrossEntropy,
                _ => Loss::MeanSquaredError,
            },
            l1_in: coef("L1_in"),
            l1_rec: coef("L1_rec"),
            l1_out: coef("L1_out"),
            l2_in: coef("L2_in"),
            l2_rec: coef("L2_rec"),
            l2_out: coef("L2_out"),
            l2_firing_rate: coef("L2_firing_rate"),
            fixed_weights: ["W_in", "W_rec", "W_out"]
                .into_iter()
                .fold(FixedWeights::new(), |f, name| {
                    match matrix(&reference, &format!("fixed_weights/{name}")) {
                        Some(m) => f.with(name, m),
                        None => f,
                    }
                }),
            ..Default::default()
        };
        let batch = TrialBatch {
            x: array3(&reference, "x"),
            y: array3(&reference, "y"),
            mask: array3(&reference, "mask"),
            params: vec![(); 16],
            dt: 10.0,
        };
        let mut trainer = Trainer::new(model, config).unwrap();
        let mut noise = TrialRng::seeded(0);
        for step in 1..=2 {
            let (parts, mut grads) = trainer.gradients(&batch, &mut noise).unwrap();
            let expected = vec_of(&reference, &format!("loss_{}", step - 1))[0] as f64;
            assert!(
                (parts.total() - expected).abs() <= 1e-5 * expected,
                "{case} loss_{}: {parts:?} vs {expected}",
                step - 1
            );
            assert_grads(case, "raw", &grads, &reference, &format!("grad_raw_{step}"));
            trainer.mask_and_clip(&mut grads);
            assert_grads(case, "clipped", &grads, &reference, &format!("grad_clipped_{step}"));
            trainer.step(&batch).unwrap();
            assert_weights(case, step, trainer.model(), &reference);
        }
        // Adam moments after two steps; fixed entries never moved and kept m = v = 0.
        let (m, v) = trainer.adam_slots();
        assert_grads(case, "m", m, &reference, "m_2");
        for (name, vv) in PARAM_NAMES.iter().zip(v) {
            let theirs = vec_of(&reference, &format!("v_2/{name}"));
            let scale = theirs.iter().fold(0.0f32, |a, b| a.max(b.abs())).max(1e-20);
            let worst = vv
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(worst <= 2e-3 * scale, "{case} v {name}: {worst:e} vs {scale:e}");
        }
        let loss_2 = trainer.objective(&batch, &mut noise).unwrap().total();
        let expected = vec_of(&reference, "loss_2")[0] as f64;
        assert!(
            (loss_2 - expected).abs() <= 1e-5 * expected,
            "{case} loss_2 {loss_2} vs {expected}"
        );
    }
}

/// Fixed entries stay bit for bit; Dale signs and zero masks are kept through training.
#[test]
fn constraints_hold_during_training() {
    let start = WeightsFile::read(data("train_masked_start.npz")).unwrap();
    let reference = WeightsFile::read(data("train_masked.npz")).unwrap();
    let model = RateRnn::from_weights(&start, &LoadOptions::default()).unwrap();
    let fixed = matrix(&reference, "fixed_weights/W_rec").unwrap();
    let before = model.params.w_rec.clone();
    let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch: 16,
        ..Default::default()
    })
    .unwrap();
    let config = TrainConfig {
        training_iters: 16 * 30,
        learning_rate: 1e-2,
        fixed_weights: FixedWeights::new().with("W_rec", fixed.clone()),
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    trainer.train(&task).unwrap();
    let after = &trainer.model().params.w_rec;
    let mut moved = 0;
    for ((f, a), b) in fixed.iter().zip(after).zip(&before) {
        if *f == 1.0 {
            assert_eq!(a.to_bits(), b.to_bits());
        } else if a != b {
            moved += 1;
        }
    }
    assert!(moved > 100, "free weights moved: {moved}");
    let mask = &trainer.model().constraints.rec_connectivity;
    let eff = trainer.model().effective_w_rec();
    assert!(eff.iter().zip(mask).all(|(w, m)| *m == 1.0 || *w == 0.0));

    let dale = WeightsFile::read(data("train_dale_start.npz")).unwrap();
    let model = RateRnn::from_weights(&dale, &LoadOptions::default()).unwrap();
    let mut trainer = Trainer::new(
        model,
        TrainConfig {
            training_iters: 16 * 30,
            learning_rate: 1e-2,
            ..Default::default()
        },
    )
    .unwrap();
    trainer.train(&task).unwrap();
    let m = trainer.model();
    let (w, d) = (m.effective_w_rec(), &m.constraints.dale_rec);
    for ((_, j), v) in w.indexed_iter() {
        assert!(v * d[j] >= 0.0, "Dale sign of column {j}");
    }
    assert!(m.effective_w_out().iter().all(|&v| v >= 0.0));
}
