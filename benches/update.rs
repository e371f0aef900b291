//! Milliseconds per training update and per batch, B 128, T 200, N_rec 50/100/256 (PD task).
//! `cargo bench --bench update` prints one line per size; the comparison with PsychRNN and
//! PyTorch is `bench/compare.sh`.

use std::time::Instant;

use psychrnn::prelude::*;
use psychrnn::train::kernel::{self, Dims, Effective};

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[reps / 2]
}

fn main() {
    let task = PerceptualDiscrimination::new(PerceptualDiscriminationConfig::default()).unwrap();
    let mut rng = TrialRng::seeded(0);
    let batch_ms = median_ms(|| drop(task.batch(&mut rng)), 9);
    println!("batch generation (PD, B 128, T 200): {batch_ms:.2} ms");
    let batch = task.batch(&mut TrialRng::seeded(1));
    for n_rec in [50, 100, 256] {
        let model = RateRnnConfig {
            n_rec,
            ..RateRnnConfig::for_task(task.spec())
        }
        .init(&mut TrialRng::seeded(2))
        .unwrap();
        let eff = Effective::of(&model);
        let w = eff.weights(&model);
        let dims = Dims {
            batch: 128,
            steps: 200,
            n_in: 2,
            n_rec,
            n_out: 2,
        };
        let x = batch.x.as_slice().unwrap();
        let fwd_ms = median_ms(|| drop(kernel::forward(dims, &w, Transfer::Relu, x, None)), 7);
        let fwd = kernel::forward(dims, &w, Transfer::Relu, x, None);
        let g = vec![1e-3f32; fwd.outputs.len()];
        let bwd_ms = median_ms(|| drop(kernel::backward(&fwd, &w, Transfer::Relu, &g, None)), 7);
        let mut trainer = Trainer::new(model.clone(), TrainConfig::default()).unwrap();
        let step_ms = median_ms(
            || {
                trainer.step(&batch).unwrap();
            },
            7,
        );
        println!("N_rec {n_rec:>3}: forward {fwd_ms:6.1} ms, backward {bwd_ms:6.1} ms, full update {step_ms:6.1} ms");
    }
}
