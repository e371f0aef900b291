//! Milliseconds per training update (B 128, T 200, N_rec 50/100/256, PerceptualDiscrimination,
//! relu, Adam, clipping), per batch of trials, and a GEMM-only floor for each size.
//!
//! ```text
//! cargo bench --bench update                       # a readable table
//! cargo bench --bench update -- --json             # JSON lines, for bench/compare.sh
//! cargo bench --bench update -- --only-rss 256     # 3 updates at N_rec 256 (peak RSS, /usr/bin/time)
//! cargo bench --features tch --bench update -- --device libtorch-cuda --sizes 1024 --batch 1024
//! ```
//!
//! With `--features tch` the libtorch engine is timed too (`--device` picks one engine only).
//! The GEMM floor is the update's matrix products alone, as large plain products split over the
//! same threads as the kernel: `[T·B, N]·[N, N]` for the forward and the backward recurrence and
//! `[N, T·B]·[T·B, N]` for `∂W_rec`, plus the input, read-out and their gradients. Everything
//! else the kernel does (the elementwise update, transfer functions, the loss, Adam) is the gap
//! between an update and its floor.

use std::time::Instant;

use psychrnn::prelude::*;
use psychrnn::train::kernel::{CHUNKS, Real};

struct Args {
    json: bool,
    only_rss: Option<usize>,
    sizes: Vec<usize>,
    batch: usize,
    reps: usize,
    devices: Vec<TrainDevice>,
}

fn parse() -> Args {
    let mut args = Args {
        json: false,
        only_rss: None,
        sizes: vec![50, 100, 256],
        batch: 128,
        reps: 15,
        devices: if cfg!(feature = "tch") {
            vec![TrainDevice::Flex, TrainDevice::Libtorch]
        } else {
            vec![TrainDevice::Flex]
        },
    };
    let mut it = std::env::args().skip(1);
    let value =
        |it: &mut dyn Iterator<Item = String>, flag: &str| it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
    let number = |s: String, flag: &str| -> usize { s.parse().unwrap_or_else(|_| panic!("{flag}: not a number: {s}")) };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--json" => args.json = true,
            "--only-rss" => args.only_rss = Some(number(value(&mut it, &a), &a)),
            "--sizes" => {
                args.sizes = value(&mut it, &a)
                    .split(',')
                    .map(|s| number(s.to_string(), "--sizes"))
                    .collect()
            }
            "--batch" => args.batch = number(value(&mut it, &a), &a),
            "--reps" => args.reps = number(value(&mut it, &a), &a),
            "--device" => {
                let name = value(&mut it, &a);
                args.devices = vec![TrainDevice::from_name(&name).unwrap_or_else(|e| panic!("--device: {e}"))];
            }
            "--bench" => {} // added by `cargo bench`
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn median_ms(mut f: impl FnMut(), reps: usize) -> f64 {
    f();
    let mut times: Vec<f64> = (0..reps.max(1))
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(CHUNKS)
}

/// `C[m,n] (+)= op(A)·B` with `A` given as `[m,k]` or (transposed) `[k,m]`.
#[allow(clippy::too_many_arguments)]
fn gemm(m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], c: &mut [f32], acc: bool) {
    let strides = if a_t { (1, m) } else { (k, 1) };
    <f32 as Real>::matmul(m, k, n, a, strides, b, c, acc);
}

/// The update's matrix products alone (see the module docs), `rows` = T·B split over the threads.
fn gemm_floor(rows: usize, i: usize, n: usize, o: usize) -> impl FnMut() {
    let parts = threads();
    let per = rows.div_ceil(parts);
    let w_nn = vec![0.01f32; n * n];
    let w_in = vec![0.01f32; i * n];
    let w_out = vec![0.01f32; n * o];
    let bufs: Vec<_> = (0..parts)
        .map(|_| {
            (
                vec![0.5f32; per * i],
                vec![0.5f32; per * n],
                vec![0.0f32; per * n],
                vec![0.5f32; per * o],
            )
        })
        .collect();
    let mut bufs = bufs;
    move || {
        std::thread::scope(|s| {
            for (x, r, p, g) in bufs.iter_mut() {
                let (w_nn, w_in, w_out) = (&w_nn, &w_in, &w_out);
                s.spawn(move || {
                    let (mut dw_nn, mut dw_in, mut dw_out) =
                        (vec![0.0f32; n * n], vec![0.0f32; n * i], vec![0.0f32; o * n]);
                    gemm(per, i, n, x, false, w_in, p, false); // input drive
                    gemm(per, n, n, r, false, w_nn, p, true); // forward recurrence
                    gemm(per, n, o, r, false, w_out, g, false); // read-out
                    gemm(per, o, n, g, false, &w_out[..o * n], p, true); // ∂L/∂r from the read-out
                    gemm(per, n, n, p, false, w_nn, r, false); // backward recurrence
                    gemm(n, per, n, p, true, r, &mut dw_nn, false); // ∂W_rec
                    gemm(n, per, i, p, true, x, &mut dw_in, false); // ∂W_in
                    gemm(o, per, n, g, true, r, &mut dw_out, false); // ∂W_out
                    std::hint::black_box((dw_nn, dw_in, dw_out));
                });
            }
        });
    }
}

fn device_name(d: TrainDevice) -> &'static str {
    match d {
        TrainDevice::Flex => "psychrnn",
        TrainDevice::Libtorch => "psychrnn-libtorch",
        TrainDevice::LibtorchCuda(_) => "psychrnn-libtorch-cuda",
    }
}

fn main() {
    let args = parse();
    let pd = |n_batch| {
        PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
            n_batch,
            ..Default::default()
        })
    };
    let task = pd(args.batch).unwrap();
    let batch = task.batch(&mut TrialRng::seeded(1));
    let (b, t, i) = batch.x.dim();
    let trainer = |n_rec: usize, device: TrainDevice| {
        let model = RateRnnConfig {
            n_rec,
            ..RateRnnConfig::for_task(task.spec())
        }
        .init(&mut TrialRng::seeded(2))
        .unwrap();
        Trainer::new(
            model,
            TrainConfig {
                device,
                ..TrainConfig::default()
            },
        )
        .unwrap()
    };
    if let Some(n_rec) = args.only_rss {
        let mut tr = trainer(n_rec, args.devices[0]);
        for _ in 0..3 {
            tr.step(&batch).unwrap();
        }
        return;
    }
    let (json, th) = (args.json, threads());
    if b == 128 && t == 200 {
        let mut rng = TrialRng::seeded(0);
        let ms = median_ms(|| drop(task.batch(&mut rng)), 2 * args.reps + 1);
        match json {
            true => println!(r#"{{"impl": "psychrnn", "what": "batch", "ms": {ms:.3}, "threads": 1}}"#),
            false => println!("batch generation (PD, B {b}, T {t}): {ms:.2} ms"),
        }
    }
    for &n_rec in &args.sizes {
        // The floor is the CPU's: only next to the CPU kernel.
        let mut floor = f64::NAN;
        if args.devices.contains(&TrainDevice::Flex) {
            floor = median_ms(gemm_floor(b * t, i, n_rec, 2), args.reps);
            let flops =
                2.0 * (b * t) as f64 * (3.0 * (n_rec * n_rec) as f64 + 2.0 * (n_rec * i) as f64 + 6.0 * n_rec as f64);
            let gflops = flops / floor / 1e6;
            match json {
                true => println!(
                    r#"{{"impl": "gemm-floor", "what": "update", "n_rec": {n_rec}, "batch": {b}, "ms": {floor:.3}, "gflops": {gflops:.1}, "threads": {th}}}"#
                ),
                false => println!("N_rec {n_rec:>4}: GEMM floor {floor:7.2} ms ({gflops:.0} GFLOP/s)"),
            }
        }
        if json {
            // The memory target: twice the rates the backward keeps ([T, B, N] f32) plus weights.
            let weights = n_rec * n_rec + n_rec * (i + 2) + 2 * n_rec + 2;
            let mb = 2.0 * ((b * t * n_rec + weights) * 4) as f64 / (1024.0 * 1024.0);
            println!(
                r#"{{"impl": "bound", "what": "rss_bound", "n_rec": {n_rec}, "batch": {b}, "peak_rss_mb": {mb:.1}}}"#
            );
        }
        for &device in &args.devices {
            let mut tr = trainer(n_rec, device);
            let ms = median_ms(
                || {
                    tr.step(&batch).unwrap();
                },
                args.reps,
            );
            let name = device_name(device);
            match json {
                true => println!(
                    r#"{{"impl": "{name}", "what": "update", "n_rec": {n_rec}, "batch": {b}, "ms": {ms:.3}, "threads": {th}}}"#
                ),
                false => println!(
                    "N_rec {n_rec:>4}: {name} update {ms:7.2} ms ({:.2}x the floor)",
                    ms / floor
                ),
            }
        }
    }
}
