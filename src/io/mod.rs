//! Files: PsychRNN-compatible `.npz` weights, and NumPy arrays in and out.
//!
//! A PsychRNN weights file holds the *effective* `W_in`, `W_rec`, `W_out`, the biases, the initial
//! state, the Dale matrices, the three connectivity masks, optional Adam slots
//! (`W_rec/Adam`, `W_rec/Adam_1`, …), `dale_ratio` (a float, or a pickled `None`) and, in files
//! from GitHub master, `transfer_function` (a pickled TensorFlow function reference).
//!
//! ```no_run
//! use psychrnn::prelude::*;
//! let file = WeightsFile::read("saved_weights.npz")?;
//! let model = RateRnn::from_weights(&file, &LoadOptions::default())?; // dt 10, tau 100
//! model.to_weights().write("copy.npz", false)?; // refuses to overwrite
//! # Ok::<(), psychrnn::Error>(())
//! ```

mod gated;
pub mod npy;
pub mod pickle;

use std::path::Path;

use ndarray::{Array1, Array2, Array3};

pub use npy::{NpyArray, NpyData, NpyError};
pub use pickle::PyValue;

use crate::error::{Error, Result};
use crate::model::{Constraints, RateRnn, RateRnnConfig, RateRnnParams, Tau, Transfer};

/// The core arrays of a PsychRNN weights file, in the order PsychRNN writes them.
pub const CORE_KEYS: [&str; 11] = [
    "init_state",
    "W_in",
    "W_rec",
    "W_out",
    "b_rec",
    "b_out",
    "Dale_rec",
    "Dale_out",
    "input_connectivity",
    "rec_connectivity",
    "output_connectivity",
];

/// An `.npz` file read into memory: every entry, in archive order, nothing dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct WeightsFile {
    /// `(key, array)` pairs; keys without `.npy`.
    pub entries: Vec<(String, NpyArray)>,
    /// Where it was read from, for error messages (`"<memory>"` otherwise).
    pub source: String,
}

impl WeightsFile {
    /// Reads an `.npz` file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        Ok(Self {
            entries: npy::read_npz(path)?,
            source: path.display().to_string(),
        })
    }

    /// Writes the entries as an uncompressed `.npz` (as `np.savez`). Refuses to replace an
    /// existing file unless `overwrite`.
    pub fn write(&self, path: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let path = path.as_ref();
        refuse_overwrite(path, overwrite)?;
        npy::write_npz(path, &self.entries)?;
        Ok(())
    }

    /// The entry `key`, if present.
    pub fn get(&self, key: &str) -> Option<&NpyArray> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The entry `key`, or [`Error::MissingKey`].
    pub fn require(&self, key: &str) -> Result<&NpyArray> {
        self.get(key).ok_or_else(|| Error::MissingKey {
            path: self.source.clone(),
            key: key.into(),
        })
    }

    /// Keys in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// `dale_ratio`: `Ok(None)` when absent (pre-1.0 files) or a pickled `None`.
    pub fn dale_ratio(&self) -> Result<Option<f64>> {
        let Some(a) = self.get("dale_ratio") else {
            return Ok(None);
        };
        if let Some(v) = a.as_object_scalar() {
            return match v {
                PyValue::None => Ok(None),
                PyValue::Float(f) => Ok(Some(*f)),
                PyValue::Int(i) => Ok(Some(*i as f64)),
                other => Err(self.bad("dale_ratio", format!("holds {other:?}, expected None or a float"))),
            };
        }
        match a.to_f64_vec().as_deref() {
            Some([r]) => Ok(Some(*r)),
            _ => Err(self.bad("dale_ratio", format!("has shape {:?}, expected a scalar", a.shape))),
        }
    }

    /// The pickled `transfer_function`: `None` when absent; `Some(Err(name))` when it names a
    /// function psychrnn does not know.
    pub fn transfer_function(&self) -> Option<std::result::Result<Transfer, String>> {
        let a = self.get("transfer_function")?;
        Some(match a.as_object_scalar() {
            Some(PyValue::Global { module, name }) => {
                Transfer::from_function_name(name).ok_or_else(|| format!("{module}.{name}"))
            }
            other => Err(format!("{other:?}")),
        })
    }

    /// Adam slots present in the file: `(variable, m, v)` for each `<variable>/Adam` +
    /// `<variable>/Adam_1` pair.
    pub fn adam_slots(&self) -> Vec<(&str, &NpyArray, &NpyArray)> {
        self.entries
            .iter()
            .filter_map(|(k, m)| {
                let var = k.strip_suffix("/Adam")?;
                let v = self.get(&format!("{var}/Adam_1"))?;
                Some((var, m, v))
            })
            .collect()
    }

    fn bad(&self, key: &str, problem: String) -> Error {
        Error::BadEntry {
            path: self.source.clone(),
            key: key.into(),
            problem,
        }
    }

    /// A numeric entry as f32 with the given shape (`init_state` may be `[1, n]` or `[n]`).
    fn matrix(&self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let a = self.require(key)?;
        let size: usize = shape.iter().product();
        let shape_ok = a.shape == shape || (key == "init_state" && a.shape.iter().product::<usize>() == size);
        if !shape_ok {
            return Err(Error::Shape {
                field: format!("{} in {}", key, self.source),
                expected: shape.to_vec(),
                got: a.shape.clone(),
            });
        }
        let v = a
            .to_f32_vec()
            .ok_or_else(|| self.bad(key, "is not a numeric array".into()))?;
        if v.iter().any(|x| !x.is_finite()) {
            return Err(self.bad(key, "contains NaN or infinite values".into()));
        }
        Ok(v)
    }

    fn optional_matrix(&self, key: &str, shape: &[usize], default: impl FnOnce() -> Vec<f32>) -> Result<Vec<f32>> {
        if self.get(key).is_some() {
            self.matrix(key, shape)
        } else {
            Ok(default())
        }
    }

    fn diagonal(&self, key: &str, n: usize) -> Result<Array1<f32>> {
        let m = self.optional_matrix(key, &[n, n], || identity(n))?;
        let off_diagonal = (0..n * n).any(|k| k / n != k % n && m[k] != 0.0);
        if off_diagonal {
            return Err(self.bad(key, "is not diagonal".into()));
        }
        Ok(Array1::from_shape_fn(n, |j| m[j * n + j]))
    }
}

fn identity(n: usize) -> Vec<f32> {
    (0..n * n).map(|k| if k / n == k % n { 1.0 } else { 0.0 }).collect()
}

/// Fails with [`Error::Exists`] when `path` exists and `overwrite` is false.
pub fn refuse_overwrite(path: &Path, overwrite: bool) -> Result<()> {
    if !overwrite && path.exists() {
        return Err(Error::Exists { path: path.into() });
    }
    Ok(())
}

/// What a weights file does not say: time constants, noise and (optionally) the transfer function.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Time step (ms).
    pub dt: f64,
    /// Time constant(s) (ms).
    pub tau: Tau,
    /// Recurrent noise σ.
    pub rec_noise: f64,
    /// Overrides the file's `transfer_function` (relu when neither says).
    pub transfer: Option<Transfer>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dt: 10.0,
            tau: Tau::Scalar(100.0),
            rec_noise: 0.0,
            transfer: None,
        }
    }
}

impl LoadOptions {
    /// dt, tau, noise and transfer function of a model config.
    pub fn from_config(config: &RateRnnConfig) -> Self {
        Self {
            dt: config.dt,
            tau: config.tau.clone(),
            rec_noise: config.rec_noise,
            transfer: Some(config.transfer),
        }
    }
}

impl RateRnn {
    /// Builds a model from a PsychRNN (or psychrnn) weights file, as PsychRNN's
    /// `load_weights_path` does: the stored (effective) weights become the raw parameters, which
    /// is exact because applying the constraints again is idempotent. Masks and Dale diagonals
    /// come from the file, so files from PyPI 1.0.0 (±1 `Dale_out`) and from master (1/0) both
    /// reproduce their network. A missing `transfer_function` means relu, with a warning.
    pub fn from_weights(file: &WeightsFile, options: &LoadOptions) -> Result<Self> {
        let w_rec = file.require("W_rec")?;
        let n = match w_rec.shape.as_slice() {
            [a, b] if a == b && *a > 0 => *a,
            other => {
                return Err(Error::Shape {
                    field: format!("W_rec in {}", file.source),
                    expected: vec![0, 0],
                    got: other.to_vec(),
                });
            }
        };
        let dim = |key: &str, axis: usize| -> Result<usize> {
            let a = file.require(key)?;
            match (a.shape.len(), a.shape.get(axis)) {
                (2, Some(&d)) if d > 0 => Ok(d),
                _ => Err(Error::Shape {
                    field: format!("{} in {}", key, file.source),
                    expected: vec![n, 1],
                    got: a.shape.clone(),
                }),
            }
        };
        let n_in = dim("W_in", 1)?;
        let n_out = dim("W_out", 0)?;
        let arr2 = |v: Vec<f32>, r: usize, c: usize| Array2::from_shape_vec((r, c), v).expect("shape checked");

        let transfer = match (options.transfer, file.transfer_function()) {
            (Some(t), _) => t,
            (None, Some(Ok(t))) => t,
            (None, Some(Err(name))) => {
                eprintln!("warning: {}: unknown transfer_function {name}; using relu", file.source);
                Transfer::Relu
            }
            (None, None) => {
                eprintln!(
                    "warning: {}: no transfer_function entry (older file); using relu",
                    file.source
                );
                Transfer::Relu
            }
        };
        let dale_ratio = file.dale_ratio()?;
        if let Some(r) = dale_ratio
            && !(0.0..=1.0).contains(&r)
        {
            return Err(Error::range("dale_ratio", r, "in [0, 1]"));
        }
        let config = RateRnnConfig {
            n_in,
            n_rec: n,
            n_out,
            dt: options.dt,
            tau: options.tau.clone(),
            rec_noise: options.rec_noise,
            transfer,
            dale_ratio,
            initializer: crate::model::Initializer::File {
                path: file.source.clone().into(),
            },
            ..RateRnnConfig::default()
        };
        let params = RateRnnParams {
            w_in: arr2(file.matrix("W_in", &[n, n_in])?, n, n_in),
            w_rec: arr2(file.matrix("W_rec", &[n, n])?, n, n),
            w_out: arr2(file.matrix("W_out", &[n_out, n])?, n_out, n),
            b_rec: Array1::from(file.matrix("b_rec", &[n])?),
            b_out: Array1::from(file.matrix("b_out", &[n_out])?),
            init_state: Array1::from(file.matrix("init_state", &[1, n])?),
        };
        let ones = |len| move || vec![1.0; len];
        let constraints = Constraints {
            dale: dale_ratio.is_some_and(|r| r != 0.0),
            dale_rec: file.diagonal("Dale_rec", n)?,
            dale_out: file.diagonal("Dale_out", n)?,
            input_connectivity: arr2(
                file.optional_matrix("input_connectivity", &[n, n_in], ones(n * n_in))?,
                n,
                n_in,
            ),
            rec_connectivity: arr2(file.optional_matrix("rec_connectivity", &[n, n], ones(n * n))?, n, n),
            output_connectivity: arr2(
                file.optional_matrix("output_connectivity", &[n_out, n], ones(n_out * n))?,
                n_out,
                n,
            ),
        };
        RateRnn::from_parts(config, params, constraints)
    }

    /// The PsychRNN weights file of this model: effective weights, masks, Dale matrices,
    /// `dale_ratio` and the TensorFlow `transfer_function` reference, loadable by PsychRNN's
    /// `load_weights_path`, `BasicSimulator` and `np.load(allow_pickle=True)`.
    pub fn to_weights(&self) -> WeightsFile {
        let (n, i, o) = (self.n_rec(), self.n_in(), self.n_out());
        let m2 = |a: Array2<f32>| NpyArray::from_f32(a.shape().to_vec(), a.iter().copied().collect());
        let diag = |d: &Array1<f32>| Array2::from_diag(d);
        let p = &self.params;
        let c = &self.constraints;
        let mut entries = vec![
            (
                "init_state".to_string(),
                NpyArray::from_f32(vec![1, n], p.init_state.to_vec()),
            ),
            ("W_in".into(), m2(self.effective_w_in())),
            ("W_rec".into(), m2(self.effective_w_rec())),
            ("W_out".into(), m2(self.effective_w_out())),
            ("b_rec".into(), NpyArray::from_f32(vec![n], p.b_rec.to_vec())),
            ("b_out".into(), NpyArray::from_f32(vec![o], p.b_out.to_vec())),
            ("Dale_rec".into(), m2(diag(&c.dale_rec))),
            ("Dale_out".into(), m2(diag(&c.dale_out))),
            ("input_connectivity".into(), m2(c.input_connectivity.clone())),
            ("rec_connectivity".into(), m2(c.rec_connectivity.clone())),
            ("output_connectivity".into(), m2(c.output_connectivity.clone())),
        ];
        debug_assert_eq!(entries[1].1.shape, vec![n, i]);
        entries.push((
            "dale_ratio".into(),
            match self.config.dale_ratio {
                Some(r) => NpyArray::scalar_f64(r),
                None => NpyArray::object_none(),
            },
        ));
        let (module, name) = self.config.transfer.tensorflow_reference();
        entries.push(("transfer_function".into(), NpyArray::object_global(module, name)));
        WeightsFile {
            entries,
            source: "<memory>".into(),
        }
    }
}

/// Reads a float array `[B, T, N]` from a `.npy` file, or from key `key` of an `.npz` file
/// (f32 or f64 on disk; returned as f64).
pub fn read_array3(path: impl AsRef<Path>, key: &str) -> Result<Array3<f64>> {
    let path = path.as_ref();
    let is_npz = path.extension().is_some_and(|e| e == "npz");
    let array = if is_npz {
        let file = WeightsFile::read(path)?;
        file.require(key)?.clone()
    } else {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        npy::read_npy(&bytes)?
    };
    let data = array.to_f64_vec().ok_or_else(|| Error::BadEntry {
        path: path.display().to_string(),
        key: key.into(),
        problem: "is not a numeric array".into(),
    })?;
    match array.shape.as_slice() {
        &[b, t, n] => Ok(Array3::from_shape_vec((b, t, n), data).expect("size matches shape")),
        other => Err(Error::Shape {
            field: format!("{key} in {}", path.display()),
            expected: vec![0, 0, 0],
            got: other.to_vec(),
        }),
    }
}

/// Converts any f32/f64 ndarray into an `.npy` array (C order).
pub fn to_npy<A: Copy + Into<f64>, D: ndarray::Dimension>(a: &ndarray::Array<A, D>, as_f32: bool) -> NpyArray {
    let shape = a.shape().to_vec();
    if as_f32 {
        NpyArray::from_f32(shape, a.iter().map(|&v| v.into() as f32).collect())
    } else {
        NpyArray::from_f64(shape, a.iter().map(|&v| v.into()).collect())
    }
}
