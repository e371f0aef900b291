//! Weight files: read → write → read is lossless, and PsychRNN accepts what psychrnn writes.

use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array3;
use psychrnn::io::{NpyArray, WeightsFile, npy};
use psychrnn::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/psychrnn_saved_weights.npz"
);

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn array3(file: &WeightsFile, key: &str) -> Array3<f64> {
    let a = file.require(key).unwrap();
    let s = &a.shape;
    Array3::from_shape_vec((s[0], s[1], s[2]), a.to_f64_vec().unwrap()).unwrap()
}

#[test]
fn fixture_round_trips_every_key() {
    let original = WeightsFile::read(FIXTURE).unwrap();
    assert_eq!(original.entries.len(), 24);
    assert_eq!(original.adam_slots().len(), 6);
    assert_eq!(original.dale_ratio().unwrap(), None);
    assert!(original.transfer_function().is_none());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.npz");
    original.write(&path, false).unwrap();
    let again = WeightsFile::read(&path).unwrap();
    assert_eq!(original.entries, again.entries);
    // Nothing the user saved is overwritten without being asked.
    assert!(matches!(original.write(&path, false), Err(Error::Exists { .. })));
    original.write(&path, true).unwrap();
}

/// Fresh models with every constraint, through a file and back: identical parameters.
#[test]
fn models_round_trip_through_psychrnn_files() {
    let mut mask = Array2::<f32>::ones((12, 12));
    mask[[3, 7]] = 0.0;
    for (dale_ratio, transfer) in [
        (None, Transfer::Relu),
        (Some(0.75), Transfer::Tanh),
        (Some(0.5), Transfer::Softplus),
    ] {
        let config = RateRnnConfig {
            n_in: 3,
            n_rec: 12,
            n_out: 2,
            dale_ratio,
            transfer,
            autapses: false,
            rec_connectivity: Some(mask.clone()),
            ..Default::default()
        };
        let model = config.init(&mut TrialRng::seeded(5)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.npz");
        model.to_weights().write(&path, false).unwrap();
        let file = WeightsFile::read(&path).unwrap();
        assert_eq!(file.dale_ratio().unwrap(), dale_ratio);
        assert_eq!(file.transfer_function(), Some(Ok(transfer)));
        let loaded = RateRnn::from_weights(&file, &LoadOptions::default()).unwrap();
        assert_eq!(loaded.effective_w_rec(), model.effective_w_rec());
        assert_eq!(loaded.effective_w_in(), model.effective_w_in());
        assert_eq!(loaded.effective_w_out(), model.effective_w_out());
        assert_eq!(loaded.constraints, model.constraints);
        assert_eq!(loaded.params.init_state, model.params.init_state);
        assert_eq!(loaded.config.transfer, transfer);
    }
}

/// The files psychrnn writes for the fixture network and for a Dale + masked tanh network are
/// committed next to PsychRNN's `BasicSimulator` outputs on them (`written_*`, made by
/// `scripts/reference/bsim_outputs.py`). Writing again must give the same bytes, and our
/// simulator must agree with PsychRNN's on them. With the reference Python environment present
/// (`PSYCHRNN_REF_PYTHON` or `~/.cache/psychrnn/pyref`), PsychRNN's own loaders also check the
/// file written now (`np.load(allow_pickle=True)`, `BasicSimulator`, `Basic(load_weights_path)`).
#[test]
fn psychrnn_accepts_written_files() {
    let x = array3(&WeightsFile::read(data("fixture_bsim.npz")).unwrap(), "x");
    for case in ["fixture", "dale_masked_tanh"] {
        let model = written_model(case);
        let bytes = npy::write_npz_bytes(&model.to_weights().entries).unwrap();
        let committed = std::fs::read(data(&format!("written_{case}_weights.npz"))).unwrap();
        assert!(bytes == committed, "{case}: written bytes changed");
        let sim = Simulator::from_model(&model).run(&x, &SimOptions::default()).unwrap();
        let theirs = WeightsFile::read(data(&format!("written_{case}_bsim.npz"))).unwrap();
        for (key, ours) in [("outputs", &sim.outputs), ("states", &sim.states)] {
            let diff = ours
                .iter()
                .zip(array3(&theirs, key).iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            // ~1e-8: BasicSimulator runs its first step in float32 (see tests/reference.rs).
            assert!(diff < 1e-7, "{case} {key}: {diff:e}");
        }
        if let Some(python) = reference_python() {
            let dir = tempfile::tempdir().unwrap();
            let (w, io) = (dir.path().join("w.npz"), dir.path().join("io.npz"));
            std::fs::write(&w, &bytes).unwrap();
            let as_npy = |a: &Array3<f64>| NpyArray::from_f64(a.shape().to_vec(), a.iter().copied().collect());
            npy::write_npz(
                &io,
                &[
                    ("x".into(), as_npy(&x)),
                    ("outputs".into(), as_npy(&sim.outputs)),
                    ("states".into(), as_npy(&sim.states)),
                ],
            )
            .unwrap();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference/check_weights.py");
            let out = Command::new(python).arg(script).arg(&w).arg(&io).output().unwrap();
            assert!(
                out.status.success(),
                "{case}: PsychRNN rejected the file:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The two networks behind the committed `written_*` files.
fn written_model(case: &str) -> RateRnn {
    match case {
        "fixture" => RateRnn::from_weights(&WeightsFile::read(FIXTURE).unwrap(), &LoadOptions::default()).unwrap(),
        _ => {
            let mut mask = Array2::<f32>::ones((16, 16));
            mask.slice_mut(ndarray::s![0..4, 8..12]).fill(0.0);
            RateRnnConfig {
                n_rec: 16,
                dale_ratio: Some(0.75),
                transfer: Transfer::Tanh,
                rec_connectivity: Some(mask),
                ..Default::default()
            }
            .init(&mut TrialRng::numpy(7))
            .unwrap()
        }
    }
}

fn reference_python() -> Option<PathBuf> {
    let path = std::env::var_os("PSYCHRNN_REF_PYTHON")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/psychrnn/pyref/bin/python")))?;
    path.exists().then_some(path)
}

/// Regenerates the committed `written_*_weights.npz` (run with `--ignored` after an intended
/// format change; then `scripts/reference/bsim_outputs.py` regenerates the BasicSimulator side).
#[test]
#[ignore]
fn bless_written_files() {
    for case in ["fixture", "dale_masked_tanh"] {
        let bytes = npy::write_npz_bytes(&written_model(case).to_weights().entries).unwrap();
        std::fs::write(data(&format!("written_{case}_weights.npz")), bytes).unwrap();
    }
}
