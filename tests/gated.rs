//! LSTM and GRU: PsychRNN's LSTM files run as PsychRNN runs them, burn's gradients of the gated
//! graph agree with finite differences of the f64 host simulation, and training works through
//! the same Trainer as the rate RNN (loss, checkpoints, resume).

use std::path::PathBuf;

use psychrnn::io::WeightsFile;
use psychrnn::prelude::*;
use psychrnn::train::TrainModel;
use psychrnn::train::kernel::Dims;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn array3(f: &WeightsFile, key: &str) -> Array3<f64> {
    let a = f.require(key).unwrap();
    let s = &a.shape;
    Array3::from_shape_vec((s[0], s[1], s[2]), a.to_f64_vec().unwrap()).unwrap()
}

fn max_abs(a: &Array3<f64>, b: &Array3<f64>) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max)
}

/// `tests/data/lstm_*` (scripts/reference/make_reference.py, section lstm): a PsychRNN 1.0.0
/// LSTM trained on PD, saved by PsychRNN, run by TF (`model.test`) and by its `LSTMSimulator`.
#[test]
fn psychrnn_lstm_file_runs_as_psychrnn() {
    let file = WeightsFile::read(data("lstm_weights.npz")).unwrap();
    let net = GatedRnn::from_weights(&file, None, 10.0).unwrap();
    assert_eq!(net.config.cell, Cell::PsychrnnLstm);
    assert_eq!((net.n_in(), net.n_rec(), net.n_out()), (2, 12, 2));
    let io = WeightsFile::read(data("lstm_io.npz")).unwrap();
    let sim = net.simulate(&array3(&io, "x")).unwrap();
    // LSTMSimulator (float64, init_hidden/init_cell row 0 for every trial): float64 rounding only.
    assert!(max_abs(&sim.outputs, &array3(&io, "sim_outputs")) < 1e-9);
    assert!(max_abs(&sim.states, &array3(&io, "sim_states")) < 1e-9);
    // TF's graph gives trial b the initial state row b; row 0 is trial 0's, so trial 0 agrees to
    // float32 precision (the other trials differ by their own initial states, as in PsychRNN).
    let tf = array3(&io, "outputs");
    let d0 = (0..tf.dim().1)
        .flat_map(|k| (0..2).map(move |c| (k, c)))
        .map(|(k, c)| (sim.outputs[[0, k, c]] - tf[[0, k, c]]).abs())
        .fold(0.0, f64::max);
    assert!(d0 < 1e-5, "trial 0 vs TF: {d0}");
    // The standard LSTM reads the same file differently (tanh instead of σ of the cell).
    let standard = GatedRnn::from_weights(&file, Some(Cell::Lstm), 10.0).unwrap();
    assert!(max_abs(&standard.simulate(&array3(&io, "x")).unwrap().outputs, &sim.outputs) > 1e-3);
}

/// ∂/∂θ of `L = Σ z⊙G + Σ h⊙H` through burn's autodiff of the gated graph (float32) against
/// central differences of the float64 host simulation, every tensor, LSTM and GRU.
/// Step 2⁻¹⁰ (exact in float32); tolerance 1e-3 of each tensor's largest gradient.
#[test]
fn gated_gradients_match_finite_differences() {
    for cell in [Cell::Lstm, Cell::PsychrnnLstm, Cell::Gru] {
        let mut net = GatedRnnConfig {
            n_in: 2,
            n_rec: 4,
            n_out: 2,
            init_std: 0.5,
            ..GatedRnnConfig::new(cell)
        }
        .init(&mut TrialRng::seeded(5))
        .unwrap();
        let (b, t) = (3, 6);
        let mut rng = TrialRng::seeded(6);
        let x = Array3::from_shape_fn((b, t, 2), |_| rng.normal() as f32);
        let gz = Array3::from_shape_fn((b, t, 2), |_| rng.normal());
        let gh = Array3::from_shape_fn((b, t, 4), |_| 0.3 * rng.normal());
        let loss = |net: &GatedRnn| {
            let s = net.simulate(&x).unwrap();
            (&s.outputs * &gz).sum() + (&s.states * &gh).sum()
        };
        // Time-major copies for the trainer-side backward.
        let tm = |a: &Array3<f64>| {
            let (bb, tt, c) = a.dim();
            (0..tt)
                .flat_map(|k| (0..bb).flat_map(move |i| (0..c).map(move |j| (i, k, j))))
                .map(|(i, k, j)| a[[i, k, j]] as f32)
                .collect::<Vec<f32>>()
        };
        let dims = Dims {
            batch: b,
            steps: t,
            n_in: 2,
            n_rec: 4,
            n_out: 2,
        };
        let pass = net.forward(None, dims, x.as_slice().unwrap(), &mut TrialRng::seeded(0));
        let zero = net.regularized().zeros_like();
        let grads = net.backward(pass, &tm(&gz), Some(&tm(&gh)), zero);
        let h = 2f32.powi(-10);
        for (k, (name, grad)) in net.param_names().iter().zip(&grads).enumerate() {
            let scale = grad.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
            for (idx, &g) in grad.iter().enumerate() {
                let orig = net.param_slices()[k][idx];
                net.param_slices_mut()[k][idx] = orig + h;
                let up = loss(&net);
                net.param_slices_mut()[k][idx] = orig - h;
                let down = loss(&net);
                net.param_slices_mut()[k][idx] = orig;
                let fd = ((up - down) / (2.0 * h as f64)) as f32;
                assert!(
                    (fd - g).abs() <= 1e-3 * scale,
                    "{cell:?} {name}[{idx}]: fd {fd}, autodiff {g}"
                );
            }
        }
    }
}

fn short_pd(n_batch: usize) -> PerceptualDiscrimination {
    PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch,
        t_total: 500.0,
        coherence: Some(0.5),
        ..Default::default()
    })
    .unwrap()
}

/// An LSTM and a GRU learn PD through the same Trainer as the rate RNN; a GRU checkpoint resumes
/// to the weights of an uninterrupted run.
#[test]
fn gated_networks_train_and_resume() {
    let task = short_pd(32);
    for cell in [Cell::Lstm, Cell::Gru] {
        let net = GatedRnnConfig {
            n_rec: 16,
            ..GatedRnnConfig::for_task(cell, task.spec())
        }
        .init(&mut TrialRng::seeded(1))
        .unwrap();
        let config = TrainConfig {
            training_iters: 32 * 150,
            learning_rate: 0.01,
            loss_epoch: 10,
            progress: Progress::Quiet,
            ..Default::default()
        };
        let mut trainer = Trainer::new(net, config).unwrap();
        let before = trainer.accuracy(&task, &mut TrialRng::seeded(9)).unwrap();
        trainer.train(&task).unwrap();
        let losses = trainer.history().losses();
        let after = trainer.accuracy(&task, &mut TrialRng::seeded(9)).unwrap();
        assert!(
            losses.last().unwrap() < &(0.5 * losses[0]),
            "{cell:?} losses {losses:?}"
        );
        assert!(after >= 0.9, "{cell:?}: accuracy {before} -> {after}");
    }

    let net = GatedRnnConfig {
        n_rec: 6,
        ..GatedRnnConfig::for_task(Cell::Gru, task.spec())
    }
    .init(&mut TrialRng::seeded(2))
    .unwrap();
    let config = TrainConfig {
        training_iters: 32 * 3,
        seed: 4,
        progress: Progress::Quiet,
        ..Default::default()
    };
    let mut straight = Trainer::new(
        net.clone(),
        TrainConfig {
            training_iters: 32 * 6,
            ..config.clone()
        },
    )
    .unwrap();
    straight.train(&task).unwrap();
    let mut first = Trainer::new(net, config.clone()).unwrap();
    first.train(&task).unwrap();
    let dir = tempfile::tempdir().unwrap();
    first.checkpoint().write(dir.path().join("c.npz"), false).unwrap();
    let file = WeightsFile::read(dir.path().join("c.npz")).unwrap();
    assert!(file.get("W_z/Adam").is_some() && file.get("b_h/Adam_1").is_some());
    let mut resumed = Trainer::<GatedRnn>::resume(&file, &LoadOptions::default(), config).unwrap();
    assert_eq!(resumed.updates(), 3);
    resumed.train(&task).unwrap();
    assert_eq!(resumed.model(), straight.model());
}

/// L2 on a gated network acts on the gates' hidden rows (`l2_rec`), input rows (`l2_in`) and
/// `W_out` (`l2_out`) as means over the stacked gate matrices: with a zero mask only the
/// regulariser remains, and its gradient is `2·λ·w / count` in each tensor, by hand.
#[test]
fn gated_regularisers_map_to_gate_rows() {
    let task = short_pd(4);
    let net = GatedRnnConfig {
        n_rec: 5,
        ..GatedRnnConfig::for_task(Cell::Gru, task.spec())
    }
    .init(&mut TrialRng::seeded(3))
    .unwrap();
    let mut batch = task.batch(&mut TrialRng::seeded(1));
    batch.mask.fill(0.0);
    let (l2_in, l2_rec, l2_out) = (0.3, 0.7, 1.1);
    let config = TrainConfig {
        l2_in,
        l2_rec,
        l2_out,
        ..Default::default()
    };
    let trainer = Trainer::new(net.clone(), config).unwrap();
    let (parts, grads) = trainer.gradients(&batch, &mut TrialRng::seeded(0)).unwrap();
    assert_eq!(parts.loss, 0.0);
    let (n, i, gates) = (5usize, 2usize, 3usize);
    let (count_rec, count_in) = ((n * gates * n) as f64, (i * gates * n) as f64);
    for (k, name) in net.param_names().iter().enumerate() {
        for (idx, (&g, &w)) in grads[k].iter().zip(net.param_slices()[k]).enumerate() {
            let expected = match name.as_str() {
                "W_out" => 2.0 * l2_out * w as f64 / (2 * n) as f64,
                n_ if n_.starts_with("W_") => {
                    let hidden_row = idx / n < n;
                    if hidden_row {
                        2.0 * l2_rec * w as f64 / count_rec
                    } else {
                        2.0 * l2_in * w as f64 / count_in
                    }
                }
                _ => 0.0,
            };
            assert!((g as f64 - expected).abs() < 1e-6, "{name}[{idx}]: {g} vs {expected}");
        }
    }
}
