//! Analysis on systems with known answers: fixed points and Jacobian spectra, PCA subspaces,
//! psychometric fits of simulated observers, and a trained PD network's curve.

use ndarray::ArrayView2;
use psychrnn::analysis::{
    self, FixedPointOptions, GatedDynamics, Link, Pca, RateDynamics, Stability, TrialTableOptions,
};
use psychrnn::prelude::*;

fn dynamics(w: Array2<f64>, drive: Vec<f64>, alpha: f64, transfer: Transfer) -> RateDynamics {
    let n = w.nrows();
    RateDynamics {
        w_rec: w,
        drive: Array1::from(drive),
        alpha: Array1::from_elem(n, alpha),
        transfer,
        dt: 10.0,
        input: vec![],
    }
}

fn random_matrix(rows: usize, cols: usize, rng: &mut TrialRng) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.normal())
}

fn inits(k: usize, n: usize, scale: f64, seed: u64) -> Array2<f64> {
    let mut rng = TrialRng::seeded(seed);
    Array2::from_shape_fn((k, n), |_| scale * (2.0 * rng.uniform() - 1.0))
}

/// A linear network `W = Q·diag(μ)·Q⁻¹`: one fixed point `(I − W)⁻¹·d`, and the Jacobian's
/// eigenvalues are `(1 − α) + α·μ` (complex pair included), recovered to 1e-6.
#[test]
fn linear_network_spectrum_is_recovered() {
    let mut rng = TrialRng::seeded(11);
    let n = 5;
    // Real eigenvalues 0.5, −0.3, 0.9 and the pair 0.2 ± 0.6i (a rotation block).
    let mut block = Array2::<f64>::zeros((n, n));
    for (i, mu) in [0.5, -0.3, 0.9].into_iter().enumerate() {
        block[[i, i]] = mu;
    }
    block[[3, 3]] = 0.2;
    block[[4, 4]] = 0.2;
    block[[3, 4]] = 0.6;
    block[[4, 3]] = -0.6;
    let q = random_matrix(n, n, &mut rng) + Array2::<f64>::eye(n) * 3.0;
    let q_inv = {
        let m = nalgebra::DMatrix::from_row_iterator(n, n, q.iter().copied());
        let inv = m.try_inverse().unwrap();
        Array2::from_shape_fn((n, n), |(i, j)| inv[(i, j)])
    };
    let w = q.dot(&block).dot(&q_inv);
    let drive: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let alpha = 0.1;
    let dyn_ = dynamics(w.clone(), drive.clone(), alpha, Transfer::Linear);
    let found = dyn_
        .find_fixed_points(&inits(20, n, 3.0, 1), &FixedPointOptions::default())
        .unwrap();
    assert_eq!(found.points.len(), 1, "a linear system has one fixed point");
    let p = &found.points[0];
    assert!(p.q < 1e-20, "q = {}", p.q);
    // (I − W)·x = d
    let x = Array1::from(p.x.clone());
    let residual = (&x - &w.dot(&x)) - Array1::from(drive);
    assert!(residual.iter().all(|r| r.abs() < 1e-9), "{residual}");
    let mut want: Vec<[f64; 2]> = [0.5, -0.3, 0.9]
        .into_iter()
        .map(|mu| [1.0 - alpha + alpha * mu, 0.0])
        .chain([
            [1.0 - alpha + alpha * 0.2, alpha * 0.6],
            [1.0 - alpha + alpha * 0.2, -alpha * 0.6],
        ])
        .collect();
    let mut got = p.eigenvalues.clone();
    let key = |e: &[f64; 2]| (e[0] * 1e6).round() as i64 * 10 + (e[1] > 0.0) as i64;
    want.sort_by_key(key);
    got.sort_by_key(key);
    for (g, w) in got.iter().zip(&want) {
        assert!(
            (g[0] - w[0]).abs() < 1e-6 && (g[1] - w[1]).abs() < 1e-6,
            "{g:?} vs {w:?}"
        );
    }
    assert_eq!(p.stability, Stability::Stable);
    // The slowest mode: |λ| = 0.1·0.9 + 0.9 = 0.99 → τ = −10 / ln 0.99 ms.
    assert!((p.slowest_time_constants_ms[0] - (-10.0 / 0.99f64.ln())).abs() < 1e-4);
}

/// Two units inhibiting each other through tanh: `x = W·tanh(x)` with `W = [[0, −2], [−2, 0]]`
/// has stable points at ±(a, −a), `a = 2·tanh(a)`, and a saddle at the origin.
#[test]
fn bistable_pair_has_two_attractors_and_a_saddle() {
    let w = ndarray::arr2(&[[0.0, -2.0], [-2.0, 0.0]]);
    let dyn_ = dynamics(w, vec![0.0, 0.0], 0.1, Transfer::Tanh);
    let mut starts = inits(60, 2, 3.0, 2);
    // Points on the diagonal lie on the saddle's stable manifold.
    starts.row_mut(0).assign(&ndarray::arr1(&[0.4, 0.4]));
    starts.row_mut(1).assign(&ndarray::arr1(&[-1.0, -1.0]));
    let found = dyn_.find_fixed_points(&starts, &FixedPointOptions::default()).unwrap();
    assert_eq!(found.counts(), (2, 1, 0), "{:#?}", found.points);
    let a = {
        let mut a = 2.0f64;
        for _ in 0..200 {
            a = 2.0 * a.tanh();
        }
        a
    };
    for p in &found.points {
        assert!(p.q < 1e-20);
        match p.stability {
            Stability::Saddle => assert!(p.x.iter().all(|v| v.abs() < 1e-9)),
            Stability::Stable => {
                assert!(
                    (p.x[0].abs() - a).abs() < 1e-9 && (p.x[0] + p.x[1]).abs() < 1e-9,
                    "{:?}",
                    p.x
                )
            }
            Stability::Unstable => unreachable!(),
        }
    }
}

/// The closed-form Jacobian equals central differences of the map, every differentiable
/// transfer function, per-unit α, to 1e-5 of its largest entry.
#[test]
fn jacobian_matches_finite_differences() {
    for (k, f) in [
        Transfer::Tanh,
        Transfer::Sigmoid,
        Transfer::Softplus,
        Transfer::Linear,
        Transfer::Relu,
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = TrialRng::seeded(20 + k as u64);
        let n = 6;
        let mut d = dynamics(random_matrix(n, n, &mut rng) * 0.5, vec![0.1; n], 0.2, f);
        d.alpha = Array1::from_shape_fn(n, |i| 0.05 + 0.05 * i as f64);
        // Away from relu's kink at 0.
        let x: Vec<f64> = (0..n)
            .map(|i| if i % 2 == 0 { 0.7 } else { -0.4 } + 0.1 * rng.normal())
            .collect();
        let j = d.jacobian(&x);
        let h = 1e-6;
        let scale = j.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for c in 0..n {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[c] += h;
            down[c] -= h;
            let fu = d.step(ArrayView2::from_shape((1, n), &up).unwrap());
            let fd = d.step(ArrayView2::from_shape((1, n), &down).unwrap());
            for r in 0..n {
                let numeric = (fu[[0, r]] - fd[[0, r]]) / (2.0 * h);
                assert!((numeric - j[[r, c]]).abs() < 1e-5 * scale, "{f} J[{r},{c}]");
            }
        }
    }
}

/// A model's dynamics come from its effective weights; bad input is a typed error.
#[test]
fn dynamics_from_a_model_and_errors() {
    let model = RateRnnConfig {
        n_in: 2,
        n_rec: 6,
        n_out: 1,
        dale_ratio: Some(0.5),
        ..Default::default()
    }
    .init(&mut TrialRng::seeded(4))
    .unwrap();
    assert!(matches!(RateDynamics::new(&model, &[0.0]), Err(Error::Shape { .. })));
    let d = RateDynamics::new(&model, &[0.5, 0.0]).unwrap();
    assert_eq!(d.w_rec, model.effective_w_rec().mapv(f64::from));
    assert!(matches!(
        d.find_fixed_points(&Array2::zeros((3, 5)), &FixedPointOptions::default()),
        Err(Error::Shape { .. })
    ));
    assert!(matches!(
        d.find_fixed_points(&Array2::zeros((0, 6)), &FixedPointOptions::default()),
        Err(Error::Empty { .. })
    ));
    let bad = FixedPointOptions {
        tol_q: -1.0,
        ..Default::default()
    };
    assert!(matches!(
        d.find_fixed_points(&Array2::zeros((1, 6)), &bad),
        Err(Error::OutOfRange { .. })
    ));
}

/// Data of rank 3 in 12 dimensions (plus a mean): the first 3 axes span the planted subspace
/// (principal angles < 1e-6) and explain all the variance.
#[test]
fn pca_recovers_a_planted_subspace() {
    let mut rng = TrialRng::seeded(5);
    let basis = random_matrix(3, 12, &mut rng);
    let latent = random_matrix(400, 3, &mut rng);
    let offset = random_matrix(1, 12, &mut rng);
    let data = latent.dot(&basis) + &offset;
    let pca = Pca::fit(data.view(), 3).unwrap();
    let angles = analysis::principal_angles(&pca.components, &basis).unwrap();
    assert!(angles.iter().all(|&a| a < 1e-6), "{angles:?}");
    let ratio = pca.explained_variance_ratio();
    assert!((ratio.sum() - 1.0).abs() < 1e-12);
    assert!(ratio[0] >= ratio[1] && ratio[1] >= ratio[2]);
    assert!(pca.participation_ratio() > 1.0 && pca.participation_ratio() <= 3.0 + 1e-9);
    // Orthonormal axes; projecting and mapping back reproduces the data.
    let gram = pca.components.dot(&pca.components.t());
    assert!((gram - Array2::<f64>::eye(3)).iter().all(|v| v.abs() < 1e-12));
    let back = pca.transform(data.view()).unwrap().dot(&pca.components) + &pca.mean;
    assert!((back - &data).iter().all(|v| v.abs() < 1e-9));
    assert!(matches!(Pca::fit(data.view(), 13), Err(Error::OutOfRange { .. })));
    // Isotropic data: participation ratio ≈ dimension.
    let iso = random_matrix(20_000, 4, &mut rng);
    let pr = Pca::fit(iso.view(), 4).unwrap().participation_ratio();
    assert!((pr - 4.0).abs() < 0.1, "{pr}");
}

/// Choices drawn from a known logistic with lapses: over 40 seeds, each parameter's 95 % interval
/// covers the truth in at least 34 (the expected count is 38; P(< 34) ≈ 0.5 % for a correct
/// interval), and the probit fit finds the same midpoint.
#[test]
fn psychometric_fit_recovers_a_known_observer() {
    let truth = [0.1, 8.0, 0.05, 0.03];
    let levels: Vec<f64> = (0..11).map(|i| -0.5 + 0.1 * i as f64).collect();
    let mut covered = [0usize; 4];
    let seeds = 40;
    for seed in 0..seeds {
        let mut rng = TrialRng::seeded(seed);
        let mut x = Vec::new();
        let mut chose = Vec::new();
        for &l in &levels {
            for _ in 0..300 {
                let p = truth[2] + (1.0 - truth[2] - truth[3]) / (1.0 + (-truth[1] * (l - truth[0])).exp());
                x.push(l);
                chose.push(rng.uniform() < p);
            }
        }
        let fit = analysis::fit_psychometric(&x, &chose, Link::Logistic, true).unwrap();
        for (i, (lo, hi)) in fit.intervals().into_iter().enumerate() {
            covered[i] += (lo <= truth[i] && truth[i] <= hi) as usize;
        }
        let probit = analysis::fit_psychometric(&x, &chose, Link::Probit, true).unwrap();
        assert!((probit.bias - fit.bias).abs() < 0.02);
    }
    assert!(
        covered.iter().all(|&c| c >= 34),
        "coverage of (bias, slope, γ, λ): {covered:?} / {seeds}"
    );
    let table = analysis::choice_table(&[1.0, 1.0, -1.0], &[true, false, false]).unwrap();
    assert_eq!((table[1].n, table[1].k), (2, 1));
    assert!(table[1].ci_low < 0.5 && table[1].ci_high > 0.5);
    assert!(analysis::fit_psychometric(&[1.0, 1.0], &[true, false], Link::Logistic, true).is_err());
    assert!(matches!(
        analysis::fit_psychometric(&[], &[], Link::Logistic, true),
        Err(Error::Empty { .. })
    ));
}

fn pd(n_batch: usize) -> PerceptualDiscrimination {
    PerceptualDiscrimination::new(PerceptualDiscriminationConfig {
        n_batch,
        ..Default::default()
    })
    .unwrap()
}

/// A PD network trained briefly (PsychRNN's defaults, 150 updates of 128 trials) has a monotone
/// psychometric curve with positive slope and small lapses; its trial table, lesions and fixed
/// points behave.
#[test]
fn trained_pd_network_analysis() {
    let task = pd(128);
    let model = RateRnnConfig::for_task(task.spec())
        .init(&mut TrialRng::seeded(1))
        .unwrap();
    let config = TrainConfig {
        training_iters: 128 * 150,
        progress: Progress::Quiet,
        seed: 3,
        ..Default::default()
    };
    let mut trainer = Trainer::new(model, config).unwrap();
    trainer.train(&task).unwrap();
    let model = trainer.into_model();

    let levels = [-0.2, -0.1, -0.05, -0.02, 0.0, 0.02, 0.05, 0.1, 0.2];
    let curve = analysis::psychometric(&model, &task, &levels, 100, None, 9).unwrap();
    assert!(curve.logistic.slope > 0.0, "{:?}", curve.logistic);
    assert!(
        curve.logistic.lapse_low < 0.1 && curve.logistic.lapse_high < 0.1,
        "{:?}",
        curve.logistic
    );
    for w in curve.levels.windows(2) {
        assert!(w[1].p >= w[0].p - 0.08, "not monotone: {:?}", curve.levels);
    }
    assert!(curve.levels[0].p < 0.2 && curve.levels[8].p > 0.8);

    let batch = task.batch(&mut TrialRng::seeded(4));
    let table = analysis::evidence_table(&model, &task, &batch, &TrialTableOptions::default()).unwrap();
    assert_eq!(table.height(), 128);
    for c in [
        "coherence",
        "direction",
        "onset_time",
        "evidence",
        "target",
        "choice",
        "correct",
        "rt_ms",
    ] {
        assert!(table.column(c).is_ok(), "no column {c}: {table}");
    }
    let correct = table.column("correct").unwrap().bool().unwrap().sum().unwrap() as f64 / 128.0;
    // DelayedDiscrimination has a `choice` parameter: it stays as `p_choice` beside the network's.
    let dd = DelayedDiscrimination::new(DelayedDiscriminationConfig {
        n_batch: 8,
        ..Default::default()
    })
    .unwrap();
    let dd_batch = dd.batch(&mut TrialRng::seeded(5));
    let dd_table = analysis::trial_table(&model, &dd, &dd_batch, &TrialTableOptions::default()).unwrap();
    let p_choice: Vec<f64> = dd_table
        .column("p_choice")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    let want: Vec<f64> = dd_batch.params.iter().map(|p| p.choice as f64).collect();
    assert_eq!(p_choice, want);
    assert!(dd_table.column("choice").unwrap().i64().is_ok());
    let acc = analysis::accuracy(&model, &task, &batch).unwrap();
    assert!((correct - acc).abs() < 1e-12 && acc > 0.85, "{correct} vs {acc}");

    let all: Vec<usize> = (0..50).collect();
    let lesions = analysis::lesion_table(&model, &task, &batch, &[vec![0], all]).unwrap();
    let delta = lesions.column("delta").unwrap().f64().unwrap();
    assert!(
        delta.get(1).unwrap() < -0.3,
        "silencing every unit must hurt: {lesions}"
    );
    assert!(analysis::silence_units(&model, &[50]).is_err());

    let sim = analysis::run(&model, &batch, Some(0.0), 0).unwrap();
    let rates = sim.rates(Transfer::Relu);
    let tv = analysis::task_variance(&rates).unwrap();
    assert_eq!(tv.len(), 50);
    assert!(tv.iter().all(|v| *v >= 0.0) && tv.sum() > 0.0);

    // Fixed points with no input, started from states on the trajectories.
    let dyn_ = RateDynamics::new(&model, &[0.0, 0.0]).unwrap();
    let starts = Array2::from_shape_fn((64, 50), |(i, j)| sim.states[[i, 199 - (i % 100), j]]);
    let found = dyn_.find_fixed_points(&starts, &FixedPointOptions::default()).unwrap();
    assert!(!found.points.is_empty());
    assert!(found.points[0].q < 1e-12, "{}", found.points[0].q);
}

fn gated(cell: Cell, n: usize, n_in: usize, seed: u64) -> GatedRnn {
    GatedRnnConfig {
        n_in,
        n_rec: n,
        n_out: 1,
        ..GatedRnnConfig::new(cell)
    }
    .init(&mut TrialRng::seeded(seed))
    .unwrap()
}

/// The autodiff Jacobian of a gated step equals central differences of the f64 step (float32
/// autodiff: 1e-4 of the largest entry).
#[test]
fn gated_jacobian_matches_finite_differences() {
    for (k, cell) in [Cell::Lstm, Cell::PsychrnnLstm, Cell::Gru].into_iter().enumerate() {
        let mut net = gated(cell, 5, 2, 30 + k as u64);
        for w in &mut net.params.w_gates {
            w.mapv_inplace(|v| 6.0 * v); // visibly non-linear gates
        }
        let dynamics = GatedDynamics::new(&net, &[0.3, -0.2]).unwrap();
        let d = dynamics.dim();
        assert_eq!(d, if cell == Cell::Gru { 5 } else { 10 });
        let mut rng = TrialRng::seeded(40 + k as u64);
        let x: Vec<f64> = (0..d).map(|_| 0.5 * rng.normal()).collect();
        let j = dynamics.jacobian(&x);
        let scale = j.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.1, "{cell:?}: a non-trivial Jacobian");
        let h = 1e-6;
        for c in 0..d {
            let (mut up, mut down) = (x.clone(), x.clone());
            up[c] += h;
            down[c] -= h;
            let fu = dynamics.step(ArrayView2::from_shape((1, d), &up).unwrap());
            let fd = dynamics.step(ArrayView2::from_shape((1, d), &down).unwrap());
            for r in 0..d {
                let numeric = (fu[[0, r]] - fd[[0, r]]) / (2.0 * h);
                assert!(
                    (numeric - j[[r, c]]).abs() < 1e-4 * scale,
                    "{cell:?} J[{r},{c}]: {numeric} vs {}",
                    j[[r, c]]
                );
            }
        }
    }
}

/// With zero weight matrices the gates are constants, so the fixed point and its spectrum are
/// known: GRU `h* = tanh(b_c)` with `J = diag(σ(b_z))`; LSTM `c* = σ(b_i)·tanh(b_c)/(1 − σ(b_f))`,
/// `h* = σ(b_o)·tanh(c*)`, eigenvalues `σ(b_f)` and 0.
#[test]
fn gated_fixed_points_with_constant_gates() {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    let n = 4;
    let biases = |g: usize| Array1::from_shape_fn(n, |i| (0.3 * (g + 1) as f64 - 0.4 * i as f64) as f32);
    for cell in [Cell::Gru, Cell::Lstm] {
        let mut net = gated(cell, n, 1, 7);
        let gates = net.params.w_gates.len();
        for g in 0..gates {
            net.params.w_gates[g].fill(0.0);
            net.params.b_gates[g] = biases(g);
        }
        let b = |g: usize, i: usize| net.params.b_gates[g][i] as f64;
        let dynamics = GatedDynamics::new(&net, &[1.0]).unwrap();
        let d = dynamics.dim();
        let inits = Array2::from_shape_fn((6, d), |(k, j)| 0.2 * k as f64 - 0.1 * j as f64);
        let found = dynamics
            .find_fixed_points(&inits, &FixedPointOptions::default())
            .unwrap();
        assert_eq!(found.points.len(), 1, "{cell:?}: one fixed point");
        let p = &found.points[0];
        assert!(p.q < 1e-12, "{cell:?}: q = {}", p.q);
        assert_eq!(p.stability, Stability::Stable);
        let mut want_eig: Vec<f64> = match cell {
            Cell::Gru => {
                for i in 0..n {
                    assert!((p.x[i] - b(2, i).tanh()).abs() < 1e-6, "h*[{i}]");
                }
                (0..n).map(|i| sigmoid(b(0, i))).collect()
            }
            _ => {
                for i in 0..n {
                    let (f, inp, o) = (sigmoid(b(0, i)), sigmoid(b(1, i)), sigmoid(b(3, i)));
                    let c = inp * b(2, i).tanh() / (1.0 - f);
                    assert!((p.x[n + i] - c).abs() < 1e-6, "c*[{i}]");
                    assert!((p.x[i] - o * c.tanh()).abs() < 1e-6, "h*[{i}]");
                }
                (0..n).map(|i| sigmoid(b(0, i))).chain([0.0; 4]).collect()
            }
        };
        want_eig.sort_by(|a, b| b.total_cmp(a));
        assert_eq!(p.eigenvalues.len(), d);
        for (got, want) in p.eigenvalues.iter().zip(&want_eig) {
            assert!(
                (got[0] - want).abs() < 1e-6 && got[1].abs() < 1e-6,
                "{cell:?}: {got:?} vs {want}"
            );
        }
    }
    let net = gated(Cell::Gru, 3, 2, 1);
    assert!(matches!(GatedDynamics::new(&net, &[0.0]), Err(Error::Shape { .. })));
    assert!(matches!(
        GatedDynamics::new(&net, &[0.0, f64::NAN]),
        Err(Error::OutOfRange { .. })
    ));
    let dynamics = GatedDynamics::new(&net, &[0.0, 0.0]).unwrap();
    assert!(matches!(
        dynamics.find_fixed_points(&Array2::zeros((2, 4)), &FixedPointOptions::default()),
        Err(Error::Shape { .. })
    ));
}
