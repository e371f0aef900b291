//! A broken weights file is a typed error naming the key, never a panic.

use psychrnn::io::{NpyArray, WeightsFile};
use psychrnn::prelude::*;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/psychrnn_saved_weights.npz"
);

fn edited(edit: impl FnOnce(&mut Vec<(String, NpyArray)>)) -> Result<RateRnn> {
    let mut file = WeightsFile::read(FIXTURE).unwrap();
    edit(&mut file.entries);
    RateRnn::from_weights(&file, &LoadOptions::default())
}

fn replace(entries: &mut [(String, NpyArray)], key: &str, value: NpyArray) {
    entries.iter_mut().find(|(k, _)| k == key).unwrap().1 = value;
}

#[test]
fn fixture_loads() {
    let m = edited(|_| {}).unwrap();
    assert_eq!((m.n_in(), m.n_rec(), m.n_out()), (2, 50, 2));
    assert!(!m.constraints.dale);
    assert_eq!(m.config.transfer, Transfer::Relu);
}

#[test]
fn missing_key() {
    for key in ["W_rec", "W_in", "b_out", "init_state"] {
        match edited(|e| e.retain(|(k, _)| k != key)) {
            Err(Error::MissingKey { key: k, .. }) => assert_eq!(k, key),
            other => panic!("{key}: {other:?}"),
        }
    }
}

#[test]
fn inconsistent_shapes() {
    let err = edited(|e| replace(e, "W_out", NpyArray::from_f32(vec![2, 49], vec![0.0; 98]))).unwrap_err();
    assert!(
        matches!(err, Error::Shape { ref field, .. } if field.starts_with("W_out")),
        "{err}"
    );
    let err = edited(|e| replace(e, "b_rec", NpyArray::from_f32(vec![3], vec![0.0; 3]))).unwrap_err();
    assert!(
        matches!(err, Error::Shape { ref field, .. } if field.starts_with("b_rec")),
        "{err}"
    );
    let err = edited(|e| replace(e, "W_rec", NpyArray::from_f32(vec![50, 2], vec![0.0; 100]))).unwrap_err();
    assert!(
        matches!(err, Error::Shape { ref field, .. } if field.starts_with("W_rec")),
        "{err}"
    );
    let err = edited(|e| replace(e, "rec_connectivity", NpyArray::from_f32(vec![50], vec![1.0; 50]))).unwrap_err();
    assert!(
        matches!(err, Error::Shape { ref field, .. } if field.starts_with("rec_connectivity")),
        "{err}"
    );
}

#[test]
fn bad_values() {
    let err = edited(|e| replace(e, "dale_ratio", NpyArray::scalar_f64(1.5))).unwrap_err();
    assert!(
        matches!(err, Error::OutOfRange { ref field, .. } if field == "dale_ratio"),
        "{err}"
    );
    let mut w = vec![0.0f32; 2500];
    w[1] = 1.0;
    let err = edited(|e| replace(e, "Dale_rec", NpyArray::from_f32(vec![50, 50], w))).unwrap_err();
    assert!(
        matches!(err, Error::BadEntry { ref key, .. } if key == "Dale_rec"),
        "{err}"
    );
    let err = edited(|e| replace(e, "b_out", NpyArray::from_f32(vec![2], vec![f32::NAN, 0.0]))).unwrap_err();
    assert!(
        matches!(err, Error::BadEntry { ref key, .. } if key == "b_out"),
        "{err}"
    );
    let err = edited(|e| replace(e, "W_in", NpyArray::object_none())).unwrap_err();
    assert!(matches!(err, Error::Shape { .. } | Error::BadEntry { .. }), "{err}");
}

#[test]
fn unknown_transfer_function_falls_back_to_relu() {
    let m = edited(|e| {
        e.push((
            "transfer_function".into(),
            NpyArray::object_global("mylab.ops", "swish"),
        ))
    })
    .unwrap();
    assert_eq!(m.config.transfer, Transfer::Relu);
    let m = edited(|e| {
        e.push((
            "transfer_function".into(),
            NpyArray::object_global("tensorflow.python.ops.gen_math_ops", "tanh"),
        ))
    })
    .unwrap();
    assert_eq!(m.config.transfer, Transfer::Tanh);
}

#[test]
fn unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        WeightsFile::read(dir.path().join("absent.npz")),
        Err(Error::Npy(_))
    ));
    let junk = dir.path().join("junk.npz");
    std::fs::write(&junk, b"not a zip file").unwrap();
    assert!(matches!(WeightsFile::read(&junk), Err(Error::Npy(_))));
}
