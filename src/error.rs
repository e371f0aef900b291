//! One error type for the whole crate.

use std::path::PathBuf;

use crate::io::npy::NpyError;

/// Everything that can go wrong in psychrnn. Each variant names the offending field or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A numeric parameter is outside its allowed range.
    #[error("invalid {field} = {value}: must be {allowed}")]
    OutOfRange {
        field: String,
        value: String,
        allowed: String,
    },
    /// An array (mask, weight, input) does not have the shape the model needs.
    #[error("{field} has shape {got:?}, expected {expected:?}")]
    Shape {
        field: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A name (task, transfer function, initialiser) that psychrnn does not know.
    #[error("unknown {kind} {name:?}; known: {known}")]
    Unknown {
        kind: &'static str,
        name: String,
        known: String,
    },
    /// A weights or data file lacks an entry that is required.
    #[error("{path}: missing key {key:?}")]
    MissingKey { path: String, key: String },
    /// An entry has the wrong type (e.g. an object array where numbers are needed).
    #[error("{path}: key {key:?} {problem}")]
    BadEntry { path: String, key: String, problem: String },
    /// A configuration or trial file could not be parsed.
    #[error("{path}: {message}")]
    Config { path: String, message: String },
    /// An empty batch, empty trial list or zero-length trial.
    #[error("{what} is empty")]
    Empty { what: String },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An `.npy`/`.npz` file is unreadable or malformed.
    #[error(transparent)]
    Npy(#[from] NpyError),
    /// Training met a NaN or infinite loss or gradient; the weights were left as they were.
    #[error("non-finite {what}; training stopped, weights kept from the last good update")]
    NonFinite { what: String },
    /// Settings that are each valid but do not go together (e.g. a performance cutoff without a
    /// performance measure).
    #[error("invalid {field}: {message}")]
    Invalid { field: String, message: String },
    /// A table (DataFrame) could not be built or written.
    #[error("{what}: {message}")]
    Table { what: String, message: String },
    /// Refusing to overwrite something the user saved.
    #[error("{path} already exists; pass --force (or `overwrite = true`) to replace it")]
    Exists { path: PathBuf },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::OutOfRange`].
    pub fn range(field: impl Into<String>, value: impl ToString, allowed: impl Into<String>) -> Self {
        Error::OutOfRange {
            field: field.into(),
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    /// An [`Error::Shape`].
    pub fn shape(field: impl Into<String>, expected: &[usize], got: &[usize]) -> Self {
        Error::Shape {
            field: field.into(),
            expected: expected.to_vec(),
            got: got.to_vec(),
        }
    }

    /// An [`Error::Invalid`].
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An [`Error::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// Checks that a time quantity (dt, tau, T, ...) is finite and strictly positive.
pub(crate) fn check_positive(field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(Error::range(field, value, "finite and > 0"))
    }
}
