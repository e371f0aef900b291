//! psychrnn against PsychRNN 1.0.0 itself.
//!
//! Every expected number here was produced by PsychRNN 1.0.0 (PyPI, TensorFlow 2.21, NumPy 2.4)
//! with `scripts/reference/make_reference.py`; the files under `tests/data/` say in their `how`
//! field exactly which calls made them.

use std::path::PathBuf;

use ndarray::{Array2, Array3};
use psychrnn::io::WeightsFile;
use psychrnn::model::{Initializer, RandInit, RateRnn, RateRnnConfig, Tau};
use psychrnn::prelude::{LoadOptions, SimOptions, Simulator, TrialRng};
use psychrnn::rng::NumpyRandomState;
use psychrnn::task::BuiltinTask;
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(name)).unwrap()).unwrap()
}

fn npz(name: &str) -> WeightsFile {
    WeightsFile::read(data(name)).unwrap()
}

fn array3(file: &WeightsFile, key: &str) -> Array3<f64> {
    let a = file.require(key).unwrap();
    let s = &a.shape;
    Array3::from_shape_vec((s[0], s[1], s[2]), a.to_f64_vec().unwrap()).unwrap()
}

fn max_abs_diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(a: &Array3<A>, b: &Array3<B>) -> f64 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x.into() - y.into()).abs())
        .fold(0.0, f64::max)
}

fn kebab(psychrnn_class: &str) -> &'static str {
    match psychrnn_class {
        "PerceptualDiscrimination" => "perceptual-discrimination",
        "DelayedDiscrimination" => "delayed-discrimination",
        "MatchToCategory" => "match-to-category",
        other => panic!("unknown class {other}"),
    }
}

#[test]
fn numpy_stream_is_bit_for_bit() {
    let d = json("rng_stream.json");
    let seed = d["seed"].as_u64().unwrap() as u32;
    let mut raw = NumpyRandomState::new(seed);
    for (k, v) in d["u32"].as_array().unwrap().iter().enumerate() {
        assert_eq!(raw.next_u32() as u64, v.as_u64().unwrap(), "raw output {k}");
    }
    let mut rng = NumpyRandomState::new(seed);
    for (k, op) in d["ops"].as_array().unwrap().iter().enumerate() {
        let bits = || op["bits"].as_u64().unwrap();
        match op["op"].as_str().unwrap() {
            "random_sample" => assert_eq!(rng.random_sample().to_bits(), bits(), "op {k}"),
            "randn" => assert_eq!(rng.gauss().to_bits(), bits(), "op {k}"),
            "normal" => {
                let (mu, sigma) = (op["mu"].as_f64().unwrap(), op["sigma"].as_f64().unwrap());
                assert_eq!((mu + sigma * rng.gauss()).to_bits(), bits(), "op {k}");
            }
            "choice" => {
                let n = op["n"].as_u64().unwrap() as usize;
                assert_eq!(rng.choice(n) as u64, op["value"].as_u64().unwrap(), "op {k}");
            }
            other => panic!("unknown op {other}"),
        }
    }
    // np.random.choice([0.1, 0.3, 0.5, 0.7]) is the index form on the same stream.
    let c = &d["choice_values"];
    let mut rng = NumpyRandomState::new(c["seed"].as_u64().unwrap() as u32);
    let coh = [0.1, 0.3, 0.5, 0.7];
    for v in c["pd_coherence"]["values"].as_array().unwrap() {
        assert_eq!(coh[rng.choice(4)], v.as_f64().unwrap());
    }
}

/// Noise-free trials (stim_noise 0), on and off the dt grid, to 1e-6.
#[test]
fn noise_free_trials_match_psychrnn() {
    for task_name in ["pd", "dd", "mtc"] {
        for tag in ["grid", "offgrid"] {
            let meta = json(&format!("trials_{task_name}_{tag}.json"));
            let reference = npz(&format!("trials_{task_name}_{tag}.npz"));
            let task = BuiltinTask::new(kebab(meta["task"].as_str().unwrap()), &meta["config"]).unwrap();
            assert_eq!(task.spec().n_steps() as u64, meta["N_steps"].as_u64().unwrap());
            let batch = task
                .batch_json(&mut TrialRng::seeded(0), Some(&meta["trials"]))
                .unwrap();
            for (key, ours) in [("x", &batch.x), ("y", &batch.y), ("mask", &batch.mask)] {
                let diff = max_abs_diff(ours, &array3(&reference, key));
                assert!(diff <= 1e-6, "{task_name} {tag} {key}: max |diff| {diff}");
            }
        }
    }
}

/// `--numpy-seed` batches: params identical, arrays equal after rounding PsychRNN's float64 to f32.
#[test]
fn numpy_seeded_batches_match_psychrnn() {
    for case in ["pd", "dd", "mtc", "pd_offgrid", "pd_coh"] {
        let meta = json(&format!("npseed_{case}.json"));
        let reference = npz(&format!("npseed_{case}.npz"));
        let task = BuiltinTask::new(kebab(meta["task"].as_str().unwrap()), &meta["config"]).unwrap();
        let seed = meta["seed"].as_u64().unwrap() as u32;
        let batch = task.batch_json(&mut TrialRng::numpy(seed), None).unwrap();
        for (ours, theirs) in batch.params.iter().zip(meta["trials"].as_array().unwrap()) {
            for (k, v) in theirs.as_object().unwrap() {
                assert_eq!(ours[k].as_f64(), v.as_f64(), "{case}: param {k}");
            }
        }
        for (key, ours) in [("x", &batch.x), ("y", &batch.y), ("mask", &batch.mask)] {
            let theirs = array3(&reference, key).mapv(|v| v as f32);
            let mismatches = ours
                .iter()
                .zip(&theirs)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(
                mismatches, 0,
                "{case} {key}: {mismatches} values differ from float32(PsychRNN)"
            );
        }
    }
}

fn rand_init(name: &str, kwargs: &Value) -> RandInit {
    match name {
        "glorot_gauss" => RandInit::GlorotGauss,
        "glorot_unif" => RandInit::GlorotUnif,
        "const_gauss" => RandInit::ConstGauss,
        "const_unif" => RandInit::ConstUnif {
            min: kwargs["init_minval"].as_f64().unwrap_or(-0.1),
            max: kwargs["init_maxval"].as_f64().unwrap_or(0.1),
        },
        other => panic!("{other}"),
    }
}

/// Initial weights drawn from `TrialRng::numpy(seed)` equal PsychRNN's initialisers after
/// `np.random.seed(seed)` (to f32 rounding; W_rec of GaussianSpectralRadius to 1e-6 relative
/// because its eigenvalues come from a different LAPACK-free solver).
#[test]
fn initialisers_match_psychrnn() {
    for case in [
        "gsr_dale",
        "gsr_mask",
        "glorot_unif",
        "const_unif",
        "const_gauss",
        "alpha_identity",
    ] {
        let meta = json(&format!("init_{case}.json"));
        let reference = npz(&format!("init_{case}.npz"));
        let kw = &meta["kwargs"];
        let get = |k: &str| kw[k].as_u64().unwrap() as usize;
        let which = rand_init(kw["which_rand_init"].as_str().unwrap_or("glorot_gauss"), kw);
        let initializer = match meta["class"].as_str().unwrap() {
            "GaussianSpectralRadius" => Initializer::GaussianSpectralRadius {
                spec_rad: kw["spec_rad"].as_f64().unwrap_or(1.1),
            },
            "AlphaIdentity" => Initializer::AlphaIdentity {
                alpha: kw["alpha"].as_f64().unwrap(),
            },
            "WeightInitializer" => Initializer::Random,
            other => panic!("{other}"),
        };
        let rec_connectivity = kw.get("rec_connectivity").map(|m| {
            let rows: Vec<Vec<f32>> = serde_json::from_value(m.clone()).unwrap();
            let n = rows.len();
            Array2::from_shape_vec((n, n), rows.concat()).unwrap()
        });
        let config = RateRnnConfig {
            n_in: get("N_in"),
            n_rec: get("N_rec"),
            n_out: get("N_out"),
            dale_ratio: kw["dale_ratio"].as_f64(),
            autapses: kw["autapses"].as_bool().unwrap_or(true),
            rec_connectivity,
            initializer,
            which_rand_init: which,
            tau: Tau::Scalar(100.0),
            ..Default::default()
        };
        let model = config
            .init(&mut TrialRng::numpy(meta["seed"].as_u64().unwrap() as u32))
            .unwrap();
        let p = &model.params;
        let c = &model.constraints;
        let vec = |a: &Array2<f32>| a.iter().copied().collect::<Vec<f32>>();
        let checks: [(&str, Vec<f32>, f64); 7] = [
            ("W_in", vec(&p.w_in), 0.0),
            ("W_out", vec(&p.w_out), 0.0),
            ("W_rec", vec(&p.w_rec), if case.starts_with("gsr") { 1e-6 } else { 0.0 }),
            ("init_state", p.init_state.to_vec(), 0.0),
            ("input_connectivity", vec(&c.input_connectivity), 0.0),
            ("rec_connectivity", vec(&c.rec_connectivity), 0.0),
            ("output_connectivity", vec(&c.output_connectivity), 0.0),
        ];
        for (key, ours, rel_tol) in checks {
            let theirs = reference.require(key).unwrap().to_f64_vec().unwrap();
            assert_eq!(ours.len(), theirs.len(), "{case} {key}");
            for (k, (&a, &b)) in ours.iter().zip(&theirs).enumerate() {
                let b32 = b as f32;
                let ok = if rel_tol == 0.0 {
                    a == b32
                } else {
                    (a as f64 - b).abs() <= rel_tol * b.abs().max(1e-3)
                };
                assert!(ok, "{case} {key}[{k}]: ours {a}, PsychRNN {b}");
            }
        }
        // Dale_rec as PsychRNN; Dale_out follows GitHub master (1/0), not PyPI 1.0.0 (= Dale_rec).
        let dale_rec = reference.require("Dale_rec").unwrap().to_f64_vec().unwrap();
        let n = model.n_rec();
        for j in 0..n {
            assert_eq!(c.dale_rec[j] as f64, dale_rec[j * n + j], "{case} Dale_rec");
            assert_eq!(c.dale_out[j], c.dale_rec[j].max(0.0), "{case} Dale_out");
        }
    }
}

fn load(file: &WeightsFile) -> RateRnn {
    RateRnn::from_weights(file, &LoadOptions::default()).unwrap()
}

/// The simulator on PsychRNN-trained weights equals TensorFlow's `model.test()` at rec_noise 0,
/// for an unconstrained, a Dale, a masked and a tanh model; accuracies equal PsychRNN's.
#[test]
fn simulator_matches_tensorflow_test() {
    for case in ["plain", "dale", "masked", "tanh"] {
        let weights = npz(&format!("sim_{case}_weights.npz"));
        let io = npz(&format!("sim_{case}_io.npz"));
        let model = load(&weights);
        let x = array3(&io, "x");
        let sim = Simulator::from_model(&model).run(&x, &SimOptions::default()).unwrap();
        let d_out = max_abs_diff(&sim.outputs, &array3(&io, "outputs"));
        let d_state = max_abs_diff(&sim.states, &array3(&io, "states"));
        assert!(
            d_out < 1e-5 && d_state < 1e-5,
            "{case}: outputs {d_out:e}, states {d_state:e}"
        );

        let task = BuiltinTask::new("perceptual-discrimination", &Value::Null).unwrap();
        let f32s = |a: Array3<f64>| a.mapv(|v| v as f32);
        let (y, mask) = (f32s(array3(&io, "y")), f32s(array3(&io, "mask")));
        let expected = io.require("accuracy").unwrap().to_f64_vec().unwrap()[0];
        let theirs = f32s(array3(&io, "outputs"));
        assert_eq!(task.accuracy(y.view(), theirs.view(), mask.view()), expected, "{case}");
        let ours = f32s(sim.outputs);
        assert_eq!(
            task.accuracy(y.view(), ours.view(), mask.view()),
            expected,
            "{case} (our outputs)"
        );
    }
}

#[test]
fn accuracy_functions_match_psychrnn_including_ties() {
    for (case, name) in [
        ("pd", "perceptual-discrimination"),
        ("dd", "delayed-discrimination"),
        ("mtc", "match-to-category"),
    ] {
        let f = npz(&format!("accuracy_{case}.npz"));
        let f32s = |k: &str| array3(&f, k).mapv(|v| v as f32);
        let task = BuiltinTask::new(name, &Value::Null).unwrap();
        let got = task.accuracy(f32s("y").view(), f32s("outputs").view(), f32s("mask").view());
        assert_eq!(got, f.require("accuracy").unwrap().to_f64_vec().unwrap()[0], "{case}");
    }
}

/// The shared fixture (trained by PsychRNN on PD) through our simulator equals PsychRNN's NumPy
/// `BasicSimulator`. Both compute in float64 from the same float32 weights, except that under
/// NumPy 2's promotion rules BasicSimulator's first step runs in float32 (its state starts as the
/// float32 `init_state`), which leaves differences of ~1e-8.
#[test]
fn fixture_matches_basic_simulator() {
    let fixture = WeightsFile::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/psychrnn_saved_weights.npz"
    ))
    .unwrap();
    let reference = npz("fixture_bsim.npz");
    let sim = Simulator::from_model(&load(&fixture))
        .run(&array3(&reference, "x"), &SimOptions::default())
        .unwrap();
    let d_out = max_abs_diff(&sim.outputs, &array3(&reference, "outputs"));
    let d_state = max_abs_diff(&sim.states, &array3(&reference, "states"));
    assert!(d_out < 1e-7 && d_state < 1e-7, "outputs {d_out:e}, states {d_state:e}");
    let task = BuiltinTask::new("perceptual-discrimination", &Value::Null).unwrap();
    let f32s = |a: Array3<f64>| a.mapv(|v| v as f32);
    let acc = task.accuracy(
        f32s(array3(&reference, "y")).view(),
        f32s(sim.outputs).view(),
        f32s(array3(&reference, "mask")).view(),
    );
    assert_eq!(acc, reference.require("accuracy").unwrap().to_f64_vec().unwrap()[0]);
}
