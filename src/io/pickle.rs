//! A minimal, hardened Python pickle reader and writer.
//!
//! NumPy stores arrays of dtype `object` in `.npy` files as a pickle of the whole
//! array. PsychRNN weight files contain two such 0-d arrays: `dale_ratio` (when it
//! is `None`) and `transfer_function` (a reference to a function such as
//! `tf.nn.relu`). This module is just enough of the pickle machinery to read those
//! values and to write them back in the exact form `np.save` uses.
//!
//! * [`read_pickle`] is a small pickle virtual machine for protocols 0–5. It
//!   builds a [`PyValue`] tree and never executes anything: a reference to a Python
//!   callable becomes [`PyValue::Global`] and a call becomes [`PyValue::Reduce`].
//!   It never panics, and its memory and stack use are bounded by the input size,
//!   whatever the input.
//! * [`write_pickle`] writes a [`PyValue`] with protocol 3, opcode for opcode what
//!   CPython's pickler writes (memo entries included) for the value kinds that
//!   occur here.
//! * [`write_object_scalar_pickle`], [`write_object_array_pickle`] and
//!   [`object_array_from_pickle`] know the layout NumPy uses for object arrays.
//!
//! ```
//! use psychrnn::io::pickle::{read_pickle, write_object_scalar_pickle, object_array_from_pickle, PyValue};
//!
//! let relu = PyValue::Global { module: "builtins".into(), name: "abs".into() };
//! let bytes = write_object_scalar_pickle(&relu);
//! let (shape, items) = object_array_from_pickle(read_pickle(&bytes).unwrap()).unwrap();
//! assert!(shape.is_empty());
//! assert_eq!(items, vec![relu]);
//! ```

use std::collections::HashMap;

/// A Python value as decoded from (or encoded into) a pickle.
///
/// Calls are not executed: they are kept as [`PyValue::Reduce`], [`PyValue::Build`]
/// and [`PyValue::NewObj`] nodes.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum PyValue {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An `int` that fits in 64 bits (larger ones are rejected when reading).
    Int(i64),
    /// A `float`.
    Float(f64),
    /// A `str` (also Python 2 `str` values, decoded as Latin-1 as NumPy does).
    Str(String),
    /// A `bytes` or `bytearray`.
    Bytes(Vec<u8>),
    /// A reference to a module-level object, e.g. a function or class:
    /// `module.name` (`name` may be a dotted qualified name).
    Global {
        /// The module, e.g. `tensorflow.python.ops.gen_nn_ops`.
        module: String,
        /// The (qualified) name inside the module, e.g. `relu`.
        name: String,
    },
    /// A `tuple`.
    Tuple(Vec<PyValue>),
    /// A `list`.
    List(Vec<PyValue>),
    /// A `dict`, as key/value pairs in pickle order.
    Dict(Vec<(PyValue, PyValue)>),
    /// A `set` or `frozenset` (from the protocol 4 set opcodes).
    Set(Vec<PyValue>),
    /// `callable(*args)` (the `REDUCE` opcode); `args` is normally a tuple.
    Reduce {
        /// The called object, normally a [`PyValue::Global`].
        callable: Box<PyValue>,
        /// The argument tuple.
        args: Box<PyValue>,
    },
    /// `obj.__setstate__(state)` (the `BUILD` opcode).
    Build {
        /// The object being initialised.
        obj: Box<PyValue>,
        /// Its state.
        state: Box<PyValue>,
    },
    /// `cls.__new__(cls, *args, **kwargs)` (the `NEWOBJ`, `NEWOBJ_EX`, `OBJ` and `INST`
    /// opcodes); `kwargs` is an empty [`PyValue::Dict`] when there are none.
    NewObj {
        /// The class.
        cls: Box<PyValue>,
        /// The positional argument tuple.
        args: Box<PyValue>,
        /// The keyword arguments (a dict).
        kwargs: Box<PyValue>,
    },
}

impl PyValue {
    /// Whether this is `None`.
    pub fn is_none(&self) -> bool {
        matches!(self, PyValue::None)
    }

    /// `(module, name)` if this is a global reference.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            PyValue::Global { module, name } => Some((module, name)),
            _ => None,
        }
    }

    /// The value of a `float`, `int` or `bool` as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            PyValue::Float(v) => Some(v),
            PyValue::Int(v) => Some(v as f64),
            PyValue::Bool(v) => Some(if v { 1.0 } else { 0.0 }),
            _ => None,
        }
    }

    fn global(module: &str, name: &str) -> PyValue {
        PyValue::Global {
            module: module.to_owned(),
            name: name.to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

/// Deepest nesting of containers accepted when building the result tree.
const MAX_DEPTH: usize = 200;

/// A value in the VM's arena; children are arena indices so that memo references
/// share identity (mutations through `APPEND`, `BUILD`, ... are seen everywhere).
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Global(String, String),
    Tuple(Vec<usize>),
    List(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    Set(Vec<usize>),
    Reduce(usize, usize),
    Build(usize, usize),
    NewObj(usize, usize, usize),
}

struct Vm<'a> {
    input: &'a [u8],
    pos: usize,
    proto: u8,
    nodes: Vec<Node>,
    stack: Vec<usize>,
    metastack: Vec<Vec<usize>>,
    memo: HashMap<u64, usize>,
}

type R<T> = Result<T, String>;

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let input: &'a [u8] = self.input;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= input.len())
            .ok_or_else(|| "pickle data was truncated".to_string())?;
        let s = &input[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn take_len(&mut self, n: u64) -> R<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| "pickle data was truncated".to_string())?;
        self.take(n)
    }

    fn byte(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i32(&mut self) -> R<i32> {
        Ok(self.u32()? as i32)
    }

    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A `\n`-terminated line, without the newline.
    fn line(&mut self) -> R<&'a [u8]> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| "pickle data was truncated (missing newline)".to_string())?;
        self.pos += n + 1;
        Ok(&rest[..n])
    }

    fn line_str(&mut self) -> R<&'a str> {
        std::str::from_utf8(self.line()?).map_err(|_| "invalid UTF-8 in text opcode".to_string())
    }

    fn alloc(&mut self, node: Node) -> usize {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    fn push(&mut self, node: Node) {
        let i = self.alloc(node);
        self.stack.push(i);
    }

    fn pop(&mut self) -> R<usize> {
        self.stack.pop().ok_or_else(|| "unpickling stack underflow".to_string())
    }

    fn top(&self) -> R<usize> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| "unpickling stack underflow".to_string())
    }

    fn pop_mark(&mut self) -> R<Vec<usize>> {
        let outer = self.metastack.pop().ok_or_else(|| "could not find MARK".to_string())?;
        Ok(std::mem::replace(&mut self.stack, outer))
    }

    fn memo_put(&mut self, key: u64) -> R<()> {
        let top = self.top()?;
        self.memo.insert(key, top);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> R<()> {
        let v = *self
            .memo
            .get(&key)
            .ok_or_else(|| format!("memo value {key} not found"))?;
        self.stack.push(v);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) {
        // Python 2 names, as `fix_imports` maps them for protocols < 3.
        let module = match (self.proto < 3, module) {
            (true, "__builtin__") => "builtins",
            (true, "copy_reg") => "copyreg",
            _ => module,
        };
        self.push(Node::Global(module.to_owned(), name.to_owned()));
    }

    fn run(&mut self) -> R<usize> {
        loop {
            let op = self.byte()?;
            match op {
                0x80 => {
                    let p = self.byte()?;
                    if p > 5 {
                        return Err(format!("unsupported pickle protocol: {p}"));
                    }
                    self.proto = p;
                }
                0x95 => {
                    self.u64()?; // FRAME: length only
                }
                b'.' => return self.pop(),
                b'(' => {
                    let s = std::mem::take(&mut self.stack);
                    self.metastack.push(s);
                }
                b'0' => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let t = self.top()?;
                    self.stack.push(t);
                }
                // Constants and numbers.
                b'N' => self.push(Node::None),
                0x88 => self.push(Node::Bool(true)),
                0x89 => self.push(Node::Bool(false)),
                b'K' => {
                    let v = self.byte()?;
                    self.push(Node::Int(v.into()));
                }
                b'M' => {
                    let v = self.u16()?;
                    self.push(Node::Int(v.into()));
                }
                b'J' => {
                    let v = self.i32()?;
                    self.push(Node::Int(v.into()));
                }
                b'I' => {
                    let l = self.line_str()?;
                    let node = match l {
                        "00" => Node::Bool(false),
                        "01" => Node::Bool(true),
                        _ => Node::Int(parse_int(l)?),
                    };
                    self.push(node);
                }
                b'L' => {
                    let l = self.line_str()?;
                    let l = l.strip_suffix('L').unwrap_or(l);
                    let v = parse_int(l)?;
                    self.push(Node::Int(v));
                }
                0x8a => {
                    let n = self.byte()?;
                    let b = self.take(n.into())?;
                    let v = decode_long(b)?;
                    self.push(Node::Int(v));
                }
                0x8b => {
                    let n = self.i32()?;
                    let n = usize::try_from(n).map_err(|_| "negative LONG4 size".to_string())?;
                    let b = self.take(n)?;
                    let v = decode_long(b)?;
                    self.push(Node::Int(v));
                }
                b'G' => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    self.push(Node::Float(f64::from_be_bytes(a)));
                }
                b'F' => {
                    let l = self.line_str()?;
                    let v: f64 = l
                        .trim()
                        .parse()
                        .map_err(|_| format!("bad FLOAT literal {:?}", clip(l)))?;
                    self.push(Node::Float(v));
                }
                // Strings and bytes.
                b'X' => {
                    let n = self.u32()?;
                    let b = self.take_len(n.into())?;
                    self.push(Node::Str(utf8(b)?));
                }
                0x8c => {
                    let n = self.byte()?;
                    let b = self.take(n.into())?;
                    self.push(Node::Str(utf8(b)?));
                }
                0x8d => {
                    let n = self.u64()?;
                    let b = self.take_len(n)?;
                    self.push(Node::Str(utf8(b)?));
                }
                b'V' => {
                    let l = self.line()?;
                    self.push(Node::Str(raw_unicode_escape(l)?));
                }
                b'T' => {
                    let n = self.i32()?;
                    let n = usize::try_from(n).map_err(|_| "negative BINSTRING size".to_string())?;
                    let b = self.take(n)?;
                    self.push(Node::Str(latin1(b)));
                }
                b'U' => {
                    let n = self.byte()?;
                    let b = self.take(n.into())?;
                    self.push(Node::Str(latin1(b)));
                }
                b'S' => {
                    let l = self.line()?;
                    let b = string_literal(l)?;
                    self.push(Node::Str(latin1(&b)));
                }
                b'C' => {
                    let n = self.byte()?;
                    let b = self.take(n.into())?;
                    self.push(Node::Bytes(b.to_vec()));
                }
                b'B' => {
                    let n = self.u32()?;
                    let b = self.take_len(n.into())?;
                    self.push(Node::Bytes(b.to_vec()));
                }
                0x8e | 0x96 => {
                    let n = self.u64()?;
                    let b = self.take_len(n)?;
                    self.push(Node::Bytes(b.to_vec()));
                }
                // Containers.
                b')' => self.push(Node::Tuple(Vec::new())),
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    if self.stack.len() < n {
                        return Err("unpickling stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.push(Node::Tuple(items));
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                b']' => self.push(Node::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    match &mut self.nodes[l] {
                        Node::List(items) => items.push(v),
                        _ => return Err("APPEND to a non-list".into()),
                    }
                }
                b'e' => {
                    let vs = self.pop_mark()?;
                    let l = self.top()?;
                    match &mut self.nodes[l] {
                        Node::List(items) => items.extend(vs),
                        _ => return Err("APPENDS to a non-list".into()),
                    }
                }
                b'}' => self.push(Node::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.push(Node::Dict(pairs));
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    match &mut self.nodes[d] {
                        Node::Dict(items) => items.push((k, v)),
                        _ => return Err("SETITEM on a non-dict".into()),
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let ps = pairs(items)?;
                    let d = self.top()?;
                    match &mut self.nodes[d] {
                        Node::Dict(items) => items.extend(ps),
                        _ => return Err("SETITEMS on a non-dict".into()),
                    }
                }
                0x8f => self.push(Node::Set(Vec::new())),
                0x90 => {
                    let vs = self.pop_mark()?;
                    let s = self.top()?;
                    match &mut self.nodes[s] {
                        Node::Set(items) => items.extend(vs),
                        _ => return Err("ADDITEMS on a non-set".into()),
                    }
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Node::Set(items));
                }
                // Globals and object construction.
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.global(module, name);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (&self.nodes[module], &self.nodes[name]) {
                        (Node::Str(m), Node::Str(n)) => {
                            let (m, n) = (m.clone(), n.clone());
                            self.global(&m, &n);
                        }
                        _ => return Err("STACK_GLOBAL requires str".into()),
                    }
                }
                b'R' => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push(Node::Reduce(callable, args));
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    // Keep the object's identity: whoever refers to `obj` sees the build.
                    let inner = std::mem::replace(&mut self.nodes[obj], Node::None);
                    let moved = self.alloc(inner);
                    self.nodes[obj] = Node::Build(moved, state);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let kwargs = self.alloc(Node::Dict(Vec::new()));
                    self.push(Node::NewObj(cls, args, kwargs));
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    self.push(Node::NewObj(cls, args, kwargs));
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err("OBJ without a class".into());
                    }
                    let cls = items.remove(0);
                    let args = self.alloc(Node::Tuple(items));
                    let kwargs = self.alloc(Node::Dict(Vec::new()));
                    self.push(Node::NewObj(cls, args, kwargs));
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    let items = self.pop_mark()?;
                    self.global(module, name);
                    let cls = self.pop()?;
                    let args = self.alloc(Node::Tuple(items));
                    let kwargs = self.alloc(Node::Dict(Vec::new()));
                    self.push(Node::NewObj(cls, args, kwargs));
                }
                // Memo.
                b'p' => {
                    let l = self.line_str()?;
                    let k = l.trim().parse::<u64>().map_err(|_| "bad PUT index".to_string())?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let k = self.byte()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.u32()?;
                    self.memo_put(k.into())?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'g' => {
                    let l = self.line_str()?;
                    let k = l.trim().parse::<u64>().map_err(|_| "bad GET index".to_string())?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let k = self.byte()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = self.u32()?;
                    self.memo_get(k.into())?;
                }
                b'P' | b'Q' => return Err("persistent IDs are not supported".into()),
                0x82..=0x84 => return Err("extension registry codes are not supported".into()),
                0x97 | 0x98 => return Err("out-of-band buffers are not supported".into()),
                _ => return Err(format!("invalid pickle opcode 0x{op:02x}")),
            }
        }
    }

    /// Builds the [`PyValue`] tree of arena node `i`, with bounded depth and size.
    fn value(&self, i: usize, depth: usize, budget: &mut usize) -> R<PyValue> {
        if depth > MAX_DEPTH {
            return Err("pickle nested too deeply (or cyclic)".into());
        }
        if *budget == 0 {
            return Err("pickle expands to too many values".into());
        }
        *budget -= 1;
        let d = depth + 1;
        let many = |v: &[usize], budget: &mut usize| -> R<Vec<PyValue>> {
            v.iter().map(|&c| self.value(c, d, budget)).collect()
        };
        let b = |c: usize, budget: &mut usize| -> R<Box<PyValue>> { Ok(Box::new(self.value(c, d, budget)?)) };
        Ok(match &self.nodes[i] {
            Node::None => PyValue::None,
            Node::Bool(v) => PyValue::Bool(*v),
            Node::Int(v) => PyValue::Int(*v),
            Node::Float(v) => PyValue::Float(*v),
            Node::Str(s) => PyValue::Str(s.clone()),
            Node::Bytes(s) => PyValue::Bytes(s.clone()),
            Node::Global(module, name) => PyValue::Global {
                module: module.clone(),
                name: name.clone(),
            },
            Node::Tuple(v) => PyValue::Tuple(many(v, budget)?),
            Node::List(v) => PyValue::List(many(v, budget)?),
            Node::Set(v) => PyValue::Set(many(v, budget)?),
            Node::Dict(v) => PyValue::Dict(
                v.iter()
                    .map(|&(k, x)| Ok((self.value(k, d, budget)?, self.value(x, d, budget)?)))
                    .collect::<R<_>>()?,
            ),
            Node::Reduce(c, a) => PyValue::Reduce {
                callable: b(*c, budget)?,
                args: b(*a, budget)?,
            },
            Node::Build(o, s) => PyValue::Build {
                obj: b(*o, budget)?,
                state: b(*s, budget)?,
            },
            Node::NewObj(c, a, k) => PyValue::NewObj {
                cls: b(*c, budget)?,
                args: b(*a, budget)?,
                kwargs: b(*k, budget)?,
            },
        })
    }
}

fn pairs(items: Vec<usize>) -> R<Vec<(usize, usize)>> {
    if !items.len().is_multiple_of(2) {
        return Err("odd number of items for a dict".into());
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn utf8(b: &[u8]) -> R<String> {
    String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8 in str".to_string())
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| char::from(c)).collect()
}

/// At most 40 characters of `s`, for error messages.
fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

fn parse_int(s: &str) -> R<i64> {
    s.trim()
        .parse::<i64>()
        .map_err(|_| format!("bad or too large integer literal {:?}", clip(s)))
}

/// Decodes a little-endian two's complement integer (`LONG1`/`LONG4`).
fn decode_long(b: &[u8]) -> R<i64> {
    let Some(&last) = b.last() else {
        return Ok(0);
    };
    let negative = last & 0x80 != 0;
    let fill = if negative { 0xff } else { 0x00 };
    if b.len() > 8 && (b[8..].iter().any(|&x| x != fill) || (b[7] & 0x80 != 0) != negative) {
        return Err("integer too large for 64 bits".into());
    }
    let mut a = [fill; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    Ok(i64::from_le_bytes(a))
}

/// Decodes the `raw-unicode-escape` codec (`UNICODE` opcode).
fn raw_unicode_escape(b: &[u8]) -> R<String> {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            let n = if b[i + 1] == b'u' { 4 } else { 8 };
            let hex = b
                .get(i + 2..i + 2 + n)
                .ok_or_else(|| "truncated \\u escape".to_string())?;
            let code = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
                .ok_or_else(|| "bad \\u escape".to_string())?;
            out.push(code);
            i += 2 + n;
        } else {
            out.push(char::from(b[i]));
            i += 1;
        }
    }
    Ok(out)
}

/// Decodes the quoted Python 2 string literal of the `STRING` opcode.
fn string_literal(l: &[u8]) -> R<Vec<u8>> {
    let l = l.trim_ascii_end();
    let inner = match l {
        [q @ (b'\'' | b'"'), inner @ .., q2] if q == q2 => inner,
        _ => return Err("STRING opcode argument must be quoted".into()),
    };
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c != b'\\' || i + 1 == inner.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let e = inner[i + 1];
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'0'..=b'7' => {
                let mut v: u32 = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && i < inner.len() && (b'0'..=b'7').contains(&inner[i]) {
                    v = v * 8 + u32::from(inner[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            b'x' => {
                let v = inner
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| "bad \\x escape".to_string())?;
                out.push(v);
                i += 2;
            }
            b'\\' | b'\'' | b'"' => out.push(e),
            _ => {
                out.push(b'\\');
                out.push(e);
            }
        }
    }
    Ok(out)
}

/// Unpickles `bytes` into a [`PyValue`] tree without executing anything.
///
/// Supports every opcode of protocols 0–5 except persistent IDs, the extension
/// registry and out-of-band buffers. Bytes after the `STOP` opcode are ignored, as
/// Python does. Never panics; memory and stack use are bounded by the input length.
pub fn read_pickle(bytes: &[u8]) -> Result<PyValue, String> {
    let mut vm = Vm {
        input: bytes,
        pos: 0,
        proto: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        metastack: Vec::new(),
        memo: HashMap::new(),
    };
    let root = vm.run()?;
    // Memo references can share subtrees; cap the expanded size to stay linear.
    let mut budget = bytes.len().saturating_mul(4).saturating_add(1024);
    vm.value(root, 0, &mut budget)
}

// ---------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------

struct Writer {
    out: Vec<u8>,
    memo: u32,
}

impl Writer {
    fn memoize(&mut self) {
        if let Ok(i) = u8::try_from(self.memo) {
            self.out.extend_from_slice(&[b'q', i]);
        } else {
            self.out.push(b'r');
            self.out.extend_from_slice(&self.memo.to_le_bytes());
        }
        self.memo += 1;
    }

    fn int(&mut self, v: i64) {
        if (0..=0xff).contains(&v) {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if (0..=0xffff).contains(&v) {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if let Ok(v) = i32::try_from(v) {
            self.out.push(b'J');
            self.out.extend_from_slice(&v.to_le_bytes());
        } else {
            // Python's `encode_long`.
            let bits = 64 - v.unsigned_abs().leading_zeros() as usize;
            let mut n = (bits >> 3) + 1;
            let b = v.to_le_bytes();
            let full = [b.as_slice(), &[if v < 0 { 0xff } else { 0 }]].concat();
            if v < 0 && n > 1 && full[n - 1] == 0xff && full[n - 2] & 0x80 != 0 {
                n -= 1;
            }
            self.out.extend_from_slice(&[0x8a, n as u8]);
            self.out.extend_from_slice(&full[..n]);
        }
    }

    fn sized(&mut self, short: Option<u8>, op4: u8, op8: u8, data: &[u8]) {
        match (short, u8::try_from(data.len()), u32::try_from(data.len())) {
            (Some(op), Ok(n), _) => self.out.extend_from_slice(&[op, n]),
            (_, _, Ok(n)) => {
                self.out.push(op4);
                self.out.extend_from_slice(&n.to_le_bytes());
            }
            _ => {
                self.out.push(op8);
                self.out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            }
        }
        self.out.extend_from_slice(data);
    }

    fn save(&mut self, v: &PyValue) {
        match v {
            PyValue::None => self.out.push(b'N'),
            PyValue::Bool(b) => self.out.push(if *b { 0x88 } else { 0x89 }),
            PyValue::Int(i) => self.int(*i),
            PyValue::Float(f) => {
                self.out.push(b'G');
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            PyValue::Str(s) => {
                self.sized(None, b'X', 0x8d, s.as_bytes());
                self.memoize();
            }
            PyValue::Bytes(b) => {
                self.sized(Some(b'C'), b'B', 0x8e, b);
                self.memoize();
            }
            PyValue::Global { module, name } if has_newline(module, name) => {
                // Text GLOBAL cannot hold a newline: use the protocol 4 opcode.
                self.save(&PyValue::Str(module.clone()));
                self.save(&PyValue::Str(name.clone()));
                self.out.push(0x93);
                self.memoize();
            }
            PyValue::Global { module, name } => {
                self.out.push(b'c');
                self.out.extend_from_slice(module.as_bytes());
                self.out.push(b'\n');
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'\n');
                self.memoize();
            }
            PyValue::Tuple(items) => {
                if items.is_empty() {
                    self.out.push(b')');
                    return;
                }
                let small = items.len() <= 3;
                if !small {
                    self.out.push(b'(');
                }
                for it in items {
                    self.save(it);
                }
                self.out.push(if small { 0x84 + items.len() as u8 } else { b't' });
                self.memoize();
            }
            PyValue::List(items) => {
                self.out.push(b']');
                self.memoize();
                for chunk in items.chunks(1000) {
                    if let [one] = chunk {
                        self.save(one);
                        self.out.push(b'a');
                    } else {
                        self.out.push(b'(');
                        chunk.iter().for_each(|it| self.save(it));
                        self.out.push(b'e');
                    }
                }
            }
            PyValue::Dict(items) => {
                self.out.push(b'}');
                self.memoize();
                for chunk in items.chunks(1000) {
                    if let [(k, x)] = chunk {
                        self.save(k);
                        self.save(x);
                        self.out.push(b's');
                    } else {
                        self.out.push(b'(');
                        for (k, x) in chunk {
                            self.save(k);
                            self.save(x);
                        }
                        self.out.push(b'u');
                    }
                }
            }
            PyValue::Set(items) => {
                // Protocol 3 has no set opcodes: Python writes `set([items])`.
                self.save(&PyValue::Reduce {
                    callable: Box::new(PyValue::global("builtins", "set")),
                    args: Box::new(PyValue::Tuple(vec![PyValue::List(items.clone())])),
                });
            }
            PyValue::Reduce { callable, args } => {
                self.save(callable);
                self.save(args);
                self.out.push(b'R');
                self.memoize();
            }
            PyValue::Build { obj, state } => {
                self.save(obj);
                self.save(state);
                self.out.push(b'b');
            }
            PyValue::NewObj { cls, args, kwargs } => {
                self.save(cls);
                self.save(args);
                if matches!(**kwargs, PyValue::Dict(ref d) if d.is_empty()) {
                    self.out.push(0x81);
                } else {
                    self.save(kwargs);
                    self.out.push(0x92);
                }
                self.memoize();
            }
        }
    }
}

fn has_newline(module: &str, name: &str) -> bool {
    module.contains('\n') || name.contains('\n')
}

/// Whether `v` needs protocol 4 (dotted global names, `NEWOBJ_EX`).
fn needs_protocol_4(v: &PyValue) -> bool {
    match v {
        PyValue::Global { module, name } => name.contains('.') || has_newline(module, name),
        PyValue::Tuple(x) | PyValue::List(x) | PyValue::Set(x) => x.iter().any(needs_protocol_4),
        PyValue::Dict(x) => x.iter().any(|(k, v)| needs_protocol_4(k) || needs_protocol_4(v)),
        PyValue::Reduce { callable, args } => needs_protocol_4(callable) || needs_protocol_4(args),
        PyValue::Build { obj, state } => needs_protocol_4(obj) || needs_protocol_4(state),
        PyValue::NewObj { cls, args, kwargs } => {
            !matches!(**kwargs, PyValue::Dict(ref d) if d.is_empty())
                || needs_protocol_4(cls)
                || needs_protocol_4(args)
                || needs_protocol_4(kwargs)
        }
        _ => false,
    }
}

/// Pickles `value` the way CPython's `pickle.dumps(value, protocol=3)` does.
///
/// The header says protocol 4 instead when a global has a dotted (nested) name or a
/// newline, or a [`PyValue::NewObj`] has keyword arguments, so that Python resolves
/// them. Memo
/// entries are written like CPython's, but values are never shared (a tree has no
/// aliasing), so the bytes match CPython's exactly when the value holds no two
/// identical strings, bytes or globals.
pub fn write_pickle(value: &PyValue) -> Vec<u8> {
    let proto = if needs_protocol_4(value) { 4 } else { 3 };
    let mut w = Writer {
        out: vec![0x80, proto],
        memo: 0,
    };
    w.save(value);
    w.out.push(b'.');
    w.out
}

/// Module of NumPy 1.x's `_reconstruct` (NumPy 2 writes `numpy._core.multiarray`
/// but still reads this name; NumPy < 1.26 cannot read the new one).
const RECONSTRUCT_MODULE: &str = "numpy.core.multiarray";

/// The pickle `np.save` writes for an object array of the given shape, whose items
/// are listed in C order (`items.len()` must equal the product of `shape`).
///
/// The bytes are those of NumPy 1.26 (protocol 3, `numpy.core.multiarray._reconstruct`),
/// which every NumPy since 1.x, including 2.x, loads with `allow_pickle=True`.
pub fn write_object_array_pickle(shape: &[usize], items: &[PyValue]) -> Vec<u8> {
    let g = PyValue::global;
    let dtype = PyValue::Build {
        obj: Box::new(PyValue::Reduce {
            callable: Box::new(g("numpy", "dtype")),
            args: Box::new(PyValue::Tuple(vec![
                PyValue::Str("O8".into()),
                PyValue::Bool(false),
                PyValue::Bool(true),
            ])),
        }),
        // (version, byteorder, subarray, names, fields, elsize, alignment, flags)
        state: Box::new(PyValue::Tuple(vec![
            PyValue::Int(3),
            PyValue::Str("|".into()),
            PyValue::None,
            PyValue::None,
            PyValue::None,
            PyValue::Int(-1),
            PyValue::Int(-1),
            PyValue::Int(63),
        ])),
    };
    let array = PyValue::Build {
        obj: Box::new(PyValue::Reduce {
            callable: Box::new(g(RECONSTRUCT_MODULE, "_reconstruct")),
            args: Box::new(PyValue::Tuple(vec![
                g("numpy", "ndarray"),
                PyValue::Tuple(vec![PyValue::Int(0)]),
                PyValue::Bytes(b"b".to_vec()),
            ])),
        }),
        // (version, shape, dtype, is_fortran, data)
        state: Box::new(PyValue::Tuple(vec![
            PyValue::Int(1),
            PyValue::Tuple(
                shape
                    .iter()
                    .map(|&d| PyValue::Int(i64::try_from(d).unwrap_or(i64::MAX)))
                    .collect(),
            ),
            dtype,
            PyValue::Bool(false),
            PyValue::List(items.to_vec()),
        ])),
    };
    write_pickle(&array)
}

/// The pickle `np.save` writes for `np.array(value, dtype=object)` (a 0-d object
/// array), e.g. for `value` `None` or a function reference ([`PyValue::Global`]).
///
/// Byte for byte what NumPy 1.26 writes; see [`write_object_array_pickle`].
pub fn write_object_scalar_pickle(value: &PyValue) -> Vec<u8> {
    write_object_array_pickle(&[], std::slice::from_ref(value))
}

/// Extracts `(shape, items in C order)` from an unpickled NumPy object array
/// (`_reconstruct(ndarray, ...)` followed by `BUILD` with the array state).
///
/// Accepts `numpy.core.multiarray` (NumPy 1.x) and `numpy._core.multiarray`
/// (NumPy 2.x). Fails if the value is not an ndarray or its data is not a list of
/// objects (a pickled numeric array).
pub fn object_array_from_pickle(value: PyValue) -> Result<(Vec<usize>, Vec<PyValue>), String> {
    let PyValue::Build { obj, state } = value else {
        return Err("pickle is not a NumPy array (no BUILD)".into());
    };
    let is_reconstruct = matches!(
        *obj,
        PyValue::Reduce { ref callable, .. }
            if matches!(
                callable.as_global(),
                Some(("numpy.core.multiarray" | "numpy._core.multiarray", "_reconstruct"))
            )
    );
    if !is_reconstruct {
        return Err("pickle is not a NumPy array (no _reconstruct call)".into());
    }
    let PyValue::Tuple(mut state) = *state else {
        return Err("NumPy array state is not a tuple".into());
    };
    // (version, shape, dtype, is_fortran, data); version is absent in old pickles.
    if state.len() == 5 {
        state.remove(0);
    }
    let [shape, _dtype, _fortran, data]: [PyValue; 4] = state
        .try_into()
        .map_err(|_| "NumPy array state has the wrong length".to_string())?;
    let PyValue::Tuple(dims) = shape else {
        return Err("NumPy array shape is not a tuple".into());
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            PyValue::Int(v) => usize::try_from(*v).map_err(|_| "negative dimension".to_string()),
            _ => Err("NumPy array dimension is not an int".to_string()),
        })
        .collect::<R<Vec<usize>>>()?;
    let PyValue::List(items) = data else {
        return Err("pickled array is not an object array (data is not a list)".into());
    };
    // Object arrays are pickled as a list in C (logical) order whatever `is_fortran` says.
    Ok((shape, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    /// `np.save(f, np.array(None, dtype=object))` payload from NumPy 1.26.4.
    const NONE_NP126: &[u8] = b"\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01bq\x03\x87q\x04Rq\x05(K\x01)cnumpy\ndtype\nq\x06X\x02\x00\x00\x00O8q\x07\x89\x88\x87q\x08Rq\t(K\x03X\x01\x00\x00\x00|q\nNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0bb\x89]q\x0cNatq\rb.";
    /// Same for `abs` (`builtins.abs`).
    const ABS_NP126: &[u8] = b"\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01bq\x03\x87q\x04Rq\x05(K\x01)cnumpy\ndtype\nq\x06X\x02\x00\x00\x00O8q\x07\x89\x88\x87q\x08Rq\t(K\x03X\x01\x00\x00\x00|q\nNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0bb\x89]q\x0ccbuiltins\nabs\nq\ratq\x0eb.";
    /// Same for `0.8`.
    const FLOAT_NP126: &[u8] = b"\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01bq\x03\x87q\x04Rq\x05(K\x01)cnumpy\ndtype\nq\x06X\x02\x00\x00\x00O8q\x07\x89\x88\x87q\x08Rq\t(K\x03X\x01\x00\x00\x00|q\nNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0bb\x89]q\x0cG?\xe9\x99\x99\x99\x99\x99\x9aatq\rb.";
    /// `np.save(f, np.array(abs, dtype=object))` payload from NumPy 2.4.6 (protocol 4).
    const ABS_NP24: &[u8] = b"\x80\x04\x95\x99\x00\x00\x00\x00\x00\x00\x00\x8c\x16numpy._core.multiarray\x94\x8c\x0c_reconstruct\x94\x93\x94\x8c\x05numpy\x94\x8c\x07ndarray\x94\x93\x94K\x00\x85\x94C\x01b\x94\x87\x94R\x94(K\x01)h\x03\x8c\x05dtype\x94\x93\x94\x8c\x02O8\x94\x89\x88\x87\x94R\x94(K\x03\x8c\x01|\x94NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?t\x94b\x89]\x94\x8c\x08builtins\x94\x8c\x03abs\x94\x93\x94at\x94b.";
    /// The `dale_ratio` payload of the PsychRNN fixture (an older NumPy 1.x).
    const NONE_FIXTURE: &[u8] = b"\x80\x03cnumpy.core.multiarray\n_reconstruct\nq\x00cnumpy\nndarray\nq\x01K\x00\x85q\x02C\x01bq\x03\x87q\x04Rq\x05(K\x01)cnumpy\ndtype\nq\x06X\x02\x00\x00\x00O8q\x07K\x00K\x01\x87q\x08Rq\t(K\x03X\x01\x00\x00\x00|q\nNNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tq\x0bb\x89]q\x0cNatq\rb.";

    fn g(m: &str, n: &str) -> PyValue {
        PyValue::global(m, n)
    }

    fn scalar(bytes: &[u8]) -> PyValue {
        let (shape, mut items) = object_array_from_pickle(read_pickle(bytes).unwrap()).unwrap();
        assert!(shape.is_empty());
        assert_eq!(items.len(), 1);
        items.pop().unwrap()
    }

    #[test]
    fn writes_numpy_126_bytes_exactly() {
        assert_eq!(write_object_scalar_pickle(&PyValue::None), NONE_NP126);
        assert_eq!(write_object_scalar_pickle(&g("builtins", "abs")), ABS_NP126);
        assert_eq!(write_object_scalar_pickle(&PyValue::Float(0.8)), FLOAT_NP126);
    }

    #[test]
    fn reads_numpy_1_and_2_object_scalars() {
        assert_eq!(scalar(NONE_NP126), PyValue::None);
        assert_eq!(scalar(NONE_FIXTURE), PyValue::None);
        assert_eq!(scalar(ABS_NP126), g("builtins", "abs"));
        assert_eq!(scalar(ABS_NP24), g("builtins", "abs"));
        assert_eq!(scalar(FLOAT_NP126), PyValue::Float(0.8));
        let relu = g("tensorflow.python.ops.gen_nn_ops", "relu");
        assert_eq!(scalar(&write_object_scalar_pickle(&relu)), relu);
    }

    #[test]
    fn full_structure_of_the_fixture_pickle() {
        let v = read_pickle(NONE_FIXTURE).unwrap();
        let PyValue::Build { obj, state } = v else {
            panic!("not a build: {v:?}")
        };
        assert_eq!(
            *obj,
            PyValue::Reduce {
                callable: Box::new(g("numpy.core.multiarray", "_reconstruct")),
                args: Box::new(PyValue::Tuple(vec![
                    g("numpy", "ndarray"),
                    PyValue::Tuple(vec![PyValue::Int(0)]),
                    PyValue::Bytes(b"b".to_vec()),
                ])),
            }
        );
        let PyValue::Tuple(st) = *state else { panic!() };
        assert_eq!(st.len(), 5);
        assert_eq!(st[0], PyValue::Int(1));
        assert_eq!(st[1], PyValue::Tuple(vec![]));
        assert_eq!(st[3], PyValue::Bool(false));
        assert_eq!(st[4], PyValue::List(vec![PyValue::None]));
        let PyValue::Build { state: dstate, .. } = &st[2] else {
            panic!()
        };
        assert_eq!(
            **dstate,
            PyValue::Tuple(vec![
                PyValue::Int(3),
                PyValue::Str("|".into()),
                PyValue::None,
                PyValue::None,
                PyValue::None,
                PyValue::Int(-1),
                PyValue::Int(-1),
                PyValue::Int(63),
            ])
        );
    }

    #[test]
    fn object_arrays_with_shape_round_trip() {
        let items = vec![
            PyValue::Int(1),
            PyValue::Str("x".into()),
            PyValue::None,
            PyValue::Float(-2.5),
            g("builtins", "abs"),
            PyValue::Bool(true),
        ];
        let bytes = write_object_array_pickle(&[2, 3], &items);
        let (shape, got) = object_array_from_pickle(read_pickle(&bytes).unwrap()).unwrap();
        assert_eq!(shape, vec![2, 3]);
        assert_eq!(got, items);
    }

    #[test]
    fn general_values_round_trip() {
        let v = PyValue::Tuple(vec![
            PyValue::Int(0),
            PyValue::Int(255),
            PyValue::Int(256),
            PyValue::Int(65535),
            PyValue::Int(65536),
            PyValue::Int(-1),
            PyValue::Int(i32::MIN.into()),
            PyValue::Int(i64::from(i32::MAX) + 1),
            PyValue::Int(i64::MIN),
            PyValue::Int(i64::MAX),
            PyValue::Int(-129 - (1 << 40)),
            PyValue::Float(f64::INFINITY),
            PyValue::Str("héllo".into()),
            PyValue::Str("x".repeat(300)),
            PyValue::Bytes(vec![0; 300]),
            PyValue::List((0..2500).map(PyValue::Int).collect()),
            PyValue::Dict(vec![
                (PyValue::Str("a".into()), PyValue::None),
                (PyValue::Int(2), PyValue::List(vec![])),
            ]),
            PyValue::Dict(vec![(PyValue::Str("k".into()), PyValue::Int(1))]),
            PyValue::Set(vec![PyValue::Int(7)]),
            PyValue::NewObj {
                cls: Box::new(g("m", "C")),
                args: Box::new(PyValue::Tuple(vec![])),
                kwargs: Box::new(PyValue::Dict(vec![])),
            },
        ]);
        let bytes = write_pickle(&v);
        assert_eq!(&bytes[..2], b"\x80\x03");
        let back = read_pickle(&bytes).unwrap();
        // A set is written as `set([...])`.
        let PyValue::Tuple(mut want) = v else { unreachable!() };
        want[18] = PyValue::Reduce {
            callable: Box::new(g("builtins", "set")),
            args: Box::new(PyValue::Tuple(vec![PyValue::List(vec![PyValue::Int(7)])])),
        };
        assert_eq!(back, PyValue::Tuple(want));
    }

    #[test]
    fn python_long_encoding() {
        // pickle.dumps(x, 3)[2:-1] from CPython 3.11.
        let cases: &[(i64, &[u8])] = &[
            (2147483648, b"\x8a\x05\x00\x00\x00\x80\x00"),
            (-2147483649, b"\x8a\x05\xff\xff\xff\x7f\xff"),
            (i64::MAX, b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f"),
            (i64::MIN, b"\x8a\x08\x00\x00\x00\x00\x00\x00\x00\x80"),
            (1 << 40, b"\x8a\x06\x00\x00\x00\x00\x00\x01"),
            (-(1 << 40), b"\x8a\x06\x00\x00\x00\x00\x00\xff"),
            (-1, b"J\xff\xff\xff\xff"),
            (70000, b"Jp\x11\x01\x00"),
        ];
        for &(v, want) in cases {
            let b = write_pickle(&PyValue::Int(v));
            assert_eq!(&b[2..b.len() - 1], want, "{v}");
            assert_eq!(read_pickle(&b).unwrap(), PyValue::Int(v));
        }
    }

    #[test]
    fn dotted_names_use_protocol_4() {
        let v = g("m", "Outer.inner");
        let b = write_pickle(&v);
        assert_eq!(&b[..2], b"\x80\x04");
        assert_eq!(read_pickle(&b).unwrap(), v);
        let odd = g("m\nx", "f");
        let b = write_pickle(&odd);
        assert_eq!(&b[..2], b"\x80\x04");
        assert_eq!(read_pickle(&b).unwrap(), odd);
    }

    #[test]
    fn protocol_0_text_opcodes() {
        // pickle.dumps((1, 'ab', 2.5, True, None, 12345678901234, [1], {'k': u'\u00e9'}), 0)
        let p0 = b"(I1\nVab\np0\nF2.5\nI01\nNL12345678901234L\n(lp1\nI1\na(dp2\nVk\np3\nV\xe9\np4\nstp5\n.";
        assert_eq!(
            read_pickle(p0).unwrap(),
            PyValue::Tuple(vec![
                PyValue::Int(1),
                PyValue::Str("ab".into()),
                PyValue::Float(2.5),
                PyValue::Bool(true),
                PyValue::None,
                PyValue::Int(12345678901234),
                PyValue::List(vec![PyValue::Int(1)]),
                PyValue::Dict(vec![(PyValue::Str("k".into()), PyValue::Str("é".into()))]),
            ])
        );
        // Python 2 protocol 0 string and global names.
        let py2 = b"(S'a\\'b\\x41\\n'\np0\nc__builtin__\nabs\np1\ntp2\n.";
        assert_eq!(
            read_pickle(py2).unwrap(),
            PyValue::Tuple(vec![PyValue::Str("a'bA\n".into()), g("builtins", "abs")])
        );
    }

    #[test]
    fn memo_shares_identity() {
        // l = []; (l, l) after l.append(1) through the memo: `]q\x00(h\x00K\x01a...`
        let b = b"\x80\x02]q\x00h\x00K\x01a\x86.";
        assert_eq!(
            read_pickle(b).unwrap(),
            PyValue::Tuple(vec![
                PyValue::List(vec![PyValue::Int(1)]),
                PyValue::List(vec![PyValue::Int(1)]),
            ])
        );
    }

    #[test]
    fn rejects_bad_input_with_errors() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "truncated"),
            (b"\x80\x03N", "truncated"),
            (b"\x80\x06N.", "protocol"),
            (b"\x80\x03.", "underflow"),
            (b"\x80\x03a.", "underflow"),
            (b"\x80\x03Na.", "underflow"),
            (b"\x80\x03NNa.", "non-list"),
            (b"\x80\x03t.", "MARK"),
            (b"\x80\x03h\x05.", "memo"),
            (b"\x80\x03X\xff\xff\xff\xffab.", "truncated"),
            (b"\x80\x04\x8e\xff\xff\xff\xff\xff\xff\xff\xff.", "truncated"),
            (b"\x80\x03\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", "too large"),
            (b"\x80\x03\x8b\xff\xff\xff\xff.", "negative"),
            (b"\x80\x03Q.", "persistent"),
            (b"\x80\x03\xff.", "opcode"),
            (b"\x80\x03]q\x00h\x00a.", "cyclic"),
            (b"\x80\x03\x93.", "underflow"),
            (b"\x80\x03K\x01K\x02\x93.", "str"),
            (b"\x80\x03X\x01\x00\x00\x00\xff.", "UTF-8"),
        ];
        for (b, want) in cases {
            let e = read_pickle(b).unwrap_err();
            assert!(e.contains(want), "{b:?}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn deep_nesting_is_bounded() {
        // 100 000 nested lists (`(` × n then `l` × n) fail cleanly, without stack overflow.
        let mut b = b"\x80\x03".to_vec();
        b.extend(std::iter::repeat_n(b'(', 100_000));
        b.extend(std::iter::repeat_n(b'l', 100_000));
        b.push(b'.');
        // Each `l` pops one mark and pushes a list into the outer frame.
        let e = read_pickle(&b).unwrap_err();
        assert!(e.contains("nested"), "{e}");
    }

    #[test]
    fn shared_subtree_blowup_is_bounded() {
        // x = []; repeat: x = (x, x) 60 times -> 2^60 nodes if expanded naively.
        let mut b = b"\x80\x03]".to_vec();
        for _ in 0..60 {
            b.extend_from_slice(b"2\x86");
        }
        b.push(b'.');
        let e = read_pickle(&b).unwrap_err();
        assert!(e.contains("too many"), "{e}");
    }

    #[test]
    fn not_an_array() {
        assert!(object_array_from_pickle(PyValue::None).is_err());
        let v = read_pickle(&write_pickle(&PyValue::Build {
            obj: Box::new(PyValue::Reduce {
                callable: Box::new(g("os", "system")),
                args: Box::new(PyValue::Tuple(vec![])),
            }),
            state: Box::new(PyValue::None),
        }))
        .unwrap();
        assert!(object_array_from_pickle(v).unwrap_err().contains("_reconstruct"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 500, failure_persistence: None, ..Default::default() })]

        /// Streams of real opcodes with small arguments reach deep VM states; none panics.
        #[test]
        fn random_opcode_streams_never_panic(
            ops in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"()t]ael}dsu.0120NKJMGbRhqgpIFLVScXCUT".to_vec()).prop_map(|b| vec![b]),
                    proptest::sample::select(vec![0x80u8, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x8b, 0x8c, 0x8f, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x81]).prop_map(|b| vec![b]),
                    proptest::collection::vec(proptest::prelude::any::<u8>(), 1..4),
                    proptest::sample::select(vec![b"\x8c\x01a".to_vec(), b"K\x00".to_vec(), b"h\x00".to_vec(), b"q\x00".to_vec(), b"ca\nb\n".to_vec(), b"\n".to_vec()]),
                ],
                0..60,
            )
        ) {
            let bytes: Vec<u8> = ops.concat();
            if let Ok(v) = read_pickle(&bytes) {
                // Whatever decodes can be written and read back.
                let again = write_pickle(&v);
                proptest::prop_assert!(read_pickle(&again).is_ok());
            }
            let _ = read_pickle(&[b"\x80\x02".as_slice(), &bytes, b"."].concat());
        }
    }
}
