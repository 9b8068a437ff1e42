//! `.npy`: NumPy's array file, a Python-literal header then raw little-endian values. Reads
//! float32 and float16 2-D C-order arrays; writes float32.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

use super::{f32_from_le_in_place, read_full, zeroed, Format, InputError, Vectors};

/// Writes a 2-D C-order `<f4` `.npy` file (version 1.0), as `np.save` would.
pub fn write_npy_f32(path: &Path, rows: usize, dim: usize, data: &[f32]) -> io::Result<()> {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
    write_npy_f32_to(&mut w, rows, dim, data)?;
    w.flush()
}

/// [`write_npy_f32`] into any writer (an `.npz` member, a buffer); buffer a slow writer first.
pub fn write_npy_f32_to(
    mut w: impl Write,
    rows: usize,
    dim: usize,
    data: &[f32],
) -> io::Result<()> {
    if rows.checked_mul(dim) != Some(data.len()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "write_npy_f32: {rows} x {dim} needs {} values, got {}",
                rows.saturating_mul(dim),
                data.len()
            ),
        ));
    }
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {dim}), }}");
    // Pad so the data starts 64-byte aligned, as numpy does; the header ends with a newline.
    let unpadded = NPY_MAGIC.len() + 4 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let header_len = u16::try_from(header.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "npy header too long"))?;

    w.write_all(NPY_MAGIC)?;
    w.write_all(&[1, 0])?;
    w.write_all(&header_len.to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    if cfg!(target_endian = "little") {
        w.write_all(bytemuck::cast_slice(data))?;
    } else {
        for x in data {
            w.write_all(&x.to_le_bytes())?;
        }
    }
    Ok(())
}

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// Headers are a few hundred bytes; this only stops a corrupt length from allocating gigabytes.
const NPY_MAX_HEADER: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
enum NpyDtype {
    F32,
    F16,
}

/// Reads a `.npy` array; `file_len` is the whole input's length when known.
pub(super) fn read_npy(
    mut file: impl Read,
    file_len: Option<u64>,
    path: &Path,
) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let header_err = |reason: String| InputError::NpyHeader {
        path: path.to_owned(),
        reason,
    };

    let mut prefix = [0u8; 12];
    let got = read_full(&mut file, &mut prefix[..10]).map_err(io_err)?;
    if got == 0 {
        return Err(InputError::Empty {
            path: path.to_owned(),
            format: Format::Npy,
        });
    }
    if got < 8 || &prefix[..6] != NPY_MAGIC {
        return Err(InputError::NpyMagic {
            path: path.to_owned(),
            found: format!("\"{}\"", prefix[..got.min(6)].escape_ascii()),
        });
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (prefix_len, header_len) = match major {
        1 if got == 10 => (10, u16::from_le_bytes([prefix[8], prefix[9]]) as usize),
        2 | 3 if got == 10 => {
            let more = read_full(&mut file, &mut prefix[10..]).map_err(io_err)?;
            if more < 2 {
                return Err(header_err("the file ends inside the header".into()));
            }
            let len = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
            (12, usize::try_from(len).unwrap_or(usize::MAX))
        }
        1..=3 => return Err(header_err("the file ends inside the header".into())),
        _ => {
            return Err(header_err(format!(
                "format version {major}.{minor}; expected 1.0, 2.0 or 3.0"
            )))
        }
    };
    if header_len > NPY_MAX_HEADER {
        return Err(header_err(format!(
            "header length {header_len} bytes; expected at most {NPY_MAX_HEADER}"
        )));
    }
    let mut header = vec![0u8; header_len];
    let got = read_full(&mut file, &mut header).map_err(io_err)?;
    if got < header_len {
        return Err(header_err(format!(
            "the file ends inside the header (expected {header_len} header bytes, found {got})"
        )));
    }
    let header = String::from_utf8_lossy(&header);
    let (dtype, rows, dim) = parse_npy_header(path, &header)?;

    let (elem, what) = match dtype {
        NpyDtype::F32 => (4u64, "float32 data"),
        NpyDtype::F16 => (2u64, "float16 data"),
    };
    let too_large = || InputError::NpyShape {
        path: path.to_owned(),
        found: format!("({rows}, {dim})"),
        hint: "that is too large to load on this machine",
    };
    let n = rows.checked_mul(dim).ok_or_else(too_large)?;
    let expected = (n as u64).checked_mul(elem).ok_or_else(too_large)?;
    let data_bytes = usize::try_from(expected).map_err(|_| too_large())?;
    let row_bytes = dim as u64 * elem;
    let truncated = |found: u64| InputError::Truncated {
        path: path.to_owned(),
        row: usize::try_from(found / row_bytes).unwrap_or(usize::MAX),
        what,
        expected,
        found,
    };
    // Check the length up front when the file has one, so a lying header cannot make us allocate.
    if let Some(len) = file_len {
        let found = len.saturating_sub((prefix_len + header_len) as u64);
        if found < expected {
            return Err(truncated(found));
        }
        if found > expected {
            return Err(InputError::TrailingData {
                path: path.to_owned(),
                expected,
                found,
            });
        }
    }

    let data = match dtype {
        NpyDtype::F32 => {
            let mut data = zeroed::<f32>(path, n)?;
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut data);
            let got = read_full(&mut file, bytes).map_err(io_err)?;
            if got < data_bytes {
                return Err(truncated(got as u64));
            }
            f32_from_le_in_place(&mut data);
            data
        }
        NpyDtype::F16 => {
            // Convert a block at a time, so the float16 copy never needs memory of its own.
            const BLOCK: usize = 1 << 20;
            let mut data = zeroed::<f32>(path, n)?;
            let mut bits = vec![0u16; BLOCK.min(n)];
            let mut done = 0u64;
            for out in data.chunks_mut(BLOCK) {
                let bits = &mut bits[..out.len()];
                let want = 2 * bits.len();
                let got = read_full(&mut file, bytemuck::cast_slice_mut(bits)).map_err(io_err)?;
                if got < want {
                    return Err(truncated(done + got as u64));
                }
                if cfg!(target_endian = "big") {
                    for b in bits.iter_mut() {
                        *b = u16::from_le(*b);
                    }
                }
                bits.reinterpret_cast::<f16>().convert_to_f32_slice(out);
                done += want as u64;
            }
            data
        }
    };
    // The file may have grown since we looked at its length, or may have none (a pipe).
    let mut extra = [0u8; 1];
    if read_full(&mut file, &mut extra).map_err(io_err)? > 0 {
        let rest = io::copy(&mut file, &mut io::sink()).map_err(io_err)?;
        return Err(InputError::TrailingData {
            path: path.to_owned(),
            expected,
            found: expected + 1 + rest,
        });
    }
    Ok(Vectors {
        dim,
        data,
        ids: None,
    })
}

/// Checks the header dict (`{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }`) and
/// returns the dtype, rows and dimension.
fn parse_npy_header(path: &Path, header: &str) -> Result<(NpyDtype, usize, usize), InputError> {
    let header_err = |reason: String| InputError::NpyHeader {
        path: path.to_owned(),
        reason,
    };
    let dict = PyLit::new(header.trim_end())
        .dict()
        .map_err(|e| header_err(format!("{e} in {:?}", header.trim_end())))?;
    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
            .ok_or_else(|| header_err(format!("no '{key}' entry in {:?}", header.trim_end())))
    };

    let dtype = match get("descr")? {
        Py::Str(s) if s == "<f4" => NpyDtype::F32,
        Py::Str(s) if s == "<f2" => NpyDtype::F16,
        Py::Str(s) => {
            return Err(InputError::NpyDtype {
                path: path.to_owned(),
                found: describe_dtype(s),
            })
        }
        other => {
            return Err(InputError::NpyDtype {
                path: path.to_owned(),
                found: format!("{} (a structured dtype)", other),
            })
        }
    };
    match get("fortran_order")? {
        Py::Bool(false) => {}
        Py::Bool(true) => {
            return Err(InputError::NpyFortranOrder {
                path: path.to_owned(),
            })
        }
        other => {
            return Err(header_err(format!(
                "'fortran_order' is {other}; expected a bool"
            )))
        }
    }
    let shape = match get("shape")? {
        Py::Seq(items) => items
            .iter()
            .map(|v| match v {
                Py::Int(i) => usize::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>(),
        _ => None,
    };
    let shape = shape.ok_or_else(|| {
        header_err(format!(
            "'shape' is {}; expected a tuple of integers",
            get("shape").map(|v| v.to_string()).unwrap_or_default()
        ))
    })?;
    let shape_text = || {
        let inner: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        match inner.len() {
            1 => format!("({},)", inner[0]),
            _ => format!("({})", inner.join(", ")),
        }
    };
    let (rows, dim) = match shape.as_slice() {
        &[rows, dim] => (rows, dim),
        [] => {
            return Err(InputError::NpyShape {
                path: path.to_owned(),
                found: "() (a single number)".to_owned(),
                hint: "save a (rows, dim) array",
            })
        }
        [_] => {
            return Err(InputError::NpyShape {
                path: path.to_owned(),
                found: shape_text(),
                hint: "if it is one vector, save x.reshape(1, -1)",
            })
        }
        _ => {
            return Err(InputError::NpyShape {
                path: path.to_owned(),
                found: shape_text(),
                hint: "flatten it with x.reshape(-1, x.shape[-1])",
            })
        }
    };
    if rows == 0 {
        return Err(InputError::NoRows {
            path: path.to_owned(),
            found: format!("shape {}", shape_text()),
        });
    }
    if dim == 0 {
        return Err(InputError::NpyShape {
            path: path.to_owned(),
            found: shape_text(),
            hint: "each vector needs at least one value",
        });
    }
    Ok((dtype, rows, dim))
}

/// Names a dtype string for people: `'<f8' (float64)`.
fn describe_dtype(descr: &str) -> String {
    let bytes = descr.as_bytes();
    let (order, rest) = match bytes.first() {
        Some(b'<' | b'>' | b'|' | b'=') => (bytes[0], &descr[1..]),
        _ => (b'=', descr),
    };
    let kind_len = rest.chars().next().map_or(0, char::len_utf8);
    let (kind, size) = rest.split_at(kind_len);
    let bits = size.parse::<u32>().ok().map(|s| s * 8);
    let name = match (kind, bits) {
        ("f", Some(b)) => Some(format!("float{b}")),
        ("i", Some(b)) => Some(format!("int{b}")),
        ("u", Some(b)) => Some(format!("uint{b}")),
        ("c", Some(b)) => Some(format!("complex{b}")),
        ("b", _) => Some("bool".to_owned()),
        _ => None,
    };
    match (name, order) {
        (Some(n), b'>') => format!("'{descr}' (big-endian {n})"),
        (Some(n), _) => format!("'{descr}' ({n})"),
        (None, _) => format!("'{descr}'"),
    }
}

/// The Python literals a `.npy` header uses.
#[derive(Debug, Clone, PartialEq)]
enum Py {
    Str(String),
    Bool(bool),
    None,
    Int(u64),
    /// A tuple or a list.
    Seq(Vec<Py>),
}

impl fmt::Display for Py {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Py::Str(s) => write!(f, "'{s}'"),
            Py::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Py::None => f.write_str("None"),
            Py::Int(i) => write!(f, "{i}"),
            Py::Seq(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str(")")
            }
        }
    }
}

/// A small parser for the Python dict literal in a `.npy` header; errors are short phrases.
struct PyLit<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> PyLit<'a> {
    fn new(s: &'a str) -> Self {
        PyLit {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.i))
        }
    }

    fn dict(&mut self) -> Result<Vec<(String, Py)>, String> {
        self.expect(b'{')?;
        let mut entries = Vec::new();
        while !self.eat(b'}') {
            let key = match self.value()? {
                Py::Str(k) => k,
                other => return Err(format!("dict key {other} is not a string")),
            };
            self.expect(b':')?;
            entries.push((key, self.value()?));
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        if self.peek().is_some() {
            return Err(format!("unexpected text after the dict at byte {}", self.i));
        }
        Ok(entries)
    }

    fn value(&mut self) -> Result<Py, String> {
        match self.peek() {
            Some(q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    if c == q {
                        let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                        self.i += 1;
                        return Ok(Py::Str(s));
                    }
                    self.i += if c == b'\\' { 2 } else { 1 };
                }
                Err("unterminated string".to_owned())
            }
            Some(open @ (b'(' | b'[')) => {
                self.i += 1;
                let close = if open == b'(' { b')' } else { b']' };
                let mut items = Vec::new();
                while !self.eat(close) {
                    items.push(self.value()?);
                    if !self.eat(b',') {
                        self.expect(close)?;
                        break;
                    }
                }
                Ok(Py::Seq(items))
            }
            Some(c) if c.is_ascii_digit() => {
                let start = self.i;
                while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                let digits = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
                let n = digits
                    .parse::<u64>()
                    .map_err(|_| format!("number {digits} is too large"))?;
                // Python 2 wrote long integers as `10L`.
                if self.s.get(self.i) == Some(&b'L') {
                    self.i += 1;
                }
                Ok(Py::Int(n))
            }
            Some(_) => {
                for (word, value) in [
                    ("True", Py::Bool(true)),
                    ("False", Py::Bool(false)),
                    ("None", Py::None),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(value);
                    }
                }
                Err(format!("unexpected text at byte {}", self.i))
            }
            None => Err("unexpected end".to_owned()),
        }
    }
}
