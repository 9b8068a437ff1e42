//! Vector input readers: `.npy` (float32/float16), `.fvecs` and JSON lines.
//!
//! Everything a user or a disk can get wrong comes back as an [`InputError`] whose message names the
//! file, the row or line, what was expected, what was found and what to do about it. [`validate`]
//! runs after reading so that `build` refuses bad input before it writes anything.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use half::f16;
use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
use serde::Deserialize;

/// Vectors read from a file, one row per vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Vectors {
    /// Values per vector.
    pub dim: usize,
    /// Row-major, `rows * dim` values.
    pub data: Vec<f32>,
    /// Caller-chosen ids; `None` means the row numbers are the ids.
    pub ids: Option<Vec<u64>>,
}

impl Vectors {
    /// Number of vectors (0 when `dim` is 0, rather than dividing by zero).
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Row `i`. Panics if `i >= self.rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// The ids to store: the given ones, or `0..rows` when the file had none.
    pub fn ids_or_rows(&self) -> Vec<u64> {
        match &self.ids {
            Some(ids) => ids.clone(),
            None => (0..self.rows() as u64).collect(),
        }
    }
}

/// The supported input formats, chosen by file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// NumPy `.npy`, a 2-D C-order array of `<f4` or `<f2`.
    Npy,
    /// `.fvecs`: per row a little-endian `i32` dimension, then that many `f32`.
    Fvecs,
    /// `.jsonl` / `.ndjson`: one `{"id": 7, "vector": [..]}` object per line.
    JsonLines,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Npy => ".npy",
            Format::Fvecs => ".fvecs",
            Format::JsonLines => "JSON lines",
        })
    }
}

/// Where in a file an error is: binary formats count rows from 0 (row numbers double as ids), text
/// formats count lines from 1 (as editors do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A 0-based row.
    Row(usize),
    /// A 1-based line.
    Line(usize),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Row(r) => write!(f, "row {r}"),
            Place::Line(l) => write!(f, "line {l}"),
        }
    }
}

/// Why a vector file could not be read or was refused.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{}: unsupported input format ({found}); expected .npy, .fvecs, .jsonl or .ndjson; rename \
         the file or convert it",
        .path.display()
    )]
    UnknownFormat { path: PathBuf, found: String },
    #[error(
        "{}: the file is empty; expected {format} data with at least one vector; check that it was \
         written completely",
        .path.display()
    )]
    Empty { path: PathBuf, format: Format },
    #[error(
        "{}: contains no vectors ({found}); expected at least one row; check what was saved",
        .path.display()
    )]
    NoRows { path: PathBuf, found: String },
    #[error(
        "{}: not a .npy file: expected it to start with \\x93NUMPY, found {found}; save it with \
         np.save",
        .path.display()
    )]
    NpyMagic { path: PathBuf, found: String },
    #[error("{}: bad .npy header: {reason}; save it again with np.save", .path.display())]
    NpyHeader { path: PathBuf, reason: String },
    #[error(
        "{}: unsupported dtype {found}; expected '<f4' (float32) or '<f2' (float16); convert with \
         x.astype(np.float32) and save again",
        .path.display()
    )]
    NpyDtype { path: PathBuf, found: String },
    #[error(
        "{}: the array is in Fortran (column-major) order; expected C order; write it with \
         np.save(path, np.ascontiguousarray(x))",
        .path.display()
    )]
    NpyFortranOrder { path: PathBuf },
    #[error(
        "{}: shape {found}; expected a 2-D array (rows, dim); {hint}",
        .path.display()
    )]
    NpyShape {
        path: PathBuf,
        found: String,
        hint: &'static str,
    },
    #[error(
        "{}: truncated at row {row}: expected {expected} bytes of {what}, found {found}; the file \
         was cut short (an interrupted write or copy?); write it again",
        .path.display()
    )]
    Truncated {
        path: PathBuf,
        row: usize,
        what: &'static str,
        expected: u64,
        found: u64,
    },
    #[error(
        "{}: {found} bytes of array data where the header says {expected}; the header does not \
         match the data; save it again with np.save",
        .path.display()
    )]
    TrailingData {
        path: PathBuf,
        expected: u64,
        found: u64,
    },
    #[error(
        "{}: row {row} declares dimension {found}; expected a positive i32; is this really an \
         .fvecs file (each row: little-endian i32 dimension, then that many f32)?",
        .path.display()
    )]
    BadDimension {
        path: PathBuf,
        row: usize,
        found: i64,
    },
    #[error(
        "{}: {at} has dimension {found} but {first} has dimension {expected}; every vector needs \
         the same dimension; fix or drop {at}",
        .path.display()
    )]
    Ragged {
        path: PathBuf,
        at: Place,
        found: usize,
        first: Place,
        expected: usize,
    },
    #[error(
        "{}: line {line}, column {column}: invalid JSON ({reason}); expected one object per line \
         like {{\"id\": 7, \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    #[error(
        "{}: line {line}: {reason}; expected an object like {{\"id\": 7, \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    BadRecord {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error(
        "{}: line {line} has no \"vector\" field; expected an object like {{\"id\": 7, \
         \"vector\": [0.1, 0.2]}}",
        .path.display()
    )]
    MissingVector { path: PathBuf, line: usize },
    #[error(
        "{}: line {line}: \"vector\" entry {index} is {found}; expected a number; fix or drop line \
         {line}",
        .path.display()
    )]
    NotANumber {
        path: PathBuf,
        line: usize,
        index: usize,
        found: String,
    },
    #[error(
        "{}: line {line} {} but line {first_line} {}; give every line an id, or none (then row \
         numbers are the ids)",
        .path.display(),
        if *.line_has_id { "has an \"id\"" } else { "has no \"id\"" },
        if *.line_has_id { "has none" } else { "has one" }
    )]
    MixedIds {
        path: PathBuf,
        line: usize,
        first_line: usize,
        line_has_id: bool,
    },
    #[error(
        "{}: vectors have dimension {found} but the index has dimension {expected}; embed with \
         the model the index was built with, or build a new index",
        .path.display()
    )]
    DimMismatch {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error(
        "{}: row {row}{}, column {column} is {value}; expected finite numbers; fix or drop that \
         row (numbers beyond ±3.4e38 overflow float32 to inf)",
        .path.display(),
        id_note(.id)
    )]
    NonFinite {
        path: PathBuf,
        row: usize,
        id: Option<u64>,
        column: usize,
        value: f32,
    },
    #[error(
        "{}: row {row}{} is a zero vector; cosine needs non-zero vectors; drop row {row} or use \
         --metric dot/l2",
        .path.display(),
        id_note(.id)
    )]
    ZeroVector {
        path: PathBuf,
        row: usize,
        id: Option<u64>,
    },
    #[error(
        "{}: id {id} appears in row {first_row} and row {second_row}; ids must be unique; drop or \
         renumber one of them",
        .path.display()
    )]
    DuplicateId {
        path: PathBuf,
        id: u64,
        first_row: usize,
        second_row: usize,
    },
    #[error(
        "{}: needs {bytes} bytes of memory, which could not be allocated; split the file or use a \
         machine with more memory",
        .path.display()
    )]
    OutOfMemory { path: PathBuf, bytes: u64 },
}

fn id_note(id: &Option<u64>) -> String {
    id.map(|id| format!(" (id {id})")).unwrap_or_default()
}

/// Picks the reader from the extension (case-insensitive), since none of the formats is reliably
/// recognisable from its bytes (fvecs and JSON have no magic).
pub fn detect_format(path: &Path) -> Result<Format, InputError> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("npy") => Ok(Format::Npy),
        Some("fvecs") => Ok(Format::Fvecs),
        Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
        Some(other) => Err(InputError::UnknownFormat {
            path: path.to_owned(),
            found: format!("extension .{other}"),
        }),
        None => Err(InputError::UnknownFormat {
            path: path.to_owned(),
            found: "no extension".to_owned(),
        }),
    }
}

/// Reads a vector file in the format its extension names. Run [`validate`] on the result before
/// using it.
pub fn read_vectors(path: &Path) -> Result<Vectors, InputError> {
    read_vectors_as(path, detect_format(path)?)
}

/// Reads a vector file in the given format, whatever its extension (for a `--format` override).
pub fn read_vectors_as(path: &Path, format: Format) -> Result<Vectors, InputError> {
    match format {
        Format::Npy => read_npy(path),
        Format::Fvecs => read_fvecs(path),
        Format::JsonLines => read_jsonl(path),
    }
}

/// What [`validate`] checks beyond finiteness and unique ids.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checks {
    /// The dimension the vectors must have (an existing index's).
    pub expected_dim: Option<usize>,
    /// Refuse zero vectors, which cosine cannot normalise.
    pub reject_zero: bool,
}

/// Refuses vectors that would corrupt an index silently: no rows, a dimension other than
/// `checks.expected_dim`, NaN or ±inf (row and column), zero vectors when `checks.reject_zero`,
/// and ids used twice (both rows). `path` is only used in messages.
pub fn validate(v: &Vectors, path: &Path, checks: &Checks) -> Result<(), InputError> {
    let path_buf = || path.to_owned();
    if v.rows() == 0 {
        return Err(InputError::NoRows {
            path: path_buf(),
            found: format!("{} values of dimension {}", v.data.len(), v.dim),
        });
    }
    if let Some(expected) = checks.expected_dim {
        if v.dim != expected {
            return Err(InputError::DimMismatch {
                path: path_buf(),
                expected,
                found: v.dim,
            });
        }
    }
    let id_of = |row: usize| v.ids.as_ref().and_then(|ids| ids.get(row).copied());
    for (row, values) in v.data.chunks_exact(v.dim).enumerate() {
        let (finite, norm2) = row_scan(values);
        if !finite {
            let column = values.iter().position(|x| !x.is_finite()).unwrap_or(0);
            return Err(InputError::NonFinite {
                path: path_buf(),
                row,
                id: id_of(row),
                column,
                value: values.get(column).copied().unwrap_or(f32::NAN),
            });
        }
        // Rows so tiny that the f32 squared norm underflows are as unusable for cosine as zeros.
        if checks.reject_zero && norm2 == 0.0 {
            return Err(InputError::ZeroVector {
                path: path_buf(),
                row,
                id: id_of(row),
            });
        }
    }
    if let Some(ids) = &v.ids {
        let mut first: HashMap<u64, usize> = HashMap::with_capacity(ids.len());
        for (row, &id) in ids.iter().enumerate() {
            if let Some(&first_row) = first.get(&id) {
                return Err(InputError::DuplicateId {
                    path: path_buf(),
                    id,
                    first_row,
                    second_row: row,
                });
            }
            first.insert(id, row);
        }
    }
    Ok(())
}

/// Whether a row is all finite, and its squared norm, in one pass the compiler can vectorise
/// (eight independent lanes; `x * 0.0` is NaN exactly when `x` is NaN or infinite).
fn row_scan(row: &[f32]) -> (bool, f32) {
    const LANES: usize = 8;
    let mut norm2 = [0.0f32; LANES];
    let mut poison = [0.0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for chunk in chunks {
        for j in 0..LANES {
            norm2[j] += chunk[j] * chunk[j];
            poison[j] += chunk[j] * 0.0;
        }
    }
    for (j, &x) in tail.iter().enumerate() {
        norm2[j] += x * x;
        poison[j] += x * 0.0;
    }
    let finite = poison.iter().all(|p| *p == 0.0);
    (finite, norm2.iter().sum())
}

/// Writes a 2-D C-order `<f4` `.npy` file (version 1.0), as `np.save` would.
pub fn write_npy_f32(path: &Path, rows: usize, dim: usize, data: &[f32]) -> io::Result<()> {
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

    let mut w = BufWriter::with_capacity(1 << 20, File::create(path)?);
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
    w.flush()
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

fn open(path: &Path) -> Result<(File, Option<u64>), InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    // Only a regular file's length is trustworthy (pipes and devices report 0).
    let len = meta.is_file().then_some(meta.len());
    Ok((file, len))
}

/// Reads until `buf` is full or the input ends, returning how much was read, so that a short file
/// can be reported with the byte count found (`read_exact` only says "early EOF").
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A zeroed buffer of `len` elements, or an error instead of an abort when memory runs out. Uses
/// `calloc`, so the pages are only touched once, by the read that fills them (zeroing 1.5 GB by
/// hand first doubles the load time).
fn zeroed<T: bytemuck::Zeroable>(path: &Path, len: usize) -> Result<Vec<T>, InputError> {
    bytemuck::allocation::try_zeroed_vec(len).map_err(|()| InputError::OutOfMemory {
        path: path.to_owned(),
        bytes: (len as u64).saturating_mul(size_of::<T>() as u64),
    })
}

/// Little-endian on disk to native, in place; compiles to nothing on little-endian machines.
fn f32_from_le_in_place(data: &mut [f32]) {
    if cfg!(target_endian = "big") {
        for x in data {
            *x = f32::from_bits(u32::from_le(x.to_bits()));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// Headers are a few hundred bytes; this only stops a corrupt length from allocating gigabytes.
const NPY_MAX_HEADER: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
enum NpyDtype {
    F32,
    F16,
}

fn read_npy(path: &Path) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let header_err = |reason: String| InputError::NpyHeader {
        path: path.to_owned(),
        reason,
    };
    let (mut file, file_len) = open(path)?;

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

// ---------------------------------------------------------------------------------------------
// .fvecs

fn read_fvecs(path: &Path) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let (file, file_len) = open(path)?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut data: Vec<f32> = Vec::new();
    let mut row_buf: Vec<f32> = Vec::new();
    let mut dim = 0usize;
    let mut row = 0usize;
    let mut offset = 0u64;
    loop {
        let mut head = [0u8; 4];
        let got = read_full(&mut r, &mut head).map_err(io_err)?;
        if got == 0 {
            break;
        }
        let truncated = |expected: u64, found: u64| InputError::Truncated {
            path: path.to_owned(),
            row,
            what: "row data (i32 dimension + f32 values)",
            expected,
            found,
        };
        let expected_row = 4 + 4 * dim as u64;
        if got < 4 {
            // Before row 0 we do not know the row size yet; report the dimension field.
            let expected = if row == 0 { 4 } else { expected_row };
            return Err(truncated(expected, got as u64));
        }
        let d = i32::from_le_bytes(head);
        if d <= 0 {
            return Err(InputError::BadDimension {
                path: path.to_owned(),
                row,
                found: d.into(),
            });
        }
        let d = d as usize;
        if row == 0 {
            dim = d;
        } else if d != dim {
            return Err(InputError::Ragged {
                path: path.to_owned(),
                at: Place::Row(row),
                found: d,
                first: Place::Row(0),
                expected: dim,
            });
        }
        let row_bytes = 4 + 4 * d as u64;
        // A garbage dimension must not make us allocate gigabytes before noticing the short file.
        if let Some(len) = file_len {
            let left = len.saturating_sub(offset);
            if left < row_bytes {
                return Err(truncated(row_bytes, left));
            }
            if row == 0 {
                let rows_hint = usize::try_from(len / row_bytes).unwrap_or(usize::MAX);
                data.try_reserve_exact(rows_hint.saturating_mul(d))
                    .map_err(|_| InputError::OutOfMemory {
                        path: path.to_owned(),
                        bytes: len,
                    })?;
            }
        }
        data.try_reserve(d).map_err(|_| InputError::OutOfMemory {
            path: path.to_owned(),
            bytes: (data.len() as u64 + d as u64) * 4,
        })?;
        // Through a reused row buffer rather than zero-filling `data` first: one pass less over
        // the output, which matters at gigabytes.
        row_buf.resize(d, 0.0);
        let got = read_full(&mut r, bytemuck::cast_slice_mut(&mut row_buf)).map_err(io_err)?;
        if got < 4 * d {
            return Err(truncated(row_bytes, 4 + got as u64));
        }
        f32_from_le_in_place(&mut row_buf);
        data.extend_from_slice(&row_buf);
        offset += row_bytes;
        row += 1;
    }
    if row == 0 {
        return Err(InputError::Empty {
            path: path.to_owned(),
            format: Format::Fvecs,
        });
    }
    Ok(Vectors {
        dim,
        data,
        ids: None,
    })
}

// ---------------------------------------------------------------------------------------------
// JSON lines

/// The fast path: most lines parse straight into this; only failures get a closer look.
#[derive(Deserialize)]
struct Record {
    id: Option<u64>,
    vector: Vec<f32>,
}

fn read_jsonl(path: &Path) -> Result<Vectors, InputError> {
    let io_err = |source| InputError::Io {
        path: path.to_owned(),
        source,
    };
    let (file, _) = open(path)?;
    let mut r = BufReader::with_capacity(1 << 20, file);
    let mut data: Vec<f32> = Vec::new();
    let mut ids: Vec<u64> = Vec::new();
    // (line, has id, dimension) of the first vector, which every later one must match.
    let mut first: Option<(usize, bool, usize)> = None;
    let mut buf = Vec::new();
    let mut line = 0usize;
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).map_err(io_err)? == 0 {
            break;
        }
        line += 1;
        let mut text = buf.trim_ascii();
        if line == 1 {
            text = text
                .strip_prefix(b"\xEF\xBB\xBF")
                .unwrap_or(text)
                .trim_ascii();
        }
        if text.is_empty() {
            continue;
        }
        let record: Record = match serde_json::from_slice(text) {
            Ok(rec) => rec,
            Err(e) => return Err(diagnose_json_line(path, line, text, e)),
        };
        let dim = record.vector.len();
        if dim == 0 {
            return Err(InputError::BadRecord {
                path: path.to_owned(),
                line,
                reason: "\"vector\" is empty".to_owned(),
            });
        }
        let has_id = record.id.is_some();
        match first {
            None => first = Some((line, has_id, dim)),
            Some((first_line, first_has_id, first_dim)) => {
                if dim != first_dim {
                    return Err(InputError::Ragged {
                        path: path.to_owned(),
                        at: Place::Line(line),
                        found: dim,
                        first: Place::Line(first_line),
                        expected: first_dim,
                    });
                }
                if has_id != first_has_id {
                    return Err(InputError::MixedIds {
                        path: path.to_owned(),
                        line,
                        first_line,
                        line_has_id: has_id,
                    });
                }
            }
        }
        data.extend_from_slice(&record.vector);
        if let Some(id) = record.id {
            ids.push(id);
        }
    }
    let Some((_, has_ids, dim)) = first else {
        return Err(InputError::Empty {
            path: path.to_owned(),
            format: Format::JsonLines,
        });
    };
    Ok(Vectors {
        dim,
        data,
        ids: has_ids.then_some(ids),
    })
}

/// Works out why a line did not parse as a [`Record`], for a message that says which part is wrong.
fn diagnose_json_line(path: &Path, line: usize, text: &[u8], err: serde_json::Error) -> InputError {
    let bad_record = |reason: String| InputError::BadRecord {
        path: path.to_owned(),
        line,
        reason,
    };
    let value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        Err(e) => {
            let msg = e.to_string();
            // serde_json appends " at line 1 column N"; the line is ours and the column is a field.
            let reason = msg
                .rsplit_once(" at line ")
                .map_or(msg.as_str(), |(m, _)| m);
            return InputError::Json {
                path: path.to_owned(),
                line,
                column: e.column(),
                reason: reason.to_owned(),
            };
        }
    };
    let Some(obj) = value.as_object() else {
        return bad_record(format!("found {}", json_kind(&value)));
    };
    if let Some(id) = obj.get("id") {
        if !id.is_null() && id.as_u64().is_none() {
            return bad_record(format!(
                "\"id\" is {}; expected a non-negative integer",
                short_json(id)
            ));
        }
    }
    let Some(vector) = obj.get("vector") else {
        return InputError::MissingVector {
            path: path.to_owned(),
            line,
        };
    };
    let Some(items) = vector.as_array() else {
        return bad_record(format!(
            "\"vector\" is {}; expected an array of numbers",
            json_kind(vector)
        ));
    };
    if let Some((index, item)) = items.iter().enumerate().find(|(_, v)| !v.is_number()) {
        return InputError::NotANumber {
            path: path.to_owned(),
            line,
            index,
            found: short_json(item),
        };
    }
    bad_record(err.to_string())
}

fn json_kind(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "an object".to_owned(),
        serde_json::Value::Array(_) => "an array".to_owned(),
        other => short_json(other),
    }
}

/// A JSON value as text, cut short so one bad entry cannot flood the terminal.
fn short_json(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        let cut: String = s.chars().take(40).collect();
        format!("{cut}…")
    } else {
        s
    }
}
