//! Reading and writing NumPy `.npy` and `.npz` files.
//!
//! This is what PsychRNN uses to save weights (`np.savez`): a zip archive of `.npy`
//! members, one per variable, some named with a slash (`W_rec/Adam.npy`). Two
//! members may be 0-d arrays of dtype `object`, stored as a pickle: `dale_ratio`
//! (when `None`) and `transfer_function` (a function reference). Those are decoded
//! with the small pickle machine in [`crate::io::pickle`] into a [`PyValue`].
//!
//! * Reading supports the dtypes `f4 f8 i8 i4 u1 b1 O` in either byte order, format
//!   versions 1.0, 2.0 and 3.0, and Fortran-ordered arrays (converted to C order).
//!   Archives may be stored (as `np.savez` writes) or deflated (`np.savez_compressed`).
//! * Writing produces what NumPy writes: format 1.0 (2.0 only if the header needs it),
//!   the same header text and padding, little-endian data, and stored zip members.
//!   Object arrays are written as NumPy 1.26 pickles them, which every NumPy from
//!   1.x to 2.x loads with `allow_pickle=True`.
//! * The readers never panic and never allocate memory for sizes that the input does
//!   not back: any malformed input gives an [`NpyError`].
//!
//! ```
//! use psychrnn::io::npy::{read_npz_bytes, write_npz_bytes, NpyArray, NpyData};
//! use psychrnn::io::pickle::PyValue;
//!
//! let entries = vec![
//!     ("W_rec".to_string(), NpyArray::from_f32(vec![2, 2], vec![1.0, 0.5, -0.5, 1.0])),
//!     ("W_rec/Adam".to_string(), NpyArray::from_f32(vec![2, 2], vec![0.0; 4])),
//!     ("dale_ratio".to_string(), NpyArray::object_none()),
//!     ("transfer_function".to_string(), NpyArray::object_global("builtins", "abs")),
//! ];
//! let bytes = write_npz_bytes(&entries).unwrap();
//! let back = read_npz_bytes(&bytes).unwrap();
//! assert_eq!(back, entries);
//! assert_eq!(back[0].1.shape, vec![2, 2]);
//! assert_eq!(back[0].1.data, NpyData::F32(vec![1.0, 0.5, -0.5, 1.0]));
//! assert_eq!(back[2].1.as_object_scalar(), Some(&PyValue::None));
//! ```

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use crate::io::pickle::{self, PyValue};

/// The first six bytes of every `.npy` file.
const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy pads the header so that the data starts at a multiple of this.
const ARRAY_ALIGN: usize = 64;
/// NumPy leaves room in the header for the growth axis to reach this many digits.
const GROWTH_AXIS_MAX_DIGITS: usize = 21;
/// Deepest nesting accepted in a header literal.
const MAX_HEADER_DEPTH: usize = 16;
/// Label used in errors for archives read from memory.
const MEMORY: &str = "<memory>";

/// An error reading or writing a `.npy` / `.npz` file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `.npz` archive is not a valid zip file, or holds something other than `.npy` members.
    #[error("bad npz archive {}: {message}", path.display())]
    Zip {
        /// The archive (`<memory>` for in-memory archives).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A member of an `.npz` archive is not a valid `.npy` file.
    #[error("{}: member {name:?}: {error}", path.display())]
    Member {
        /// The archive (`<memory>` for in-memory archives).
        path: PathBuf,
        /// The member's key (file name without `.npy`).
        name: String,
        /// What is wrong with it.
        error: Box<NpyError>,
    },
    /// The data does not start with the `\x93NUMPY` magic string.
    #[error("not a .npy file (no \\x93NUMPY magic string)")]
    BadMagic,
    /// The `.npy` format version is not 1.0, 2.0 or 3.0.
    #[error("unsupported .npy format version {major}.{minor}")]
    UnsupportedVersion {
        /// Major version byte.
        major: u8,
        /// Minor version byte.
        minor: u8,
    },
    /// The header is not the dictionary literal NumPy writes.
    #[error("bad .npy header: {0}")]
    BadHeader(String),
    /// The dtype (`descr`) is not one this module supports.
    #[error("unsupported dtype {0:?} (supported: f4, f8, i8, i4, u1, b1, O)")]
    UnsupportedDtype(String),
    /// The data ends before the header or array it declares.
    #[error("truncated .npy data: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes needed.
        expected: usize,
        /// Bytes present.
        got: usize,
    },
    /// The declared shape's element count or byte size does not fit in `usize`.
    #[error("array shape overflows: element count or byte size too large")]
    ShapeOverflow,
    /// An array's data length differs from the product of its shape.
    #[error("shape {shape:?} does not match {len} data elements")]
    ShapeMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// The number of data elements.
        len: usize,
    },
    /// The pickle of an object array could not be decoded.
    #[error("bad pickled object array: {0}")]
    Pickle(String),
    /// A key looked up with [`npz_get`] is absent.
    #[error("missing key {0:?} in npz file")]
    MissingKey(String),
}

/// The elements of an array, in C order.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `float32` (`<f4`).
    F32(Vec<f32>),
    /// `float64` (`<f8`).
    F64(Vec<f64>),
    /// `int64` (`<i8`).
    I64(Vec<i64>),
    /// `int32` (`<i4`).
    I32(Vec<i32>),
    /// `uint8` (`|u1`).
    U8(Vec<u8>),
    /// `bool` (`|b1`).
    Bool(Vec<bool>),
    /// `object` (`|O`): pickled Python values.
    Object(Vec<PyValue>),
}

impl NpyData {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            NpyData::F32(v) => v.len(),
            NpyData::F64(v) => v.len(),
            NpyData::I64(v) => v.len(),
            NpyData::I32(v) => v.len(),
            NpyData::U8(v) => v.len(),
            NpyData::Bool(v) => v.len(),
            NpyData::Object(v) => v.len(),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy `descr` this data is written with, e.g. `<f4`.
    pub fn descr(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "<f4",
            NpyData::F64(_) => "<f8",
            NpyData::I64(_) => "<i8",
            NpyData::I32(_) => "<i4",
            NpyData::U8(_) => "|u1",
            NpyData::Bool(_) => "|b1",
            NpyData::Object(_) => "|O",
        }
    }
}

/// An n-dimensional array: a shape and its elements in C (row-major) order.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions; empty for a 0-d (scalar) array.
    pub shape: Vec<usize>,
    /// Elements in C order; their number is the product of `shape`.
    pub data: NpyData,
}

impl NpyArray {
    /// An array from its shape and data, checking that their sizes agree.
    pub fn new(shape: Vec<usize>, data: NpyData) -> Result<Self, NpyError> {
        if element_count(&shape) != Some(data.len()) {
            return Err(NpyError::ShapeMismatch { shape, len: data.len() });
        }
        Ok(NpyArray { shape, data })
    }

    /// A `float32` array. Panics if `data.len()` is not the product of `shape`.
    pub fn from_f32(shape: Vec<usize>, data: Vec<f32>) -> Self {
        Self::new(shape, NpyData::F32(data)).expect("NpyArray::from_f32: shape/data mismatch")
    }

    /// A `float64` array. Panics if `data.len()` is not the product of `shape`.
    pub fn from_f64(shape: Vec<usize>, data: Vec<f64>) -> Self {
        Self::new(shape, NpyData::F64(data)).expect("NpyArray::from_f64: shape/data mismatch")
    }

    /// A 0-d `float64` array, what `np.savez` stores for a Python float.
    pub fn scalar_f64(v: f64) -> Self {
        NpyArray {
            shape: Vec::new(),
            data: NpyData::F64(vec![v]),
        }
    }

    /// A 0-d object array holding `None`, what `np.savez` stores for `None`.
    pub fn object_none() -> Self {
        NpyArray {
            shape: Vec::new(),
            data: NpyData::Object(vec![PyValue::None]),
        }
    }

    /// A 0-d object array holding a reference to `module.name` (e.g. a function).
    pub fn object_global(module: &str, name: &str) -> Self {
        NpyArray {
            shape: Vec::new(),
            data: NpyData::Object(vec![PyValue::Global {
                module: module.to_owned(),
                name: name.to_owned(),
            }]),
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as `f32` (numeric and bool data converted); `None` for object arrays.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        Some(match &self.data {
            NpyData::F32(v) => v.clone(),
            NpyData::F64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I64(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            NpyData::U8(v) => v.iter().map(|&x| f32::from(x)).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| f32::from(u8::from(x))).collect(),
            NpyData::Object(_) => return None,
        })
    }

    /// The elements as `f64` (numeric and bool data converted); `None` for object arrays.
    pub fn to_f64_vec(&self) -> Option<Vec<f64>> {
        Some(match &self.data {
            NpyData::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::F64(v) => v.clone(),
            NpyData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            NpyData::I32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::U8(v) => v.iter().map(|&x| f64::from(x)).collect(),
            NpyData::Bool(v) => v.iter().map(|&x| f64::from(u8::from(x))).collect(),
            NpyData::Object(_) => return None,
        })
    }

    /// The single element of a 0-d (or size-1) object array.
    pub fn as_object_scalar(&self) -> Option<&PyValue> {
        match &self.data {
            NpyData::Object(v) if v.len() == 1 => v.first(),
            _ => None,
        }
    }
}

/// Product of `shape`, or `None` on overflow.
fn element_count(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
}

// ---------------------------------------------------------------------------
// Header literal
// ---------------------------------------------------------------------------

/// A Python literal as found in a `.npy` header.
#[derive(Debug)]
enum Lit {
    Str(String),
    /// An integer: sign and magnitude (`None` if it does not fit in `u64`).
    Int(bool, Option<u64>),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    /// A list (only in structured dtypes, which are unsupported; items dropped).
    List,
    Dict(Vec<(Lit, Lit)>),
}

struct LitParser<'a> {
    s: &'a str,
    i: usize,
}

fn bad(msg: impl Into<String>) -> NpyError {
    NpyError::BadHeader(msg.into())
}

impl LitParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)) {
            self.i += 1;
        }
    }

    fn expect_close(&mut self, close: u8, what: &str) -> Result<bool, NpyError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(bad(format!(
                "expected ',' or '{}' in {what} at byte {}",
                close as char, self.i
            ))),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, NpyError> {
        if depth > MAX_HEADER_DEPTH {
            return Err(bad("literal nested too deeply"));
        }
        self.ws();
        let Some(c) = self.peek() else {
            return Err(bad("unexpected end of header"));
        };
        match c {
            b'{' => {
                self.i += 1;
                let mut items = Vec::new();
                loop {
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                        break;
                    }
                    let k = self.value(depth + 1)?;
                    self.ws();
                    if self.peek() != Some(b':') {
                        return Err(bad(format!("expected ':' in dict at byte {}", self.i)));
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    items.push((k, v));
                    if self.expect_close(b'}', "dict")? {
                        break;
                    }
                }
                Ok(Lit::Dict(items))
            }
            b'(' | b'[' => {
                self.i += 1;
                let close = if c == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                let mut comma = false;
                loop {
                    self.ws();
                    if self.peek() == Some(close) {
                        self.i += 1;
                        break;
                    }
                    items.push(self.value(depth + 1)?);
                    if self.expect_close(close, "sequence")? {
                        break;
                    }
                    comma = true;
                }
                Ok(match (c, items.len(), comma) {
                    // `(x)` is just `x` in Python, not a tuple.
                    (b'(', 1, false) => items.pop().unwrap_or(Lit::None),
                    (b'(', ..) => Lit::Tuple(items),
                    _ => Lit::List,
                })
            }
            b'\'' | b'"' => self.string(),
            b'u' | b'b' if matches!(self.s.as_bytes().get(self.i + 1), Some(b'\'' | b'"')) => {
                self.i += 1;
                self.string()
            }
            b'0'..=b'9' | b'-' | b'+' => self.int(),
            _ => {
                let start = self.i;
                while matches!(self.peek(), Some(b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'0'..=b'9')) {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    "True" => Ok(Lit::Bool(true)),
                    "False" => Ok(Lit::Bool(false)),
                    "None" => Ok(Lit::None),
                    _ => Err(bad(format!("unexpected character at byte {start}"))),
                }
            }
        }
    }

    fn int(&mut self) -> Result<Lit, NpyError> {
        let neg = match self.peek() {
            Some(b'-') => {
                self.i += 1;
                true
            }
            Some(b'+') => {
                self.i += 1;
                false
            }
            _ => false,
        };
        let start = self.i;
        let mut mag: Option<u64> = Some(0);
        while let Some(d @ b'0'..=b'9') = self.peek() {
            mag = mag
                .and_then(|m| m.checked_mul(10))
                .and_then(|m| m.checked_add(u64::from(d - b'0')));
            self.i += 1;
        }
        if self.i == start {
            return Err(bad(format!("bad number at byte {start}")));
        }
        // Python 2 long suffix, e.g. `(3L,)`.
        if matches!(self.peek(), Some(b'L' | b'l')) {
            self.i += 1;
        }
        Ok(Lit::Int(neg, mag))
    }

    fn string(&mut self) -> Result<Lit, NpyError> {
        let bytes = self.s.as_bytes();
        let quote = bytes[self.i];
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(bad("unterminated string"));
            };
            if c == quote {
                self.i += 1;
                return Ok(Lit::Str(out));
            }
            if c == b'\\' {
                let e = *bytes.get(self.i + 1).ok_or_else(|| bad("unterminated string"))?;
                self.i += 2;
                match e {
                    b'n' => out.push('\n'),
                    b't' => out.push('\t'),
                    b'r' => out.push('\r'),
                    b'0' => out.push('\0'),
                    b'\\' | b'\'' | b'"' => out.push(char::from(e)),
                    _ => {
                        out.push('\\');
                        self.i -= 1; // re-read the escaped character normally
                    }
                }
                continue;
            }
            // Copy one (possibly multi-byte) character.
            let ch = self.s[self.i..].chars().next().unwrap_or('\u{fffd}');
            out.push(ch);
            self.i += ch.len_utf8();
        }
    }
}

/// The three fields of a `.npy` header.
struct Header {
    descr: String,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Keeps error messages on one line and short.
fn snippet(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    format!("{short:?}")
}

fn parse_header(text: &str) -> Result<Header, NpyError> {
    let mut p = LitParser { s: text, i: 0 };
    let lit = p.value(0)?;
    p.ws();
    if p.i != text.len() {
        return Err(bad(format!(
            "trailing characters after the header dict at byte {}",
            p.i
        )));
    }
    let Lit::Dict(items) = lit else {
        return Err(bad(format!("header is not a dict: {}", snippet(text))));
    };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (k, v) in items {
        let Lit::Str(k) = k else {
            return Err(bad("header dict key is not a string"));
        };
        match k.as_str() {
            "descr" => descr = Some(v),
            "fortran_order" => fortran = Some(v),
            "shape" => shape = Some(v),
            _ => return Err(bad(format!("unexpected header key {}", snippet(&k)))),
        }
    }
    let missing = |k: &str| bad(format!("header has no {k:?} key"));
    let descr = match descr.ok_or_else(|| missing("descr"))? {
        Lit::Str(s) => s,
        Lit::List => return Err(NpyError::UnsupportedDtype("structured dtype".into())),
        _ => return Err(bad("'descr' is not a string")),
    };
    let Lit::Bool(fortran_order) = fortran.ok_or_else(|| missing("fortran_order"))? else {
        return Err(bad("'fortran_order' is not a bool"));
    };
    let Lit::Tuple(dims) = shape.ok_or_else(|| missing("shape"))? else {
        return Err(bad("'shape' is not a tuple"));
    };
    let shape = dims
        .into_iter()
        .map(|d| match d {
            Lit::Int(true, Some(0)) => Ok(0),
            Lit::Int(true, _) => Err(bad("negative dimension in 'shape'")),
            Lit::Int(false, m) => m.and_then(|m| usize::try_from(m).ok()).ok_or(NpyError::ShapeOverflow),
            _ => Err(bad("'shape' holds a non-integer")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Header {
        descr,
        fortran_order,
        shape,
    })
}

// ---------------------------------------------------------------------------
// Dtypes and data
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    F4,
    F8,
    I8,
    I4,
    U1,
    B1,
    Object,
}

/// Parses a `descr` such as `<f4`, `>f8`, `|u1`, `|O`.
fn parse_descr(descr: &str) -> Result<(Kind, bool), NpyError> {
    let native_big = cfg!(target_endian = "big");
    let (big, rest) = match descr.as_bytes().first() {
        Some(b'<') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        Some(b'=' | b'|') => (native_big, &descr[1..]),
        _ => (native_big, descr),
    };
    let kind = match rest {
        "f4" => Kind::F4,
        "f8" => Kind::F8,
        "i8" => Kind::I8,
        "i4" => Kind::I4,
        "u1" => Kind::U1,
        "b1" => Kind::B1,
        "O" | "O8" => Kind::Object,
        _ => return Err(NpyError::UnsupportedDtype(descr.to_owned())),
    };
    Ok((kind, big))
}

fn item_size(kind: Kind) -> usize {
    match kind {
        Kind::F8 | Kind::I8 => 8,
        Kind::F4 | Kind::I4 => 4,
        Kind::U1 | Kind::B1 => 1,
        Kind::Object => 0,
    }
}

/// Decodes `count` fixed-size items (the caller has checked that the bytes exist).
fn decode<const N: usize, T>(data: &[u8], count: usize, f: impl Fn([u8; N]) -> T) -> Vec<T> {
    let mut out = Vec::with_capacity(count);
    for c in data.chunks_exact(N).take(count) {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        out.push(f(a));
    }
    out
}

/// `v` in C order: reordered if it is in Fortran order.
fn c_order<T: Clone>(fortran: bool, shape: &[usize], v: Vec<T>) -> Vec<T> {
    if fortran { fortran_to_c(v, shape) } else { v }
}

/// Reorders Fortran-ordered elements into C order.
fn fortran_to_c<T: Clone>(v: Vec<T>, shape: &[usize]) -> Vec<T> {
    let n = v.len();
    if n == 0 || shape.len() < 2 {
        return v;
    }
    // Strides of a Fortran-ordered array, in elements; all <= n since product(shape) == n.
    let mut strides = Vec::with_capacity(shape.len());
    let mut s = 1usize;
    for &d in shape {
        strides.push(s);
        s = s.saturating_mul(d);
    }
    let mut idx = vec![0usize; shape.len()];
    let mut off = 0usize;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(v[off].clone());
        // Advance the C-order index (last axis fastest).
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            off += strides[k];
            if idx[k] < shape[k] {
                break;
            }
            off -= strides[k] * shape[k];
            idx[k] = 0;
        }
    }
    out
}

/// Parses a `.npy` file held in memory.
///
/// Bytes after the array data are ignored, as NumPy does. Never panics, and never
/// allocates more than the input backs.
pub fn read_npy(bytes: &[u8]) -> Result<NpyArray, NpyError> {
    let n = bytes.len().min(MAGIC.len());
    if bytes[..n] != MAGIC[..n] {
        return Err(NpyError::BadMagic);
    }
    if bytes.len() < 8 {
        return Err(NpyError::Truncated {
            expected: 10,
            got: bytes.len(),
        });
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let prefix = match (major, minor) {
        (1, 0) => 10,
        (2 | 3, 0) => 12,
        _ => return Err(NpyError::UnsupportedVersion { major, minor }),
    };
    if bytes.len() < prefix {
        return Err(NpyError::Truncated {
            expected: prefix,
            got: bytes.len(),
        });
    }
    let header_len = if major == 1 {
        usize::from(u16::from_le_bytes([bytes[8], bytes[9]]))
    } else {
        let v = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        usize::try_from(v).map_err(|_| NpyError::ShapeOverflow)?
    };
    let data_start = prefix.checked_add(header_len).ok_or(NpyError::ShapeOverflow)?;
    if bytes.len() < data_start {
        return Err(NpyError::Truncated {
            expected: data_start,
            got: bytes.len(),
        });
    }
    let raw = &bytes[prefix..data_start];
    let text: String = if major == 3 {
        std::str::from_utf8(raw)
            .map_err(|_| bad("header is not UTF-8"))?
            .to_owned()
    } else {
        raw.iter().map(|&b| char::from(b)).collect() // Latin-1
    };
    let header = parse_header(&text)?;
    let (kind, big) = parse_descr(&header.descr)?;
    let count = element_count(&header.shape).ok_or(NpyError::ShapeOverflow)?;
    let data = &bytes[data_start..];

    if kind == Kind::Object {
        let value = pickle::read_pickle(data).map_err(NpyError::Pickle)?;
        let (shape, items) = pickle::object_array_from_pickle(value).map_err(NpyError::Pickle)?;
        if shape != header.shape {
            return Err(NpyError::Pickle(format!(
                "pickled shape {shape:?} differs from header shape {:?}",
                header.shape
            )));
        }
        if items.len() != count {
            return Err(NpyError::Pickle(format!(
                "pickled array has {} items for shape {shape:?}",
                items.len()
            )));
        }
        // Pickled object arrays list their items in C order whatever the header says.
        return Ok(NpyArray {
            shape,
            data: NpyData::Object(items),
        });
    }

    let nbytes = count.checked_mul(item_size(kind)).ok_or(NpyError::ShapeOverflow)?;
    if data.len() < nbytes {
        return Err(NpyError::Truncated {
            expected: data_start.saturating_add(nbytes),
            got: bytes.len(),
        });
    }
    let data = &data[..nbytes];
    let f = header.fortran_order;
    let shape = header.shape;
    let data = match (kind, big) {
        (Kind::F4, false) => NpyData::F32(c_order(f, &shape, decode(data, count, f32::from_le_bytes))),
        (Kind::F4, true) => NpyData::F32(c_order(f, &shape, decode(data, count, f32::from_be_bytes))),
        (Kind::F8, false) => NpyData::F64(c_order(f, &shape, decode(data, count, f64::from_le_bytes))),
        (Kind::F8, true) => NpyData::F64(c_order(f, &shape, decode(data, count, f64::from_be_bytes))),
        (Kind::I8, false) => NpyData::I64(c_order(f, &shape, decode(data, count, i64::from_le_bytes))),
        (Kind::I8, true) => NpyData::I64(c_order(f, &shape, decode(data, count, i64::from_be_bytes))),
        (Kind::I4, false) => NpyData::I32(c_order(f, &shape, decode(data, count, i32::from_le_bytes))),
        (Kind::I4, true) => NpyData::I32(c_order(f, &shape, decode(data, count, i32::from_be_bytes))),
        (Kind::U1, _) => NpyData::U8(c_order(f, &shape, data.to_vec())),
        (Kind::B1, _) => NpyData::Bool(c_order(f, &shape, data.iter().map(|&b| b != 0).collect())),
        (Kind::Object, _) => unreachable!("object arrays are handled above"),
    };
    Ok(NpyArray { shape, data })
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

/// The magic string, version, header length and header exactly as NumPy writes them
/// (`numpy.lib.format._write_array_header`): keys sorted, spare room for the growth
/// axis, space padding to a multiple of 64 bytes and a final newline; format 1.0
/// unless the header is too long for it.
fn header_bytes(descr: &str, fortran_order: bool, shape: &[usize]) -> Vec<u8> {
    let shape_repr = match shape {
        [] => "()".to_owned(),
        [d] => format!("({d},)"),
        _ => {
            let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
            format!("({})", dims.join(", "))
        }
    };
    let order = if fortran_order { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape_repr}, }}");
    let growth_axis = if fortran_order { shape.last() } else { shape.first() };
    if let Some(d) = growth_axis {
        let digits = d.to_string().len();
        header.push_str(&" ".repeat(GROWTH_AXIS_MAX_DIGITS.saturating_sub(digits)));
    }
    let hlen = header.len() + 1; // with the final newline
    // NumPy pads by a whole 64 bytes when already aligned.
    let pad = |prefix: usize| ARRAY_ALIGN - (prefix + hlen) % ARRAY_ALIGN;
    let (major, prefix) = if hlen + pad(10) <= usize::from(u16::MAX) {
        (1u8, 10usize)
    } else {
        (2u8, 12usize)
    };
    let padlen = pad(prefix);
    let total = hlen + padlen;
    let mut out = Vec::with_capacity(prefix + total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(total as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(total as u32).to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    out.resize(out.len() + padlen, b' ');
    out.push(b'\n');
    out
}

/// Serialises an array as a `.npy` file, byte for byte as `np.save` does: format 1.0
/// (2.0 only if the header needs it), C order, little-endian data, the header padded
/// to 64 bytes. Object arrays are pickled as NumPy 1.26 does (see
/// [`pickle::write_object_array_pickle`]).
///
/// Panics if the data length is not the product of the shape (use [`NpyArray::new`]
/// to build arrays from untrusted sizes; [`write_npz`] checks and returns an error).
pub fn write_npy(array: &NpyArray) -> Vec<u8> {
    assert_eq!(
        element_count(&array.shape),
        Some(array.data.len()),
        "write_npy: shape {:?} does not match {} data elements",
        array.shape,
        array.data.len()
    );
    let mut out = header_bytes(array.data.descr(), false, &array.shape);
    match &array.data {
        NpyData::F32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::F64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I64(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::I32(v) => v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        NpyData::U8(v) => out.extend_from_slice(v),
        NpyData::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        NpyData::Object(v) => out.extend(pickle::write_object_array_pickle(&array.shape, v)),
    }
    out
}

// ---------------------------------------------------------------------------
// npz archives
// ---------------------------------------------------------------------------

/// Error messages from other libraries, kept on one line.
fn one_line(s: impl std::fmt::Display) -> String {
    s.to_string().replace(['\n', '\r'], " ")
}

fn read_npz_from(bytes: &[u8], path: &Path) -> Result<Vec<(String, NpyArray)>, NpyError> {
    let zip_err = |message: String| NpyError::Zip {
        path: path.to_path_buf(),
        message,
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_err(one_line(e)))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut file = archive.by_index(i).map_err(|e| zip_err(one_line(e)))?;
        if file.is_dir() {
            continue;
        }
        let name = file.name().map_err(|e| zip_err(one_line(e)))?.into_owned();
        let Some(key) = name.strip_suffix(".npy").map(str::to_owned) else {
            return Err(zip_err(format!("member {name:?} is not a .npy file")));
        };
        let declared = file.size();
        if file.compression() == zip::CompressionMethod::Stored && declared > bytes.len() as u64 {
            return Err(zip_err(format!("member {name:?} is larger than the archive")));
        }
        // Grows with the data actually decompressed; the zip reader stops at the
        // declared size and checks the CRC.
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| zip_err(format!("member {name:?}: {}", one_line(e))))?;
        if buf.len() as u64 != declared {
            return Err(zip_err(format!(
                "member {name:?} holds {} bytes, {declared} declared",
                buf.len()
            )));
        }
        let array = read_npy(&buf).map_err(|e| NpyError::Member {
            path: path.to_path_buf(),
            name: key.clone(),
            error: Box::new(e),
        })?;
        out.push((key, array));
    }
    Ok(out)
}

/// Reads an `.npz` file: `(key, array)` pairs in archive order, keys without `.npy`
/// (e.g. `W_rec/Adam` for the member `W_rec/Adam.npy`).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_npz_from(&bytes, path)
}

/// Reads an `.npz` archive held in memory; see [`read_npz`].
pub fn read_npz_bytes(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>, NpyError> {
    read_npz_from(bytes, Path::new(MEMORY))
}

fn write_npz_to(entries: &[(String, NpyArray)], path: &Path) -> Result<Vec<u8>, NpyError> {
    let zip_err = |e: &dyn std::fmt::Display| NpyError::Zip {
        path: path.to_path_buf(),
        message: one_line(e),
    };
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (key, array) in entries {
        if element_count(&array.shape) != Some(array.data.len()) {
            return Err(NpyError::Member {
                path: path.to_path_buf(),
                name: key.clone(),
                error: Box::new(NpyError::ShapeMismatch {
                    shape: array.shape.clone(),
                    len: array.data.len(),
                }),
            });
        }
        let npy = write_npy(array);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(npy.len() as u64 >= u64::from(u32::MAX));
        zip.start_file(format!("{key}.npy"), options).map_err(|e| zip_err(&e))?;
        zip.write_all(&npy).map_err(|e| zip_err(&e))?;
    }
    Ok(zip.finish().map_err(|e| zip_err(&e))?.into_inner())
}

/// Serialises `entries` as an `.npz` archive in memory; see [`write_npz`].
pub fn write_npz_bytes(entries: &[(String, NpyArray)]) -> Result<Vec<u8>, NpyError> {
    write_npz_to(entries, Path::new(MEMORY))
}

/// Writes an `.npz` file like `np.savez`: one stored (uncompressed) member
/// `<key>.npy` per entry, in order. Keys may contain `/` (`W_rec/Adam` becomes the
/// member `W_rec/Adam.npy`). Unlike `np.savez`, `.npz` is not appended to `path`.
/// Fails on duplicate keys or an array whose data does not match its shape.
pub fn write_npz(path: &Path, entries: &[(String, NpyArray)]) -> Result<(), NpyError> {
    let bytes = write_npz_to(entries, path)?;
    std::fs::write(path, bytes).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The array stored under `key`, or [`NpyError::MissingKey`].
pub fn npz_get<'a>(entries: &'a [(String, NpyArray)], key: &str) -> Result<&'a NpyArray, NpyError> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, a)| a)
        .ok_or_else(|| NpyError::MissingKey(key.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::sample::Index;
    use std::sync::OnceLock;

    /// The PsychRNN weights file (`shared/fixtures` next to the crate root).
    const FIXTURE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/psychrnn_saved_weights.npz"
    );

    const FIXTURE_KEYS: [(&str, &[usize]); 24] = [
        ("init_state", &[1, 50]),
        ("W_in", &[50, 2]),
        ("W_rec", &[50, 50]),
        ("W_out", &[2, 50]),
        ("b_rec", &[50]),
        ("b_out", &[2]),
        ("Dale_rec", &[50, 50]),
        ("Dale_out", &[50, 50]),
        ("input_connectivity", &[50, 2]),
        ("rec_connectivity", &[50, 50]),
        ("output_connectivity", &[2, 50]),
        ("init_state/Adam", &[1, 50]),
        ("init_state/Adam_1", &[1, 50]),
        ("W_in/Adam", &[50, 2]),
        ("W_in/Adam_1", &[50, 2]),
        ("W_rec/Adam", &[50, 50]),
        ("W_rec/Adam_1", &[50, 50]),
        ("W_out/Adam", &[2, 50]),
        ("W_out/Adam_1", &[2, 50]),
        ("b_rec/Adam", &[50]),
        ("b_rec/Adam_1", &[50]),
        ("b_out/Adam", &[2]),
        ("b_out/Adam_1", &[2]),
        ("dale_ratio", &[]),
    ];

    fn fixture_bytes() -> &'static [u8] {
        static B: OnceLock<Vec<u8>> = OnceLock::new();
        B.get_or_init(|| std::fs::read(FIXTURE).expect("fixture file"))
    }

    fn fixture() -> &'static [(String, NpyArray)] {
        static E: OnceLock<Vec<(String, NpyArray)>> = OnceLock::new();
        E.get_or_init(|| read_npz(Path::new(FIXTURE)).expect("fixture parses"))
    }

    /// Raw `.npy` bytes of each fixture member, in archive order.
    fn fixture_members() -> &'static [(String, Vec<u8>)] {
        static M: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
        M.get_or_init(|| {
            let mut z = zip::ZipArchive::new(Cursor::new(fixture_bytes())).unwrap();
            (0..z.len())
                .map(|i| {
                    let mut f = z.by_index(i).unwrap();
                    let mut b = Vec::new();
                    f.read_to_end(&mut b).unwrap();
                    (f.name().unwrap().into_owned(), b)
                })
                .collect()
        })
    }

    fn f32s(a: &NpyArray) -> &[f32] {
        match &a.data {
            NpyData::F32(v) => v,
            other => panic!("not f32: {other:?}"),
        }
    }

    fn get<'a>(key: &str) -> &'a NpyArray {
        npz_get(fixture(), key).unwrap()
    }

    /// A `.npy` file with the given version and header text (unpadded) and data.
    fn npy(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    fn npy1(header: &str, data: &[u8]) -> Vec<u8> {
        npy(1, header, data)
    }

    fn hdr(descr: &str, fortran: bool, shape: &str) -> String {
        let f = if fortran { "True" } else { "False" };
        format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}\n")
    }

    fn le_f32(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    // ----- the PsychRNN fixture --------------------------------------------

    #[test]
    fn fixture_has_all_keys_shapes_and_dtypes() {
        let entries = fixture();
        assert_eq!(entries.len(), 24);
        for ((key, array), (want_key, want_shape)) in entries.iter().zip(FIXTURE_KEYS) {
            assert_eq!(key, want_key);
            assert_eq!(array.shape, want_shape, "{key}");
            if key == "dale_ratio" {
                assert_eq!(array.as_object_scalar(), Some(&PyValue::None));
                assert_eq!(array.to_f32_vec(), None);
            } else {
                assert!(matches!(array.data, NpyData::F32(_)), "{key}");
                assert_eq!(array.len(), want_shape.iter().product::<usize>(), "{key}");
            }
        }
        assert!(npz_get(entries, "transfer_function").is_err());
    }

    #[test]
    fn fixture_values_match_numpy() {
        // (key, C-order flat index, f32 bits) printed with NumPy 2.4.
        let spots: [(&str, usize, u32); 9] = [
            ("W_in", 0, 0x3de18c21),          // [0, 0] = 0.110130556
            ("W_in", 99, 0x3e9d0f37),         // [49, 1] = 0.3067567
            ("W_rec", 2, 0xbe5251ac),         // [0, 2] = -0.20538968
            ("W_rec", 2499, 0xbbf294fc),      // [49, 49] = -0.007403014
            ("b_out", 1, 0x3d456719),         // 0.048194025
            ("init_state", 0, 0x3e58f26c),    // 0.21186227
            ("W_out", 99, 0x3a6e5fd4),        // [1, 49] = 0.0009093259
            ("W_rec/Adam", 157, 0x38342576),  // [3, 7] = 4.2950232e-05
            ("b_rec/Adam_1", 10, 0x3983bbfb), // 0.00025126323
        ];
        for (key, i, bits) in spots {
            assert_eq!(f32s(get(key))[i].to_bits(), bits, "{key}[{i}]");
        }
        assert_eq!(f32s(get("b_out")), &[0.047453035, 0.048194025]);
        let sum = |k: &str| get(k).to_f64_vec().unwrap().iter().sum::<f64>();
        assert!((sum("W_in") - 3.312268005684018).abs() < 1e-9);
        assert!((sum("W_rec") - -0.6325076825378346).abs() < 1e-9);
        assert!((sum("init_state") - 5.034137263894081).abs() < 1e-9);
        assert!((sum("W_rec/Adam_1") - 0.013321858817810492).abs() < 1e-12);
        // Dale matrices are identities here (no Dale's law), connectivity all ones.
        for k in ["Dale_rec", "Dale_out"] {
            let v = f32s(get(k));
            for i in 0..50 {
                for j in 0..50 {
                    assert_eq!(v[i * 50 + j], if i == j { 1.0 } else { 0.0 }, "{k}");
                }
            }
        }
        for k in ["input_connectivity", "rec_connectivity", "output_connectivity"] {
            assert!(f32s(get(k)).iter().all(|&x| x == 1.0), "{k}");
        }
    }

    #[test]
    fn fixture_round_trips_bit_identically() {
        let entries = fixture();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.npz");
        write_npz(&path, entries).unwrap();
        let back = read_npz(&path).unwrap();
        assert_eq!(back.len(), entries.len());
        for ((k1, a1), (k2, a2)) in entries.iter().zip(&back) {
            assert_eq!(k1, k2);
            assert_eq!(a1.shape, a2.shape);
            match (&a1.data, &a2.data) {
                (NpyData::F32(x), NpyData::F32(y)) => {
                    let bx: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
                    let by: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                    assert_eq!(bx, by, "{k1}");
                }
                (x, y) => assert_eq!(x, y, "{k1}"),
            }
        }
        assert_eq!(
            npz_get(&back, "dale_ratio").unwrap().as_object_scalar(),
            Some(&PyValue::None)
        );
        // Members keep their names, slashes included, and are stored uncompressed.
        let bytes = std::fs::read(&path).unwrap();
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        let names: Vec<String> = z.file_names().map(|n| n.unwrap().into_owned()).collect();
        let want: Vec<String> = fixture_members().iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, want);
        assert!(names.contains(&"W_rec/Adam.npy".to_string()));
        for i in 0..z.len() {
            assert_eq!(z.by_index(i).unwrap().compression(), zip::CompressionMethod::Stored);
        }
    }

    #[test]
    fn fixture_members_are_rewritten_byte_for_byte() {
        for (name, raw) in fixture_members() {
            let a = read_npy(raw).unwrap();
            let again = write_npy(&a);
            if name == "dale_ratio.npy" {
                // The fixture's older NumPy pickled dtype('O8', 0, 1); NumPy 1.26 writes
                // dtype('O8', False, True). Same header, same value.
                assert_eq!(again[..128], raw[..128]);
                assert_eq!(read_npy(&again).unwrap(), a);
            } else {
                assert_eq!(&again, raw, "{name}");
            }
        }
    }

    // ----- headers ---------------------------------------------------------

    #[test]
    fn header_variants() {
        let data = le_f32(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        let want = NpyArray::from_f32(vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        for h in [
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
            "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f4'}",
            "{\"descr\":\"<f4\",\"fortran_order\":False,\"shape\":(2,3),}",
            "  {'fortran_order': False,\n 'descr': u'<f4', 'shape': (2L, 3L)}   \n",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3,)}\t\n",
            "{'descr': '|f4', 'fortran_order': False, 'shape': (+2, 3), }",
        ] {
            assert_eq!(read_npy(&npy1(h, &data)).unwrap(), want, "{h}");
        }
        // 0-d, zero-size and 1-d shapes.
        let s = read_npy(&npy1(&hdr("<f8", false, "()"), &2.5f64.to_le_bytes())).unwrap();
        assert_eq!((s.shape.clone(), s.to_f64_vec()), (vec![], Some(vec![2.5])));
        let z = read_npy(&npy1(&hdr("<f4", false, "(2, 0)"), &[])).unwrap();
        assert_eq!((z.shape.clone(), z.len()), (vec![2, 0], 0));
        let z = read_npy(&npy1(&hdr("|b1", true, "(0,)"), &[])).unwrap();
        assert_eq!(z.data, NpyData::Bool(vec![]));
        // Trailing bytes after the data are ignored, as NumPy does.
        let t = read_npy(&npy1(&hdr("|u1", false, "(2,)"), &[7, 8, 9])).unwrap();
        assert_eq!(t.data, NpyData::U8(vec![7, 8]));
    }

    #[test]
    fn every_supported_dtype_and_byte_order() {
        let cases: Vec<(&str, Vec<u8>, NpyData)> = vec![
            ("<f4", le_f32(&[1.5, -2.0]), NpyData::F32(vec![1.5, -2.0])),
            (
                ">f4",
                [1.5f32, -2.0].iter().flat_map(|x| x.to_be_bytes()).collect(),
                NpyData::F32(vec![1.5, -2.0]),
            ),
            (
                "<f8",
                [0.1f64, 1e300].iter().flat_map(|x| x.to_le_bytes()).collect(),
                NpyData::F64(vec![0.1, 1e300]),
            ),
            (
                ">f8",
                [0.1f64, 1e300].iter().flat_map(|x| x.to_be_bytes()).collect(),
                NpyData::F64(vec![0.1, 1e300]),
            ),
            (
                "<i8",
                [-1i64 << 40, 7].iter().flat_map(|x| x.to_le_bytes()).collect(),
                NpyData::I64(vec![-1 << 40, 7]),
            ),
            (
                ">i8",
                [-1i64 << 40, 7].iter().flat_map(|x| x.to_be_bytes()).collect(),
                NpyData::I64(vec![-1 << 40, 7]),
            ),
            (
                "<i4",
                [-5i32, 1 << 20].iter().flat_map(|x| x.to_le_bytes()).collect(),
                NpyData::I32(vec![-5, 1 << 20]),
            ),
            (
                ">i4",
                [-5i32, 1 << 20].iter().flat_map(|x| x.to_be_bytes()).collect(),
                NpyData::I32(vec![-5, 1 << 20]),
            ),
            (
                "=i4",
                [-5i32, 3].iter().flat_map(|x| x.to_ne_bytes()).collect(),
                NpyData::I32(vec![-5, 3]),
            ),
            ("|u1", vec![0, 255], NpyData::U8(vec![0, 255])),
            ("u1", vec![1, 2], NpyData::U8(vec![1, 2])),
            ("|b1", vec![0, 1], NpyData::Bool(vec![false, true])),
            ("|b1", vec![2, 0], NpyData::Bool(vec![true, false])),
        ];
        for (descr, data, want) in cases {
            let a = read_npy(&npy1(&hdr(descr, false, "(2,)"), &data)).unwrap();
            assert_eq!(a.shape, vec![2]);
            assert_eq!(a.data, want, "{descr}");
            // Written back little-endian, read back the same.
            assert_eq!(read_npy(&write_npy(&a)).unwrap(), a, "{descr}");
        }
        let a = read_npy(&npy1(&hdr("|u1", false, "(3,)"), &[0, 1, 255])).unwrap();
        assert_eq!(a.to_f32_vec(), Some(vec![0.0, 1.0, 255.0]));
        let b = read_npy(&npy1(&hdr("|b1", false, "(2,)"), &[1, 0])).unwrap();
        assert_eq!(b.to_f64_vec(), Some(vec![1.0, 0.0]));
    }

    #[test]
    fn fortran_order_is_converted_to_c_order() {
        // [[0, 1, 2], [3, 4, 5]] stored column-major.
        let a = read_npy(&npy1(
            &hdr("<f4", true, "(2, 3)"),
            &le_f32(&[0.0, 3.0, 1.0, 4.0, 2.0, 5.0]),
        ))
        .unwrap();
        assert_eq!(a, NpyArray::from_f32(vec![2, 3], vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]));
        // 3-d, element (i, j, k) = 100 i + 10 j + k, Fortran offset i + 2 j + 6 k.
        let mut f = [0i64; 24];
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    f[i + 2 * j + 6 * k] = (100 * i + 10 * j + k) as i64;
                }
            }
        }
        let bytes: Vec<u8> = f.iter().flat_map(|x| x.to_be_bytes()).collect();
        let a = read_npy(&npy1(&hdr(">i8", true, "(2, 3, 4)"), &bytes)).unwrap();
        let mut want = Vec::new();
        for i in 0..2 {
            for j in 0..3 {
                for k in 0..4 {
                    want.push((100 * i + 10 * j + k) as i64);
                }
            }
        }
        assert_eq!(a.shape, vec![2, 3, 4]);
        assert_eq!(a.data, NpyData::I64(want));
        // 1-d Fortran is the same as C.
        let a = read_npy(&npy1(&hdr("|u1", true, "(3,)"), &[1, 2, 3])).unwrap();
        assert_eq!(a.data, NpyData::U8(vec![1, 2, 3]));
    }

    #[test]
    fn versions_2_and_3() {
        let data = le_f32(&[1.0, 2.0]);
        let h = hdr("<f4", false, "(2,)");
        let want = NpyArray::from_f32(vec![2], vec![1.0, 2.0]);
        assert_eq!(read_npy(&npy(2, &h, &data)).unwrap(), want);
        assert_eq!(read_npy(&npy(3, &h, &data)).unwrap(), want);
        // Version 3 headers are UTF-8, versions 1 and 2 Latin-1.
        let h3 = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } é\n";
        assert!(matches!(read_npy(&npy(3, h3, &data)), Err(NpyError::BadHeader(_))));
        let mut bad_utf8 = npy(3, &h, &data);
        bad_utf8[12] = 0xff;
        assert!(matches!(read_npy(&bad_utf8), Err(NpyError::BadHeader(_))));
        for (major, minor) in [(4u8, 0u8), (1, 1), (0, 0)] {
            let mut b = npy1(&h, &data);
            b[6] = major;
            b[7] = minor;
            assert!(matches!(
                read_npy(&b),
                Err(NpyError::UnsupportedVersion { major: a, minor: b }) if a == major && b == minor
            ));
        }
        // A header too long for format 1.0 is written as 2.0, as NumPy does.
        let shape = vec![1usize; 22_000];
        let big = NpyArray::from_f64(shape.clone(), vec![4.0]);
        let bytes = write_npy(&big);
        assert_eq!(&bytes[6..8], &[2, 0]);
        let hl = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!((12 + hl) % 64, 0);
        assert_eq!(read_npy(&bytes).unwrap(), big);
    }

    #[test]
    fn written_headers_match_numpy() {
        // `np.save` headers from NumPy 2.4.6 and 1.26.4 (identical).
        let cases: [(&str, bool, Vec<usize>, &[u8]); 5] = [
            ("<f8", false, vec![], b"\x93NUMPY\x01\x00v\x00{'descr': '<f8', 'fortran_order': False, 'shape': (), }                                                              \n"),
            ("<i8", false, vec![3], b"\x93NUMPY\x01\x00v\x00{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }                                                            \n"),
            ("<f4", true, vec![2, 3], b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }                                                           \n"),
            ("|b1", false, vec![0], b"\x93NUMPY\x01\x00v\x00{'descr': '|b1', 'fortran_order': False, 'shape': (0,), }                                                            \n"),
            (
                "<f4",
                false,
                [vec![1; 20], vec![2, 3, 1000, 1, 1, 0]].concat(),
                b"\x93NUMPY\x01\x00\xb6\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 1000, 1, 1, 0), }                                               \n",
            ),
        ];
        for (descr, fortran, shape, want) in cases {
            assert_eq!(header_bytes(descr, fortran, &shape), want, "{shape:?}");
        }
        let u8s = write_npy(&NpyArray {
            shape: vec![4],
            data: NpyData::U8(vec![1, 2, 3, 4]),
        });
        assert_eq!(&u8s[..128], b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }                                                            \n");
        assert_eq!(&u8s[128..], &[1, 2, 3, 4]);
    }

    // ----- errors ----------------------------------------------------------

    #[test]
    fn unsupported_dtypes() {
        for descr in [
            "<f2", "<c8", "<c16", "<U3", "|S5", "<u4", "<u8", "<i2", "|i1", "<M8[ns]", "<m8[s]", "|V8", "<f16",
            "float32", "",
        ] {
            match read_npy(&npy1(&hdr(descr, false, "(1,)"), &[0; 16])) {
                Err(NpyError::UnsupportedDtype(d)) => assert_eq!(d, descr),
                other => panic!("{descr}: {other:?}"),
            }
        }
        let h = "{'descr': [('a', '<f4'), ('b', '<i8')], 'fortran_order': False, 'shape': (1,), }";
        assert!(matches!(
            read_npy(&npy1(h, &[0; 12])),
            Err(NpyError::UnsupportedDtype(_))
        ));
    }

    #[test]
    fn truncated_data() {
        let h = hdr("<f4", false, "(2, 3)");
        let full = npy1(&h, &le_f32(&[0.0; 6]));
        let cut = &full[..full.len() - 4];
        match read_npy(cut) {
            Err(NpyError::Truncated { expected, got }) => {
                assert_eq!((expected, got), (full.len(), full.len() - 4));
            }
            other => panic!("{other:?}"),
        }
        // Header longer than the file.
        assert!(matches!(
            read_npy(&full[..40]),
            Err(NpyError::Truncated { expected, got: 40 }) if expected == 10 + h.len()
        ));
        assert!(matches!(
            read_npy(&full[..9]),
            Err(NpyError::Truncated { expected: 10, got: 9 })
        ));
        assert!(matches!(
            read_npy(b""),
            Err(NpyError::Truncated { expected: 10, got: 0 })
        ));
        assert!(matches!(read_npy(b"\x93NUM"), Err(NpyError::Truncated { .. })));
        // A declared size far beyond the data is rejected before allocating it.
        let huge = npy1(&hdr("|b1", false, "(1152921504606846976,)"), &[1, 0]);
        assert!(matches!(read_npy(&huge), Err(NpyError::Truncated { got, .. }) if got == huge.len()));
        let huge = npy1(&hdr("<f8", false, "(1000000, 1000000)"), &[0; 8]);
        assert!(matches!(read_npy(&huge), Err(NpyError::Truncated { .. })));
    }

    #[test]
    fn shape_overflow() {
        for shape in [
            "(4294967296, 4294967296, 2)",
            "(18446744073709551616,)",
            "(2305843009213693952,)",
            "(99999999999999999999999999, 0)",
        ] {
            assert!(
                matches!(
                    read_npy(&npy1(&hdr("<f8", false, shape), &[])),
                    Err(NpyError::ShapeOverflow)
                ),
                "{shape}"
            );
        }
    }

    #[test]
    fn bad_magic_and_bad_headers() {
        assert!(matches!(read_npy(b"PK\x03\x04 not npy"), Err(NpyError::BadMagic)));
        assert!(matches!(read_npy(b"\x93NUMPZ\x01\x00"), Err(NpyError::BadMagic)));
        let nested = format!(
            "{{'descr': {}'<f4'{}, 'fortran_order': False, 'shape': (1,)}}",
            "(".repeat(5000),
            ")".repeat(5000)
        );
        let cases = [
            "['descr', '<f4']",
            "{'descr': '<f4', 'fortran_order': False}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': [1]}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}",
            "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
            "{'descr': 4, 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)",
            "{'descr' '<f4'}",
            "{1: 2}",
            "",
            nested.as_str(),
        ];
        for h in cases {
            let r = read_npy(&npy1(h, &[0; 8]));
            assert!(matches!(r, Err(NpyError::BadHeader(_))), "{h:.80}: {r:?}");
        }
    }

    #[test]
    fn error_messages_are_one_line() {
        let errors = [
            read_npy(b"nope").unwrap_err(),
            read_npy(&npy1("{'descr': '<f4\n', 'fortran_order': False, 'shape': (1,)}", &[])).unwrap_err(),
            read_npy(&npy1(&hdr("<f4", false, "(3,)"), &[0; 4])).unwrap_err(),
            read_npz_bytes(b"not a zip").unwrap_err(),
            read_npz(Path::new("/nonexistent/x.npz")).unwrap_err(),
            npz_get(&[], "transfer_function").unwrap_err(),
        ];
        for e in errors {
            let s = e.to_string();
            assert!(!s.is_empty() && !s.contains('\n'), "{s:?}");
        }
        assert_eq!(
            read_npy(&npy1(&hdr("<f2", false, "(1,)"), &[0; 2]))
                .unwrap_err()
                .to_string(),
            "unsupported dtype \"<f2\" (supported: f4, f8, i8, i4, u1, b1, O)"
        );
        assert!(matches!(
            read_npz(Path::new("/nonexistent/x.npz")),
            Err(NpyError::Io { .. })
        ));
        assert_eq!(
            npz_get(&[], "transfer_function").unwrap_err().to_string(),
            "missing key \"transfer_function\" in npz file"
        );
    }

    // ----- object arrays ---------------------------------------------------

    #[test]
    fn object_arrays() {
        // Written by NumPy 2.4.6: np.save(f, np.array(abs, dtype=object)).
        let np2 = [
            &header_bytes("|O", false, &[])[..],
            b"\x80\x04\x95\x99\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01)h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94\x8c\x08builtins\x94\x8c\x03abs\x94\x93\x94at\x94b.",
        ]
        .concat();
        assert_eq!(read_npy(&np2).unwrap(), NpyArray::object_global("builtins", "abs"));
        let relu = NpyArray::object_global("tensorflow.python.ops.gen_nn_ops", "relu");
        let back = read_npy(&write_npy(&relu)).unwrap();
        assert_eq!(
            back.as_object_scalar().and_then(PyValue::as_global),
            Some(("tensorflow.python.ops.gen_nn_ops", "relu"))
        );
        let f = NpyArray {
            shape: vec![],
            data: NpyData::Object(vec![PyValue::Float(0.8)]),
        };
        assert_eq!(
            read_npy(&write_npy(&f)).unwrap().as_object_scalar(),
            Some(&PyValue::Float(0.8))
        );
        let v = NpyArray {
            shape: vec![3],
            data: NpyData::Object(vec![PyValue::None, PyValue::Int(2), PyValue::Str("s".into())]),
        };
        assert_eq!(read_npy(&write_npy(&v)).unwrap(), v);
        assert_eq!(v.as_object_scalar(), None);
        // Header shape and pickled shape must agree.
        let mut wrong = header_bytes("|O", false, &[1]);
        wrong.extend(pickle::write_object_scalar_pickle(&PyValue::None));
        assert!(matches!(read_npy(&wrong), Err(NpyError::Pickle(_))));
        // A header claiming object dtype over non-pickle data.
        let mut junk = header_bytes("|O", false, &[]);
        junk.extend_from_slice(&[0; 16]);
        assert!(matches!(read_npy(&junk), Err(NpyError::Pickle(_))));
    }

    #[test]
    fn constructors_and_conversions() {
        let s = NpyArray::scalar_f64(0.8);
        assert_eq!(
            (s.shape.clone(), s.data.descr(), s.to_f32_vec()),
            (vec![], "<f8", Some(vec![0.8f32]))
        );
        assert_eq!(NpyArray::object_none().as_object_scalar(), Some(&PyValue::None));
        let a = NpyArray::new(vec![2], NpyData::I64(vec![-3, 4])).unwrap();
        assert_eq!(a.to_f64_vec(), Some(vec![-3.0, 4.0]));
        assert!(!a.is_empty());
        assert!(matches!(
            NpyArray::new(vec![2, 2], NpyData::I32(vec![1])),
            Err(NpyError::ShapeMismatch { len: 1, .. })
        ));
        assert!(NpyArray::new(vec![0, 5], NpyData::F32(vec![])).unwrap().is_empty());
    }

    // ----- npz -------------------------------------------------------------

    #[test]
    fn npz_writer_checks_and_reader_rejects_foreign_members() {
        let bad = vec![(
            "x".to_string(),
            NpyArray {
                shape: vec![3],
                data: NpyData::F32(vec![1.0]),
            },
        )];
        assert!(matches!(write_npz_bytes(&bad), Err(NpyError::Member { ref name, .. }) if name == "x"));
        let dup = vec![
            ("x".to_string(), NpyArray::scalar_f64(1.0)),
            ("x".to_string(), NpyArray::scalar_f64(2.0)),
        ];
        assert!(matches!(write_npz_bytes(&dup), Err(NpyError::Zip { .. })));
        // A member that is not .npy.
        let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zw.start_file("readme.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        zw.write_all(b"hi").unwrap();
        let bytes = zw.finish().unwrap().into_inner();
        assert!(matches!(read_npz_bytes(&bytes), Err(NpyError::Zip { .. })));
        // A broken member names itself.
        let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
        zw.start_file("W_rec/Adam.npy", zip::write::SimpleFileOptions::default())
            .unwrap();
        zw.write_all(&npy1(&hdr("<f2", false, "(1,)"), &[0, 0])).unwrap();
        let bytes = zw.finish().unwrap().into_inner();
        let e = read_npz_bytes(&bytes).unwrap_err();
        assert_eq!(
            e.to_string(),
            "<memory>: member \"W_rec/Adam\": unsupported dtype \"<f2\" (supported: f4, f8, i8, i4, u1, b1, O)"
        );
        // Deflated members (np.savez_compressed) are read too.
        let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        zw.start_file("a.npy", deflated).unwrap();
        let a = NpyArray::from_f32(vec![1000], vec![0.5; 1000]);
        zw.write_all(&write_npy(&a)).unwrap();
        let bytes = zw.finish().unwrap().into_inner();
        assert_eq!(read_npz_bytes(&bytes).unwrap(), vec![("a".to_string(), a)]);
        // Empty archive.
        assert_eq!(read_npz_bytes(&write_npz_bytes(&[]).unwrap()).unwrap(), vec![]);
    }

    /// Runs with `PSYCHRNN_REF_PYTHON=/path/to/python` (a Python with NumPy): checks that
    /// NumPy loads what we write, and that we read what NumPy writes.
    #[test]
    fn numpy_interop() {
        let Some(python) = std::env::var_os("PSYCHRNN_REF_PYTHON") else {
            eprintln!("PSYCHRNN_REF_PYTHON not set: skipping the NumPy interop test");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let ours = dir.path().join("ours.npz");
        let ours2 = dir.path().join("ours2.npz");
        let theirs = dir.path().join("theirs.npz");
        let theirs_z = dir.path().join("theirs_compressed.npz");
        write_npz(&ours, fixture()).unwrap();
        let e2 = vec![
            ("dale_ratio".to_string(), NpyArray::scalar_f64(0.8)),
            (
                "transfer_function".to_string(),
                NpyArray::object_global("builtins", "abs"),
            ),
            (
                "i64".to_string(),
                NpyArray {
                    shape: vec![2],
                    data: NpyData::I64(vec![-1 << 40, 5]),
                },
            ),
            (
                "i32".to_string(),
                NpyArray {
                    shape: vec![3],
                    data: NpyData::I32(vec![-1, 2, 3]),
                },
            ),
            (
                "u8".to_string(),
                NpyArray {
                    shape: vec![3],
                    data: NpyData::U8(vec![0, 1, 255]),
                },
            ),
            (
                "b".to_string(),
                NpyArray {
                    shape: vec![3],
                    data: NpyData::Bool(vec![true, false, true]),
                },
            ),
            (
                "f64/x".to_string(),
                NpyArray::from_f64(vec![2, 2], vec![0.1, 0.2, 0.3, 0.4]),
            ),
            ("empty".to_string(), NpyArray::from_f32(vec![0, 3], vec![])),
            (
                "objs".to_string(),
                NpyArray {
                    shape: vec![2],
                    data: NpyData::Object(vec![PyValue::Str("relu".into()), PyValue::Int(3)]),
                },
            ),
        ];
        write_npz(&ours2, &e2).unwrap();
        let script = r#"
import sys, warnings, numpy as np
warnings.simplefilter("error")
fixture, ours, ours2, theirs, theirs_z = sys.argv[1:6]
f = np.load(fixture, allow_pickle=True)
d = np.load(ours, allow_pickle=True)
assert d.files == f.files, d.files
for k in f.files:
    assert d[k].dtype == f[k].dtype and d[k].shape == f[k].shape, k
    if k != "dale_ratio":
        assert np.array_equal(d[k], f[k]), k
assert d["dale_ratio"].item() is None
e = np.load(ours2, allow_pickle=True)
assert e["dale_ratio"].dtype == np.float64 and e["dale_ratio"].shape == () and e["dale_ratio"].item() == 0.8
assert e["transfer_function"].dtype == object and e["transfer_function"].item() is abs
assert e["i64"].dtype == np.int64 and e["i64"].tolist() == [-2**40, 5]
assert e["i32"].dtype == np.int32 and e["i32"].tolist() == [-1, 2, 3]
assert e["u8"].dtype == np.uint8 and e["u8"].tolist() == [0, 1, 255]
assert e["b"].dtype == np.bool_ and e["b"].tolist() == [True, False, True]
assert e["f64/x"].tolist() == [[0.1, 0.2], [0.3, 0.4]]
assert e["empty"].shape == (0, 3) and e["empty"].dtype == np.float32
assert e["objs"].tolist() == ["relu", 3]
arrs = {
    "f4": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
    "f8_fortran": np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4)),
    "be_f4": np.arange(5, dtype=">f4"),
    "be_i8": np.array([-2**40, 7], dtype=">i8"),
    "i4": np.array([-1, 2, 3], dtype=np.int32),
    "u1": np.array([0, 1, 255], dtype=np.uint8),
    "b1": np.array([True, False, True]),
    "none": np.array(None, dtype=object),
    "fn": np.array(abs, dtype=object),
    "ratio": 0.8,
    "a/b": np.zeros((0, 3), dtype=np.float32),
}
np.savez(theirs, **arrs)
np.savez_compressed(theirs_z, **arrs)
print("numpy", np.__version__, "ok")
"#;
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(script)
            .args([Path::new(FIXTURE), &ours, &ours2, &theirs, &theirs_z])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("{}", String::from_utf8_lossy(&out.stdout).trim());
        for path in [&theirs, &theirs_z] {
            let t = read_npz(path).unwrap();
            let keys: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(
                keys,
                [
                    "f4",
                    "f8_fortran",
                    "be_f4",
                    "be_i8",
                    "i4",
                    "u1",
                    "b1",
                    "none",
                    "fn",
                    "ratio",
                    "a/b"
                ]
            );
            let g = |k: &str| npz_get(&t, k).unwrap();
            assert_eq!(
                *g("f4"),
                NpyArray::from_f32(vec![2, 3], vec![0.0, 0.25, 0.5, 0.75, 1.0, 1.25])
            );
            assert_eq!(
                *g("f8_fortran"),
                NpyArray::from_f64(vec![2, 3, 4], (0..24).map(f64::from).collect())
            );
            assert_eq!(*g("be_f4"), NpyArray::from_f32(vec![5], vec![0.0, 1.0, 2.0, 3.0, 4.0]));
            assert_eq!(g("be_i8").data, NpyData::I64(vec![-1 << 40, 7]));
            assert_eq!(g("i4").data, NpyData::I32(vec![-1, 2, 3]));
            assert_eq!(g("u1").data, NpyData::U8(vec![0, 1, 255]));
            assert_eq!(g("b1").data, NpyData::Bool(vec![true, false, true]));
            assert_eq!(*g("none"), NpyArray::object_none());
            assert_eq!(*g("fn"), NpyArray::object_global("builtins", "abs"));
            assert_eq!(*g("ratio"), NpyArray::scalar_f64(0.8));
            assert_eq!(*g("a/b"), NpyArray::from_f32(vec![0, 3], vec![]));
        }
    }

    // ----- robustness: mutated inputs never panic ---------------------------

    #[derive(Debug, Clone)]
    enum Mutation {
        /// Overwrite one byte.
        Set(bool, Index, u8),
        /// Cut the input.
        Truncate(bool, Index),
        /// Insert bytes.
        Insert(bool, Index, Vec<u8>),
        /// Remove up to 16 bytes.
        Remove(bool, Index, u8),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            6 => (any::<bool>(), any::<Index>(), any::<u8>()).prop_map(|(h, i, b)| Mutation::Set(h, i, b)),
            1 => (any::<bool>(), any::<Index>()).prop_map(|(h, i)| Mutation::Truncate(h, i)),
            2 => (any::<bool>(), any::<Index>(), prop::collection::vec(any::<u8>(), 1..9))
                .prop_map(|(h, i, b)| Mutation::Insert(h, i, b)),
            2 => (any::<bool>(), any::<Index>(), 1u8..17).prop_map(|(h, i, n)| Mutation::Remove(h, i, n)),
        ]
    }

    /// Applies mutations; `hot` positions fall in `hot_range` (clamped), others anywhere.
    fn mutate(base: &[u8], hot_range: std::ops::Range<usize>, muts: &[Mutation]) -> Vec<u8> {
        let mut b = base.to_vec();
        for m in muts {
            let pos = |b: &Vec<u8>, hot: bool, i: &Index| {
                let (lo, hi) = if hot {
                    (hot_range.start.min(b.len()), hot_range.end.min(b.len()))
                } else {
                    (0, b.len())
                };
                lo + i.index(hi - lo + 1)
            };
            match m {
                Mutation::Set(h, i, v) => {
                    if !b.is_empty() {
                        let p = pos(&b, *h, i).min(b.len() - 1);
                        b[p] = *v;
                    }
                }
                Mutation::Truncate(h, i) => {
                    let p = pos(&b, *h, i);
                    b.truncate(p);
                }
                Mutation::Insert(h, i, v) => {
                    let p = pos(&b, *h, i);
                    b.splice(p..p, v.iter().copied());
                }
                Mutation::Remove(h, i, n) => {
                    let p = pos(&b, *h, i);
                    let end = (p + usize::from(*n)).min(b.len());
                    b.drain(p..end);
                }
            }
        }
        b
    }

    /// `.npy` members carrying a pickle: the fixture's, NumPy 2's, ours.
    fn object_members() -> Vec<Vec<u8>> {
        let fixture_dale = fixture_members()
            .iter()
            .find(|(n, _)| n == "dale_ratio.npy")
            .unwrap()
            .1
            .clone();
        let mut np2 = header_bytes("|O", false, &[]);
        np2.extend_from_slice(b"\x80\x04\x95\x87\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01)h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94Nat\x94b.");
        vec![
            fixture_dale,
            np2,
            write_npy(&NpyArray::object_global("tensorflow.python.ops.gen_nn_ops", "relu")),
            write_npy(&NpyArray {
                shape: vec![2, 2],
                data: NpyData::Object(vec![
                    PyValue::Float(0.5),
                    PyValue::None,
                    PyValue::Str("x".into()),
                    PyValue::Int(-7),
                ]),
            }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn mutated_npz_never_panics(muts in prop::collection::vec(mutation(), 1..5)) {
            let base = fixture_bytes();
            // Half the mutations hit the central directory and end record.
            let bytes = mutate(base, base.len().saturating_sub(2600)..base.len(), &muts);
            let _ = read_npz_bytes(&bytes);
        }

        #[test]
        fn mutated_npy_never_panics(member in any::<Index>(), muts in prop::collection::vec(mutation(), 1..5)) {
            let members = fixture_members();
            let (_, base) = &members[member.index(members.len())];
            // Half the mutations hit the 128-byte header.
            let bytes = mutate(base, 0..128, &muts);
            let direct = read_npy(&bytes);
            // The same member inside a valid archive gives the same outcome.
            let mut zw = zip::ZipWriter::new(Cursor::new(Vec::new()));
            zw.start_file("m/x.npy", zip::write::SimpleFileOptions::default()).unwrap();
            zw.write_all(&bytes).unwrap();
            let archive = zw.finish().unwrap().into_inner();
            match (direct, read_npz_bytes(&archive)) {
                (Ok(a), Ok(entries)) => {
                    // Compared as bytes: mutated data may hold NaNs.
                    prop_assert_eq!(entries.len(), 1);
                    prop_assert_eq!(&entries[0].0, "m/x");
                    prop_assert!(write_npy(&entries[0].1) == write_npy(&a));
                }
                (Err(e), Err(NpyError::Member { name, error, .. })) => {
                    prop_assert_eq!(name, "m/x");
                    prop_assert_eq!(error.to_string(), e.to_string());
                }
                (d, z) => prop_assert!(false, "read_npy {:?} but read_npz_bytes {:?}", d.err(), z.err()),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn mutated_object_arrays_never_panic(which in 0usize..4, muts in prop::collection::vec(mutation(), 1..6)) {
            let base = &object_members()[which];
            // Half the mutations hit the pickle, a quarter of those its first bytes.
            let bytes = mutate(base, 128..base.len(), &muts);
            let _ = read_npy(&bytes);
            if bytes.len() > 128 {
                let _ = pickle::read_pickle(&bytes[128..]);
            }
        }
    }
}
